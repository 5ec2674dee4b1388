"""Statistics for benchmark tables: means over seeds with a t interval, and paired bootstrap differences.

* :func:`mean_ci`: the mean of per-seed values with the two-sided Student-t interval
  ``mean +- t_{1-a/2, n-1} * sd / sqrt(n)`` (sd with ``n - 1``), the usual interval for a few independent
  runs of a whole pipeline.
* :func:`paired_bootstrap`: the mean per-person difference between two methods on the same people, with a
  percentile bootstrap interval (Efron & Tibshirani 1993, ch. 13). Seeds are strata: every resample draws
  each seed's people with replacement from that seed only, so each seed keeps its weight; the statistic is
  the mean over all resampled people.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)`` of finite ``values`` (one per seed); with one value the interval is ``(nan, nan)``.

    Raises:
        ValueError: no finite value, or ``level`` outside (0, 1).
    """
    from scipy.stats import t

    if not 0 < level < 1:
        raise ValueError(f"mean_ci: level must be in (0, 1), got {level}")
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    if v.size == 0:
        raise ValueError("mean_ci: no finite value")
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan"), float("nan")
    half = float(t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    return mean, mean - half, mean + half


def paired_bootstrap(diffs_per_seed: Sequence[np.ndarray], num_resamples: int = 10000, level: float = 0.95,
                     seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)`` of the per-person differences (e.g. method A's MPJPE minus method B's, mm).

    Args:
        diffs_per_seed: one array of per-person differences per seed (NaN entries, people one method did not
            score, are left out).
        num_resamples: bootstrap resamples; level: interval level; seed: the resampling generator's seed
            (fixed: the interval is a reproducible number).

    Raises:
        ValueError: no finite difference, or ``level`` outside (0, 1).
    """
    if not 0 < level < 1:
        raise ValueError(f"paired_bootstrap: level must be in (0, 1), got {level}")
    strata = [np.asarray(d, np.float64)[np.isfinite(d)] for d in diffs_per_seed]
    strata = [d for d in strata if d.size]
    if not strata:
        raise ValueError("paired_bootstrap: no finite difference")
    rng = np.random.default_rng(seed)
    total = sum(d.size for d in strata)
    sums = np.zeros(num_resamples)
    for d in strata:
        idx = rng.integers(0, d.size, size=(num_resamples, d.size))
        sums += d[idx].sum(axis=1)
    boots = sums / total
    mean = float(np.concatenate(strata).mean())
    low, high = np.quantile(boots, [0.5 - level / 2, 0.5 + level / 2])
    return mean, float(low), float(high)


def format_mean_ci(row: Mapping[str, Any], metric: str) -> str:
    """A table cell for ``row[metric]`` with its interval ``row[metric + "_lo"]`` / ``row[metric + "_hi"]``
    (as :func:`mean_ci` gives them; unit of the metric): ``"12.3 [10.1, 14.5]"``, ``"12.3"`` without a finite
    interval (one seed), ``"n/a"`` for a non-finite mean. Raises KeyError for a missing key."""
    if not np.isfinite(row[metric]):
        return "n/a"
    if not np.isfinite(row[metric + "_lo"]):
        return f"{row[metric]:.1f}"
    return f"{row[metric]:.1f} [{row[metric + '_lo']:.1f}, {row[metric + '_hi']:.1f}]"


__all__ = ["format_mean_ci", "mean_ci", "paired_bootstrap"]
