"""Apply the decisions saved from ``review.html``: a filtered ``pseudo_gt.json`` with only the accepted people.

Usage::

    python tools/apply_review.py outputs/annotate-photos review_decisions.json [--out DIR] [--undecided skip|accept]

Writes ``DIR/pseudo_gt.json`` (default ``DIR`` = ``<run>/reviewed``) with the accepted people and
``DIR/skipped.json``: the run's skips plus the rejected ids (reason ``"rejected in review"``) and, unless
``--undecided accept``, the undecided ones (``"not reviewed"``). See :mod:`annot.io.review`. Exit 2 with one line
naming the file and field on a bad decisions file, or one made for another ``pseudo_gt.json``.
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import sys
from pathlib import Path

from annot.app.cli import run_tool
from annot.io.review import apply_decisions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="the annotation run folder (pseudo_gt.json, skipped.json, review.html)")
    parser.add_argument("decisions", help="review_decisions.json saved from review.html")
    parser.add_argument("--out", default=None, help="output folder (default: <run>/reviewed)")
    parser.add_argument("--undecided", choices=("skip", "accept"), default="skip",
                        help="people without a decision: left out (default) or kept")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.run) / "reviewed"
    try:
        counts = apply_decisions(args.run, args.decisions, out, undecided=args.undecided)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"accepted {counts['accepted']}, rejected {counts['rejected']}, not reviewed {counts['not_reviewed']} "
          f"-> {out / 'pseudo_gt.json'} ({counts['skipped']} entries in {out / 'skipped.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
