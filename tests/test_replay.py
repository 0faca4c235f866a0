from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from auditkit.audit import run_replay
from auditkit.errors import InputError, ModelError
from auditkit.models.card import InputSpec, load_card
from auditkit.models.onnx_model import DeployedModel, SessionSettings, parse_providers
from auditkit.models.preprocess import preprocess
from auditkit.replay.pipeline import ReplaySettings
from auditkit.replay.progress import ProgressReporter
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


def test_scenarios_offline_and_single_stream_alone(tmp_path: Path, tiny_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=70, corrupt=1)
    run_replay(manifest, tiny_model, tmp_path / "both", settings=SETTINGS)
    offline = run_replay(
        manifest,
        tiny_model,
        tmp_path / "offline",
        settings=replace(SETTINGS, scenario="offline"),
    )
    single = run_replay(
        manifest,
        tiny_model,
        tmp_path / "single",
        settings=replace(SETTINGS, scenario="single-stream"),
    )
    assert offline.latency is None and offline.throughput_ips
    assert single.throughput_ips is None and single.latency is not None
    t_offline = pd.read_parquet(tmp_path / "offline/timings.parquet")
    t_single = pd.read_parquet(tmp_path / "single/timings.parquet")
    assert set(t_offline["scenario"]) == {"offline"}
    assert set(t_single["scenario"]) == {"single-stream"} and len(t_single) == 69
    # every scenario gives the same predictions (single-stream at batch size 1)
    base = pd.read_parquet(tmp_path / "both/predictions.parquet")
    pd.testing.assert_frame_equal(base, pd.read_parquet(tmp_path / "offline/predictions.parquet"))
    alone = pd.read_parquet(tmp_path / "single/predictions.parquet")
    assert (alone["pred_label"] == base["pred_label"]).all()
    np.testing.assert_allclose(alone["score"], base["score"], atol=1e-6)
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "both/samples.parquet"),
        pd.read_parquet(tmp_path / "single/samples.parquet"),
    )
    # 69 single-stream latencies: enough for the early-stopping p90 (>= 64), not for p99 (662)
    e2e = single.latency["e2e"]
    assert e2e["p90_early_stopping_ms"] is not None
    assert e2e["p90_early_stopping_rank_from_top"] == 1
    assert e2e["p99_early_stopping_ms"] is None
    assert e2e["p99_early_stopping_reason"].startswith("insufficient samples: 69 < 662")
    assert single.latency["inference"]["p50_ms"] <= e2e["p50_ms"]
    run = json.loads((tmp_path / "both/run.json").read_text())
    assert run["replay"]["latency"]["n"] == 5
    assert run["replay"]["latency"]["e2e"]["p90_early_stopping_ms"] is None
    assert run["replay"]["scenario"] == "both"


def test_unknown_scenario_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown scenario 'server'"):
        ReplaySettings(scenario="server")


def test_progress_lines_plain_and_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(float(t) for t in range(100))
    monkeypatch.setattr("auditkit.replay.progress.time.monotonic", lambda: next(clock))
    plain = io.StringIO()
    reporter = ProgressReporter(plain, tty=False, plain_interval_s=2.0)
    for done in range(0, 100, 10):
        reporter(done, 100)
    reporter.close()
    lines = plain.getvalue().splitlines()
    assert len(lines) == 4  # one every 2 s of the fake clock, none at the start
    assert lines[0] == "replay: 20/100 images (20%), 10 images/s, ETA 8s"
    terminal = io.StringIO()
    live = ProgressReporter(terminal, tty=True, tty_interval_s=0.0)
    live(0, 50)
    live(50, 50)
    live.close()
    text = terminal.getvalue()
    assert text.startswith("\r\x1b[K") and "[########################] 50/50 100%" in text
    assert text.endswith("\n")


def test_providers_option() -> None:
    assert parse_providers(None) == ("CPUExecutionProvider",)
    assert parse_providers("cuda, cpu") == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert parse_providers("OpenVINOExecutionProvider") == ("OpenVINOExecutionProvider",)


def test_unavailable_provider_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=4)
    with pytest.raises(ModelError, match="NoSuchExecutionProvider not available"):
        run_replay(
            manifest,
            tiny_model,
            tmp_path / "run",
            settings=SETTINGS,
            session=SessionSettings(providers=("NoSuchExecutionProvider",)),
        )
    run_replay(manifest, tiny_model, tmp_path / "run", settings=SETTINGS)
    run = json.loads((tmp_path / "run/run.json").read_text())
    assert run["model"]["providers_used"] == ["CPUExecutionProvider"]


def test_truncated_file_is_unreadable_even_if_pillow_was_loosened(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import ImageFile

    manifest = write_dataset(tmp_path / "data", n=12)
    image = tmp_path / "data/images/img005.png"
    noise = np.random.default_rng(0).integers(0, 256, size=(64, 64), dtype=np.uint8)
    Image.fromarray(noise, "L").save(image)
    data = image.read_bytes()
    image.write_bytes(data[: len(data) * 2 // 3])  # header intact, the pixel data cut short
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # what WeasyPrint does
    result = run_replay(manifest, tiny_model, tmp_path / "run", settings=SETTINGS)
    samples = pd.read_parquet(tmp_path / "run/samples.parquet")
    assert result.n_unreadable == 1
    assert samples["status"][5] == "unreadable"
    assert samples["error"][5].startswith("cannot decode image")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored after the replay


def test_failing_batch_marks_its_rows_and_the_replay_goes_on(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_dataset(tmp_path / "data", n=12)
    real = DeployedModel.run
    calls = {"batches": 0}

    def flaky(self: DeployedModel, batch: np.ndarray, sizes: Any = None) -> Any:
        calls["batches"] += 1  # no warm-up: every call is an offline batch
        if calls["batches"] == 2:
            raise RuntimeError("device lost\nsecond line")
        return real(self, batch, sizes)

    monkeypatch.setattr(DeployedModel, "run", flaky)
    settings = replace(SETTINGS, scenario="offline", warmup_batches=0)
    result = run_replay(manifest, tiny_model, tmp_path / "run", settings=settings)
    samples = pd.read_parquet(tmp_path / "run/samples.parquet")
    assert result.n_error == 4 and result.n_scored == 8
    assert list(samples["status"][4:8]) == ["error"] * 4
    assert set(samples["error"][4:8]) == {"inference failed: device lost"}
    predictions = pd.read_parquet(tmp_path / "run/predictions.parquet")
    assert len(predictions) == 8 and "s4" not in set(predictions["sample_id"])
