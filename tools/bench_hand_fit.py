"""Synthetic hand benchmark of the per-sample MANO fit (``make bench-hand``): exact 3D GT, see
``annot.benchmarks.hands``. Prints and writes ``outputs/bench-hand/results.json``.

Usage::

    python tools/bench_hand_fit.py [--mano body_models/free/FREE_ANNY_MANO_RIGHT.pkl] [--hands 64] [--seed 0]
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads (annot/app/runtime.py)

import argparse
import sys
from pathlib import Path

from annot.app.cli import run_tool
from annot.benchmarks.hands import HandBenchConfig, bench_hand_fit
from annot.body_models.wholebody import load_mano
from annot.io.atomic import atomic_write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mano", default="body_models/free/FREE_ANNY_MANO_RIGHT.pkl", help="right-hand MANO file")
    parser.add_argument("--hands", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs/bench-hand")
    args = parser.parse_args(argv)
    try:
        layer = load_mano(args.mano, is_rhand=True)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    cfg = HandBenchConfig(num_hands=args.hands, seed=args.seed)
    result = bench_hand_fit(layer, cfg)
    atomic_write_json(Path(args.out) / "results.json", {"config": vars(cfg), **result})
    for name, row in result.items():
        print(f"{name:6s} MPJPE {row['mpjpe_mm']:.1f} mm  PA-MPJPE {row['pa_mpjpe_mm']:.1f} mm  "
              f"2D {row['kp2d_err_px']:.1f} px")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
