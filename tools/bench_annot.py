#!/usr/bin/env python
"""``make bench-annot``: NeuralAnnot (each recipe on / off, + fit), SMPLify and EFT scored on the free synthetic ITW
split.

Usage::

    python tools/bench_annot.py                                  # default size, 3 seeds, outputs/bench-annot
    python tools/bench_annot.py --size 3 --steps 5 --seeds 0 --out /tmp/b  # smoke run
    python tools/bench_annot.py --clean-2d --out outputs/bench-annot-clean  # the first, clean ITW split
    python tools/bench_annot.py --methods neuralannot smplify --set loss.smpl_param=0
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import logging
import sys

from annot.app.cli import run_tool
from annot.benchmarks.quality import FIT_CAMERAS, FIT_FROM, LABELS, BenchConfig, run_bench


def _parser() -> argparse.ArgumentParser:
    d = BenchConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=d.out)
    p.add_argument("--size", type=int, default=d.size, help="ITW people")
    p.add_argument("--mocap-size", type=int, default=d.mocap_size, help="synthetic 3D auxiliary images")
    p.add_argument("--image-hw", type=int, nargs=2, default=list(d.image_hw), metavar=("H", "W"))
    p.add_argument("--input-hw", type=int, nargs=2, default=list(d.input_hw), metavar=("H", "W"),
                   help="f's crop size (the free backbone is pretrained at 128x96)")
    p.add_argument("--steps", type=int, default=d.steps, help="stage-(b) steps per NeuralAnnot variant")
    p.add_argument("--aux-steps", type=int, default=d.aux_steps)
    p.add_argument("--aux-batch", type=int, default=d.aux_batch)
    p.add_argument("--prior-epochs", type=int, default=d.prior_epochs)
    p.add_argument("--smplify-iters", type=int, default=d.smplify_iters)
    p.add_argument("--eft-iters", type=int, default=d.eft_iters)
    p.add_argument("--seeds", type=int, nargs="+", default=list(d.seeds),
                   help="whole runs averaged (>= 3 for intervals)")
    p.add_argument("--clean-2d", action="store_true", help="the clean ITW split (exact keypoints, one whole person "
                                                           "an image) instead of the realistic one")
    p.add_argument("--fit-iters", type=int, default=d.fit_iters, help="NeuralAnnot + fit: Adam steps per stage")
    p.add_argument("--fit-camera", choices=list(FIT_CAMERAS), default=d.fit_camera,
                   help="NeuralAnnot + fit: the GT intrinsics (as the SMPLify row), CLIFF's estimated image camera "
                        "or f's crop camera")
    p.add_argument("--fit-from", choices=list(FIT_FROM), default=d.fit_from,
                   help="the NeuralAnnot variant that NeuralAnnot + fit, EFT and SMPLify in f's camera start from")
    p.add_argument("--no-pretrained-backbone", dest="pretrained_backbone", action="store_false",
                   help="every variant from a random backbone (skips building the free SimpleBaseline)")
    p.add_argument("--cmu-root", default=d.cmu_root, help="CMU BVH folder (synthetic poses and stage (a))")
    p.add_argument("--photos-dir", default=d.photos_dir, help="background photo folder ('none': procedural)")
    p.add_argument("--cmu-frames", type=int, default=d.cmu_frames, help="CMU frames retargeted for the poses")
    p.add_argument("--cmu-fit-iters", type=int, default=d.cmu_fit_iters, help="their SMPLify3D steps per stage")
    p.add_argument("--methods", nargs="+", choices=list(LABELS), default=None)
    p.add_argument("--architecture", choices=("pose2pose", "regressor"), default=d.architecture)
    p.add_argument("--refine-iters", type=int, default=d.refine_iters,
                   help="SMPLify3D refinement of the stage-(a) pseudo-GTs (0 = as the paper)")
    p.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="annotate-config overrides for every NeuralAnnot variant, e.g. --set loss.smpl_param=0")
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = BenchConfig(out=a.out, size=a.size, mocap_size=a.mocap_size, image_hw=tuple(a.image_hw),
                      input_hw=tuple(a.input_hw), steps=a.steps,
                      aux_steps=a.aux_steps, aux_batch=a.aux_batch, prior_epochs=a.prior_epochs,
                      smplify_iters=a.smplify_iters, eft_iters=a.eft_iters, seeds=tuple(a.seeds),
                      clean_2d=a.clean_2d, fit_iters=a.fit_iters, cmu_root=a.cmu_root,
                      pretrained_backbone=a.pretrained_backbone, fit_camera=a.fit_camera, fit_from=a.fit_from,
                      photos_dir=None if str(a.photos_dir).lower() == "none" else a.photos_dir,
                      cmu_frames=a.cmu_frames, cmu_fit_iters=a.cmu_fit_iters,
                      architecture=a.architecture, refine_iters=a.refine_iters, extra_overrides=list(a.overrides))
    try:
        results = run_bench(cfg, tuple(a.methods) if a.methods else None)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(results["markdown"])
    print(f"wrote {cfg.out}/results.md, results.json, results.png")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
