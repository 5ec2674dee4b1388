"""Step rate of the stage-(b) annotator training loop alone and beside identical copies (issue #19).

Every job is a fresh process with the setting's environment in place before torch loads; ``copies``
jobs of one setting are released together and each one's steps/s over ``--seconds`` is recorded.
Alone (``--copies 1``) and beside (``--copies 2``) runs of every setting are interleaved over
``--repeats`` rounds; ``/proc/loadavg`` is logged around each. Details: :mod:`annot.benchmarks.threads`.

Usage::

    python tools/bench_threads.py                                # before vs after, alone vs beside 1 copy
    python tools/bench_threads.py --settings "before:" "t1:TORCH_THREADS=1" \\
        "passive:OMP_WAIT_POLICY=PASSIVE" "spin0:GOMP_SPINCOUNT=0" --copies 1 2 --repeats 2 --seconds 30

A setting is ``name:VAR=value,...``: environment variables of the job (``OMP_WAIT_POLICY``,
``GOMP_SPINCOUNT``, ``OMP_NUM_THREADS``...) plus ``TORCH_THREADS`` / ``INTEROP_THREADS``
(``torch.set_num_threads`` / ``set_num_interop_threads`` after import) and ``CONFIGURE=1``
(``annot.app.runtime.configure_threads()`` first, what every entry point does). Prints a markdown table
(median steps/s per job, ratio to the same setting alone and to ``before`` alone).
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    from annot.benchmarks.threads import DEFAULT_SETTINGS, format_table, loadavg, parse_setting, run_bench

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS), help="name:VAR=value,... (see above)")
    p.add_argument("--copies", nargs="+", type=int, default=[1, 2], help="jobs run together (1 = alone)")
    p.add_argument("--repeats", type=int, default=2, help="interleaved rounds")
    p.add_argument("--seconds", type=float, default=30.0, help="timed wall time of each job")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed window")
    p.add_argument("--depth", type=int, default=18, help="ResNet depth (stage (b) of body_free.yaml: 18)")
    p.add_argument("--batch", type=int, default=12, help="batch size (body_free.yaml: 12)")
    p.add_argument("--json", default=None, help="also write every run to this file")
    args = p.parse_args(argv)
    try:
        settings = [parse_setting(s) for s in args.settings]
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"load average at start: {loadavg()}", flush=True)
    results = run_bench(settings, args.copies, args.repeats, args.seconds, args.depth, args.batch, args.warmup,
                        log=lambda m: print(m, flush=True))
    print(f"load average at end: {loadavg()}")
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    from annot.app.cli import run_tool

    sys.exit(run_tool(main))
