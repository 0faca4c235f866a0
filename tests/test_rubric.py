from __future__ import annotations

from pathlib import Path

import pytest
from scipy.stats import beta

from auditkit.errors import RubricError
from auditkit.models.card import ModelCard
from auditkit.rubric.evaluate import decide, evaluate, roll_up
from auditkit.rubric.schema import load_rubric, shipped_rubrics
from tests.conftest import card_dict


def cp_one_sided(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    low = 0.0 if k == 0 else float(beta.ppf(1 - level, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(level, k + 1, n - k))
    return low, high


# (k, n, threshold, expected outcome) under guarded acceptance, op "<=", worked by hand:
# 0/600 → U = 0.498 % ≤ 0.5 % PASS;  0/500 → U = 0.597 % > 0.5 % but L = 0 → INCONCLUSIVE;
# 20/600 → L = 2.22 % > 2 % FAIL.
@pytest.mark.parametrize(
    ("k", "n", "threshold", "expected"),
    [(0, 600, 0.005, "PASS"), (0, 500, 0.005, "INCONCLUSIVE"), (20, 600, 0.02, "FAIL")],
)
def test_guarded_acceptance(k: int, n: int, threshold: float, expected: str) -> None:
    low, high = cp_one_sided(k, n)
    assert decide("guarded_acceptance", "<=", threshold, k / n, low, high).outcome == expected


def test_rules_differ_where_the_evidence_is_thin() -> None:
    # 2 escapes in 100: point 2 % ≤ 3 %, but U = 6.2 % and L = 0.36 % straddle 3 %
    low, high = cp_one_sided(2, 100)
    assert decide("simple_acceptance", "<=", 0.03, 0.02, low, high).outcome == "PASS"
    assert decide("guarded_acceptance", "<=", 0.03, 0.02, low, high).outcome == "INCONCLUSIVE"
    assert decide("guarded_rejection", "<=", 0.03, 0.02, low, high).outcome == "PASS"
    # 10 in 100: L = 5.5 % > 3 % proves violation under every rule
    low, high = cp_one_sided(10, 100)
    for rule in ("simple_acceptance", "guarded_acceptance", "guarded_rejection"):
        assert decide(rule, "<=", 0.03, 0.10, low, high).outcome == "FAIL"


def test_greater_equal_mirrors() -> None:
    low, high = cp_one_sided(595, 600)  # detection rate 99.2 %
    assert decide("guarded_acceptance", ">=", 0.98, 595 / 600, low, high).outcome == "PASS"
    assert decide("guarded_acceptance", ">=", 0.995, 595 / 600, low, high).outcome in {
        "INCONCLUSIVE",
        "FAIL",
    }
    assert decide("guarded_acceptance", ">=", 0.999, 595 / 600, low, high).outcome == "FAIL"


def test_missing_bound_is_inconclusive() -> None:
    assert decide("guarded_acceptance", "<=", 50, 10.0, None, None).outcome == "INCONCLUSIVE"


@pytest.mark.parametrize(
    ("outcomes", "verdict"),
    [
        ({"blocker": "PASS", "major": "PASS"}, "ACCEPT"),
        ({"blocker": "PASS", "major": "FAIL"}, "CONDITIONAL"),
        ({"blocker": "INCONCLUSIVE", "major": "FAIL"}, "HOLD"),
        ({"blocker": "ERROR", "major": "PASS"}, "HOLD"),
        ({"blocker": "FAIL", "major": "PASS"}, "REJECT"),
        ({"blocker": "PASS", "minor": "FAIL"}, "ACCEPT"),
    ],
)
def test_roll_up(outcomes: dict[str, str], verdict: str) -> None:
    criteria = [{"severity": s, "outcome": o} for s, o in outcomes.items()]
    assert roll_up(criteria) == verdict


def test_shipped_rubrics_validate() -> None:
    assert "industrial-aoi-acceptance" in shipped_rubrics()
    loaded = load_rubric("industrial-aoi-acceptance")
    assert loaded.rubric.defaults.statistics.decision_rule == "guarded_acceptance"
    assert all(c.severity for c in loaded.rubric.criteria)


RUBRIC = """\
schema: auditkit.rubric/v1
id: t
version: 1.0.0
title: test
references: [{key: R, citation: ref}]
criteria:
  - id: esc
    title: escape
    maps_to: [{ref: R, clause: "1"}]
    metric: {name: escape_rate}
    requirement: {op: "<=", threshold: 0.05}
    sample: {min_n: 50}
    severity: blocker
  - id: esc-dim
    title: escape per lighting
    metric: {name: escape_rate, slice_by: [lighting], aggregate: each}
    requirement: {op: "<=", threshold_ref: declared.escape_rate}
    sample: {min_n: 50}
    severity: blocker
"""


def test_malformed_rubric_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RUBRIC.replace("name: escape_rate}", "name: escape_rat}", 1))
    with pytest.raises(RubricError, match=r"r\.yaml:10: criteria\.0\.metric\.name: unknown metric"):
        load_rubric(str(path))
    path.write_text(
        RUBRIC.replace("    severity: blocker\n", "    severity: blocker\n    colour: red\n", 1)
    )
    with pytest.raises(RubricError, match=r"r\.yaml:14: criteria\.0\.colour: Extra inputs"):
        load_rubric(str(path))
    path.write_text(RUBRIC.replace("title: test", "title: [unclosed"))
    with pytest.raises(RubricError, match=r"r\.yaml:5: not valid YAML"):
        load_rubric(str(path))
    with pytest.raises(RubricError, match="no rubric file or shipped rubric named 'nope'"):
        load_rubric("nope")


def _metric(name: str, sl: dict[str, str], k: int, n: int) -> dict[str, object]:
    low, high = cp_one_sided(k, n)
    return {
        "name": name,
        "slice": sl,
        "unit": "part",
        "value": k / n,
        "k": k,
        "n": n,
        "interval": {"low": low, "high": high},
    }


def test_evaluate_slices_declared_threshold_and_data_gaps(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RUBRIC)
    metrics = {
        "counts": {"images_unreadable": 2},
        "metrics": [
            _metric("escape_rate", {}, 0, 600),
            _metric("escape_rate", {"lighting": "nominal"}, 0, 560),
            # n < min_n, and 0 escapes: the upper bound 7.2 % does not prove <= 1 % and the
            # lower bound 0 proves no failure, so the slice stays undecided
            _metric("escape_rate", {"lighting": "dim"}, 0, 40),
        ],
    }
    card = ModelCard.model_validate(card_dict(declared={"escape_rate": 0.01}))
    verdicts = evaluate(metrics, load_rubric(str(path)), card=card)
    by_id = {c["id"]: c for c in verdicts["criteria"]}
    assert by_id["esc"]["outcome"] == "PASS"
    sliced = by_id["esc-dim"]
    assert sliced["threshold"] == 0.01 and sliced["threshold_provenance"] == "declared_ifu"
    outcomes = {s["slice"]["lighting"]: s["outcome"] for s in sliced["slices"]}
    # nominal: U(0/560) = 0.53 % ≤ 1 % PASS; dim: n=40 < 50 → INCONCLUSIVE, never pooled
    # (a slice whose lower bound proved a failure would FAIL: tests/test_rubric_rules.py)
    assert outcomes == {"nominal": "PASS", "dim": "INCONCLUSIVE"}
    assert sliced["outcome"] == "INCONCLUSIVE"
    assert verdicts["verdict"] == "HOLD" and verdicts["exit_code"] == 3
    assert any("2 image(s) unreadable" in g for g in verdicts["data_gaps"])
    assert any("esc-dim [lighting=dim]" in g for g in verdicts["data_gaps"])


def test_missing_declared_claim_is_an_error_outcome(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RUBRIC)
    metrics = {"metrics": [_metric("escape_rate", {}, 0, 600)]}
    card = ModelCard.model_validate(card_dict(declared={}))
    verdicts = evaluate(metrics, load_rubric(str(path)), card=card)
    sliced = {c["id"]: c for c in verdicts["criteria"]}["esc-dim"]
    assert sliced["outcome"] == "ERROR"
    assert "declares no 'escape_rate'" in sliced["reason"]
    assert verdicts["verdict"] == "HOLD"
