"""Synthetic hand benchmark (``make bench-hand``): the per-sample MANO fit and, with ``--annotator``, the hand
annotator trained with Algorithm 1 and the annotator + fit; exact 3D GT, see ``annot.benchmarks.hands``. Prints and
writes ``outputs/bench-hand/results.json``.

Usage::

    python tools/bench_hand_fit.py [--mano body_models/free/FREE_ANNY_MANO_RIGHT.pkl] [--hands 64] [--seed 0]
        [--annotator [key=value ...]]   # HandAnnotatorConfig overrides, e.g. steps_itw=200 aux.num_hands=256
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads (annot/app/runtime.py)

import argparse
import sys
from pathlib import Path

from annot.app.cli import run_tool
from annot.benchmarks.hands import HandBenchConfig, bench_hand_annotator, bench_hand_fit
from annot.body_models.wholebody import load_mano
from annot.io.atomic import atomic_write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mano", default="body_models/free/FREE_ANNY_MANO_RIGHT.pkl", help="right-hand MANO file")
    parser.add_argument("--hands", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs/bench-hand")
    parser.add_argument("--annotator", action="store_true", help="add the hand-annotator rows (minutes on CPU)")
    parser.add_argument("overrides", nargs="*", help="HandAnnotatorConfig dotlist overrides (with --annotator)")
    args = parser.parse_args(argv)
    try:
        layer = load_mano(args.mano, is_rhand=True)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    cfg = HandBenchConfig(num_hands=args.hands, seed=args.seed)
    result = bench_hand_fit(layer, cfg)
    record = {"config": vars(cfg)}
    if args.annotator:
        from omegaconf import OmegaConf

        from annot.hands.algorithm import HandAnnotatorConfig

        annot_cfg = OmegaConf.merge(OmegaConf.structured(HandAnnotatorConfig), OmegaConf.from_dotlist(args.overrides))
        result.update(bench_hand_annotator(layer, args.mano, cfg, OmegaConf.to_object(annot_cfg)))
        record["annotator_config"] = OmegaConf.to_container(annot_cfg)
    atomic_write_json(Path(args.out) / "results.json", {**record, **result})
    for name, row in result.items():
        print(f"{name:14s} MPJPE {row['mpjpe_mm']:.1f} mm  PA-MPJPE {row['pa_mpjpe_mm']:.1f} mm  "
              f"2D {row['kp2d_err_px']:.1f} px" + (f"  ({row['seconds']:.0f} s)" if "seconds" in row else ""))
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
