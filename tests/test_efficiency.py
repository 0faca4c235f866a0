"""MLPerf LoadGen's early-stopping percentile estimate against hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from auditkit.metrics.efficiency import (
    early_stopping_min_samples,
    early_stopping_percentile,
)


def _binomial_tail_passes(h: int, t: int, p: float, confidence: float) -> bool:
    """I_p(h, t + 1) <= 1 - c, written out as a binomial sum: P(at least h of h + t under)."""
    n = h + t
    tail = sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(h, n + 1))
    return tail <= 1 - confidence


def test_minimum_samples_are_mlperfs() -> None:
    assert early_stopping_min_samples(90) == 64
    assert early_stopping_min_samples(99) == 662
    # t = 1 by hand: the smallest h with 0.9^(h+1) + (h+1) 0.9^h 0.1 <= 0.01 is h = 63 → 64
    assert not _binomial_tail_passes(62, 1, 0.9, 0.99)
    assert _binomial_tail_passes(63, 1, 0.9, 0.99)


@pytest.mark.parametrize(("n", "rank"), [(64, 1), (100, 3), (500, 34), (2000, 168)])
def test_p90_reports_the_spikes_order_statistic(n: int, rank: int) -> None:
    # distinct latencies in shuffled order: 1 ms, 2 ms, ..., n ms
    latencies = np.random.default_rng(n).permutation(np.arange(1, n + 1, dtype=float))
    estimate = early_stopping_percentile(latencies, 90)
    assert estimate.rank == rank
    assert estimate.value == float(n - rank + 1)  # the rank-th highest
    assert estimate.reason is None
    # the rule: n >= h(t) + t holds for t = rank and fails for t = rank + 1
    assert _binomial_tail_passes(n - rank, rank, 0.9, 0.99)
    assert not _binomial_tail_passes(n - rank - 1, rank + 1, 0.9, 0.99)


def test_too_few_samples_give_no_number() -> None:
    estimate = early_stopping_percentile(np.ones(63), 90)
    assert estimate.value is None
    assert estimate.reason is not None and "insufficient samples: 63 < 64" in estimate.reason
    p99 = early_stopping_percentile(np.ones(661), 99)
    assert p99.value is None and p99.min_samples == 662
    assert early_stopping_percentile(np.arange(662.0), 99).value == 661.0  # the maximum
    assert early_stopping_percentile([], 90).value is None


def test_estimate_is_at_least_the_plain_percentile() -> None:
    x = np.random.default_rng(0).lognormal(size=5000)
    estimate = early_stopping_percentile(x, 90)
    assert estimate.value is not None and estimate.value >= np.percentile(x, 90)
    with pytest.raises(ValueError):
        early_stopping_percentile(x, 100)
