"""Rubric evaluation on hand-worked cases: decision rules, min_n, Holm, spreads, evidence.

Bounds are worked independently here (SciPy's beta quantiles for Clopper–Pearson, closed forms
for zero failures) and the expected outcomes follow DOMAIN.md §3 by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from scipy.stats import beta, chi2_contingency

from auditkit.errors import RubricError
from auditkit.models.card import ModelCard
from auditkit.rubric.evaluate import evaluate, gate_exit_code, roll_up
from auditkit.rubric.schema import VerdictPolicy, load_rubric
from tests.conftest import card_dict


def cp(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """One-sided Clopper–Pearson bounds, from the beta quantiles."""
    low = 0.0 if k == 0 else float(beta.ppf(1 - level, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(level, k + 1, n - k))
    return low, high


def rate(name: str, k: int, n: int, **slice_: str) -> dict[str, Any]:
    """A metrics.json rate entry; the interval is deliberately absent: evaluation must
    re-bound from k and n at the rubric's statistics."""
    return {
        "name": name,
        "slice": dict(slice_),
        "unit": "part",
        "value": k / n if n else None,
        "k": k,
        "n": n,
        "interval": None,
    }


def write_rubric(tmp_path: Path, criteria: list[dict[str, Any]], **top: Any) -> str:
    doc: dict[str, Any] = {
        "schema": "auditkit.rubric/v1",
        "id": "t",
        "version": "1.0.0",
        "title": "test",
        "references": [{"key": "R", "citation": "a reference"}],
        "criteria": criteria,
        **top,
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return str(path)


def escape_criterion(threshold: float = 0.005, min_n: int = 50, **extra: Any) -> dict[str, Any]:
    requirement = {"op": "<=", "threshold": threshold, **extra.pop("requirement", {})}
    return {
        "id": "esc",
        "title": "escape",
        "metric": {"name": "escape_rate", **extra.pop("metric", {})},
        "requirement": requirement,
        "sample": {"min_n": min_n, "counts": "defective", **extra.pop("sample", {})},
        "severity": "blocker",
        **extra,
    }


def judge(tmp_path: Path, entries: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    rubric_kwargs = kwargs.pop("rubric", {})
    criteria = kwargs.pop("criteria", None) or [escape_criterion(**kwargs)]
    loaded = load_rubric(write_rubric(tmp_path, criteria, **rubric_kwargs))
    return evaluate({"metrics": entries, "counts": {"images": 10}}, loaded)


RULES = ("guarded_acceptance", "simple_acceptance", "guarded_rejection")


def with_rule(rule: str) -> dict[str, Any]:
    return {"requirement": {"statistics": {"decision_rule": rule}}}


# Hand-worked (issue 6): escape 0 of 100 against <= 0.5 %, min_n 50. The one-sided 95 %
# Clopper–Pearson bound is 1 - 0.05^(1/100) = 2.95 %: not proven under guarded acceptance;
# the point 0 % passes under simple acceptance; nothing proves a violation (L = 0) under
# guarded rejection. 0/700: U = 1 - 0.05^(1/700) = 0.427 % <= 0.5 % PASS everywhere.
# 10/700: point 1.43 %, L = 0.77 % > 0.5 %: FAIL everywhere.
@pytest.mark.parametrize(
    ("k", "n", "expected"),
    [
        (0, 100, ("INCONCLUSIVE", "PASS", "PASS")),
        (0, 700, ("PASS", "PASS", "PASS")),
        (10, 700, ("FAIL", "FAIL", "FAIL")),
    ],
)
def test_hand_worked_decision_rules(
    tmp_path: Path, k: int, n: int, expected: tuple[str, str, str]
) -> None:
    for rule, outcome in zip(RULES, expected, strict=True):
        verdicts = judge(tmp_path, [rate("escape_rate", k, n)], **with_rule(rule))
        (c,) = verdicts["criteria"]
        assert c["outcome"] == outcome, (rule, c["reason"])
        assert c["decision_rule"] == rule
    zero = judge(tmp_path, [rate("escape_rate", 0, 100)])["criteria"][0]
    assert zero["bound"] == pytest.approx(1 - 0.05 ** (1 / 100), abs=1e-12)
    assert round(100 * zero["bound"], 2) == 2.95
    ten = judge(tmp_path, [rate("escape_rate", 10, 700)])["criteria"][0]
    assert ten["bound"] == pytest.approx(cp(10, 700)[0], rel=1e-9)
    assert 0.005 < ten["bound"] < 10 / 700


@pytest.mark.parametrize("on_insufficient", [None, "inconclusive", "fail"])
def test_below_min_n_gives_the_on_insufficient_outcome_and_a_data_gap(
    tmp_path: Path, on_insufficient: str | None
) -> None:
    sample = {"on_insufficient": on_insufficient} if on_insufficient else {}
    # 0 of 40 would even pass simple acceptance; n < min_n decides first
    verdicts = judge(
        tmp_path,
        [rate("escape_rate", 0, 40)],
        sample=sample,
        **with_rule("simple_acceptance"),
    )
    (c,) = verdicts["criteria"]
    assert c["outcome"] == ("FAIL" if on_insufficient == "fail" else "INCONCLUSIVE")
    assert any("n=40 < min_n=50" in gap for gap in verdicts["data_gaps"])
    assert verdicts["verdict"] == ("REJECT" if on_insufficient == "fail" else "HOLD")


def test_rubric_default_on_insufficient_and_missing_metric_is_a_gap(tmp_path: Path) -> None:
    criteria = [
        escape_criterion(),
        {
            "id": "energy",
            "title": "energy",
            "metric": {"name": "energy_wh_per_1000_inspections"},
            "requirement": {"op": "<=", "threshold": 5.0},
            "severity": "major",
        },
    ]
    rubric = {"defaults": {"on_insufficient_sample": "fail"}}
    verdicts = judge(tmp_path, [rate("escape_rate", 0, 700)], criteria=criteria, rubric=rubric)
    energy = verdicts["criteria"][1]
    # energy off: no entry at all -> the on_insufficient outcome (here fail) and a gap
    assert energy["outcome"] == "FAIL" and energy["statistic"] == "point"
    assert "no measurement of energy_wh_per_1000_inspections" in energy["reason"]
    assert any(g.startswith("energy: no measurement") for g in verdicts["data_gaps"])
    assert verdicts["verdict"] == "CONDITIONAL"


def test_slices_are_judged_alone_and_thin_ones_are_gaps(tmp_path: Path) -> None:
    entries = [
        rate("escape_rate", 0, 700, shift="day"),
        rate("escape_rate", 0, 20, shift="night"),  # thin: never pooled with day
        rate("escape_rate", 0, 720),
    ]
    verdicts = judge(tmp_path, entries, metric={"slice_by": ["shift"], "aggregate": "each"})
    (c,) = verdicts["criteria"]
    outcomes = {s["slice"]["shift"]: s["outcome"] for s in c["slices"]}
    assert outcomes == {"day": "PASS", "night": "INCONCLUSIVE"}
    assert c["outcome"] == "INCONCLUSIVE" and "shift=night" in c["reason"]
    assert any("esc [shift=night]" in g for g in verdicts["data_gaps"])


def test_filter_and_worst(tmp_path: Path) -> None:
    entries = [
        rate("escape_rate", 1, 700, defect_class="crack"),
        rate("escape_rate", 3, 700, defect_class="pit"),
        rate("escape_rate", 40, 700, defect_class="scratch"),  # filtered out
    ]
    verdicts = judge(
        tmp_path,
        entries,
        threshold=0.02,
        metric={
            "slice_by": ["defect_class"],
            "filter": {"defect_class": ["crack", "pit"]},
            "aggregate": "worst",
        },
    )
    (c,) = verdicts["criteria"]
    # worst of crack (1/700) and pit (3/700) is pit; U(3/700) = 1.12 % <= 2 %
    assert [s["slice"] for s in c["slices"]] == [{"defect_class": "pit"}]
    assert c["outcome"] == "PASS" and c["bound"] == pytest.approx(cp(3, 700)[1], rel=1e-9)


def test_holm_needs_domain_per_slice_sample_sizes(tmp_path: Path) -> None:
    # DOMAIN.md §3: zero-failure n per slice for escape <= 0.5 % at family-wise 95 % with
    # m = 4 slices is 875. 0/875 in each: (0.995^875) * 4 = 0.0498 <= 0.05 -> PASS all;
    # 0/870: 0.0511 > 0.05 -> INCONCLUSIVE, though each alone has U = 0.344 % + ... <= 0.5 %.
    holm = {"requirement": {"statistics": {"multiplicity": "holm"}}}
    spec = {"metric": {"slice_by": ["line"], "aggregate": "each"}}
    for n, expected in ((875, "PASS"), (870, "INCONCLUSIVE")):
        entries = [rate("escape_rate", 0, n, line=f"L{i}") for i in range(4)]
        c = judge(tmp_path, entries, **spec, **holm)["criteria"][0]
        assert {s["outcome"] for s in c["slices"]} == {expected}, c["reason"]
        assert c["slices"][0]["holm_p_conformity"] == pytest.approx(
            min(1.0, 4 * 0.995**n), rel=1e-9
        )
        assert c["slices"][0]["holm_level"] == pytest.approx(1 - 0.05 / 4)
        plain = judge(tmp_path, entries, **spec)["criteria"][0]
        assert plain["outcome"] == "PASS"  # each slice alone: 1 - 0.05^(1/n) < 0.5 %


def test_holm_family_fails_a_proven_violation(tmp_path: Path) -> None:
    entries = [rate("escape_rate", 0, 900, line="L1"), rate("escape_rate", 30, 900, line="L2")]
    holm = {"requirement": {"statistics": {"multiplicity": "holm"}}}
    c = judge(
        tmp_path,
        entries,
        threshold=0.01,
        metric={"slice_by": ["line"], "aggregate": "each"},
        **holm,
    )["criteria"][0]
    by = {s["slice"]["line"]: s for s in c["slices"]}
    assert by["L2"]["outcome"] == "FAIL" and c["outcome"] == "FAIL"
    # L1: 0/900 p = 0.99^900 = 1.2e-4, adjusted x2 -> PASS
    assert by["L1"]["outcome"] == "PASS"
    assert by["L1"]["holm_p_conformity"] == pytest.approx(2 * 0.99**900, rel=1e-9)


def test_difference_ratio_and_homogeneity_between_slices(tmp_path: Path) -> None:
    # DOMAIN.md §3: 8/800 vs 1/800 misses, difference 0.875 pp, 95 % CI (0.11, 1.84) pp
    entries = [rate("escape_rate", 8, 800, line="L1"), rate("escape_rate", 1, 800, line="L2")]
    two_sided = {"decision_rule": "guarded_acceptance", "sided": "two"}
    spread = {
        "metric": {"slice_by": ["line"], "aggregate": "difference"},
        "requirement": {"statistics": two_sided},
    }
    c = judge(tmp_path, entries, threshold=0.001, **spread)["criteria"][0]
    (row,) = c["slices"]
    assert row["value"] == pytest.approx(0.00875)
    assert (round(100 * row["low"], 2), round(100 * row["high"], 2)) == (0.11, 1.84)
    assert c["outcome"] == "FAIL"  # the lower bound 0.11 pp > 0.1 pp
    ratio = judge(
        tmp_path,
        entries,
        criteria=[
            {
                "id": "ratio",
                "title": "ratio",
                "metric": {"name": "escape_rate", "slice_by": ["line"], "aggregate": "ratio"},
                "requirement": {"op": ">=", "threshold": 0.2},
                "severity": "major",
            }
        ],
    )["criteria"][0]
    assert ratio["value"] == pytest.approx(1 / 8) and ratio["outcome"] == "FAIL"
    homogeneity = judge(
        tmp_path,
        entries,
        criteria=[
            {
                "id": "h",
                "title": "homogeneity",
                "metric": {
                    "name": "escape_rate",
                    "slice_by": ["line"],
                    "aggregate": "homogeneity",
                    "params": {"method": "chi2"},
                },
                "requirement": {"op": ">=", "threshold": 0.01},
                "severity": "minor",
            }
        ],
    )["criteria"][0]
    expected = chi2_contingency([[8, 792], [1, 799]], correction=False).pvalue
    assert homogeneity["value"] == pytest.approx(expected, rel=1e-9)
    assert homogeneity["outcome"] == ("PASS" if expected >= 0.01 else "FAIL")


def test_statistics_override_rebounds_from_counts(tmp_path: Path) -> None:
    # 0/700 at 99 %: U = 1 - 0.01^(1/700) = 0.656 % > 0.5 % -> INCONCLUSIVE
    override = {"requirement": {"statistics": {"confidence_level": 0.99}}}
    c = judge(tmp_path, [rate("escape_rate", 0, 700)], **override)["criteria"][0]
    assert c["bound"] == pytest.approx(1 - 0.01 ** (1 / 700), rel=1e-9)
    assert c["outcome"] == "INCONCLUSIVE" and c["confidence_level"] == 0.99


def test_thresholds_literal_declared_and_site(tmp_path: Path) -> None:
    criteria = [
        escape_criterion(),
        {
            "id": "declared",
            "title": "declared",
            "metric": {"name": "escape_rate"},
            "requirement": {"op": "<=", "threshold_ref": "declared.escape_rate"},
            "severity": "blocker",
        },
        {
            "id": "latency",
            "title": "latency",
            "metric": {"name": "latency_p99_ms"},
            "requirement": {"op": "<=", "threshold_ref": "site.budget_ms"},
            "severity": "minor",
        },
    ]
    latency = {
        "name": "latency_p99_ms",
        "slice": {"scenario": "single-stream"},
        "value": 9.0,
        "k": None,
        "n": 700,
        "interval": {"low": 8.0, "high": 11.0, "level": 0.95, "sided": "one"},
    }
    loaded = load_rubric(write_rubric(tmp_path, criteria))
    card = ModelCard.model_validate(card_dict(declared={"escape_rate": 0.01}))
    metrics = {"metrics": [rate("escape_rate", 0, 700), latency]}
    out = evaluate(metrics, loaded, card=card, params={"budget_ms": 10.0})
    by = {c["id"]: c for c in out["criteria"]}
    assert by["declared"]["threshold"] == 0.01
    assert by["declared"]["threshold_provenance"] == "declared_ifu"
    assert by["esc"]["threshold_provenance"] == "organisation"
    # p99 upper bound 11 ms > 10 ms, lower 8 ms: not proven
    assert by["latency"]["threshold"] == 10.0 and by["latency"]["outcome"] == "INCONCLUSIVE"
    out = evaluate(metrics, loaded, card=card, params={"budget_ms": 12.0})
    assert {c["id"]: c for c in out["criteria"]}["latency"]["outcome"] == "PASS"
    missing = evaluate(metrics, loaded, card=card)
    latency_out = {c["id"]: c for c in missing["criteria"]}["latency"]
    assert latency_out["outcome"] == "ERROR" and "--param budget_ms=" in latency_out["reason"]


RUN = {
    "started_at": "2026-06-01T08:00:00Z",
    "model": {"sha256": "ab" * 32},
    "replay": {
        "runtime_parity": {
            "n_reference": 50,
            "n_compared": 50,
            "max_abs_difference": {"score": 2e-7},
            "decisions_agree": 50,
        }
    },
    "energy": {"method": "model", "measured": False, "boundary": "device"},
}


def evidence(name: str, **extra: Any) -> dict[str, Any]:
    return {"id": name, "title": name, "kind": "evidence", "metric": {"name": name}, **extra}


def test_evidence_and_attestation_criteria(tmp_path: Path) -> None:
    criteria = [
        {**evidence("model_sha256"), "severity": "blocker"},
        {
            **evidence("runtime_parity"),
            "requirement": {"op": "<=", "threshold": 1e-4},
            "severity": "major",
        },
        {
            **evidence("unreadable_share"),
            "requirement": {"op": "<=", "threshold": 0.01},
            "severity": "major",
        },
        {**evidence("rubric_approved_before_run"), "severity": "major"},
        {**evidence("energy_measured"), "severity": "minor"},
        {"id": "logs", "title": "logs kept", "kind": "attestation", "severity": "info"},
    ]
    approval = {"approved_by": "QA", "approved_at": "2026-05-01T00:00:00Z"}
    loaded = load_rubric(write_rubric(tmp_path, criteria, approval=approval))
    card = ModelCard.model_validate(card_dict(declared={"model_sha256": "AB" * 32}))
    metrics = {"metrics": [], "counts": {"images": 1000, "images_unreadable": 12}}
    out = evaluate(metrics, loaded, card=card, run=RUN)
    by = {c["id"]: c for c in out["criteria"]}
    assert by["model_sha256"]["outcome"] == "PASS"  # case-insensitive hex
    assert by["runtime_parity"]["outcome"] == "PASS"
    assert by["unreadable_share"]["value"] == pytest.approx(0.012)
    assert by["unreadable_share"]["outcome"] == "FAIL"
    assert by["rubric_approved_before_run"]["outcome"] == "PASS"
    assert by["energy_measured"]["outcome"] == "FAIL"  # modelled, not measured
    assert by["logs"]["outcome"] == "ATTESTED" and by["logs"]["reason"] == "attested, not verified"
    assert out["verdict"] == "CONDITIONAL"

    late = {**RUN, "started_at": "2026-04-30T23:59:59Z"}
    parity = {**RUN["replay"]["runtime_parity"], "decisions_agree": 49}
    bad = {**late, "model": {"sha256": "cd" * 32}, "replay": {"runtime_parity": parity}}
    out = evaluate(metrics, loaded, card=card, run=bad)
    by = {c["id"]: c for c in out["criteria"]}
    assert by["model_sha256"]["outcome"] == "FAIL" and out["verdict"] == "REJECT"
    assert by["rubric_approved_before_run"]["outcome"] == "FAIL"
    assert "1 of 50 decisions differ" in by["runtime_parity"]["reason"]

    # no reference outputs, energy off, no run.json: gaps with the on_insufficient outcome
    off = {"started_at": RUN["started_at"], "model": RUN["model"], "replay": {}}
    out = evaluate(metrics, loaded, card=card, run={**off, "energy": {"method": "off"}})
    by = {c["id"]: c for c in out["criteria"]}
    assert by["runtime_parity"]["outcome"] == "INCONCLUSIVE"
    assert by["energy_measured"]["outcome"] == "INCONCLUSIVE"
    gaps = " ".join(out["data_gaps"])
    assert "--reference-outputs" in gaps and "energy not recorded" in gaps


def test_custom_verdict_policy_and_gate() -> None:
    policy = VerdictPolicy(
        reject_if=["any blocker FAIL"],
        hold_if=["any blocker INCONCLUSIVE or ERROR", "any major ERROR"],
        conditional_if=["any major FAIL or INCONCLUSIVE"],
    )
    major_inconclusive = [{"severity": "major", "outcome": "INCONCLUSIVE"}]
    assert roll_up(major_inconclusive) == "ACCEPT"
    assert roll_up(major_inconclusive, policy) == "CONDITIONAL"
    assert roll_up([{"severity": "major", "outcome": "ERROR"}], policy) == "HOLD"
    assert roll_up([{"severity": "blocker", "outcome": "ATTESTED"}], policy) == "ACCEPT"
    with pytest.raises(ValueError, match="verdict rule"):
        VerdictPolicy(reject_if=["every blocker FAIL"])
    table = {
        "conditional": {"ACCEPT": 0, "CONDITIONAL": 4, "HOLD": 3, "REJECT": 1},
        "hold": {"ACCEPT": 0, "CONDITIONAL": 0, "HOLD": 3, "REJECT": 1},
        "reject": {"ACCEPT": 0, "CONDITIONAL": 0, "HOLD": 0, "REJECT": 1},
    }
    for fail_on, codes in table.items():
        for verdict, code in codes.items():
            assert gate_exit_code(verdict, fail_on) == code, (fail_on, verdict)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("name: escape_rate", "name: escape_ratio"), r"criteria\.0\.metric\.name: unknown"),
        (("op: <=", "op: =<"), r"criteria\.0\.requirement\.op: Input should be"),
        (("min_n: 50", "min_n: many"), r"criteria\.0\.sample\.min_n: Input should be"),
        (("severity: blocker", "severity: blocker\n  colour: red"), r"criteria\.0\.colour"),
        (("counts: defective", "counts: good"), r"criteria\.0\.sample\.counts: escape_rate"),
        (
            ("name: escape_rate", "name: kappa\n    slice_by: [line]\n    aggregate: difference"),
            r"criteria\.0\.metric\.aggregate: metric kappa is not measured per slice",
        ),
        (
            ("name: escape_rate", "name: f1\n    slice_by: [line]\n    aggregate: difference"),
            r"criteria\.0\.metric\.aggregate: aggregate difference compares rates",
        ),
    ],
)
def test_malformed_rubrics_name_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = Path(write_rubric(tmp_path, [escape_criterion()]))
    text = path.read_text()
    assert change[0] in text
    path.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(RubricError, match=r"r\.yaml:\d+: " + message):
        load_rubric(str(path))


def test_rubric_show_table_and_schema() -> None:
    from auditkit.rubric.schema import json_schema
    from auditkit.rubric.show import rubric_table

    loaded = load_rubric("iso-iec-tr-24027-consistency")
    table = rubric_table(loaded)
    assert loaded.sha256 in table and "multiplicity holm" in table
    for criterion in loaded.rubric.criteria:
        assert criterion.id in table
    assert "each by line ×" in table  # an intersection prints its cells
    assert "p_value >= 0.01" in table
    schema = json_schema()
    criterion = schema["$defs"]["Criterion"]["properties"]
    assert {"kind", "maps_to", "metric", "requirement", "sample", "severity"} <= set(criterion)
    metric = schema["$defs"]["MetricSpec"]["properties"]
    assert {"name", "params", "filter", "slice_by", "intersect", "aggregate"} <= set(metric)
    assert schema["$id"] == "auditkit.rubric/v1"
