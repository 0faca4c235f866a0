from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from auditkit.audit import run_replay
from auditkit.errors import ModelError
from auditkit.models.card import InputSpec, load_card
from auditkit.models.onnx_model import DeployedModel, preprocess
from auditkit.replay.pipeline import ReplaySettings
from tests.conftest import CLASSES, card_dict, write_dataset, write_tiny_model

SETTINGS = ReplaySettings(batch_size=4, single_stream_samples=5, warmup_batches=1)


def test_preprocess_matches_hand_computation() -> None:
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    spec = InputSpec(name="x", height=8, width=8, resize="bilinear", mean=[0.5], std=[0.25])
    got = preprocess(Image.fromarray(pixels, "L"), spec)
    resized = np.asarray(Image.fromarray(pixels, "L").resize((8, 8), Image.Resampling.BILINEAR))
    expected = ((resized.astype(np.float32) / 255.0) - 0.5) / 0.25
    assert got.shape == (1, 8, 8)
    np.testing.assert_allclose(got[0], expected, rtol=0, atol=1e-6)


def test_replay_writes_run_and_marks_corrupt_images(tmp_path: Path, tiny_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=24, corrupt=2, missing=1)
    result = run_replay(manifest, tiny_model, tmp_path / "run", settings=SETTINGS)
    samples = pd.read_parquet(tmp_path / "run/samples.parquet")
    predictions = pd.read_parquet(tmp_path / "run/predictions.parquet")
    assert len(samples) == 24  # nothing dropped
    assert list(samples["status"][:3]) == ["unreadable"] * 3
    assert samples["error"][0].startswith("cannot decode image")
    assert samples["error"][2] == "file not found"
    assert result.n_unreadable == 3 and result.n_scored == 21
    assert set(predictions["sample_id"]) == set(samples["sample_id"][samples["status"] == "ok"])
    probs = predictions[[f"score__{c}" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(predictions["score"], probs[:, 1:].sum(axis=1))
    assert (predictions["is_reject"] == (predictions["score"] >= 0.5)).all()
    timings = pd.read_parquet(tmp_path / "run/timings.parquet")
    assert set(timings["scenario"]) == {"offline", "single-stream"}
    assert (timings["scenario"] == "single-stream").sum() == 5


def test_replay_is_deterministic_and_scenarios_agree(tmp_path: Path, tiny_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=20)
    run_replay(manifest, tiny_model, tmp_path / "a", settings=SETTINGS)
    run_replay(manifest, tiny_model, tmp_path / "b", settings=SETTINGS)
    a = pd.read_parquet(tmp_path / "a/predictions.parquet")
    b = pd.read_parquet(tmp_path / "b/predictions.parquet")
    pd.testing.assert_frame_equal(a, b)
    import json

    run = json.loads((tmp_path / "a/run.json").read_text())
    assert run["replay"]["single_stream_parity"]["agree"] is True
    assert run["run_id"] == json.loads((tmp_path / "b/run.json").read_text())["run_id"]


def test_nan_output_marks_rows_error(tmp_path: Path) -> None:
    model = write_tiny_model(tmp_path / "nan.onnx", nan=True)
    (tmp_path / "nan.card.yaml").write_text(yaml.safe_dump(card_dict()))
    manifest = write_dataset(tmp_path / "data", n=8)
    result = run_replay(manifest, model, tmp_path / "run", settings=SETTINGS)
    samples = pd.read_parquet(tmp_path / "run/samples.parquet")
    assert result.n_error == 8
    assert set(samples["status"]) == {"error"}
    assert samples["error"][0] == "model output contains NaN or infinity"


def test_model_not_matching_card_is_refused(tmp_path: Path) -> None:
    model = write_tiny_model(tmp_path / "m.onnx", n_classes=4)
    (tmp_path / "m.card.yaml").write_text(yaml.safe_dump(card_dict()))
    with pytest.raises(ModelError, match=r"expected \(batch, 3\)"):
        DeployedModel.load(model, load_card(tmp_path / "m.card.yaml"))
    bad_input = card_dict(input={**card_dict()["input"], "height": 16})  # type: ignore[dict-item]
    (tmp_path / "m2.card.yaml").write_text(yaml.safe_dump(bad_input))
    write_tiny_model(tmp_path / "m2.onnx")
    with pytest.raises(ModelError, match="axis 2: 8 != 16"):
        DeployedModel.load(tmp_path / "m2.onnx", load_card(tmp_path / "m2.card.yaml"))


def test_not_an_onnx_file(tmp_path: Path) -> None:
    (tmp_path / "x.onnx").write_bytes(b"not a model")
    (tmp_path / "x.card.yaml").write_text(yaml.safe_dump(card_dict()))
    with pytest.raises(ModelError, match=r"cannot load ONNX model x.onnx"):
        DeployedModel.load(tmp_path / "x.onnx", load_card(tmp_path / "x.card.yaml"))
