"""Candidate vs baseline on the same parts, against statsmodels' McNemar and a plain merge."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.contingency_tables import mcnemar

from auditkit.errors import DataError
from auditkit.metrics.classification import Rate, escape_rate, overkill_rate
from auditkit.metrics.comparison import CHANGES, compare_to_baseline
from auditkit.metrics.stats import paired_difference_interval


def _runs(seed: int, n: int = 3000) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = [f"P{i:05d}" for i in range(n)]
    d = rng.random(n) < 0.25
    base = np.where(d, rng.random(n) > 0.06, rng.random(n) < 0.05)
    flip = rng.random(n) < 0.04  # the candidate changes a few decisions
    cand = base ^ flip
    baseline = pd.DataFrame({"part_id": ids, "is_defect": d, "is_reject": base})
    candidate = pd.DataFrame({"part_id": ids, "is_defect": d, "is_reject": cand})
    # the candidate's table in another order: pairing is by part_id
    return candidate.sample(frac=1, random_state=seed), baseline


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_differences_match_references(seed: int) -> None:
    candidate, baseline = _runs(seed)
    res = compare_to_baseline(candidate, baseline)
    merged = candidate.merge(baseline, on="part_id", suffixes=("_c", "_b"))
    d = merged["is_defect_c"].to_numpy()
    rc = merged["is_reject_c"].to_numpy()
    rb = merged["is_reject_b"].to_numpy()
    # escape: events are accepted defective parts
    ec, eb = ~rc[d], ~rb[d]
    table = [[int(np.sum(ec & eb)), int(np.sum(ec & ~eb))], [int(np.sum(~ec & eb)), 0]]
    table[1][1] = int(np.sum(~ec & ~eb))
    assert res.escape.p_value == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-12)
    assert res.escape.candidate == escape_rate(d, rc)
    assert res.escape.baseline == escape_rate(d, rb)
    assert res.escape.difference == pytest.approx(
        escape_rate(d, rc).value - escape_rate(d, rb).value
    )
    b, c = table[0][1], table[1][0]
    assert (res.escape.b, res.escape.c, res.escape.n) == (b, c, int(d.sum()))
    assert (res.escape.low, res.escape.high) == paired_difference_interval(b, c, int(d.sum()))
    # overkill: events are rejected good parts
    g = ~d
    oc, ob = rc[g], rb[g]
    table = [[int(np.sum(oc & ob)), int(np.sum(oc & ~ob))], [int(np.sum(~oc & ob)), 0]]
    table[1][1] = int(np.sum(~oc & ~ob))
    assert res.overkill.p_value == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-12)
    assert res.overkill.candidate == overkill_rate(d, rc)
    assert res.overkill.baseline == overkill_rate(d, rb)
    assert res.overkill.low is not None and res.overkill.high is not None
    assert res.overkill.low <= res.overkill.difference <= res.overkill.high  # type: ignore[operator]
    # the changed parts: a plain merge
    want = merged[rc != rb].sort_values("part_id")
    assert res.changed["part_id"].tolist() == want["part_id"].tolist()
    assert res.changed["candidate_reject"].tolist() == want["is_reject_c"].tolist()
    assert set(res.changed["change"]) <= set(CHANGES)
    new_escape = res.changed["change"] == "new escape"
    assert new_escape.sum() == res.escape.b
    assert (res.changed["change"] == "overkill fixed").sum() == res.overkill.c
    assert res.n_parts == len(merged) and res.parts_unscored == 0


def test_identical_runs_and_unscored_parts() -> None:
    candidate, baseline = _runs(5, 200)
    same = compare_to_baseline(baseline, baseline)
    assert same.escape.difference == 0.0 and same.escape.p_value == 1.0
    assert same.changed.empty
    cand = candidate.assign(is_reject=candidate["is_reject"].astype("boolean"))
    first = cand["part_id"].iloc[0]
    cand.loc[cand["part_id"] == first, "is_reject"] = pd.NA
    res = compare_to_baseline(cand, baseline)
    assert res.parts_unscored == 1 and res.n_parts == 199
    assert first not in set(res.changed["part_id"])


def test_empty_denominator() -> None:
    good = pd.DataFrame({"part_id": ["a", "b"], "is_defect": False, "is_reject": [True, False]})
    res = compare_to_baseline(good, good)
    assert res.escape.candidate == Rate(0, 0)
    assert res.escape.difference is None and res.escape.low is None
    assert res.escape.p_value == 1.0


def test_refuses_different_parts() -> None:
    candidate, baseline = _runs(6, 100)
    with pytest.raises(DataError, match="different parts"):
        compare_to_baseline(candidate.iloc[1:], baseline)
    other = baseline.assign(part_id=baseline["part_id"].str.replace("P", "Q"))
    with pytest.raises(DataError, match="different parts"):
        compare_to_baseline(candidate, other)
    flipped = baseline.assign(is_defect=~baseline["is_defect"])
    with pytest.raises(DataError, match="is_defect"):
        compare_to_baseline(candidate, flipped)
    with pytest.raises(DataError, match="not unique"):
        compare_to_baseline(pd.concat([candidate, candidate.iloc[:1]]), baseline)
    with pytest.raises(DataError, match="is_reject"):
        compare_to_baseline(candidate.drop(columns=["is_reject"]), baseline)
