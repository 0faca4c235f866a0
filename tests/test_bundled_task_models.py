"""The bundled detector and anomaly model: their cards agree with the graphs, their conventions
are detected without the cards, and they replay on the seed-2026 sample to sound metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditkit.audit import run_metrics
from auditkit.models.card import load_card
from auditkit.models.inspect import inspect_model
from auditkit.models.onnx_model import DeployedModel
from auditkit.replay.pipeline import ReplaySettings, replay
from auditkit.sample.layouts import write_dataset

MODELS = Path(__file__).resolve().parent.parent / "sample_data" / "models"
#: floors well below what the shipped models reach on these 120 images (see sample_data/README.md)
DET_MAP50 = 0.15
DET_ESCAPE = 0.45


@pytest.mark.parametrize(
    ("name", "convention"), [("steel-det", "ultralytics_raw"), ("steel-anomaly", "anomalib")]
)
def test_cards_agree_and_conventions_are_detected(name: str, convention: str) -> None:
    path = MODELS / f"{name}.onnx"
    assert inspect_model(path)["convention"]["name"] == convention  # from the graph alone
    report = inspect_model(path, load_card(MODELS / f"{name}.card.yaml"))
    assert report["disagreements"] == []
    assert report["parameters"] > 1000 and report["flops_per_image"] > 1_000_000


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return write_dataset(tmp_path_factory.mktemp("sample"), 120, 2026)


def _metrics(sample, name: str, out: Path) -> dict[str, float | None]:  # type: ignore[no-untyped-def]
    card = load_card(MODELS / f"{name}.card.yaml")
    model = DeployedModel.load(MODELS / f"{name}.onnx", card)
    replay(sample, model, out, ReplaySettings(scenario="offline"))
    return {m["name"]: m["value"] for m in run_metrics(out)["metrics"] if not m["slice"]}


def test_bundled_detector_finds_the_defects(sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    got = _metrics(sample, "steel-det", tmp_path / "run")
    assert got["map_50"] is not None and got["map_50"] > DET_MAP50
    assert got["detection_escape_rate"] < DET_ESCAPE


def test_bundled_anomaly_model_localises_the_defects(sample, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    got = _metrics(sample, "steel-anomaly", tmp_path / "run")
    assert got["image_auroc"] > 0.95
    assert got["pixel_auroc"] > 0.9 and got["aupro"] > 0.85
