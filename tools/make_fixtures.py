"""Write tiny copies of every supported dataset in their exact on-disk layouts (no licensed data).

Usage::

    python tools/make_fixtures.py [--out outputs/fixtures] [--datasets h36m 3dpw ...] [--seed 0]

Each dataset lands in ``<out>/<name>/``; annotations come from posing the free body model and projecting
it with the dataset's camera convention (``annot.data.fixtures``). Prints the folder to use as each
loader's ``root``.
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from annot.app.cli import run_tool
from annot.data.fixtures import FIXTURE_WRITERS, fixture_writer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="outputs/fixtures", help="output folder")
    parser.add_argument("--datasets", nargs="*", default=sorted(FIXTURE_WRITERS), help="which datasets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--body-model-path", default=None, help="SMPL-format model used to pose people")
    args = parser.parse_args(argv)
    out = Path(args.out)
    for name in tqdm(args.datasets, desc="fixtures"):
        try:
            root = fixture_writer(name)(out / name, seed=args.seed, body_model_path=args.body_model_path)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        tqdm.write(f"{name:14s} -> {root}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
