#!/usr/bin/env python
"""``make bench-two-stage``: an estimator trained on each annotator's pseudo-GTs, tested on the synthetic test split.

Usage::

    python tools/bench_two_stage.py                        # Pose2Pose, 3 seeds, outputs/bench-two-stage
    python tools/bench_two_stage.py --estimator hmr        # HMR -> outputs/bench-two-stage-hmr
    python tools/bench_two_stage.py --seeds 0 --rows none smplify gt --no-pretrained-backbone \\
        --size 8 --mocap-size 8 --test-size 8 --epochs 1 --steps-per-epoch 5 --out /tmp/b2   # smoke run

The splits and pseudo-GTs are the quality benchmark's (``--annot-out``, default outputs/bench-annot): reused
when ``make bench-annot`` made them with the same settings, else made here and saved there for both.
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/runtime.py)

import argparse
import logging
import sys

from annot.app.cli import run_tool
from annot.benchmarks.quality import BenchConfig
from annot.benchmarks.two_stage import ROWS, TwoStageConfig, run_bench


def _parser() -> argparse.ArgumentParser:
    d, a = TwoStageConfig(), BenchConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=None, help=f"results folder (default {d.out}, {d.out}-hmr for --estimator hmr)")
    p.add_argument("--estimator", choices=("pose2pose", "hmr"), default=d.estimator)
    p.add_argument("--estimator-config", default=None, help="model / optimiser defaults (default "
                        "configs/estimator/<estimator>.yaml; its data are replaced)")
    p.add_argument("--seeds", type=int, nargs="+", default=list(d.seeds),
                   help="whole runs averaged (>= 3 for intervals)")
    p.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(d.rows))
    p.add_argument("--test-size", type=int, default=d.test_size, help="test-split people")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--itw-ratio", type=float, default=d.itw_ratio, help="share of every batch from the ITW split")
    p.add_argument("--lr", type=float, default=None, help="default: the estimator config's")
    p.add_argument("--lr-dec-epochs", type=int, nargs="*", default=list(d.lr_dec_epochs), help="Pose2Pose x0.1 decays")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep every row's checkpoints")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="estimator-config overrides for every row, e.g. --set pose2pose.input_hw=[256,192]")
    g = p.add_argument_group("splits and annotators (the quality benchmark's settings; tools/bench_annot.py)")
    g.add_argument("--annot-out", default=a.out, help="per-seed splits and pseudo-GTs, shared with make bench-annot")
    g.add_argument("--size", type=int, default=a.size, help="ITW people")
    g.add_argument("--mocap-size", type=int, default=a.mocap_size, help="synthetic 3D (MoCap-like) images")
    g.add_argument("--image-hw", type=int, nargs=2, default=list(a.image_hw), metavar=("H", "W"))
    g.add_argument("--annot-steps", type=int, default=a.steps, help="NeuralAnnot stage-(b) steps")
    g.add_argument("--aux-steps", type=int, default=a.aux_steps)
    g.add_argument("--prior-epochs", type=int, default=a.prior_epochs)
    g.add_argument("--smplify-iters", type=int, default=a.smplify_iters)
    g.add_argument("--eft-iters", type=int, default=a.eft_iters)
    g.add_argument("--fit-iters", type=int, default=a.fit_iters)
    g.add_argument("--no-pretrained-backbone", dest="pretrained_backbone", action="store_false",
                   help="annotator and estimators from a random backbone (skips building the free SimpleBaseline)")
    g.add_argument("--backbone-dir", default=a.backbone_dir, help="where the free SimpleBaseline backbone is (built "
                                                                  "there when missing: make pretrain-backbone)")
    g.add_argument("--cmu-root", default=a.cmu_root)
    g.add_argument("--photos-dir", default=a.photos_dir, help="background photo folder ('none': procedural)")
    g.add_argument("--cmu-frames", type=int, default=a.cmu_frames)
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    annot = BenchConfig(out=a.annot_out, size=a.size, mocap_size=a.mocap_size, image_hw=tuple(a.image_hw),
                        steps=a.annot_steps, aux_steps=a.aux_steps, prior_epochs=a.prior_epochs,
                        smplify_iters=a.smplify_iters, eft_iters=a.eft_iters, fit_iters=a.fit_iters,
                        pretrained_backbone=a.pretrained_backbone, backbone_dir=a.backbone_dir,
                        cmu_root=a.cmu_root, cmu_frames=a.cmu_frames,
                        photos_dir=None if str(a.photos_dir).lower() == "none" else a.photos_dir)
    out = a.out or (TwoStageConfig.out + ("-hmr" if a.estimator == "hmr" else ""))
    cfg = TwoStageConfig(out=out, annot=annot, seeds=tuple(a.seeds), rows=tuple(a.rows), estimator=a.estimator,
                         estimator_config=a.estimator_config, test_size=a.test_size, epochs=a.epochs,
                         steps_per_epoch=a.steps_per_epoch, batch_size=a.batch_size, itw_ratio=a.itw_ratio,
                         lr=a.lr, lr_dec_epochs=tuple(a.lr_dec_epochs), estimator_overrides=list(a.overrides),
                         keep_checkpoints=a.keep_checkpoints)
    results = run_bench(cfg)
    print(results["markdown"])
    print(f"wrote {cfg.out}/results.md, results.json, results.png")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
