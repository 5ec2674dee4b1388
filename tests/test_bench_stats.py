"""annot.benchmarks.stats against hand-computed values and the normal approximation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from annot.benchmarks.stats import mean_ci, paired_bootstrap


def test_mean_ci_hand_computed():
    # values 1, 2, 3: mean 2, sd 1, t_{0.975, 2} = 4.302653 -> half width 4.302653 / sqrt(3) = 2.484138
    mean, low, high = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert low == pytest.approx(2.0 - 2.484138, abs=1e-6) and high == pytest.approx(2.0 + 2.484138, abs=1e-6)
    mean, low, high = mean_ci([5.0, float("nan")])  # one finite value: no interval
    assert mean == 5.0 and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError):
        mean_ci([float("nan")])


def test_paired_bootstrap_matches_the_normal_interval_and_respects_strata():
    rng = np.random.default_rng(1)
    diffs = [rng.normal(-3.0, 10.0, size=400) for _ in range(3)]
    mean, low, high = paired_bootstrap(diffs, num_resamples=4000, seed=0)
    pooled = np.concatenate(diffs)
    assert mean == pytest.approx(pooled.mean())
    half = 1.96 * pooled.std(ddof=1) / math.sqrt(pooled.size)  # the normal approximation of the mean's interval
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    assert low < mean < high
    # a constant difference has a zero-width interval; NaN (unscored people) is left out
    assert paired_bootstrap([np.array([2.0, 2.0, np.nan])], num_resamples=200) == (2.0, 2.0, 2.0)
    # same seed, same interval
    assert paired_bootstrap(diffs, num_resamples=500, seed=3) == paired_bootstrap(diffs, num_resamples=500, seed=3)


def test_table_cell_shows_the_interval_only_when_there_is_one():
    from annot.benchmarks.stats import format_mean_ci

    assert format_mean_ci({"m": 12.345, "m_lo": 10.0, "m_hi": 14.69}, "m") == "12.3 [10.0, 14.7]"
    assert format_mean_ci({"m": 12.345, "m_lo": float("nan"), "m_hi": float("nan")}, "m") == "12.3"
    assert format_mean_ci({"m": float("nan"), "m_lo": 1.0, "m_hi": 2.0}, "m") == "n/a"
