"""A classification replay of an image folder and of an MVTec AD category, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from auditkit.audit import run_metrics, run_replay
from auditkit.data.interface import LoadOptions
from auditkit.errors import DataError
from auditkit.replay.pipeline import ReplaySettings
from tests import data_layouts as layouts
from tests.conftest import card_dict, write_tiny_model
from tests.test_cli import run_cli

OFFLINE = ReplaySettings(scenario="offline", batch_size=4)


def test_replay_of_an_image_folder_through_the_cli(tmp_path: Path, tiny_model: Path) -> None:
    root = layouts.image_folder(tmp_path / "data")
    (tmp_path / "cameras.csv").write_text(
        "file_name,camera\n"
        + "".join(f"{n},c{n[1]}\n" for n in ("g0.png", "g1.png", "g2.png"))
        + "s0.jpg,c0\ns1.jpg,c1\np0.bmp,c0\n"
    )
    out = tmp_path / "run"
    result = run_cli(
        "replay",
        str(root),
        "--model",
        str(tiny_model),
        "--out",
        str(out),
        "--scenario",
        "offline",
        "--no-progress",
        "--metadata-from-path",
        r"^(?P<folder>[a-z]+)/",
        "--metadata",
        str(tmp_path / "cameras.csv"),
        "--format",
        "imagefolder",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "replayed 6 images: 6 scored" in result.stdout
    run = json.loads((out / "run.json").read_text())
    assert run["dataset"]["format"] == "imagefolder"
    assert run["dataset"]["labels"] == {"good": 3, "pit": 1, "scratch": 2}
    assert run["dataset"]["metadata_columns"] == ["camera", "folder"]
    samples = pd.read_parquet(out / "samples.parquet")
    expected = ["good/g0.png", "good/g1.png", "good/g2.png", "pit/day/p0.bmp"]
    expected += ["scratch/s0.jpg", "scratch/s1.jpg"]
    assert sorted(samples["path"]) == expected
    cameras = dict(zip(samples["path"], samples["camera"], strict=True))
    assert cameras["good/g2.png"] == "c2" and cameras["pit/day/p0.bmp"] == "c0"


def test_replay_of_an_mvtec_category_with_a_matching_card(tmp_path: Path) -> None:
    category = layouts.mvtec_category(tmp_path / "mvtec")
    classes = ["good", "broken_large", "contamination"]
    model = write_tiny_model(tmp_path / "m.onnx", n_classes=3)
    card = tmp_path / "m.card.yaml"
    card.write_text(yaml.safe_dump(card_dict(classes=classes, positive_classes=classes[1:])))
    result = run_replay(category, model, tmp_path / "run", settings=OFFLINE)
    assert result.n_images == 5 and result.n_scored == 5
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["dataset"]["format"] == "mvtec"
    assert run["dataset"]["metadata_columns"] == []
    samples = pd.read_parquet(tmp_path / "run" / "samples.parquet")
    # ground truth kept for pixel metrics
    masks = pd.read_parquet(tmp_path / "run" / "masks.parquet")
    assert (masks["status"] == "ok").sum() == 3 and "mask" not in samples.columns
    metrics = run_metrics(tmp_path / "run")["metrics"]
    assert metrics and all("mask" not in m["slice"] for m in metrics)


def test_replay_keeps_the_card_class_check(tmp_path: Path, tiny_model: Path) -> None:
    category = layouts.mvtec_category(tmp_path / "mvtec")
    with pytest.raises(DataError, match="labels not among the model card's classes: broken_large"):
        run_replay(category, tiny_model, tmp_path / "run", settings=OFFLINE)


def test_replay_refuses_data_with_undefined_labels(tmp_path: Path, tiny_model: Path) -> None:
    root = layouts.image_folder(tmp_path / "data")
    with pytest.raises(DataError, match="metadata_unmatched"):
        run_replay(
            root,
            tiny_model,
            tmp_path / "run",
            settings=OFFLINE,
            data_options=LoadOptions(metadata_from_path=r"(?P<line>L\d)"),
        )
