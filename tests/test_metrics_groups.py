"""Slice metrics against Fairlearn's MetricFrame, scipy and statsmodels."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    false_negative_rate,
    false_positive_rate,
    true_positive_rate,
)
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep

from auditkit.metrics.groups import (
    by_group,
    holm_slice_tests,
    homogeneity_test,
    rate_difference,
    rate_ratio,
    slice_counts,
    slice_rates,
)
from auditkit.metrics.stats import binomial_interval

FAIRLEARN = {
    "escape_rate": false_negative_rate,
    "overkill_rate": false_positive_rate,
    "detection_rate": true_positive_rate,
}


def _units(seed: int, n: int = 4000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    line = rng.choice(["L1", "L2", "L3"], n)
    shift = rng.choice(["day", "night"], n)
    d = rng.random(n) < 0.3
    # escape and overkill depend on the slice
    miss = 0.05 + 0.1 * (line == "L3") + 0.05 * (shift == "night")
    r = np.where(d, rng.random(n) > miss, rng.random(n) < 0.03 + 0.04 * (line == "L2"))
    return pd.DataFrame({"line": line, "shift": shift, "is_defect": d, "is_reject": r})


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("columns", [["line"], ["shift"], ["line", "shift"]])
@pytest.mark.parametrize("rate", sorted(FAIRLEARN))
def test_difference_and_ratio_match_fairlearn(seed: int, columns: list[str], rate: str) -> None:
    units = _units(seed)
    counts = slice_counts(units, columns)
    mf = MetricFrame(
        metrics=FAIRLEARN[rate],
        y_true=units["is_defect"],
        y_pred=units["is_reject"],
        sensitive_features=units[columns],
    )
    diff = rate_difference(counts, rate)
    ratio = rate_ratio(counts, rate)
    assert diff.value == pytest.approx(mf.difference(method="between_groups"), abs=1e-15)
    assert ratio.value == pytest.approx(mf.ratio(method="between_groups"), rel=1e-12)
    assert diff.name == f"{rate}_difference" and ratio.name == f"{rate}_ratio"
    assert diff.by == tuple(columns)
    # per slice values equal MetricFrame.by_group
    ours = by_group(counts, rate)["value"]
    theirs = mf.by_group.reindex(ours.index) if len(columns) == 1 else mf.by_group
    np.testing.assert_allclose(ours.to_numpy(), theirs.loc[ours.index].to_numpy(), rtol=1e-12)
    # the interval is Newcombe's for the largest and smallest slice
    assert diff.k_largest is not None and diff.n_largest is not None
    assert diff.k_smallest is not None and diff.n_smallest is not None
    want = confint_proportions_2indep(
        diff.k_largest, diff.n_largest, diff.k_smallest, diff.n_smallest, method="newcomb"
    )
    assert (diff.low, diff.high) == pytest.approx(want, rel=1e-9)
    assert diff.value == pytest.approx(
        diff.k_largest / diff.n_largest - diff.k_smallest / diff.n_smallest
    )
    assert diff.largest is not None and set(diff.largest) == set(columns)


def test_empty_slices_do_not_crash() -> None:
    units = pd.DataFrame(
        {
            "line": ["L1", "L1", "L2", "L2", "L3"],
            "is_defect": [True, False, False, False, True],
            "is_reject": [True, False, True, False, False],
        }
    )
    counts = slice_counts(units, "line")
    # L2 has no defective unit: no escape rate there, ignored by difference and ratio
    table = slice_rates(counts, "escape_rate", min_n=2)
    assert table.loc["L2", "n"] == 0 and np.isnan(table.loc["L2", "value"])
    assert np.isnan(table.loc["L2", "low"])
    assert table["below_min_n"].tolist() == [True, True, True]
    diff = rate_difference(counts, "escape_rate")
    assert diff.value == 1.0 and diff.largest == {"line": "L3"} and diff.smallest == {"line": "L1"}
    assert rate_ratio(counts, "escape_rate").value == 0.0
    # no slice has a value at all
    none = slice_counts(units[~units["is_defect"]], "line")
    assert rate_difference(none, "escape_rate").value is None
    assert rate_ratio(none, "escape_rate").value is None
    assert homogeneity_test(none, "escape_rate").method == "none"
    tests = holm_slice_tests(none, "escape_rate", 0.01)
    assert not tests["demonstrated"].any() and tests["p_value"].isna().all()
    # one slice: difference 0, ratio 1
    one = slice_counts(units[units["line"] == "L1"], "line")
    assert rate_difference(one, "overkill_rate").value == 0.0
    assert rate_ratio(one, "overkill_rate").value == 1.0


def test_slice_rates_bounds() -> None:
    units = _units(4)
    counts = slice_counts(units, ["line", "shift"])
    table = slice_rates(counts, "escape_rate", level=0.95, min_n=250)
    m = int((table["n"] > 0).sum())
    for key, row in table.iterrows():
        low, high = binomial_interval(int(row["k"]), int(row["n"]), 0.95)
        assert (row["low"], row["high"]) == (low, high), key
        s_low, s_high = binomial_interval(int(row["k"]), int(row["n"]), 1 - 0.05 / m)
        assert (row["simultaneous_low"], row["simultaneous_high"]) == (s_low, s_high)
        assert row["below_min_n"] == (row["n"] < 250)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_homogeneity_chi2_matches_scipy(seed: int) -> None:
    counts = slice_counts(_units(seed), ["line", "shift"])
    table = by_group(counts, "escape_rate")
    observed = np.c_[table["k"], table["n"] - table["k"]]
    ref = stats.chi2_contingency(observed, correction=False)
    res = homogeneity_test(counts, "escape_rate")
    assert res.method == "chi2" and res.dof == ref.dof == 5
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-8)


def test_homogeneity_small_counts() -> None:
    # two slices with few escapes: Fisher's exact test
    two = pd.DataFrame({"tp": [40, 35], "fp": [0, 0], "tn": [0, 0], "fn": [1, 6]})
    two.index = pd.Index(["L1", "L2"], name="line")
    res = homogeneity_test(two, "escape_rate")
    assert res.method == "fisher"
    assert res.p_value == pytest.approx(stats.fisher_exact([[1, 40], [6, 35]]).pvalue)
    # several slices with few escapes: Monte-Carlo exact test vs scipy's Monte-Carlo
    many = pd.DataFrame(
        {"tp": [40, 35, 50, 20], "fp": 0, "tn": 0, "fn": [1, 6, 2, 0]},
        index=pd.Index(["a", "b", "c", "d"], name="camera"),
    )
    res = homogeneity_test(many, "escape_rate", n_resamples=20_000, seed=3)
    assert res.method == "monte_carlo" and res.seed == 3 and res.n_resamples == 20_000
    observed = np.c_[[1, 6, 2, 0], [40, 35, 50, 20]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = stats.chi2_contingency(
            observed,
            correction=False,
            method=stats.MonteCarloMethod(n_resamples=20_000, rng=np.random.default_rng(1)),
        )
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert res.p_value == pytest.approx(ref.pvalue, abs=0.01)
    # forcing chi2 on the same table gives the asymptotic p-value
    forced = homogeneity_test(many, "escape_rate", method="chi2")
    assert forced.p_value == pytest.approx(stats.chi2.sf(ref.statistic, 3), rel=1e-8)
    with pytest.raises(ValueError):
        homogeneity_test(many, "escape_rate", method="fisher")


@pytest.mark.parametrize("op", ["<=", ">="])
def test_holm_slice_tests_match_statsmodels(op: str) -> None:
    counts = slice_counts(_units(7, 20_000), ["line", "shift"])
    threshold = 0.17 if op == "<=" else 0.85
    rate = "escape_rate" if op == "<=" else "detection_rate"
    res = holm_slice_tests(counts, rate, threshold, op=op, level=0.95)  # type: ignore[arg-type]
    alternative = "less" if op == "<=" else "greater"
    p = [
        stats.binomtest(int(k), int(n), threshold, alternative=alternative).pvalue
        for k, n in zip(res["k"], res["n"], strict=True)
    ]
    np.testing.assert_allclose(res["p_value"], p, rtol=1e-9)
    reject, adjusted, _, _ = multipletests(p, alpha=0.05, method="holm")
    np.testing.assert_allclose(res["holm_p"], adjusted, rtol=1e-9)
    np.testing.assert_array_equal(res["demonstrated"], reject)
    assert res["demonstrated"].any() and not res["demonstrated"].all()


@pytest.mark.parametrize("n_values", [3, 250])  # 250^3 combinations: the rank-based path
def test_slice_counts_match_pandas_groupby(n_values: int) -> None:
    rng = np.random.default_rng(n_values)
    n = 5000
    units = pd.DataFrame(
        {
            c: rng.integers(0, n_values, n).astype(str).astype(object)
            for c in ("line", "camera", "supplier")
        }
    ).assign(is_defect=rng.random(n) < 0.4, is_reject=rng.random(n) < 0.5)
    units.loc[::97, "camera"] = None  # missing values form their own slice
    cols = ["line", "camera", "supplier"]
    got = slice_counts(units, cols)
    ref = units.assign(camera=units["camera"].fillna("(missing)"))
    cell = ref["is_defect"].astype(int) * 2 + ref["is_reject"].astype(int)
    want = (
        ref.assign(tn=cell == 0, fp=cell == 1, fn=cell == 2, tp=cell == 3)
        .groupby(cols, sort=True)[["tp", "fp", "tn", "fn"]]
        .sum()
        .astype(np.int64)
    )
    assert got.index.tolist() == want.index.tolist()
    np.testing.assert_array_equal(got.to_numpy(), want.to_numpy())


def test_slice_without_denominator_differs_from_fairlearn_on_purpose() -> None:
    # slice "b" has no defective unit: auditkit gives it no escape rate and leaves it out of the
    # difference; Fairlearn (scikit-learn's zero_division) gives it 0 and reports a spread of 1
    units = pd.DataFrame(
        {
            "line": ["a", "a", "b", "b"],
            "is_defect": [True, False, False, False],
            "is_reject": [False, False, True, False],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mf = MetricFrame(
            metrics=false_negative_rate,
            y_true=units["is_defect"],
            y_pred=units["is_reject"],
            sensitive_features=units["line"],
        )
        assert mf.by_group["b"] == 0.0 and mf.difference() == 1.0
    counts = slice_counts(units, "line")
    assert np.isnan(by_group(counts, "escape_rate").loc["b", "value"])
    assert rate_difference(counts, "escape_rate").value == 0.0
