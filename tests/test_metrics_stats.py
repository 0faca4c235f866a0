"""Intervals and bounds, checked against statsmodels, scipy and the figures of DOMAIN.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from auditkit.metrics.classification import roc_auc
from auditkit.metrics.stats import (
    binomial_interval,
    binomial_intervals,
    bonferroni_level,
    cluster_bootstrap,
    demonstration_sample_size,
    holm_adjust,
    holm_levels,
    mcnemar_exact,
    newcombe_interval,
    newcombe_intervals,
    paired_difference_interval,
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


# ---------------------------------------------------------------- differences


@pytest.mark.parametrize(
    ("k1", "n1", "k2", "n2"),
    [
        *[(8, 800, 1, 800), (3, 800, 1, 800), (0, 10, 0, 10), (10, 10, 0, 12), (0, 5, 5, 5)],
        *[(5, 37, 12, 41), (1, 1, 0, 1), (250, 1000, 270, 900), (0, 600, 3, 500)],
    ],
)
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_newcombe_matches_statsmodels(k1: int, n1: int, k2: int, n2: int, level: float) -> None:
    want = confint_proportions_2indep(
        k1, n1, k2, n2, method="newcomb", compare="diff", alpha=1 - level
    )
    got = newcombe_interval(k1, n1, k2, n2, level=level)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
    # one-sided at level = the ends of the two-sided interval at 2 * level - 1
    want1 = confint_proportions_2indep(
        k1, n1, k2, n2, method="newcomb", compare="diff", alpha=2 * (1 - level)
    )
    got1 = newcombe_interval(k1, n1, k2, n2, level=level, sided="one")
    assert got1 == pytest.approx(want1, rel=1e-9, abs=1e-12)


def test_newcombe_domain_examples_and_vectorised() -> None:
    low, high = newcombe_interval(8, 800, 1, 800)
    assert (round(low * 100, 2), round(high * 100, 2)) == (0.11, 1.84)  # significant
    low, high = newcombe_interval(3, 800, 1, 800)
    assert (round(low * 100, 2), round(high * 100, 2)) == (-0.38, 0.98)  # not
    lows, highs = newcombe_intervals([8, 3, 0], [800, 800, 0], [1, 1, 1], [800, 800, 5])
    assert lows[0] == newcombe_interval(8, 800, 1, 800)[0]
    assert highs[1] == newcombe_interval(3, 800, 1, 800)[1]
    assert np.isnan(lows[2]) and np.isnan(highs[2])
    with pytest.raises(ValueError):
        newcombe_interval(0, 0, 1, 5)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (0, 1), (3, 9), (9, 3), (10, 10), (0, 25), (7, 40)])
def test_mcnemar_exact_matches_statsmodels(b: int, c: int) -> None:
    table = [[17, b], [c, 31]]
    assert mcnemar_exact(b, c) == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-12)


def _tango_brute_force(b: int, c: int, n: int, z: float) -> tuple[float, float]:
    """Slow, direct inversion of the paired score test: the constrained ML estimate of the
    cell probabilities is found numerically, not from Tango's closed form."""
    a_d = n - b - c

    def score(delta: float) -> float:
        # cells (p_b, p_c, p_rest) with p_b - p_c = delta; maximise the multinomial
        # log-likelihood over p_c in (max(0, -delta), (1 - delta) / 2)
        lo, hi = max(0.0, -delta), (1.0 - delta) / 2.0

        def nll(q: float) -> float:
            pb, pc = q + delta, q
            pr = 1.0 - pb - pc
            terms = [(b, pb), (c, pc), (a_d, pr)]
            return -sum(k * math.log(p) for k, p in terms if k > 0)

        q = optimize.minimize_scalar(
            nll, bounds=(lo + 1e-13, hi - 1e-13), method="bounded", options={"xatol": 1e-13}
        ).x
        # score statistic: (observed - expected) / sqrt(n * var under H0)
        var = (q + delta) + q - delta**2
        return (b - c - n * delta) / math.sqrt(n * var)

    est = (b - c) / n
    low = -1.0 if est == -1 else optimize.brentq(lambda d: score(d) - z, -1 + 1e-9, est - 1e-12)
    high = 1.0 if est == 1 else optimize.brentq(lambda d: score(d) + z, est + 1e-12, 1 - 1e-9)
    return low, high


@pytest.mark.parametrize(
    ("b", "c", "n"),
    [(6, 16, 161), (1, 7, 21), (40, 20, 160), (150, 86, 1600), (3, 0, 50), (0, 4, 4), (2, 2, 30)],
)
def test_paired_interval_matches_direct_score_inversion(b: int, c: int, n: int) -> None:
    low, high = paired_difference_interval(b, c, n, level=0.95)
    want = _tango_brute_force(b, c, n, stats.norm.isf(0.025))
    assert (low, high) == pytest.approx(want, abs=2e-6)
    low1, high1 = paired_difference_interval(b, c, n, level=0.95, sided="one")
    want1 = _tango_brute_force(b, c, n, stats.norm.isf(0.05))
    assert (low1, high1) == pytest.approx(want1, abs=2e-6)
    assert low <= (b - c) / n <= high


def test_paired_interval_worked_example_and_edges() -> None:
    # complete response before/after consolidation therapy (Cavo et al. 2012), a worked
    # example of Fagerland, Lydersen & Laake (ch. 8): 161 pairs, discordant 6 and 16; the
    # figures are those of the direct inversion above
    low, high = paired_difference_interval(6, 16, 161)
    assert (round(low, 4), round(high, 4)) == (-0.1240, -0.0054)
    assert paired_difference_interval(0, 0, 10)[0] == pytest.approx(
        -paired_difference_interval(0, 0, 10)[1]
    )
    assert paired_difference_interval(10, 0, 10)[1] == 1.0
    assert paired_difference_interval(0, 5, 5)[0] == -1.0
    with pytest.raises(ValueError):
        paired_difference_interval(3, 3, 5)
    with pytest.raises(ValueError):
        paired_difference_interval(0, 0, 0)


def test_paired_interval_coverage_simulation() -> None:
    rng = np.random.default_rng(11)
    n, reps, probs = 200, 1500, [0.05, 0.02, 0.93]  # P(b-cell), P(c-cell), concordant
    true = probs[0] - probs[1]
    draws = rng.multinomial(n, probs, size=reps)
    hits = 0
    for b, c, _ in draws:
        low, high = paired_difference_interval(int(b), int(c), n)
        hits += low <= true <= high
    assert 0.93 <= hits / reps <= 0.975


# ---------------------------------------------------------------- multiplicity


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holm_matches_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.random(12) ** 3
    p[3] = p[7]  # a tie
    adjusted = multipletests(p, alpha=0.05, method="holm")[1]
    np.testing.assert_allclose(holm_adjust(p), adjusted, rtol=1e-12)
    assert holm_adjust([]).size == 0
    with pytest.raises(ValueError):
        holm_adjust([0.1, 1.5])


def test_holm_levels_equal_holm_on_binomial_tests() -> None:
    # m slices, each claims escape <= 1 %; p-value of H0: rate > 1 % is P(Bin(n, 1 %) <= k)
    rng = np.random.default_rng(5)
    target, level = 0.01, 0.95
    n = rng.integers(300, 1500, size=10)
    k = rng.integers(0, 6, size=10)
    p = stats.binom.cdf(k, n, target)
    levels = holm_levels(p, level)
    assert sorted(levels) == pytest.approx(sorted(1 - 0.05 / j for j in range(1, 11)))
    bounds = [
        binomial_interval(int(a), int(b), lv)[1] for a, b, lv in zip(k, n, levels, strict=True)
    ]
    passes = np.array(bounds) <= target
    order = np.argsort(p, kind="stable")
    step_down = np.cumprod(passes[order]).astype(bool)  # stop at the first slice that fails
    holm_pass = np.empty_like(step_down)
    holm_pass[order] = step_down
    reject = multipletests(p, alpha=1 - level, method="holm")[0]
    np.testing.assert_array_equal(holm_pass, reject)


@pytest.mark.parametrize(("m", "n"), [(1, 598), (4, 875), (8, 1013), (12, 1094)])
def test_bonferroni_level_domain_sizes(m: int, n: int) -> None:
    assert zero_failure_sample_size(0.005, bonferroni_level(m, 0.95)) == n


# ---------------------------------------------------------------- bootstrap


def test_cluster_bootstrap_keeps_parts_whole_and_records_seed() -> None:
    parts = np.array(["a", "a", "b", "c", "c", "c"])
    seen: list[np.ndarray] = []

    def stat(rows: np.ndarray) -> float:
        seen.append(rows)
        drawn = parts[rows]
        counts = {p: int((drawn == p).sum()) for p in set(drawn)}
        size = {"a": 2, "b": 1, "c": 3}
        assert all(v % size[p] == 0 for p, v in counts.items())  # whole parts only
        assert len(rows) == sum(counts.values())
        return float(len(rows))

    res = cluster_bootstrap(stat, parts, n_resamples=50, seed=42)
    assert res.seed == 42 and res.n_resamples == 50 and res.n_valid == 50 and res.n_parts == 3
    assert res.estimate == 6.0
    again = cluster_bootstrap(stat, parts, n_resamples=50, seed=42)
    assert (again.low, again.high) == (res.low, res.high)


def test_cluster_bootstrap_one_image_per_part_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    x = rng.exponential(size=400)
    res = cluster_bootstrap(lambda r: float(x[r].mean()), np.arange(400), n_resamples=4000)
    ref = stats.bootstrap(
        (x,), np.mean, n_resamples=4000, method="percentile", random_state=np.random.default_rng(9)
    ).confidence_interval
    assert res.low == pytest.approx(ref.low, abs=0.02)
    assert res.high == pytest.approx(ref.high, abs=0.02)


def test_cluster_bootstrap_widens_for_correlated_views_and_skips_undefined() -> None:
    rng = np.random.default_rng(4)
    n_parts, views = 300, 4
    part_effect = np.repeat(rng.normal(size=n_parts), views)
    x = part_effect + 0.1 * rng.normal(size=n_parts * views)
    parts = np.repeat(np.arange(n_parts), views)
    clustered = cluster_bootstrap(lambda r: float(x[r].mean()), parts, n_resamples=1000)
    naive = cluster_bootstrap(lambda r: float(x[r].mean()), np.arange(x.size), n_resamples=1000)
    assert clustered.low is not None and clustered.high is not None
    assert naive.low is not None and naive.high is not None
    width_c, width_n = clustered.high - clustered.low, naive.high - naive.low
    se_cluster = x.reshape(n_parts, views).mean(axis=1).std(ddof=1) / math.sqrt(n_parts)
    assert width_c == pytest.approx(2 * 1.96 * se_cluster, rel=0.15)
    assert width_c > 1.5 * width_n
    few = cluster_bootstrap(lambda r: None, parts, n_resamples=10)
    assert few.estimate is None and few.low is None and few.n_valid == 0


def test_cluster_bootstrap_auc_drops_resamples_without_defects() -> None:
    rng = np.random.default_rng(6)
    parts = np.repeat(np.arange(12), 2)  # two views per part
    d = np.repeat(np.arange(12) < 2, 2)  # two defective parts of twelve
    s = rng.normal(d * 1.5, 1.0)
    res = cluster_bootstrap(lambda r: roc_auc(d[r], s[r]), parts, n_resamples=400, seed=8)
    assert res.estimate == roc_auc(d, s)
    # P(no defective part drawn) = (10/12)^12 = 11 %: those resamples have no AUC
    assert 300 < res.n_valid < 400
    assert res.low is not None and res.high is not None and 0 <= res.low <= res.high <= 1
