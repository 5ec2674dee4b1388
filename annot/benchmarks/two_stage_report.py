"""Tables, intervals, the annotator-vs-estimator scatter and the figure of ``make bench-two-stage``
(:mod:`annot.benchmarks.two_stage` runs it; split from it to keep each module short).

Intervals: 95 % t intervals over seeds (:func:`annot.benchmarks.stats.mean_ci`); correlation: Pearson and
Spearman over (annotator direct MPJPE, estimator PA-MPJPE) points, one per annotator and seed.
"""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from annot.benchmarks.stats import format_mean_ci as _cell
from annot.benchmarks.two_stage import ANNOT_METRICS, ANNOTATORS, EST_METRICS, ROWS, SHORT, TwoStageConfig
from annot.io.atomic import atomic_write_bytes


# --------------------------------------------------------------------------- aggregation
def aggregate(per_seed: Mapping[int, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Rows over seeds: for every estimator metric ``<m>`` and annotator metric ``annot_<m>`` the mean of the
    per-seed values with its 95 % t interval (``<m>``, ``<m>_lo``, ``<m>_hi``; NaN where absent), plus
    ``seeds`` (count), ``train_s`` (mean seconds) and ``label``. Row order: that of the first seed."""
    from annot.benchmarks.stats import mean_ci

    first = next(iter(per_seed.values()))
    out: dict[str, dict[str, Any]] = {}
    for row in first:
        recs = [s[row] for s in per_seed.values() if row in s]
        agg: dict[str, Any] = {"label": recs[0].get("label", ROWS.get(row, row)), "seeds": len(recs)}
        columns = {m: [r["metrics"].get(m) for r in recs] for m in EST_METRICS}
        columns.update({f"annot_{m}": [(r.get("annotator") or {}).get(m) for r in recs] for m in ANNOT_METRICS})
        for name, values in columns.items():
            vals = [float(v) for v in values if v is not None]
            try:
                agg[name], agg[name + "_lo"], agg[name + "_hi"] = mean_ci(vals)
            except ValueError:
                agg[name] = agg[name + "_lo"] = agg[name + "_hi"] = float("nan")
        agg["train_s"] = float(np.mean([r.get("seconds", np.nan) for r in recs]))
        out[row] = agg
    return out


def paired_vs_baseline(per_seed: Mapping[int, Mapping[str, Mapping[str, Any]]], baseline: str = "none",
                       metric: str = "pa_mpjpe_mm") -> dict[str, dict[str, float]]:
    """Per row: the mean over seeds of (row - ``baseline``) ``metric`` on the same seed (same split, same
    initial weights and batches) with its 95 % t interval: ``{row: {"mean", "low", "high", "seeds"}}``."""
    from annot.benchmarks.stats import mean_ci

    first = next(iter(per_seed.values()))
    if baseline not in first:
        return {}
    out = {}
    for row in first:
        if row == baseline:
            continue
        diffs = [float(s[row]["metrics"][metric]) - float(s[baseline]["metrics"][metric])
                 for s in per_seed.values() if row in s and baseline in s]
        mean, low, high = mean_ci(diffs)
        out[row] = {"mean": mean, "low": low, "high": high, "seeds": len(diffs)}
    return out


def scatter_points(per_seed: Mapping[int, Mapping[str, Mapping[str, Any]]], x_metric: str = "mpjpe_mm",
                   y_metric: str = "pa_mpjpe_mm") -> list[dict[str, Any]]:
    """One point per annotator row and seed: ``{"row", "seed", "x"`` (annotator's direct ``x_metric`` on the
    ITW split), ``"y"`` (its estimator's ``y_metric`` on the test split)``}``; rows without pseudo-GTs are left out."""
    points = []
    for seed, rows in per_seed.items():
        for row, rec in rows.items():
            ann = rec.get("annotator")
            if ann is None or not np.isfinite(ann.get(x_metric, np.nan)):
                continue
            points.append({"row": row, "seed": int(seed), "x": float(ann[x_metric]),
                           "y": float(rec["metrics"][y_metric])})
    return points


def correlation(points: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Pearson's r (with its two-sided p value) and Spearman's rho between ``x`` and ``y`` of ``points``;
    NaN with fewer than 3 points or no spread."""
    from scipy.stats import pearsonr, spearmanr

    x = np.array([p["x"] for p in points], np.float64)
    y = np.array([p["y"] for p in points], np.float64)
    nan = float("nan")
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"n": len(x), "pearson_r": nan, "pearson_p": nan, "spearman_rho": nan, "spearman_p": nan}
    r, p = pearsonr(x, y)
    rho, p_s = spearmanr(x, y)
    return {"n": len(x), "pearson_r": float(r), "pearson_p": float(p), "spearman_rho": float(rho),
            "spearman_p": float(p_s)}


def ranking_along_training(per_seed: Mapping[int, Mapping[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Per epoch end: the rows ordered by mean test PA-MPJPE over seeds at that point,
    ``[{"epoch", "step", "order": [row, ...], "pa_mpjpe_mm": {row: mean}}]`` (epochs every row reached)."""
    first = next(iter(per_seed.values()))
    epochs = None
    for rows in per_seed.values():
        for rec in rows.values():
            have = {c["epoch"] for c in rec.get("curve") or []}
            epochs = have if epochs is None else epochs & have
    out = []
    for epoch in sorted(epochs or ()):
        means, step = {}, 0
        for row in first:
            vals = [c["pa_mpjpe_mm"] for s in per_seed.values() for c in s[row].get("curve") or []
                    if c["epoch"] == epoch]
            step = max([c["step"] for s in per_seed.values() for c in s[row].get("curve") or []
                        if c["epoch"] == epoch] + [step])
            means[row] = float(np.mean(vals))
        out.append({"epoch": epoch, "step": step, "order": sorted(means, key=means.get), "pa_mpjpe_mm": means})
    return out


# --------------------------------------------------------------------------- outputs
def _verdict(p: Mapping[str, float]) -> str:
    if not np.isfinite(p["low"]):
        return f"{p['mean']:+.1f} mm (one seed: no interval, no verdict)"
    interval = f"{p['mean']:+.1f} mm [{p['low']:+.1f}, {p['high']:+.1f}]"
    if p["high"] < 0:
        return f"LOWER (better) than without pseudo-GT: {interval}, the interval below zero"
    if p["low"] > 0:
        return f"**HIGHER (worse) than without pseudo-GT**: {interval}, the interval above zero"
    return f"**not significantly different from no pseudo-GT**: {interval}, the interval contains zero"


def claim_lines(rows: Mapping[str, Mapping[str, Any]], paired: Mapping[str, Mapping[str, float]],
                corr: Mapping[str, float], ranking: Sequence[Mapping[str, Any]]) -> list[str]:
    """Plain sentences: the best row, each pseudo-GT row against the "no pseudo-GT" baseline, whether lower
    annotator error went with a lower estimator error here, and whether the ranking moved during training."""
    out = []
    pa = {k: r["pa_mpjpe_mm"] for k, r in rows.items() if np.isfinite(r["pa_mpjpe_mm"])}
    if pa:
        best = min(pa, key=pa.get)
        out.append(f"Lowest estimator PA-MPJPE: {rows[best]['label']} ({pa[best]:.1f} mm, mean over seeds).")
        annotators = [k for k in pa if k in ANNOTATORS]
        if annotators:
            best_annot = min(annotators, key=pa.get)
            out.append(f"Best annotator by the estimator it trains: {rows[best_annot]['label']} "
                       f"({pa[best_annot]:.1f} mm); by its own direct MPJPE on the ITW split: "
                       f"{rows[min(annotators, key=lambda k: rows[k]['annot_mpjpe_mm'])]['label']}.")
    for row, p in paired.items():
        out.append(f"{rows[row]['label']}: estimator PA-MPJPE minus the no-pseudo-GT row's (same seed) is "
                   f"{_verdict(p)}.")
    r = corr.get("pearson_r", float("nan"))
    if np.isfinite(r):
        sig = corr["pearson_p"] < 0.05
        if r > 0 and sig:
            verdict = "**yes**: lower annotator error went with a lower estimator error"
        elif r < 0 and sig:
            verdict = "**no, the opposite**: lower annotator error went with a HIGHER estimator error"
        else:
            verdict = "**not shown**: no significant correlation at this size"
        out.append(f"Does better pseudo-GT mean a better estimator here? {verdict} (Pearson r = {r:+.2f}, "
                   f"p = {corr['pearson_p']:.3f}; Spearman rho = {corr['spearman_rho']:+.2f}; {corr['n']} points = "
                   "annotators x seeds; annotator direct MPJPE on the ITW split vs estimator PA-MPJPE on the test "
                   "split).")
    if len(ranking) > 1:
        orders = [" < ".join(SHORT.get(k, k) for k in e["order"]) for e in ranking]
        moved = "the ranking changed" if len(set(orders)) > 1 else "the ranking stayed the same"
        out.append(f"Along training ({moved}; mean test PA-MPJPE at each epoch end, lower first): " + "; ".join(
            f"step {e['step']}: {o}" for e, o in zip(ranking, orders)) + ".")
    return out


def results_markdown(cfg: TwoStageConfig, rows: Mapping[str, Mapping[str, Any]],
                     paired: Mapping[str, Mapping[str, float]], corr: Mapping[str, float],
                     ranking: Sequence[Mapping[str, Any]], sources: Mapping[str, list[str]], total_s: float) -> str:
    """The ``results.md`` text: table (means over seeds [95 % t interval]), the claims and the settings."""
    a = cfg.annot
    lines = [f"# bench-two-stage: {cfg.estimator} trained on each annotator's pseudo-GTs (seeds {list(cfg.seeds)})", "",
             f"Train: synthetic `mocap` ({a.mocap_size} images, 3D GT) + realistic `itw` ({a.size} people, 2D "
             f"keypoints + the row's pseudo-GT SMPL), {cfg.itw_ratio:.0%} of every batch from `itw`. Test: synthetic "
             f"`test` split ({cfg.test_size} people, exact GT; 3DPW protocol: 14 H36M joints from the mesh, pelvis "
             "root). Final weights, no model selection.", "",
             "| pseudo-GT of the ITW split | annotator MPJPE on ITW (mm) | annotator PA-MPJPE on ITW (mm) | "
             "estimator MPJPE (mm) | estimator PA-MPJPE (mm) | estimator MPVPE (mm) | train s / run |",
             "|---|---|---|---|---|---|---|"]
    for r in rows.values():
        lines.append(f"| {r['label']} | {_cell(r, 'annot_mpjpe_mm')} | {_cell(r, 'annot_pa_mpjpe_mm')} | "
                     f"{_cell(r, 'mpjpe_mm')} | {_cell(r, 'pa_mpjpe_mm')} | {_cell(r, 'mpvpe_mm')} | "
                     f"{r['train_s']:.0f} |")
    lines += ["", *claim_lines(rows, paired, corr, ranking), ""]
    lines += ["Values: mean over seeds of the per-seed value, [95 % t interval over seeds]. Paired differences: per "
              "seed (same split, initial weights, batches and augmentation; only the ITW SMPL targets differ), t "
              "interval over seeds. Annotator errors: direct (camera frame) against the hidden GT of the ITW people "
              "it annotated.",
              f"Settings: estimator {cfg.estimator} "
              f"({cfg.estimator_config or f'configs/estimator/{cfg.estimator}.yaml'}"
              f"{', overrides ' + ' '.join(cfg.estimator_overrides) if cfg.estimator_overrides else ''}), "
              f"{cfg.epochs} epochs x {cfg.steps_per_epoch} steps of {cfg.batch_size}, lr decay after epochs "
              f"{list(cfg.lr_dec_epochs) if cfg.estimator == 'pose2pose' else []}, backbone "
              f"{'free SimpleBaseline' if a.pretrained_backbone else 'from scratch'}; annotators: the quality "
              f"benchmark's settings (stage-(b) steps {a.steps}, SMPLify iters {a.smplify_iters}, EFT iters "
              f"{a.eft_iters}, fit iters {a.fit_iters}) in {a.out}.",
              "This run: " + "; ".join(f"{k}: {', '.join(v) if v else '-'}" for k, v in sources.items())
              + f". Total wall time {total_s:.0f} s.", ""]
    return "\n".join(lines)


def write_figure(path: Path, rows: Mapping[str, Mapping[str, Any]], points: Sequence[Mapping[str, Any]],
                 corr: Mapping[str, float], per_seed: Mapping[int, Mapping[str, Mapping[str, Any]]]) -> None:
    """results.png: PA-MPJPE per row with 95 % interval bars; annotator direct MPJPE vs estimator PA-MPJPE
    (one point per annotator and seed, Pearson r in the title); test PA-MPJPE along training (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(rows)
    colour = {k: f"C{i}" for i, k in enumerate(keys)}
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ax = axes[0]
    mean = np.array([rows[k]["pa_mpjpe_mm"] for k in keys])
    lo, hi = np.array([rows[k]["pa_mpjpe_mm_lo"] for k in keys]), np.array([rows[k]["pa_mpjpe_mm_hi"] for k in keys])
    err = np.nan_to_num(np.stack([mean - lo, hi - mean]), nan=0.0)
    ax.bar(range(len(keys)), mean, yerr=err, capsize=4, color=[colour[k] for k in keys])
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([SHORT.get(k, k) for k in keys], rotation=30, ha="right")
    ends = np.concatenate([mean, lo, hi])
    ends = ends[np.isfinite(ends)]
    if ends.size:  # the differences are a few percent of the values: the axis starts near the lowest end
        span = max(float(ends.max() - ends.min()), 1.0)
        ax.set_ylim(max(0.0, float(ends.min()) - 0.5 * span), float(ends.max()) + 0.2 * span)
    ax.set_ylabel("estimator PA-MPJPE on test (mm; axis cut)")
    ax.set_title("estimator PA-MPJPE per pseudo-GT (95 % CI over seeds)", fontsize=10)
    ax = axes[1]
    for k in keys:
        pts = [p for p in points if p["row"] == k]
        if pts:
            ax.scatter([p["x"] for p in pts], [p["y"] for p in pts], color=colour[k], label=SHORT.get(k, k))
    if np.isfinite(corr.get("pearson_r", np.nan)):
        x = np.array([p["x"] for p in points])
        y = np.array([p["y"] for p in points])
        slope, icpt = np.polyfit(x, y, 1)
        xs = np.linspace(x.min(), x.max(), 2)
        ax.plot(xs, slope * xs + icpt, "k--", lw=1)
    ax.set_xlabel("annotator direct MPJPE on ITW (mm)")
    ax.set_ylabel("estimator PA-MPJPE on test (mm)")
    ax.set_title(f"one point per annotator and seed: r = {corr.get('pearson_r', float('nan')):+.2f} "
                 f"(p = {corr.get('pearson_p', float('nan')):.2f}, n = {corr.get('n', 0)})", fontsize=10)
    if points:
        ax.legend(fontsize=8)
    ax = axes[2]
    for k in keys:
        by_step: dict[int, list[float]] = {}
        for s in per_seed.values():
            for c in s.get(k, {}).get("curve") or []:
                by_step.setdefault(int(c["step"]), []).append(c["pa_mpjpe_mm"])
        if by_step:
            steps = sorted(by_step)
            ax.plot(steps, [np.mean(by_step[t]) for t in steps], "o-", color=colour[k], label=SHORT.get(k, k))
    ax.set_xlabel("training step")
    ax.set_ylabel("test PA-MPJPE (mm), mean over seeds")
    ax.set_title("along training (each epoch end)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


__all__ = ["aggregate", "claim_lines", "correlation", "paired_vs_baseline", "ranking_along_training",
           "results_markdown", "scatter_points", "write_figure"]
