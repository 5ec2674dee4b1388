#!/usr/bin/env python
"""``make bench-annot-scale``: NeuralAnnot (f given the 2D keypoints; the paper's image-only f on request), NeuralAnnot
+ fit and SMPLify against the number of target people N.

The paper's amortisation argument: one network trained on the whole set gets better (and cheaper per
sample) as N grows, while per-sample fitting stays where it is. For every N this runs
:func:`annot.benchmarks.quality.run_bench` (same realistic split recipe, every seed) with ``mocap_size = min(4 N,
--max-mocap)`` auxiliary 3D images and ``steps = 350 sqrt(N / 64)`` training steps (bench-annot's 350 at N = 64),
then writes ``<out>/scale.{md,json,png}``: direct MPJPE against N (left) and seconds per sample against N (right).
Not part of CI: about 2 hours on 2 CPU cores for N = 64, 256, 1024, 2048 and one seed (N = 2048 alone took 65 min
on a loaded 2-core AMD EPYC VM, N = 1024 about 40; BENCHMARKS.md).

Usage::

    python tools/bench_annot_scale.py                          # N = 64 256 1024 2048, seed 0
    python tools/bench_annot_scale.py --sizes 64 256 --seeds 0 1 2
    python tools/bench_annot_scale.py --sizes 1024 --methods neuralannot_paper neuralannot neuralannot_fit
    python tools/bench_annot_scale.py --sizes 64 1024 2048 --from-results   # re-plot earlier runs
"""
from __future__ import annotations

from annot.app.runtime import configure_threads

configure_threads()  # first, before torch loads: OpenMP reads its environment once (annot/app/runtime.py)

import argparse
import io
import json
import logging
import math
import sys
from pathlib import Path

#: the paper's f, the project's f (given the 2D keypoints), NeuralAnnot + fit (from the latter, bench-annot's
#: ``fit_from``), SMPLify.
METHODS = ("neuralannot_paper", "neuralannot", "neuralannot_fit", "smplify")
#: the default rows: the project's f, NeuralAnnot + fit from it, SMPLify. The paper's image-only f
#: (``--methods neuralannot_paper ...``) would add about 40 % to the run (BENCHMARKS.md, "Amortisation").
DEFAULT_METHODS = ("neuralannot", "neuralannot_fit", "smplify")
#: method keys of results written before the project's f became the ``neuralannot`` row (old -> new).
OLD_KEYS = {"neuralannot": "neuralannot_paper", "neuralannot_kp2d_in": "neuralannot"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="outputs/bench-annot-scale")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024, 2048], help="target people N")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--max-mocap", type=int, default=2048, help="cap on the auxiliary 3D images")
    p.add_argument("--base-steps", type=int, default=350,
                   help="training steps at N = 64, bench-annot's default (scaled by sqrt(N / 64))")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(DEFAULT_METHODS),
                   help="rows to run (NeuralAnnot + fit needs neuralannot; SMPLify is always run)")
    p.add_argument("--from-results", action="store_true",
                   help="run nothing: rebuild scale.{md,json,png} from <out>/N<n>/results.json of earlier runs, "
                        "with the paired lines recomputed from their per-person errors by this code")
    return p


def _saved_result(folder: Path) -> dict:
    """An earlier run's ``results.json`` in ``folder`` with its paired lines recomputed (per-person errors as arrays).

    Raises:
        FileNotFoundError: no ``results.json`` there.
    """
    import numpy as np

    from annot.benchmarks.quality_report import paired_against_smplify

    path = folder / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"--from-results: {path} does not exist (run this N first)")
    res = _renamed_old_keys(json.loads(path.read_text()))
    seeds = {s: {"per_sample": {k: {m: np.asarray(v, dtype=float) for m, v in per.items()}
                                for k, per in r["per_sample"].items()}} for s, r in res["per_seed"].items()}
    res["paired_vs_smplify_mpjpe_mm"] = paired_against_smplify(seeds, res["rows"])
    return res


def _renamed_old_keys(res: dict) -> dict:
    """``res`` with the method keys of a run made before the rename (:data:`OLD_KEYS`, recognised by its
    ``neuralannot_kp2d_in`` row) renamed, in its rows and per-seed values; newer results unchanged."""
    if "neuralannot_kp2d_in" not in res["rows"]:
        return res
    res["rows"] = {OLD_KEYS.get(k, k): v for k, v in res["rows"].items()}
    for r in res["per_seed"].values():
        r["per_sample"] = {OLD_KEYS.get(k, k): v for k, v in r["per_sample"].items()}
    return res


def scale_table(results: dict[int, dict]) -> str:
    """Markdown: one row per N and method, MPJPE mean [95 % interval] and seconds per sample."""
    lines = ["| N | method | MPJPE (mm) | paired diff. vs SMPLify (mm) | time / sample (s) |", "|---|---|---|---|---|"]
    for n, res in sorted(results.items()):
        for key in METHODS:
            row = res["rows"].get(key)
            if row is None:
                continue
            pairs = res["paired_vs_smplify_mpjpe_mm"]
            pair = pairs.get(key) or pairs.get(f"best:{key}") or pairs.get(f"alone:{key}")
            diff = f"{pair['mean']:+.1f} [{pair['low']:+.1f}, {pair['high']:+.1f}]" if pair else ""
            ci = f" [{row['mpjpe_mm_lo']:.1f}, {row['mpjpe_mm_hi']:.1f}]" if math.isfinite(row["mpjpe_mm_lo"]) else ""
            lines.append(f"| {n} | {row['label']} | {row['mpjpe_mm']:.1f}{ci} | {diff} "
                         f"| {row['seconds_per_sample']:.2f} |")
    return "\n".join(lines) + "\n"


def write_plot(path: Path, results: dict[int, dict]) -> None:
    """Two panels: direct MPJPE (mean, 95 % interval when several seeds) and seconds per sample against N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from annot.io.atomic import atomic_write_bytes

    sizes = sorted(results)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 5))
    for key in METHODS:
        rows = [results[n]["rows"].get(key) for n in sizes]
        if any(r is None for r in rows):
            continue
        mean = [r["mpjpe_mm"] for r in rows]
        ax1.plot(sizes, mean, marker="o", label=rows[0]["label"])
        lo, hi = [r["mpjpe_mm_lo"] for r in rows], [r["mpjpe_mm_hi"] for r in rows]
        if all(math.isfinite(v) for v in lo + hi):
            ax1.fill_between(sizes, lo, hi, alpha=0.2)
        ax2.plot(sizes, [r["seconds_per_sample"] for r in rows], marker="o", label=rows[0]["label"])
    for ax, title in ((ax1, "direct MPJPE (mm)"), (ax2, "seconds per sample")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("target people N")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax2.set_yscale("log")
    handles, labels = ax1.get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.2, 1, 1))  # the long method labels go below both panels, off the curves
    fig.legend(handles, labels, loc="lower center", fontsize=8, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    from annot.benchmarks.quality import BenchConfig, run_bench
    from annot.io.atomic import atomic_write_bytes, atomic_write_json

    a = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(a.out)
    results: dict[int, dict] = {}
    for n in a.sizes:
        if a.from_results:
            res = _saved_result(out / f"N{n}")
            results[n] = {k: res[k] for k in ("rows", "paired_vs_smplify_mpjpe_mm", "total_s", "config")}
            continue
        cfg = BenchConfig(out=str(out / f"N{n}"), size=n, mocap_size=min(4 * n, a.max_mocap),
                          steps=int(round(a.base_steps * math.sqrt(n / 64))), seeds=tuple(a.seeds))
        res = run_bench(cfg, tuple(dict.fromkeys([*(m for m in METHODS if m in a.methods), "smplify"])))
        res.pop("markdown", None)
        results[n] = {k: res[k] for k in ("rows", "paired_vs_smplify_mpjpe_mm", "total_s", "config")}
    table = scale_table(results)
    atomic_write_json(out / "scale.json", {str(n): r for n, r in results.items()})
    atomic_write_bytes(out / "scale.md", ("# bench-annot-scale\n\n" + table).encode())
    write_plot(out / "scale.png", results)
    print(table)
    print(f"wrote {out}/scale.md, scale.json, scale.png")
    print(json.dumps({str(n): round(r["total_s"]) for n, r in results.items()}), "seconds per N")
    return 0


if __name__ == "__main__":
    from annot.app.cli import run_tool

    sys.exit(run_tool(main))
