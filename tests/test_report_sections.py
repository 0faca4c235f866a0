"""View models of the report sections, without rendering a PDF: energy and carbon (the run.json
contract of the energy issue), curves, sampling plan, baseline, unknown criterion fields and
the Chinese catalogue's translations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from auditkit.evidence import MetricsDocument, RunRecord, VerdictsDocument
from auditkit.report import sections
from auditkit.report.formatting import Formatter
from auditkit.report.render import _criteria_view, _index_metrics, _task_chart, load_strings

FIXTURE = Path(__file__).parent / "fixtures" / "run_small"

ENERGY = {
    "method": "nvml",
    "measured": True,
    "label": "measured",
    "boundary": "device",
    "meter": {"device": "NVIDIA H100", "counter": "total_energy_consumption"},
    "sampling_interval_s": 0.1,
    "idle": {"seconds": 5.0, "power_w": 61.5},
    "window": {"seconds": 12.0, "images": 2000, "passes": 3},
    "energy_j": 3600.0,
    "energy_above_idle_j": 2862.0,
    "mean_power_w": 300.0,
    "j_per_image": 0.6,
    "wh_per_1000_inspections": 0.1667,
    "carbon": {
        "grid_intensity_g_per_kwh": 475.0,
        "source": "IEA 2019 world average",
        "embodied_g_per_1000": 0.01,
        "gco2e_per_1000_inspections": 0.089,
    },
    "uncertainty": "±5 % (NVML counter accuracy)",
}


def fmt(lang: str = "en") -> Formatter:
    return Formatter(load_strings(lang), 0.95)


# The views read typed evidence; these build it from the fields a test gives, the way the
# report loads a file (model_validate), with the identifying fields every file has.


def run_record(**blocks: Any) -> RunRecord:
    return RunRecord.model_validate({"format": "auditkit.run/1", "run_id": "r", **blocks})


def metrics_doc(entries: list[dict[str, Any]] | None = None, **fields: Any) -> MetricsDocument:
    data = {"format": "auditkit.metrics/1", "run_id": "r", "metrics": entries or [], **fields}
    return MetricsDocument.model_validate(data)


def verdicts_doc(**fields: Any) -> VerdictsDocument:
    data = {"verdict": "HOLD", "criteria": [], **fields}
    return VerdictsDocument.model_validate({**data, "format": "auditkit.verdicts/1", "run_id": "r"})


def test_measured_energy_in_plain_words_with_power_chart(tmp_path: Path) -> None:
    pd.DataFrame({"t_s": np.arange(0, 12, 0.1), "watts": np.full(120, 300.0)}).to_parquet(
        tmp_path / "power.parquet"
    )
    view = sections.energy_view(tmp_path, run_record(energy=ENERGY), fmt())
    rows = dict(view["rows"])
    assert view["measured"] is True and not view["off"]
    assert rows["Method"] == "measured (GPU energy counter (NVML))"
    assert rows["Boundary"] == "the accelerator or CPU package only"
    # every figure says whether it was measured or modelled, with its unit
    assert rows["Energy per 1,000 inspections"] == "0.1667 Wh (measured)"
    assert rows["Energy per scored image"] == "600 mJ (measured)"  # 0.6 J
    assert rows["Carbon per 1,000 inspections (SCI)"] == "0.089 gCO2e (measured)"
    assert rows["Measurement window"] == "12 s, 2 000 images, 3 pass(es)"
    assert rows["Idle power (measured before the window)"] == "61.5 W (5 s)"
    assert "IEA 2019" in rows["Grid carbon intensity"]
    # 0.1 s counter interval against a 12 s window: edge error 0.1 / 12 = 0.833 %
    assert "edge error up to about 0.833 %" in rows["Uncertainty"]
    assert "3 times" in rows["Uncertainty"] and "Idle baseline: 5 s" in rows["Uncertainty"]
    assert dict(view["meter"]) == {"Counter": "total_energy_consumption", "device": "NVIDIA H100"}
    assert view["chart"].startswith("data:image/svg+xml;base64,")


MODEL_METER = {
    "formula": "P = rated watts x process CPU utilisation",
    "declared_watts": None,
    "rated_watts": 20.0,
    "watts_source": "assumed 10 W per logical CPU x 2 (no --rated-watts or --declared-watts "
    "given; not a rating)",
    "logical_cpus": 2,
    "process_cpu_seconds": 0.85,
    "process_cpu_utilisation": 0.735,
    "host_cpu_utilisation": None,
    "modelled_power_w": 14.7,
}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_modelled_meter_is_a_table_of_labelled_rows_never_a_repr(lang: str) -> None:
    energy = {
        **ENERGY,
        "method": "model",
        "measured": False,
        "sampling_interval_s": None,
        "idle": {"seconds": 0.0, "power_w": None},
        "window": {"seconds": 0.578, "images": 1998, "passes": 1},
        "meter": MODEL_METER,
    }
    view = sections.energy_view(Path("/nonexistent"), run_record(energy=energy), fmt(lang))
    meter = dict(view["meter"])
    text = " ".join(f"{k} {v}" for k, v in [*view["rows"], *view["meter"]])
    assert "None" not in text and "declared_watts" not in text and "{" not in text
    t = load_strings(lang)
    labels = t["meter_field"]
    assert meter[labels["rated_watts"]] == "20 W"
    assert meter[labels["process_cpu_utilisation"]] == "73.5 %"
    assert meter[labels["process_cpu_seconds"]] == "0.85 s"
    assert labels["host_cpu_utilisation"] not in meter  # not recorded: left out
    assert meter[t["meter_formula"]] == t["meter_formula_text"]["rated"]
    # 20 W rated over 2 logical CPUs: 10 W each
    assert meter[t["meter_watts_source"]].startswith(
        t["watts_source_text"]["assumed"].format(per_cpu="10", cpus=2)[:6]
    )
    rows = dict(view["rows"])
    modelled = f"{t['paren_open']}{t['energy_how']['modelled']}{t['paren_close']}"
    assert rows[t["energy_j_per_image"]] == f"600 mJ{modelled}"  # 0.6 J
    assert t["energy_how"]["measured"] not in rows[t["energy_j_per_image"]]
    # 0.578 s < 10 s and no idle reading: both said, in the report's language
    uncertainty = rows[t["energy_uncertainty"]]
    assert t["uncertainty_no_idle"] in uncertainty
    assert t["uncertainty_short"].format(window="0.578 s", minimum="10 s") in uncertainty


def test_modelled_energy_says_so_and_off_says_nothing(tmp_path: Path) -> None:
    modelled = {**ENERGY, "method": "model", "measured": False, "label": "modelled"}
    view = sections.energy_view(tmp_path, run_record(energy=modelled), fmt("zh"))
    assert dict(view["rows"])["测量方法"] == "估算，非实测（额定功率 × 利用率）"
    assert view["chart"] is None  # no power.parquet
    for run in (run_record(energy={"method": "off"}), run_record(energy={}), run_record()):
        assert sections.energy_view(tmp_path, run, fmt())["off"] is True


def test_curves_match_the_metrics_auc(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 400
    parts = np.repeat(np.arange(n // 2), 2)
    defect = rng.random(n // 2) < 0.4
    samples = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(n)],
            "part_id": [f"p{p}" for p in parts],
            "is_defect": defect[parts],
            "status": "ok",
        }
    )
    scores = np.clip(defect[parts] * 0.3 + rng.random(n) * 0.8, 0, 1)
    samples.to_parquet(tmp_path / "samples.parquet")
    pd.DataFrame({"sample_id": samples["sample_id"], "score": scores}).to_parquet(
        tmp_path / "predictions.parquet"
    )
    got = sections._part_scores(tmp_path)
    assert got is not None
    is_defect, part_score = got
    # independent: a part's score is the maximum of its two images
    expected = np.maximum(scores[0::2], scores[1::2])
    order = np.argsort([f"p{p}" for p in range(n // 2)], kind="stable")
    assert np.allclose(part_score, expected[order])
    assert np.array_equal(is_defect, defect[order])
    view = sections.curves_view(
        tmp_path, metrics_doc([{"name": "roc_auc", "slice": {}, "value": 0.9}]), fmt()
    )
    assert view is not None and view["has_curves"]
    assert "0.9" in view["caption"]


def test_sampling_plan_counts_parts_per_class(tmp_path: Path) -> None:
    pd.DataFrame(
        {"part_id": ["a", "a", "b", "c", "c", "d"], "label": ["good"] * 2 + ["pit"] * 4}
    ).to_parquet(tmp_path / "samples.parquet")
    run = run_record(dataset={"labels": {"good": 2, "pit": 4}})
    view = sections.sampling_view(tmp_path, run, metrics_doc(), fmt())
    assert [(c["label"], c["images"], c["parts"]) for c in view["classes"]] == [
        ("good", "2", "1"),
        ("pit", "4", "3"),
    ]


BASELINE = {
    "run_id": "run-000000000001",
    "model": "steel-v1 1.0.0",
    "model_sha256": "ab" * 32,
    "n_parts": 1612,
    "parts_unscored": 0,
    "escape_rate": {
        "b": 3,
        "c": 17,
        "baseline_k": 37,
        "candidate_k": 23,
        "n": 834,
        "difference": (23 - 37) / 834,
        "p_value_mcnemar": 0.0025768280029296875,
        "interval": {"low": -0.0269, "high": -0.0086, "level": 0.95, "method": "tango"},
    },
    "changed_decisions": {
        "total": 20,
        "by_change": {"escape fixed": 17, "new escape": 3},
        "listed": [
            {
                "part_id": "p000009",
                "defect_class": "inclusion",
                "baseline_reject": False,
                "candidate_reject": True,
                "change": "escape fixed",
            }
        ],
    },
}


def test_baseline_is_a_table_of_labelled_rows_never_flattened_keys() -> None:
    verdicts = verdicts_doc(baseline=BASELINE)
    view = sections.baseline_view(metrics_doc(), verdicts, fmt())
    assert view is not None
    info = dict(view["info"])
    assert info["Baseline run"] == "run-000000000001"
    assert info["Parts compared"] == "1 612"
    (escape,) = view["paired"]
    assert (escape["baseline"], escape["candidate"]) == ("37/834", "23/834")
    # (23 - 37) / 834 = -1.6787 % = -1.68 percentage points
    assert escape["difference"] == "-1.68 pp"
    assert escape["interval"] == "-2.69 pp – -0.86 pp"
    assert (escape["new"], escape["fixed"], escape["p"]) == ("3", "17", "0.00258")
    assert view["by_change"] == [("escape fixed", "17"), ("new escape", "3")]
    assert view["listed"] == [
        {
            "part": "p000009",
            "defect_class": "inclusion",
            "baseline": "accepted",
            "candidate": "rejected",
            "change": "escape fixed",
        }
    ]
    zh = sections.baseline_view(metrics_doc(), verdicts, fmt("zh"))
    assert zh is not None and zh["by_change"][0] == ("漏检已修复", "17")
    assert sections.baseline_view(metrics_doc(), verdicts_doc(), fmt()) is None


def test_unknown_criterion_fields_are_labelled_words_not_json() -> None:
    verdicts = json.loads((FIXTURE / "verdicts.json").read_text())
    metrics = json.loads((FIXTURE / "metrics.json").read_text())
    crit: dict[str, Any] = verdicts["criteria"][0]
    crit["kind"] = "attestation"
    crit["evidence"] = {"document": "FMEA-17", "accepted": True, "reviewer": None}
    crit["filter"] = {"defect_class": ["crack", "inclusion"]}
    crit["paired"] = {"b": 3, "c": 17, "n": 834, "p_value_mcnemar": 0.0025768, "reason": "x" * 400}
    crit.update(aggregate="overall", confidence_level=0.95, multiplicity="holm")
    typed = VerdictsDocument.model_validate(verdicts)
    index = _index_metrics(MetricsDocument.model_validate(metrics).metrics)
    rows, _ = _criteria_view(typed, fmt(), index)
    extras = rows[0]["extras"]
    assert "Kind of criterion: attestation (declared, not verified)" in extras
    assert "Evidence recorded: document: FMEA-17; accepted: yes" in extras
    assert "Parts judged: defect class = crack, inclusion" in extras
    assert "Paired comparison: 3 new, 17 fixed of 834 parts; McNemar p = 0.00258" in extras
    assert "Multiplicity correction: Holm correction over the slices" in extras
    # a default (aggregate overall) and what the statistic column states are not repeated
    assert not any(x.startswith(("Aggregation", "confidence")) for x in extras)
    assert not any("{" in x or "None" in x or "True" in x for x in extras)


def test_formatter_numbers_units_and_not_applicable() -> None:
    en, zh = fmt("en"), fmt("zh")
    assert en.num(None) == "n/a" and zh.num(None) == "不适用"
    assert en.num(True) == "yes" and zh.num(False) == "否"
    assert en.count(1234567) == "1 234 567" and zh.count(1234567) == "1,234,567"
    assert en.num(0.000561) == "0.000561"  # never 5.61e-04
    assert en.num(1e-7) == "0.0000001"
    assert en.num(12345.6) == "12 346"
    assert en.quantity(14.7, "W") == "14.7 W" and en.quantity(None, "W") == "n/a"
    assert en.pp(-0.016786) == "-1.68 pp"
    assert en.share(0.735) == "73.5 %"
    assert en.any({"a": None, "b": [1, 2], "c": {"d": False}}) == "b: 1, 2; c: d: no"


def test_environment_appendix_has_labelled_rows_and_no_reprs() -> None:
    run = json.loads((FIXTURE / "run.json").read_text())
    run["replay"]["checkpoint"] = {"resumed": False, "sessions": 1}
    run["replay"]["max_errors"] = None
    groups = sections.environment_rows(RunRecord.model_validate(run), fmt())
    rows = {k: v for g in groups for k, v in g["rows"]}
    assert rows["Checkpoints › resumed"] == "no"
    assert rows["Largest number of failed images allowed"] == "n/a"
    assert not any("." in k and k.split(".")[0] in ("tool", "host", "replay") for k in rows)
    assert not any(v in ("None", "True", "False") for v in rows.values())


@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        ("upper bound 2.27% <= 2.50%", "置信上限 2.27% ≤ 2.50%"),
        ("upper bound 3.25 ms <= 50 ms", "置信上限 3.25 ms ≤ 50 ms"),
        (
            "worst slice lighting=dim: lower bound 8.72% > 5.00%",
            "最差切片 lighting=dim：置信下限 8.72% > 5.00%",
        ),
        ("insufficient sample: n=70 < min_n=100", "样本不足：n=70，少于最小样本量 100"),
        ("Escape rate over all defective parts", "全部缺陷零件的漏检率"),
        ("something the catalogue does not know", "something the catalogue does not know"),
    ],
)
def test_chinese_catalogue_translates_rubric_and_evaluation_text(
    english: str, chinese: str
) -> None:
    assert fmt("zh").text(english) == chinese
    assert fmt("en").text(english) == english


def test_every_language_has_every_english_key() -> None:
    import yaml

    folder = Path(__file__).parent.parent / "reports" / "templates"
    en = yaml.safe_load((folder / "strings.yaml").read_text())["en"]
    zh = yaml.safe_load((folder / "strings.zh.yaml").read_text())["zh"]

    def keys(table: dict[str, Any], prefix: str = "") -> set[str]:
        out = set()
        for key, value in table.items():
            out.add(prefix + key)
            if isinstance(value, dict):
                out |= keys(value, prefix + key + ".")
        return out

    assert keys(en) - keys(zh) == set()


def test_task_figure_for_detectors_and_anomaly_models_only() -> None:
    import base64

    classifier = MetricsDocument.model_validate_json((FIXTURE / "metrics.json").read_text())
    assert _task_chart(classifier, fmt()) is None
    detector: dict[str, Any] = {
        "metrics": [
            {"name": "ap", "slice": {"class": "pit"}, "value": 0.25},
            {"name": "ap_50", "slice": {"class": "pit"}, "value": 0.5},
            {"name": "ap", "slice": {"class": "scratch"}, "value": None},  # no pit boxes: empty
        ]
    }
    uri = _task_chart(metrics_doc(**detector), fmt())
    assert uri is not None and uri.startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(uri.split(",", 1)[1]).decode()
    assert svg.startswith("<?xml") and "</svg>" in svg
    detector["metrics"][0]["value"] = 0.75  # the bars follow the values
    assert _task_chart(metrics_doc(**detector), fmt()) != uri
    anomaly = {
        "metrics": [
            {"name": "pixel_auroc", "slice": {}, "value": 0.98},
            {"name": "iou", "slice": {"class": "defect"}, "value": 0.5},
        ]
    }
    assert _task_chart(metrics_doc(**anomaly), fmt()) is not None


def test_page_one_line_uses_the_slice_the_evaluation_names() -> None:
    from auditkit.evidence import CriterionResult
    from auditkit.report.render import _blocker_line, deciding_slice

    rows = [
        {"slice": {"supplier": "S2"}, "value": 0.0588, "low": 0.031, "high": 0.0891,
         "outcome": "INCONCLUSIVE", "n": 255},
        {"slice": {"line": "L1"}, "value": 0.0388, "low": 0.0214, "high": 0.059,
         "outcome": "INCONCLUSIVE", "n": 326},
    ]  # fmt: skip
    crit = {
        "id": "escape-line-supplier",
        "severity": "blocker",
        "metric": "escape_rate",
        "outcome": "INCONCLUSIVE",
        "value": 0.0388,
        "bound": 0.059,
        "threshold": 0.05,
        "op": "<=",
        "min_n": 100,
        "slices": rows,
    }

    def typed(**changes: object) -> CriterionResult:
        return CriterionResult.model_validate({**crit, **changes})

    # no "slice" on the criterion: the row whose outcome and value are the criterion's
    plain = typed()
    assert plain.slices is not None and deciding_slice(plain) is plain.slices[1]
    # the evaluation names the deciding slice: that row, whatever the values
    named = typed(slice={"supplier": "S2"})
    assert named.slices is not None and deciding_slice(named) is named.slices[0]
    line = _blocker_line(typed(slice={"line": "L1"}), fmt())
    # hand-worked: 3.88 % measured, its upper bound 5.90 % (the row's high) above 5.00 %
    assert line == "escape rate, line = L1: 3.88 %, upper bound 5.90 % > 5.00 %"
    small = _blocker_line(typed(min_n=400), fmt())
    assert small.endswith("; n = 326, below the rubric's minimum of 400")
    skipped = CriterionResult.model_validate(
        {
            "id": "escape-change",
            "severity": "blocker",
            "metric": "escape_rate_change",
            "outcome": "SKIPPED",
            "reason": "needs --baseline RUN: not evaluated",
        }
    )
    assert _blocker_line(skipped, fmt("zh")) == "漏检率相对基线的变化：需要 --baseline RUN：未评估"


def test_zero_escape_needs_the_parts_the_exact_bound_says() -> None:
    """The least n whose 0-of-n Clopper–Pearson upper bound meets the target, from SciPy."""
    from scipy.stats import beta

    for target, level in ((0.05, 0.95), (0.01, 0.95), (0.02, 0.975), (0.001, 0.9)):
        n = sections.parts_to_prove(target, level)
        assert beta.ppf(level, 1, n) <= target < beta.ppf(level, 1, n - 1)
    assert (sections.parts_to_prove(0.05, 0.95), sections.parts_to_prove(0.01, 0.95)) == (59, 299)


def test_zero_escape_table_prints_the_entry_and_says_why_none_qualifies() -> None:
    from scipy.stats import beta

    def entry(slc: dict[str, str], n: int, target: float, **found: Any) -> dict[str, Any]:
        return {
            "name": "escape_certified_threshold",
            "slice": slc,
            "n": n,
            "target": target,
            "bound_level": 0.95,
            "value": None,
            "escape": None,
            "overkill": None,
            **found,
        }

    # 0 of 60 defective parts escape at the threshold: upper 95 % bound 1 - 0.05^(1/60)
    upper = 1 - 0.05 ** (1 / 60)
    assert upper == pytest.approx(beta.ppf(0.95, 1, 60))
    day = entry(
        {"shift": "day"},
        60,
        0.05,
        value=0.015272,
        escape={"k": 0, "n": 60, "value": 0.0, "low": 0.0, "high": upper},
        overkill={"k": 2, "n": 22, "value": 2 / 22, "low": 0.0164, "high": 0.2595},
    )
    entries = [
        entry({}, 101, 0.01),
        entry({"shift": "day"}, 60, 0.01),
        entry({}, 101, 0.05),  # (its figures do not matter here)
        day,
        entry({"shift": "night"}, 41, 0.05),
        entry({"line": "L1"}, 35, 0.05),
    ]
    view = sections.zero_escape_view(metrics_doc(entries), fmt())
    assert view is not None
    rows = view["rows"]
    assert [(r["slice"], r["target"]) for r in rows] == [
        ("all parts", "1.00 %"),
        ("other slices (1)", "1.00 %"),
        ("all parts", "5.00 %"),
        ("shift = day", "5.00 %"),
        ("other slices (2)", "5.00 %"),
    ]
    assert rows[0]["none"] == (
        "no threshold proves the target: 101 defective parts tested, at least 299 needed"
    )
    # the slices too small to prove 5 %: the largest has 41 defective parts, 59 are needed
    assert "at most 41 defective parts tested in one, at least 59 needed" in rows[4]["none"]
    day_row = rows[3]
    assert (day_row["threshold"], day_row["escaped"], day_row["escape_bound"]) == (
        "0.01527",
        "0/60",
        f"{100 * upper:.2f} %",
    )
    assert day_row["overkill"] == "2/22"
    assert day_row["overkill_bounds"] == "9.09 % (1.64 % – 25.95 %)"
    zh = sections.zero_escape_view(metrics_doc(entries[:1]), fmt("zh"))
    assert zh is not None and "至少需要 299 个" in zh["rows"][0]["none"]
    assert sections.zero_escape_view(metrics_doc(), fmt()) is None


def test_prevalence_line_names_who_stated_it_and_gives_escaped_ppm(tmp_path: Path) -> None:
    ppm = {
        "name": "escaped_ppm",
        "slice": {},
        "value": 178.54,
        "interval": {"low": 83.28, "high": 347.55, "method": "clopper_pearson_bonferroni"},
        "prevalence": 0.002,
        "prevalence_source": "site",
    }
    doc = metrics_doc([ppm], prevalence={"value": 0.002, "source": "card"})
    view = sections.sampling_view(tmp_path, run_record(), doc, fmt())
    assert view["prevalence"] == "0.2 % (declared in the model card)"  # the document's own
    assert view["escaped_ppm"].startswith("179 ppm at that prevalence (bounds 83.3 – 348 ppm")
    zh = sections.sampling_view(tmp_path, run_record(), metrics_doc([ppm]), fmt("zh"))
    assert zh["prevalence"] == "0.2 %（按现场给定：--prevalence 或 --param prevalence）"
    bare = sections.sampling_view(tmp_path, run_record(), metrics_doc(), fmt())
    assert bare["prevalence"] is None and bare["escaped_ppm"] is None


def test_task_table_and_chart_show_overall_and_per_class_figures_only() -> None:
    """Per-slice task entries (``{"class": "pit", "lighting": "dim"}``) belong to the criteria's
    slice tables and Appendix A: the task table and the AP chart read the class-only entries,
    whatever order metrics.json lists them in."""
    from auditkit.report.render import _task_view

    overall = {"name": "map_50", "slice": {}, "value": 0.337}
    pit = {"name": "ap", "slice": {"class": "pit"}, "value": 0.25}
    dim = {"name": "ap", "slice": {"class": "pit", "lighting": "dim"}, "value": 0.9}
    rows = _task_view(metrics_doc([overall, dim, pit]), fmt())
    assert [(r["slice"], r["value"]) for r in rows] == [
        ("all parts", "0.337"),
        ("class = pit", "0.25"),
    ]
    assert _task_chart(metrics_doc([pit, dim]), fmt()) == _task_chart(metrics_doc([pit]), fmt())
