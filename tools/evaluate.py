"""Evaluate an estimator checkpoint on its evaluation sets (MPJPE / PA-MPJPE / MPVPE, mm).

Usage::

    python tools/evaluate.py CKPT [--config extra.yaml] [--sets 3dpw mupots] [--out file.json] [key=value ...]

The checkpoint carries its resolved config (:mod:`estimators.evaluate`); ``--config`` and dotlist
overrides change it, e.g. ``data.val.3dpw.args.root=/data/PW3D/data trainer.accelerator=gpu``.
Prints a table and writes ``CKPT.eval.json`` (or ``--out``).
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import logging
import sys
import warnings

from annot.app.cli import run_tool
from annot.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="Lightning checkpoint written by tools/train_estimator.py")
    parser.add_argument("--config", default=None, help="YAML merged over the checkpoint's stored config")
    parser.add_argument("--sets", nargs="+", default=None, help="evaluate only these data.val names")
    parser.add_argument("--out", default=None, help="result json (default: CKPT.eval.json)")
    parser.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. data.val_batch_size=32")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")  # Lightning on torch 2.13
    from estimators.evaluate import evaluate

    try:
        result = evaluate(args.checkpoint, args.config, args.overrides, sets=args.sets, out_json=args.out)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(result["table"])
    print(f"wall time {result['wall_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
