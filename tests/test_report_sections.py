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

from auditkit.report import sections
from auditkit.report.render import _criteria_view, _Fmt, _index_metrics, _load_strings, _task_chart

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


def fmt(lang: str = "en") -> _Fmt:
    return _Fmt(_load_strings(lang), 0.95)


def test_measured_energy_in_plain_words_with_power_chart(tmp_path: Path) -> None:
    pd.DataFrame({"t_s": np.arange(0, 12, 0.1), "watts": np.full(120, 300.0)}).to_parquet(
        tmp_path / "power.parquet"
    )
    view = sections.energy_view(tmp_path, {"energy": ENERGY}, fmt())
    rows = dict(view["rows"])
    assert view["measured"] is True and not view["off"]
    assert rows["Method"] == "measured (GPU energy counter (NVML))"
    assert rows["Boundary"] == "the accelerator or CPU package only"
    assert rows["Energy per 1,000 inspections"] == "0.1667 Wh"
    assert rows["Carbon per 1,000 inspections (SCI)"] == "0.089 gCO2e"
    assert "IEA 2019" in rows["Grid carbon intensity"]
    assert view["chart"].startswith("data:image/svg+xml;base64,")


def test_modelled_energy_says_so_and_off_says_nothing(tmp_path: Path) -> None:
    modelled = {**ENERGY, "method": "model", "measured": False, "label": "modelled"}
    view = sections.energy_view(tmp_path, {"energy": modelled}, fmt("zh"))
    assert dict(view["rows"])["测量方法"] == "估算，非实测（额定功率 × 利用率）"
    assert view["chart"] is None  # no power.parquet
    for energy in ({"method": "off"}, {}, None):
        assert sections.energy_view(tmp_path, {"energy": energy}, fmt())["off"] is True


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
        tmp_path, {"metrics": [{"name": "roc_auc", "slice": {}, "value": 0.9}]}, fmt()
    )
    assert view is not None and view["has_curves"]
    assert "0.9" in view["caption"]


def test_sampling_plan_counts_parts_per_class(tmp_path: Path) -> None:
    pd.DataFrame(
        {"part_id": ["a", "a", "b", "c", "c", "d"], "label": ["good"] * 2 + ["pit"] * 4}
    ).to_parquet(tmp_path / "samples.parquet")
    run = {"dataset": {"labels": {"good": 2, "pit": 4}}}
    view = sections.sampling_view(tmp_path, run, {"metrics": []}, fmt())
    assert [(c["label"], c["images"], c["parts"]) for c in view["classes"]] == [
        ("good", "2", "1"),
        ("pit", "4", "3"),
    ]


def test_baseline_and_unknown_fields_are_rendered_generically() -> None:
    verdicts = json.loads((FIXTURE / "verdicts.json").read_text())
    metrics = json.loads((FIXTURE / "metrics.json").read_text())
    verdicts["baseline"] = {"run_id": "run-000000000001", "model": {"version": "2.2.0"}}
    crit: dict[str, Any] = verdicts["criteria"][0]
    crit["kind"] = "attestation"
    crit["evidence"] = {"document": "FMEA-17", "accepted": True}
    crit.update(aggregate="overall", confidence_level=0.95, multiplicity="holm")
    view = sections.baseline_view(metrics, verdicts, fmt())
    assert view is not None
    assert ("run_id", "run-000000000001") in view["info"]
    assert ("model.version", "2.2.0") in view["info"]
    rows, _ = _criteria_view(verdicts, fmt(), _index_metrics(metrics["metrics"]))
    assert "kind: attestation" in rows[0]["extras"]
    assert any(x.startswith("evidence: {") for x in rows[0]["extras"])
    # a default (aggregate overall) and what the statistic column states are not repeated
    assert "multiplicity: holm" in rows[0]["extras"]
    assert not any(x.startswith(("aggregate", "confidence_level")) for x in rows[0]["extras"])


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

    classifier = json.loads((FIXTURE / "metrics.json").read_text())
    assert _task_chart(classifier, fmt()) is None
    detector = {
        "metrics": [
            {"name": "ap", "slice": {"class": "pit"}, "value": 0.25},
            {"name": "ap_50", "slice": {"class": "pit"}, "value": 0.5},
            {"name": "ap", "slice": {"class": "scratch"}, "value": None},  # no pit boxes: empty
        ]
    }
    uri = _task_chart(detector, fmt())
    assert uri is not None and uri.startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(uri.split(",", 1)[1]).decode()
    assert svg.startswith("<?xml") and "</svg>" in svg
    detector["metrics"][0]["value"] = 0.75  # the bars follow the values
    assert _task_chart(detector, fmt()) != uri
    anomaly = {
        "metrics": [
            {"name": "pixel_auroc", "slice": {}, "value": 0.98},
            {"name": "iou", "slice": {"class": "defect"}, "value": 0.5},
        ]
    }
    assert _task_chart(anomaly, fmt()) is not None
