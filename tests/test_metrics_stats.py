"""Intervals and bounds, checked against statsmodels, scipy and the figures of DOMAIN.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from auditkit.metrics.stats import (
    binomial_interval,
    binomial_intervals,
    demonstration_sample_size,
    quantile_bounds,
    zero_failure_sample_size,
    zero_failure_upper_bound,
)

CASES = [(0, 1), (1, 1), (0, 10), (3, 10), (10, 10), (0, 600), (1, 600), (12, 600), (599, 600)]
CASES += [(5, 37), (36, 37), (250, 1000), (0, 5000), (7, 5000)]
LEVELS = [0.9, 0.95, 0.99]


@pytest.mark.parametrize(("k", "n"), CASES)
@pytest.mark.parametrize("level", LEVELS)
def test_clopper_pearson_matches_statsmodels_and_scipy(k: int, n: int, level: float) -> None:
    # two-sided at level
    low, high = binomial_interval(k, n, level=level, sided="two")
    sm_low, sm_high = proportion_confint(k, n, alpha=1 - level, method="beta")
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    assert low == pytest.approx(sm_low, rel=1e-9, abs=1e-15)
    assert high == pytest.approx(sm_high, rel=1e-9, abs=1e-15)
    assert low == pytest.approx(ci.low, rel=1e-7, abs=1e-12)
    assert high == pytest.approx(ci.high, rel=1e-7, abs=1e-12)
    # one-sided at level = the limits of the two-sided interval at 2 * level - 1
    low1, high1 = binomial_interval(k, n, level=level, sided="one")
    sm_low1, sm_high1 = proportion_confint(k, n, alpha=2 * (1 - level), method="beta")
    assert low1 == pytest.approx(sm_low1, rel=1e-9, abs=1e-15)
    assert high1 == pytest.approx(sm_high1, rel=1e-9, abs=1e-15)
    # and statsmodels' own one-sided intervals ("smaller" keeps the lower bound, "larger" the
    # upper one)
    lo_only = proportion_confint(k, n, alpha=1 - level, method="beta", alternative="smaller")
    hi_only = proportion_confint(k, n, alpha=1 - level, method="beta", alternative="larger")
    assert low1 == pytest.approx(lo_only[0], rel=1e-9, abs=1e-15)
    assert high1 == pytest.approx(hi_only[1], rel=1e-9, abs=1e-15)


def test_clopper_pearson_boundaries_are_exact() -> None:
    assert binomial_interval(0, 600)[0] == 0.0
    assert binomial_interval(600, 600)[1] == 1.0
    assert binomial_interval(0, 600, sided="two")[0] == 0.0
    assert binomial_interval(600, 600, sided="two")[1] == 1.0
    with pytest.raises(ValueError):
        binomial_interval(0, 0)


@pytest.mark.parametrize(("k", "n"), CASES)
@pytest.mark.parametrize("sided", ["one", "two"])
def test_wilson_matches_statsmodels(k: int, n: int, sided: str) -> None:
    level = 0.95
    alpha = 2 * (1 - level) if sided == "one" else 1 - level
    sm_low, sm_high = proportion_confint(k, n, alpha=alpha, method="wilson")
    low, high = binomial_interval(k, n, level=level, method="wilson", sided=sided)
    assert low == pytest.approx(sm_low, rel=1e-9, abs=1e-12)
    assert high == pytest.approx(sm_high, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("k", "n"), CASES)
@pytest.mark.parametrize("sided", ["one", "two"])
def test_jeffreys_matches_statsmodels(k: int, n: int, sided: str) -> None:
    level = 0.95
    alpha = 2 * (1 - level) if sided == "one" else 1 - level
    sm_low, sm_high = proportion_confint(k, n, alpha=alpha, method="jeffreys")
    low, high = binomial_interval(k, n, level=level, method="jeffreys", sided=sided)
    # boundary modification (Brown, Cai & DasGupta 2001): statsmodels does not apply it
    assert low == (0.0 if k == 0 else pytest.approx(sm_low, rel=1e-9))
    assert high == (1.0 if k == n else pytest.approx(sm_high, rel=1e-9))


def test_vectorised_equals_scalar_and_n0_is_nan() -> None:
    ks = np.array([0, 3, 10, 0, 2])
    ns = np.array([10, 10, 10, 0, 7])
    for method in ("clopper_pearson", "wilson", "jeffreys"):
        low, high = binomial_intervals(ks, ns, method=method)
        for i, (k, n) in enumerate(zip(ks, ns, strict=True)):
            if n == 0:
                assert np.isnan(low[i]) and np.isnan(high[i])
            else:
                assert (low[i], high[i]) == binomial_interval(int(k), int(n), method=method)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        binomial_interval(5, 3)
    with pytest.raises(ValueError):
        binomial_interval(-1, 3)
    with pytest.raises(ValueError):
        binomial_interval(1, 3, method="normal")
    with pytest.raises(ValueError):
        binomial_interval(1, 3, sided="left")
    with pytest.raises(ValueError):
        binomial_interval(1, 3, level=1.5)
    with pytest.raises(ValueError):
        binomial_interval(1, 3, level=0.4, sided="one")


# ---------------------------------------------------------------- DOMAIN.md figures


def test_domain_table_zero_in_600() -> None:
    high = binomial_interval(0, 600, level=0.95, sided="one")[1]
    assert f"{high * 100:.3g}" == "0.498"  # 0.498 %


@pytest.mark.parametrize(
    ("p", "failures", "n"),
    [
        (0.005, 0, 598),
        (0.005, 1, 947),
        (0.005, 2, 1258),
        (0.005, 5, 2100),
        (0.01, 0, 299),
        (0.01, 1, 473),
        (0.01, 2, 628),
        (0.01, 5, 1049),
        (0.001, 0, 2995),
    ],
)
def test_domain_table_demonstration_sizes(p: float, failures: int, n: int) -> None:
    assert demonstration_sample_size(p, 0.95, failures) == n
    # checked independently with the interval itself: n suffices, n - 1 does not
    assert binomial_interval(failures, n, 0.95, sided="one")[1] <= p
    assert binomial_interval(failures, n - 1, 0.95, sided="one")[1] > p
    if failures == 0:
        assert zero_failure_sample_size(p, 0.95) == n


@pytest.mark.parametrize("n", [10, 100, 300, 1000, 10_000])
def test_rule_of_three(n: int) -> None:
    high = binomial_interval(0, n, 0.95, sided="one")[1]
    assert high == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-10)
    assert zero_failure_upper_bound(n, 0.95) == pytest.approx(high, rel=1e-10)
    if n >= 300:
        assert high == pytest.approx(3 / n, rel=0.01)


# ---------------------------------------------------------------- order statistics


def test_quantile_bounds_p99_n1000_is_996th_value() -> None:
    # hand check: the smallest j with P(Bin(1000, 0.99) <= j - 1) >= 0.95 is 996
    assert stats.binom.cdf(994, 1000, 0.99) < 0.95 <= stats.binom.cdf(995, 1000, 0.99)
    rng = np.random.default_rng(1)
    values = rng.permutation(np.arange(1, 1001, dtype=float))  # value j = j-th smallest
    low, high = quantile_bounds(values, 0.99, 0.95)
    assert high == 996.0
    # lower bound: the largest j with P(Bin(1000, 0.99) >= j) >= 0.95
    j_low = max(j for j in range(1, 1001) if stats.binom.sf(j - 1, 1000, 0.99) >= 0.95)
    assert low == float(j_low)


def test_quantile_bounds_need_299_for_p99() -> None:
    assert math.ceil(math.log(0.05) / math.log(0.99)) == 299
    assert quantile_bounds(np.arange(298.0), 0.99)[1] is None
    assert quantile_bounds(np.arange(299.0), 0.99)[1] == 298.0  # the maximum
    assert quantile_bounds(np.arange(5.0), 0.99)[0] is not None  # lower bound exists
    assert quantile_bounds(np.arange(5.0), 0.01)[0] is None  # lower bound of p1 needs more


def test_quantile_bounds_coverage_simulation() -> None:
    rng = np.random.default_rng(7)
    q, n, reps = 0.9, 200, 2000
    true_q = -np.log(1 - q)  # exponential(1)
    hits_high = hits_low = 0
    for _ in range(reps):
        low, high = quantile_bounds(rng.exponential(size=n), q, 0.95)
        assert low is not None and high is not None
        hits_high += high >= true_q
        hits_low += low <= true_q
    assert hits_high / reps >= 0.93
    assert hits_low / reps >= 0.93


def test_quantile_bounds_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        quantile_bounds([], 0.5)
    with pytest.raises(ValueError):
        quantile_bounds([1.0, np.nan], 0.5)
    with pytest.raises(ValueError):
        quantile_bounds([1.0, 2.0], 1.0)
