"""Decision rules honest in both directions, and every figure of a criterion from one slice.

Expected numbers are computed independently: statsmodels' ``proportion_confint(method="beta")``
(Clopper–Pearson) and ``multipletests(method="holm")``, SciPy's ``binomtest``, and hand-worked
counts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from scipy.stats import binomtest
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from auditkit.evidence import (
    Coded,
    CriterionResult,
    DataGapReason,
    MetricEntry,
    SliceResult,
    VerdictsDocument,
)
from auditkit.report import charts, ci, render
from auditkit.report.catalogue import load_strings
from auditkit.report.formatting import Formatter
from auditkit.rubric.evaluate import evaluate, roll_up
from auditkit.rubric.reasons import TEMPLATES
from auditkit.rubric.schema import json_schema, load_rubric
from tests.test_rubric_rules import escape_criterion, judge, rate, write_rubric


def cp_one_sided(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """One-sided Clopper–Pearson bounds at ``level``: the ends of the two-sided interval at
    ``2 level - 1`` (statsmodels)."""
    low, high = proportion_confint(k, n, alpha=2 * (1 - level), method="beta")
    return float(low), float(high)


# --------------------------------------------------------------------------- min_n guards PASS


def test_field_case_64_of_247_fails_whatever_min_n(tmp_path: Path) -> None:
    # escape 64 of 247 against <= 5 %, min_n 300: the one-sided 95 % lower bound is 21.4 %,
    # already proof that the limit is broken; n < min_n cannot turn that into HOLD
    verdicts = judge(tmp_path, [rate("escape_rate", 64, 247)], threshold=0.05, min_n=300)
    c = verdicts["criteria"][0]
    low, high = cp_one_sided(64, 247)
    assert low == pytest.approx(0.21358, abs=1e-5)
    assert low == pytest.approx(binomtest(64, 247, 0.05).proportion_ci(0.90).low)
    assert c["outcome"] == "FAIL" and verdicts["verdict"] == "REJECT"
    assert c["bound"] == pytest.approx(low) and c["low"] == pytest.approx(low)
    assert c["high"] == pytest.approx(high) and c["below_min_n"] is True
    assert "n=247 is below the rubric's minimum min_n=300" in c["reason"]
    assert c["reason_code"] == "bound_compared"
    assert c["reason_notes"] == [
        {"code": "below_min_n_fail_stands", "args": {"n": 247, "min_n": 300}}
    ]
    assert verdicts["undecided"] == []


def test_thin_evidence_that_proves_nothing_stays_undecided(tmp_path: Path) -> None:
    # 2 of 247: lower bound 0.14 % does not prove > 5 %, and n < min_n forbids a PASS
    verdicts = judge(tmp_path, [rate("escape_rate", 2, 247)], threshold=0.05, min_n=300)
    c = verdicts["criteria"][0]
    assert cp_one_sided(2, 247)[0] < 0.05
    assert c["outcome"] == "INCONCLUSIVE" and verdicts["verdict"] == "HOLD"
    assert c["reason_code"] == "below_min_n"
    assert c["reason_args"] == {"n": 247, "min_n": 300}
    assert [u["id"] for u in verdicts["undecided"]] == ["esc"]


def test_per_slice_false_total_below_min_n_keeps_a_proven_failure(tmp_path: Path) -> None:
    entries = [
        rate("escape_rate", 30, 60, shift="night"),  # L = 38.8 % > 5 %: proven
        rate("escape_rate", 0, 60, shift="day"),  # proves nothing, and cannot PASS
    ]
    metric = {"slice_by": ["shift"], "aggregate": "each"}
    verdicts = judge(
        tmp_path,
        entries,
        threshold=0.05,
        min_n=500,
        metric=metric,
        sample={"per_slice": False},
    )
    c = verdicts["criteria"][0]
    by = {s["slice"]["shift"]: s for s in c["slices"]}
    assert by["night"]["outcome"] == "FAIL"
    assert by["night"]["bound"] == pytest.approx(cp_one_sided(30, 60)[0])
    assert by["day"]["outcome"] == "INCONCLUSIVE" and by["day"]["reason_code"] == "below_min_n"
    assert c["outcome"] == "FAIL" and c["slice"] == {"shift": "night"}


def test_worst_aggregate_keeps_a_proven_failure_below_min_n(tmp_path: Path) -> None:
    entries = [rate("escape_rate", 30, 60, shift="night"), rate("escape_rate", 0, 60, shift="day")]
    metric = {"slice_by": ["shift"], "aggregate": "worst"}
    verdicts = judge(tmp_path, entries, threshold=0.05, min_n=100, metric=metric)
    c = verdicts["criteria"][0]
    assert c["outcome"] == "FAIL" and c["slice"] == {"shift": "night"}
    assert c["k"] == 30 and c["n"] == 60


def test_a_proven_spread_fails_below_min_n(tmp_path: Path) -> None:
    # difference between two slices of 40 parts each: 20/40 - 1/40 = 47.5 points; the
    # one-sided 95 % Newcombe lower bound (the two-sided 90 % interval's end) is far above 5
    entries = [rate("escape_rate", 20, 40, line="A"), rate("escape_rate", 1, 40, line="B")]
    metric = {"slice_by": ["line"], "aggregate": "difference"}
    verdicts = judge(
        tmp_path,
        entries,
        threshold=0.05,
        min_n=500,
        metric=metric,
        sample={"per_slice": False},
    )
    c = verdicts["criteria"][0]
    low, high = confint_proportions_2indep(20, 40, 1, 40, method="newcomb", alpha=0.10)
    assert c["outcome"] == "FAIL"
    assert c["low"] == pytest.approx(low, abs=1e-6) and c["high"] == pytest.approx(high, abs=1e-6)
    assert "below the rubric's minimum min_n=500" in c["reason"]


def paired_rubric(tmp_path: Path, **extra: Any) -> str:
    criteria = [
        {
            "id": "esc-vs-base",
            "title": "escape not worse than the baseline",
            "metric": {"name": "escape_rate_change"},
            "requirement": {"op": "<=", "threshold": 0.005},
            "sample": {"min_n": 300, "counts": "defective"},
            "severity": "blocker",
            **extra,
        },
        escape_criterion(threshold=0.05, min_n=10),
    ]
    return write_rubric(tmp_path, criteria)


def test_paired_path_keeps_a_proven_failure_below_min_n(tmp_path: Path) -> None:
    # 40 new escapes, 0 fixed, on 100 parts: difference 40 points. By hand, the Wald-type
    # variance (b + c)/n^2 - (b - c)^2/n^3 = 0.0024 gives a lower bound near 32 points, far
    # above the 0.5-point margin: proven worse, although 100 < min_n 300
    loaded = load_rubric(paired_rubric(tmp_path))
    pair = {"b": 40, "c": 0, "n": 100, "difference": 0.4, "p_value_mcnemar": 0.0}
    baseline = {"escape_rate": pair, "overkill_rate": pair}
    metrics = {"metrics": [rate("escape_rate", 0, 100)], "counts": {"images": 10}}
    verdicts = evaluate(metrics, loaded, baseline=baseline)
    c = verdicts["criteria"][0]
    assert c["outcome"] == "FAIL" and verdicts["verdict"] == "REJECT"
    assert c["low"] > 0.25 and c["bound"] == c["low"]
    assert c["reason_notes"][0]["code"] == "below_min_n_fail_stands"


def test_holm_family_keeps_a_proven_failure_of_a_thin_slice(tmp_path: Path) -> None:
    # three lines: A and B have enough parts, C has 50 < min_n 100 but 20 escapes (40 %)
    counts = {"A": (2, 400), "B": (3, 300), "C": (20, 50)}
    entries = [rate("escape_rate", k, n, line=name) for name, (k, n) in counts.items()]
    metric = {"slice_by": ["line"], "aggregate": "each"}
    verdicts = judge(
        tmp_path,
        entries,
        threshold=0.05,
        min_n=100,
        metric=metric,
        requirement={"statistics": {"multiplicity": "holm"}},
    )
    c = verdicts["criteria"][0]
    by = {s["slice"]["line"]: s for s in c["slices"]}
    # violation family: every slice with parts (exact binomial tests H0: rate <= 5 %)
    p_violate = [binomtest(k, n, 0.05, alternative="greater").pvalue for k, n in counts.values()]
    adjusted = multipletests(p_violate, method="holm")[1]
    assert adjusted[2] <= 0.05  # C: proven even family-wise
    assert by["C"]["outcome"] == "FAIL" and by["C"]["holm_p_violation"] == pytest.approx(
        adjusted[2]
    )
    # C has the smallest violation p-value of 3: Holm level 1 - 0.05/3
    level_c = 1 - 0.05 / 3
    assert by["C"]["low_level"] == pytest.approx(level_c)
    assert by["C"]["low"] == pytest.approx(cp_one_sided(20, 50, level_c)[0])
    assert by["C"]["high"] is None  # a thin slice has no proving bound: it cannot PASS
    # conformity family: only A and B (H0: rate >= 5 %)
    p_conform = [
        binomtest(k, n, 0.05, alternative="less").pvalue for k, n in (counts["A"], counts["B"])
    ]
    adj_conform = multipletests(p_conform, method="holm")[1]
    assert by["A"]["holm_p_conformity"] == pytest.approx(adj_conform[0])
    assert by["A"]["outcome"] == ("PASS" if adj_conform[0] <= 0.05 else "INCONCLUSIVE")
    # the row's bounds are those the decision used: the upper at A's Holm conformity level
    rank = sorted(p_conform).index(p_conform[0])  # 0: smallest
    level_a = 1 - 0.05 / (2 - rank)
    assert by["A"]["high_level"] == pytest.approx(level_a)
    assert by["A"]["high"] == pytest.approx(cp_one_sided(2, 400, level_a)[1])
    assert by["A"]["bound"] == pytest.approx(by["A"]["high"])
    assert c["outcome"] == "FAIL" and c["slice"] == {"line": "C"}


# --------------------------------------------------------------------------- unevaluated


def test_a_skipped_blocker_holds_the_verdict_unless_conditional(tmp_path: Path) -> None:
    metrics = {"metrics": [rate("escape_rate", 0, 700)], "counts": {"images": 10}}
    held = evaluate(metrics, load_rubric(paired_rubric(tmp_path)))
    skipped = held["criteria"][0]
    assert held["criteria"][1]["outcome"] == "PASS"  # 0/700 against 5 %
    assert skipped["outcome"] == "SKIPPED" and skipped["reason_code"] == "needs_baseline"
    assert held["verdict"] == "HOLD" and held["exit_code"] == 3
    assert held["undecided"][0]["id"] == "esc-vs-base" and held["undecided"][0]["holds"]
    assert any(g.startswith("esc-vs-base: ") for g in held["data_gaps"])

    conditional = evaluate(metrics, load_rubric(paired_rubric(tmp_path, requires=["baseline"])))
    c = conditional["criteria"][0]
    assert c["outcome"] == "SKIPPED" and c["reason_code"] == "conditional_on_baseline"
    assert c["requires"] == ["baseline"]
    assert conditional["verdict"] == "ACCEPT"
    (u,) = conditional["undecided"]
    assert u["id"] == "esc-vs-base" and u["conditional"] and not u["holds"]


def test_roll_up_never_lets_a_skipped_blocker_through_a_lenient_policy() -> None:
    criteria = [
        {"severity": "blocker", "outcome": "SKIPPED", "requires": []},
        {"severity": "major", "outcome": "FAIL", "requires": []},
    ]
    assert roll_up(criteria) == "HOLD"  # HOLD outranks CONDITIONAL
    criteria[0]["requires"] = ["baseline"]
    assert roll_up(criteria) == "CONDITIONAL"
    criteria.append({"severity": "blocker", "outcome": "FAIL", "requires": []})
    assert roll_up(criteria) == "REJECT"


def test_requires_is_in_the_schema_and_checked(tmp_path: Path) -> None:
    props = json_schema()["$defs"]["Criterion"]["properties"]
    items = props["requires"]["items"]
    assert items.get("enum", [items.get("const")]) == ["baseline"]
    bad = paired_rubric(tmp_path, requires=["weather"])
    with pytest.raises(Exception, match="requires"):
        load_rubric(bad)
    shipped = load_rubric("industrial-aoi-acceptance").rubric.criteria
    conditional = {c.id for c in shipped if c.requires}
    assert conditional == {"escape-vs-baseline", "overkill-vs-baseline"}


# --------------------------------------------------------------------------- info and energy


def energy_rubric(tmp_path: Path) -> str:
    return write_rubric(
        tmp_path,
        [
            {
                "id": "energy",
                "title": "energy per 1,000",
                "metric": {"name": "energy_wh_per_1000_inspections"},
                "requirement": {"op": "<=", "threshold": 5.0, "statistic": "point"},
                "severity": "info",
            },
            {
                "id": "measured",
                "title": "measured",
                "kind": "evidence",
                "metric": {"name": "energy_measured"},
                "severity": "info",
            },
        ],
    )


def energy_entry(method: str) -> dict[str, Any]:
    return {
        "name": "energy_wh_per_1000_inspections",
        "slice": {},
        "unit": "image",
        "value": 0.0012,
        "k": None,
        "n": None,
        "interval": None,
        "method": method,
    }


def test_a_modelled_energy_figure_is_never_judged(tmp_path: Path) -> None:
    loaded = load_rubric(energy_rubric(tmp_path))
    run = {"energy": {"method": "model", "measured": False, "label": "modelled"}}
    metrics = {"metrics": [energy_entry("modelled")], "counts": {"images": 10}}
    verdicts = evaluate(metrics, loaded, run=run)
    c = verdicts["criteria"][0]
    assert c["outcome"] == "INCONCLUSIVE" and c["reason_code"] == "modelled_energy"
    assert "modelled" in c["reason"] and "measured figure only" in c["reason"]
    assert "<=" not in c["reason"]  # never "value ... <= 5", which reads as a measurement
    measured = evaluate({"metrics": [energy_entry("measured")]}, loaded, run=run)
    assert measured["criteria"][0]["outcome"] == "PASS"
    # info criteria never gate a CI run: JUnit skipped, with the reason
    suite = ET.fromstring(ci.junit_xml(typed(verdicts))).find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and suite.get("errors") == "0"
    for case in suite.iter("testcase"):
        assert case.find("failure") is None and case.find("error") is None
        skipped = case.find("skipped")
        assert skipped is not None and skipped.get("message", "").startswith("info, does not gate")
    assert "energy modelled (model), not measured" in ET.tostring(suite, encoding="unicode")
    markdown = ci.markdown_summary(typed(verdicts))
    assert "❌" not in markdown.split("|---|")[-1] and "ℹ️ FAIL" in markdown


def test_junit_fails_on_a_skipped_blocker_that_holds_the_verdict(tmp_path: Path) -> None:
    metrics = {"metrics": [rate("escape_rate", 0, 700)], "counts": {"images": 10}}
    held = evaluate(metrics, load_rubric(paired_rubric(tmp_path)))
    suite = ET.fromstring(ci.junit_xml(typed(held))).find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    conditional = evaluate(metrics, load_rubric(paired_rubric(tmp_path, requires=["baseline"])))
    suite = ET.fromstring(ci.junit_xml(typed(conditional))).find("testsuite")
    assert suite is not None and suite.get("failures") == "0"


# --------------------------------------------------------------------------- one row, one slice


def fmt(lang: str = "en") -> Any:
    return Formatter(load_strings(lang), 0.95)


def typed(verdicts: dict[str, Any]) -> VerdictsDocument:
    """``evaluate()``'s document as ``evaluate`` writes it (with its format and run id), typed:
    what the report and the CI formats read."""
    written = {"verdict": "HOLD", "criteria": [], **verdicts}
    return VerdictsDocument.model_validate(
        {**written, "format": "auditkit.verdicts/1", "run_id": "r"}
    )


def two_column_verdicts(tmp_path: Path) -> dict[str, Any]:
    entries = [
        rate("escape_rate", 12, 326, line="L1"),
        rate("escape_rate", 30, 300, line="L2"),
        rate("escape_rate", 15, 255, supplier="S2"),
        rate("escape_rate", 3, 400, supplier="S1"),
    ]
    metric = {"slice_by": ["line", "supplier"], "aggregate": "each"}
    return judge(tmp_path, entries, threshold=0.05, min_n=100, metric=metric)


def test_every_figure_of_a_criterion_row_comes_from_its_deciding_slice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    verdicts = two_column_verdicts(tmp_path)
    c = verdicts["criteria"][0]
    # L2: 30/300 = 10 %, lower bound 7.3 % > 5 %: FAIL, the worst
    low, high = cp_one_sided(30, 300)
    assert c["slice"] == {"line": "L2"} and (c["k"], c["n"]) == (30, 300)
    assert c["low"] == pytest.approx(low) and c["high"] == pytest.approx(high)
    assert (c["low_level"], c["high_level"], c["bounds_sided"]) == (0.95, 0.95, "one")
    drawn: list[list[charts.ChartRow]] = []
    monkeypatch.setattr(
        render.charts, "forest_chart_data_uris", lambda rows, t: drawn.append(list(rows)) or []
    )
    f = fmt()
    # an index holding another slice's interval must not leak into the row
    other = {"name": "escape_rate", "slice": {"line": "L1"}, "interval": {"low": 0.0, "high": 1.0}}
    index = render._index_metrics([MetricEntry.model_validate(other)])
    rows, _ = render._criteria_view(typed(verdicts), f, index)
    row = rows[0]
    assert row["value"] == "10.00 %" and row["kn"] == "30/300"
    assert row["interval"] == f"{100 * low:.2f} % – {100 * high:.2f} %"
    assert row["bound"] == f"{100 * low:.2f} %"
    assert "L2" in row["worst"] and row["interval_label"] == "one-sided 95 %"
    # the forest chart draws the table's bounds, slice by slice
    (chart,) = drawn
    for bar, s in zip(chart, c["slices"], strict=True):
        assert (bar.low, bar.high, bar.value) == (s["low"], s["high"], s["value"])


def test_holm_rows_chart_the_adjusted_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = [rate("escape_rate", 12, 326, line="L1"), rate("escape_rate", 15, 255, line="L2")]
    metric = {"slice_by": ["line"], "aggregate": "each"}
    verdicts = judge(
        tmp_path,
        entries,
        threshold=0.05,
        min_n=100,
        metric=metric,
        requirement={"statistics": {"multiplicity": "holm"}},
    )
    drawn: list[list[charts.ChartRow]] = []
    monkeypatch.setattr(
        render.charts, "forest_chart_data_uris", lambda rows, t: drawn.append(list(rows)) or []
    )
    _, sliced = render._criteria_view(typed(verdicts), fmt(), {})
    by = {s["slice"]["line"]: s for s in verdicts["criteria"][0]["slices"]}
    for bar in drawn[0]:
        s = by[bar.label]
        # exact one-sided bounds at the slice's own Holm levels (m = 2: 97.5 % or 95 %)
        assert bar.high == pytest.approx(cp_one_sided(s["k"], s["n"], s["high_level"])[1])
        assert bar.low == pytest.approx(cp_one_sided(s["k"], s["n"], s["low_level"])[0])
        assert {s["high_level"], s["low_level"]} <= {0.975, 0.95}
        assert s["bound"] == pytest.approx(bar.high)
    assert "Holm" in sliced[0]["chart_caption"]


def test_ratio_label_says_smallest_over_largest() -> None:
    for lang in ("en", "zh"):
        label = fmt(lang).metric("escape_rate_ratio")
        assert "÷" in label and "largest ratio" not in label
    assert "smallest" in fmt("en").metric("escape_rate_ratio").split("÷")[0]


def test_one_sided_bounds_are_not_called_a_confidence_interval() -> None:
    f = fmt()
    assert f.statistic("upper_bound") == "one-sided upper 95 % bound"
    verdicts = {"rubric": {"id": "r"}, "confidence_level": 0.95, "sided": "one"}
    intro = render._criteria_intro(typed(verdicts), f)
    assert "two one-sided 95 % bounds together form a two-sided 90 % interval" in intro
    assert "95 % confidence interval" not in intro
    two = render._criteria_intro(typed({**verdicts, "sided": "two"}), f)
    assert "two-sided 95 % confidence interval" in two
    two_sided = SliceResult(outcome="PASS", bounds_sided="two", low_level=0.9, high_level=0.9)
    assert f.bounds_label(two_sided) == "two-sided 90 % interval"


# --------------------------------------------------------------------------- reasons in zh

SAMPLE_ARGS: dict[str, Any] = {
    "value": 0.0588,
    "bound": 0.0891,
    "threshold": 0.05,
    "relation": ">",
    "op": "<=",
    "side": "upper",
    "level": 0.9833,
    "n": 247,
    "min_n": 300,
    "k": 3,
    "metric": "escape_rate",
    "by": "line × shift",
    "sided": "one",
    "want_level": 0.95,
    "want_sided": "two",
    "p": 0.0123,
    "alpha": 0.05,
    "method": "model",
    "b": 3,
    "c": 1,
    "name": "escape_rate",
    "ref": "declared.escape_rate",
    "source": "model card",
    "actual": "0123456789ab",
    "expected": "ba9876543210",
    "bad": 0,
    "images": 2000,
    "share": 0.0,
    "share_limit": 0.01,
    "target": 0.05,
    "compared": 50,
    "needed": 10,
    "difference": 0.0004,
    "limit": 0.001,
    "differ": 1,
    "agree": 49,
    "approver": "QA",
    "at": "2026-01-31T09:00:00+00:00",
    "started": "2026-02-01T09:00:00Z",
    "boundary": "host",
    "missing": ["escape_rate"],
    "names": ["escape_rate", "overkill_rate"],
    "count": 3,
    "rubric_unit": "part",
    "metrics_unit": "image",
    "keys": ["camera"],
}
#: what may stay in Latin letters in a Chinese reason: identifiers, options, units, names
ALLOWED = re.compile(
    r"--baseline RUN|--param|--reference-outputs|VALUE|metrics\.json|run\.json|SHA-256|"
    r"McNemar|Holm|Fisher|Dask|escape_rate|overkill_rate|declared\.escape_rate|camera|QA|"
    r"[0-9a-f]{12}|\d{4}-\d\d-\d\dT[\d:]+(?:\+00:00|Z)|\bp\b|\bn\b"
)


@pytest.mark.parametrize("code", sorted(TEMPLATES))
def test_every_reason_renders_in_chinese_without_english(code: str) -> None:
    zh = fmt("zh")
    names = set(re.findall(r"\{(\w+)\}", TEMPLATES[code]))
    args = {name: SAMPLE_ARGS[name] for name in names}
    text = zh.reason(Coded(reason_code=code, reason_args=args), "escape_rate")
    assert text and text != code
    assert not re.findall(r"[A-Za-z]{2,}", ALLOWED.sub("", text)), (code, text)
    english = fmt("en").reason(Coded(reason_code=code, reason_args=args), "escape_rate")
    assert english != text


def test_a_criterion_reason_renders_in_the_report_language(tmp_path: Path) -> None:
    verdicts = judge(tmp_path, [rate("escape_rate", 64, 247)], threshold=0.05, min_n=300)
    c = CriterionResult.model_validate(verdicts["criteria"][0])
    zh = fmt("zh").reason(c, "escape_rate")
    low = cp_one_sided(64, 247)[0]
    assert zh == (
        f"置信下限 {100 * low:.2f} % > 5.00 %；n = 247 少于评价准则规定的最小样本量 300，"
        "但置信限已证明不符合要求"
    )
    en = fmt("en").reason(c, "escape_rate")
    assert en.startswith(f"lower bound {100 * low:.2f} % > 5.00 %")


def test_an_attestation_is_not_a_data_gap(tmp_path: Path) -> None:
    criteria = [
        escape_criterion(threshold=0.05, min_n=10),
        {"id": "logs", "title": "logging", "kind": "attestation", "severity": "info"},
    ]
    loaded = load_rubric(write_rubric(tmp_path, criteria))
    verdicts = evaluate({"metrics": [rate("escape_rate", 0, 700)]}, loaded)
    logs = verdicts["criteria"][1]
    assert logs["outcome"] == "ATTESTED" and logs["reason_code"] == "attested"
    assert "reason_args" in logs and logs["reason_args"] == {}
    assert verdicts["data_gaps"] == [] and verdicts["undecided"] == []


def test_data_gaps_render_in_the_report_language(tmp_path: Path) -> None:
    entries = [rate("escape_rate", 0, 700, shift="day"), rate("escape_rate", 0, 40, shift="night")]
    metric = {"slice_by": ["shift"], "aggregate": "each"}
    verdicts = judge(tmp_path, entries, threshold=0.05, min_n=100, metric=metric)
    (gap,) = verdicts["data_gaps"]
    (coded,) = verdicts["data_gap_reasons"]
    assert gap == "esc [shift=night]: insufficient sample: n=40 < min_n=100"
    assert coded["criterion"] == "esc" and coded["slice"] == {"shift": "night"}
    zh = fmt("zh").gap(DataGapReason.model_validate(coded))
    assert zh == "esc [班次 = night]：样本不足：n = 40，少于评价准则规定的最小样本量 100"


def test_energy_on_an_external_cluster_is_not_called_modelled(tmp_path: Path) -> None:
    loaded = load_rubric(energy_rubric(tmp_path))
    run = {
        "energy": {
            "method": "nvml",
            "measured": False,
            "label": "not measured",
            "not_measured_reason": "the batches ran on the Dask cluster of tcp://h:8786",
        }
    }
    entry = {**energy_entry("not measured"), "value": None}
    verdicts = evaluate({"metrics": [entry]}, loaded, run=run)
    figure, evidence = verdicts["criteria"]
    assert figure["outcome"] == "INCONCLUSIVE" and figure["reason_code"] == "no_value"
    assert evidence["outcome"] == "FAIL" and evidence["reason_code"] == "energy_not_seen"
    assert "modelled" not in evidence["reason"]


def test_spread_rows_print_in_their_own_units(tmp_path: Path) -> None:
    entries = [rate("escape_rate", 20, 400, line="A"), rate("escape_rate", 4, 400, line="B")]
    difference = judge(
        tmp_path,
        entries,
        threshold=0.02,
        min_n=100,
        metric={"slice_by": ["line"], "aggregate": "difference"},
    )
    rows, _ = render._criteria_view(typed(difference), fmt(), {})
    # 20/400 - 4/400 = 4 percentage points, against a 2-point limit
    assert rows[0]["value"] == "4.00 pp" and rows[0]["threshold"] == "≤ 2.00 pp"
    assert " pp " in difference["criteria"][0]["reason"]  # verdicts.json says points too
    assert "value 4.00 pp" in ci.describe(difference["criteria"][0])
    homogeneity = judge(
        tmp_path,
        entries,
        threshold=0.01,
        min_n=100,
        metric={"slice_by": ["line"], "aggregate": "homogeneity"},
        requirement={"op": ">=", "statistic": "p_value"},
    )
    c = homogeneity["criteria"][0]
    rows, _ = render._criteria_view(typed(homogeneity), fmt(), {})
    assert rows[0]["value"] == f"{c['value']:.4g}" and "%" not in rows[0]["value"]
    assert rows[0]["threshold"] == "≥ 0.01"


def test_clause_relations_are_translated() -> None:
    # every relation a rubric may write (schema MapsTo.relation) has a Chinese word
    relations = json_schema()["$defs"]["MapsTo"]["properties"]["relation"]["enum"]
    zh = fmt("zh")
    for relation in relations:
        word = zh.lookup("relation", relation)
        assert word != relation and not re.search(r"[A-Za-z]", word), relation
