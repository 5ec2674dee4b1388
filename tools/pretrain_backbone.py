"""Pretrain a SimpleBaseline 2D pose network on free data (the second recipe's backbone initialisation).

Usage::

    python tools/pretrain_backbone.py [--config configs/pretrain/backbone.yaml] [key=value ...]

e.g. ``depth=50 input_hw=[256,192] sigma=2.0 train.accelerator=gpu train.steps=20000`` (OmegaConf
dotlist overrides of :class:`annot.pretrain.PretrainConfig`). Writes
``<out_dir>/pose_resnet_<depth>_free.pth`` (``state_dict`` in ``pose_resnet`` names + ``provenance``),
``..._keypoints.png`` and ``....json``; prints the held-out PCK. Use the checkpoint with
``model.backbone_weights=<path>``. See :mod:`annot.pretrain`.
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import logging
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/pretrain/backbone.yaml", help="OmegaConf yaml")
    parser.add_argument("overrides", nargs="*", help="key=value dotlist overrides")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("annot.pretrain").setLevel(logging.INFO)
    from annot.pretrain import load_pretrain_config, pretrain_backbone

    start = time.perf_counter()
    cfg = load_pretrain_config(args.config, args.overrides)
    result = pretrain_backbone(cfg)
    p = result["pck"]
    print(f"checkpoint {result['checkpoint']} ({result['steps']} steps, ResNet-{result['depth']})")
    print(f"held-out PCK@{p['alpha']} torso {p['value']:.3f} "
          f"(mean-pose baseline {p['mean_pose_baseline']:.3f}); "
          f"PCK@0.2 {p['pck@0.2']:.3f} (baseline {p['mean_pose_baseline@0.2']:.3f}); "
          f"{p['keypoints']} keypoints")
    print(f"figure {result['figure']}; {time.perf_counter() - start:.0f} s "
          f"(render {result['timing_s']['render']} s, train {result['timing_s']['train']} s)")
    print(f"use: model.backbone_weights={result['checkpoint']}")
    return 0


if __name__ == "__main__":
    from annot.app.cli import run_tool

    sys.exit(run_tool(main))
