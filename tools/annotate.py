"""Run Algorithm 1 of NeuralAnnot and write SMPL pseudo-GTs (``make annotate-body``).

Usage::

    python tools/annotate.py --config configs/annotate/body_free.yaml [--trainer configs/trainer/gpu.yaml] \
        [key=value ...]

``--trainer FILE`` merges a trainer profile (``configs/trainer/{cpu,gpu,ddp4,slurm}.yaml``) under the
``trainer`` key, after the config file and before the command-line overrides. Any config field can be
overridden with a dotlist (``trainer.max_steps=50 data.root=/data/coco``); an unknown key fails at
start with its name. Finished stages are skipped on a second invocation. See ``annot.annotator.pipeline`` for the
stages and the outputs. ``trainer.logger=wandb`` logs to Weights & Biases
(offline under ``<out_dir>/wandb/`` unless ``WANDB_API_KEY`` is set; ``annot.training.loggers``).
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import json
import logging
import sys

from annot.annotator.config import AnnotateConfig, trainer_profile_overrides
from annot.annotator.pipeline import run_annotate
from annot.annotator.report import log_report
from annot.app.cli import run_tool
from annot.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/annotate/body_free.yaml", help="YAML config file")
    parser.add_argument("--trainer", default=None,
                        help="trainer profile merged under `trainer`, e.g. configs/trainer/gpu.yaml")
    parser.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. trainer.max_steps=50")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("annot").setLevel(logging.INFO)
    try:
        profile = trainer_profile_overrides(args.trainer) if args.trainer else []
        cfg = load_config(AnnotateConfig, args.config, profile + list(args.overrides))
        report = run_annotate(cfg)
        log_report(report, cfg)
    except (ConfigError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not report:  # a non-zero rank under strategy="ddp": rank 0 reports
        return 0
    counts, err = report["counts"], report["kp2d_err_px"]
    curve = report["kp2d_err_px_during_training"]
    first = curve[0]["train/kp2d_err_img_px"] if curve else float("nan")
    print(f"annotated {counts['annotated']}, skipped {counts['skipped']} {json.dumps(counts['skip_reasons'])}")
    print(f"2D reprojection error (px): {first:.1f} at step 1 -> {curve[-1]['train/kp2d_err_img_px']:.1f} "
          f"at step {int(curve[-1]['step'])} (train); final pseudo-GTs mean {err['mean']:.1f}")
    print(f"EFT-rejected (max|beta|>5 or normalised 2D loss>0.01): {counts['eft_rejected']}")
    wall = report["wall_time"]
    print(f"wall time {wall['this_invocation_s']:.0f} s (all stages, first run: {wall['stages_total_s']:.0f} s); "
          f"outputs in {cfg.export.out_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
