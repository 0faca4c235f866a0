"""Replay and metrics of detection and anomaly models on Dataset objects built here (the
loaders come from the inputs helper): run files in original-image pixels, resume, and metric
values worked out by hand."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from auditkit.audit import run_metrics
from auditkit.data.manifest import Dataset, manifest_digest, sha256_file
from auditkit.models.card import ModelCard
from auditkit.models.onnx_model import DeployedModel
from auditkit.replay.checkpoint import ReplayInterrupted
from auditkit.replay.pipeline import ReplaySettings, replay
from tests.onnx_builders import card, constant_model

SETTINGS = ReplaySettings(batch_size=2, single_stream_samples=2, warmup_batches=1)


def make_dataset(
    root: Path, images: list[dict[str, Any]], boxes: list[tuple[Any, ...]] | None
) -> Dataset:
    """``images``: dicts with sample_id, size (w, h), label, optional mask (2-D 0/255 array),
    optional missing=True."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for im in images:
        rel = f"{im['sample_id']}.png"
        mask_rel = ""
        if not im.get("missing"):
            w, h = im["size"]
            Image.fromarray(np.full((h, w), 128, dtype=np.uint8), "L").save(root / rel)
        if im.get("mask") is not None:
            mask_rel = f"{im['sample_id']}_mask.png"
            Image.fromarray(im["mask"].astype(np.uint8), "L").save(root / mask_rel)
        present = (root / rel).exists()
        rows.append(
            {
                "sample_id": im["sample_id"],
                "part_id": im.get("part_id", im["sample_id"]),
                "path": rel,
                "sha256": sha256_file(root / rel) if present else "",
                "label": im["label"],
                "is_defect": im["label"] != "good",
                "status": "ok" if present else "unreadable",
                "error": "" if present else "file not found",
                "mask": mask_rel,
            }
        )
    samples = pd.DataFrame(rows)
    gt = (
        pd.DataFrame(boxes, columns=["sample_id", "class", "x1", "y1", "x2", "y2"])
        if boxes is not None
        else None
    )
    return Dataset(root, root / "manifest.csv", "test", samples, manifest_digest(samples), gt)


def detector(tmp_path: Path) -> DeployedModel:
    # one anchor: input box (2, 3, 6, 5), class "scratch" .9; a second anchor below threshold
    raw = np.array([[4, 4, 4, 2, 0.9, 0.05], [1, 1, 1, 1, 0.0001, 0.0]], dtype=np.float32).T[None]
    raw = np.concatenate([raw, np.zeros((1, 6, 6), np.float32)], axis=2)  # 8 anchors in all
    c = card(
        "detection",
        ["scratch", "pit"],
        input={"resize_mode": "letterbox"},
        detection={"match_iou": 0.5},
    )
    path = constant_model(tmp_path / "det.onnx", {"output0": raw})
    return DeployedModel.load(path, ModelCard.model_validate(c))


DET_IMAGES = [
    {"sample_id": "a", "size": (16, 8), "label": "scratch"},
    {"sample_id": "b", "size": (16, 8), "label": "scratch"},
    {"sample_id": "c", "size": (16, 8), "label": "good"},
    {"sample_id": "d", "size": (16, 8), "label": "good", "missing": True},
    {"sample_id": "e", "size": (8, 16), "label": "good"},
]
# letterbox 16 x 8 -> 8 x 8: r = .5, top pad 2: input (2, 3, 6, 5) -> (4, 2, 12, 6) original
DET_GT = [("a", "scratch", 4.0, 2.0, 12.0, 6.0), ("b", "scratch", 0.0, 0.0, 2.0, 2.0)]


def test_detection_replay_writes_boxes_in_original_pixels(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", DET_IMAGES, DET_GT)
    replay(data, detector(tmp_path), tmp_path / "run", SETTINGS)
    det = pd.read_parquet(tmp_path / "run/detections.parquet")
    assert list(det.columns) == ["sample_id", "class", "score", "x1", "y1", "x2", "y2"]
    assert det["sample_id"].tolist() == ["a", "b", "c", "e"]
    assert set(det["class"]) == {"scratch"}
    np.testing.assert_allclose(det["score"], 0.9, rtol=1e-6)
    # e is 8 wide, 16 high: r = .5, left pad round(1.9) = 2, top 0: ((2-2)/.5, 3/.5, (6-2)/.5, 5/.5)
    expected = [[4, 2, 12, 6]] * 3 + [[0, 6, 8, 10]]
    np.testing.assert_allclose(det[["x1", "y1", "x2", "y2"]].to_numpy(), expected, atol=1e-5)
    gt = pd.read_parquet(tmp_path / "run/boxes.parquet")
    assert gt.values.tolist() == [list(r) for r in DET_GT]
    pred = pd.read_parquet(tmp_path / "run/predictions.parquet")
    assert pred["is_reject"].all() and (pred["pred_label"] == "scratch").all()
    samples = pd.read_parquet(tmp_path / "run/samples.parquet")
    assert "mask" not in samples.columns
    assert json.loads((tmp_path / "run/run.json").read_text())["model"]["convention"] == (
        "ultralytics_raw"
    )


def test_detection_metrics_by_hand(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", DET_IMAGES, DET_GT)
    model = detector(tmp_path)
    replay(data, model, tmp_path / "run", SETTINGS)
    metrics = run_metrics(tmp_path / "run")["metrics"]
    by = {(m["name"], json.dumps(m["slice"], sort_keys=True)): m for m in metrics}
    # a: matched (caught); b: rejected only for a box elsewhere (escaped); c, e: good, rejected
    esc = by[("detection_escape_rate", "{}")]
    assert (esc["k"], esc["n"], esc["value"]) == (1, 2, 0.5)
    assert esc["interval"]["high"] > 0.5
    over = by[("detection_overkill_rate", "{}")]
    assert (over["k"], over["n"]) == (2, 2)
    miss = by[("box_miss_rate", "{}")]
    assert (miss["k"], miss["n"]) == (1, 2)
    # scratch: 2 ground-truth boxes; 4 detections of equal score in image order a, b, c, e:
    # TP then 3 FP -> precision 1 up to recall .5 -> AP = 51 of 101 recall points
    assert by[("map_50", "{}")]["value"] == pytest.approx(51 / 101)
    assert by[("ap", '{"class": "scratch"}')]["value"] == pytest.approx(51 / 101)
    assert by[("ap", '{"class": "pit"}')]["value"] is None  # no ground truth
    assert by[("model_file_bytes", "{}")]["value"] == (tmp_path / "det.onnx").stat().st_size
    assert by[("model_parameters", "{}")]["value"] > 0


def test_detection_replay_resumes_to_the_same_files(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", DET_IMAGES, DET_GT)
    model = detector(tmp_path)
    settings = replace(SETTINGS, batch_size=1, checkpoint_images=1, scenario="offline")
    replay(data, model, tmp_path / "whole", settings)
    calls = {"n": 0}

    def stop_after_two(done: int, total: int) -> None:
        calls["n"] += 1
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(ReplayInterrupted):
        replay(data, model, tmp_path / "cut", settings, progress=stop_after_two)
    assert (tmp_path / "cut/shards/shard-000000.detections.parquet").exists()
    replay(data, model, tmp_path / "cut", settings, resume=True)
    for name in ("detections.parquet", "boxes.parquet", "predictions.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "whole" / name), pd.read_parquet(tmp_path / "cut" / name)
        )


def anomaly_model(tmp_path: Path) -> DeployedModel:
    amap = np.full((1, 1, 8, 8), 0.1, dtype=np.float32)
    amap[0, 0, 2:6, :] = 0.9
    outs = {"pred_score": np.array([0.8], np.float32), "anomaly_map": amap}
    c = card("anomaly", ["good", "anomalous"], maps={"pixel_threshold": 0.5})
    path = constant_model(tmp_path / "anomaly.onnx", outs)
    return DeployedModel.load(path, ModelCard.model_validate(c))


def test_anomaly_replay_maps_masks_and_pixel_metrics_by_hand(tmp_path: Path) -> None:
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[2:6, :] = 255
    images = [
        {"sample_id": "a", "size": (8, 8), "label": "crack", "mask": mask},
        {"sample_id": "b", "size": (8, 8), "label": "good"},
        {"sample_id": "c", "size": (8, 8), "label": "crack"},  # no mask: not in pixel metrics
    ]
    data = make_dataset(tmp_path / "data", images, None)
    replay(data, anomaly_model(tmp_path), tmp_path / "run", SETTINGS)
    index = pd.read_parquet(tmp_path / "run/maps.parquet")
    assert index["sample_id"].tolist() == ["a", "b", "c"]
    with np.load(tmp_path / "run" / index["file"][0]) as arrays:
        stored = arrays[index["map_key"][0]]
    assert stored.dtype == np.float16 and stored.shape == (8, 8)
    np.testing.assert_allclose(stored[2:6], 0.9, atol=1e-3)
    masks = pd.read_parquet(tmp_path / "run/masks.parquet")
    assert masks["sample_id"].tolist() == ["a"] and masks["status"].tolist() == ["ok"]
    pred = pd.read_parquet(tmp_path / "run/predictions.parquet")
    assert pred["is_reject"].all() and (pred["model_label"] == -1).all()

    by = {m["name"]: m for m in run_metrics(tmp_path / "run")["metrics"]}
    # pixels of a and b: 32 defect pixels at .9; normal: 32 of a at .1, 32 of b at .9, 32 at .1
    # AUROC = (64 lower + 32 tied / 2) / 96
    assert by["pixel_auroc"]["value"] == pytest.approx(80 / 96)
    # predicted masks (map >= .5): a exact (32), b 32 false: IoU 32 / 64, Dice 64 / 96
    assert by["iou"]["value"] == pytest.approx(0.5)
    assert by["dice"]["value"] == pytest.approx(2 / 3)
    assert by["image_auroc"]["value"] == pytest.approx(0.5)  # one score for all: ties
    assert 0 <= by["aupro"]["value"] <= 1


def test_anomaly_replay_resumes_with_the_same_maps(tmp_path: Path) -> None:
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[2:6, :] = 255
    images = [
        {
            "sample_id": f"i{k}",
            "size": (8, 8),
            "label": "crack" if k % 2 else "good",
            "mask": mask if k % 2 else None,
        }
        for k in range(5)
    ]
    data = make_dataset(tmp_path / "data", images, None)
    model = anomaly_model(tmp_path)
    settings = replace(SETTINGS, batch_size=1, checkpoint_images=1, scenario="offline")
    replay(data, model, tmp_path / "whole", settings)

    def stop(done: int, total: int) -> None:
        if done >= 3:
            raise KeyboardInterrupt

    with pytest.raises(ReplayInterrupted):
        replay(data, model, tmp_path / "cut", settings, progress=stop)
    replay(data, model, tmp_path / "cut", settings, resume=True)
    a = pd.read_parquet(tmp_path / "whole/maps.parquet")
    b = pd.read_parquet(tmp_path / "cut/maps.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 5 and not (tmp_path / "cut/shards").exists()
    for file, key in zip(a["file"], a["map_key"], strict=True):
        with np.load(tmp_path / "whole" / file) as x, np.load(tmp_path / "cut" / file) as y:
            np.testing.assert_array_equal(x[key], y[key])


def test_segmentation_defect_map_iou_by_hand(tmp_path: Path) -> None:
    logits = np.full((1, 1, 8, 8), -4.0, dtype=np.float32)
    logits[0, 0, :4, :4] = 4.0  # predicted defect: the top-left 4 x 4
    c = card("segmentation", ["good", "defect"], output={"kind": "logits"})
    model = DeployedModel.load(
        constant_model(tmp_path / "seg.onnx", {"seg": logits}), ModelCard.model_validate(c)
    )
    truth = np.zeros((8, 8), dtype=np.uint8)
    truth[:4, :2] = 255  # true defect: the top-left 4 x 2
    images = [{"sample_id": "a", "size": (8, 8), "label": "pit", "mask": truth}]
    data = make_dataset(tmp_path / "data", images, None)
    replay(data, model, tmp_path / "run", SETTINGS)
    by = {m["name"]: m for m in run_metrics(tmp_path / "run")["metrics"]}
    assert by["iou"]["value"] == pytest.approx(8 / 16)  # I = 8, T = 8, P = 16
    assert by["dice"]["value"] == pytest.approx(16 / 24)
    pred = pd.read_parquet(tmp_path / "run/predictions.parquet")
    assert pred["score"].iloc[0] == pytest.approx(1 / (1 + np.exp(-4.0)), rel=1e-6)
    assert bool(pred["is_reject"].iloc[0]) and pred["pred_label"].iloc[0] == "defect"


def test_single_stream_replay_gives_the_offline_detections(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", DET_IMAGES, DET_GT)
    model = detector(tmp_path)
    replay(data, model, tmp_path / "offline", replace(SETTINGS, scenario="offline"))
    replay(data, model, tmp_path / "single", replace(SETTINGS, scenario="single-stream"))
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "offline/detections.parquet"),
        pd.read_parquet(tmp_path / "single/detections.parquet"),
    )


def test_report_shows_the_detection_metrics(tmp_path: Path) -> None:
    from auditkit.audit import run_evaluate
    from auditkit.report.render import render_html

    data = make_dataset(tmp_path / "data", DET_IMAGES, DET_GT)
    replay(data, detector(tmp_path), tmp_path / "run", SETTINGS)
    run_evaluate(tmp_path / "run", "industrial-aoi-detection")  # a detector's own rubric
    html = render_html(tmp_path / "run", signatory="tests", development_key=True)
    assert "Detection, anomaly and segmentation metrics" in html
    assert "mAP@.50" in html and f"{51 / 101:.4g}" in html
    assert "50.00 %" in html and "1/2" in html  # detection escape rate, by hand above


def test_segmentation_classes_iou_and_dice_per_class_by_hand(tmp_path: Path) -> None:
    logits = np.zeros((1, 3, 8, 8), dtype=np.float32)
    logits[0, 1, :4, :4] = 5.0  # class a predicted at the top-left 4 x 4
    logits[0, 2, 4:, 4:] = 5.0  # class b predicted at the bottom-right 4 x 4
    c = card("segmentation", ["good", "a", "b"], output={"kind": "logits"})
    model = DeployedModel.load(
        constant_model(tmp_path / "seg.onnx", {"seg": logits}), ModelCard.model_validate(c)
    )
    mask_a = np.zeros((8, 8), dtype=np.uint8)
    mask_a[:4, :2] = 255  # 8 true pixels of a
    mask_b = np.zeros((8, 8), dtype=np.uint8)
    mask_b[4:, 4:] = 255  # 16 true pixels of b
    images = [
        {"sample_id": "i1", "size": (8, 8), "label": "a", "mask": mask_a},
        {"sample_id": "i2", "size": (8, 8), "label": "b", "mask": mask_b},
    ]
    replay(make_dataset(tmp_path / "data", images, None), model, tmp_path / "run", SETTINGS)
    by = {
        (m["name"], m["slice"].get("class")): m["value"]
        for m in run_metrics(tmp_path / "run")["metrics"]
        if m["name"] in ("iou", "dice")
    }
    # a: I = 8, T = 8, P = 16 + 16 (both images) -> IoU 8 / 32, Dice 16 / 40
    assert by[("iou", "a")] == pytest.approx(0.25) and by[("dice", "a")] == pytest.approx(0.4)
    # b: I = 16, T = 16, P = 32 -> IoU 16 / 32, Dice 32 / 48
    assert by[("iou", "b")] == pytest.approx(0.5) and by[("dice", "b")] == pytest.approx(2 / 3)
    # defect (a or b): I = 8 + 16, T = 24, P = 64
    assert by[("iou", "defect")] == pytest.approx(24 / 64)
    assert by[("dice", "defect")] == pytest.approx(48 / 88)


def test_a_model_with_a_static_batch_of_one_is_replayed_one_image_at_a_time(
    tmp_path: Path,
) -> None:
    raw = _static_batch_raw()
    c = card("detection", ["scratch", "pit"], input={"resize_mode": "letterbox"})
    path = constant_model(tmp_path / "b1.onnx", {"output0": raw}, input_shape=(1, 1, 8, 8))
    model = DeployedModel.load(path, ModelCard.model_validate(c))
    assert model.fixed_batch == 1
    data = make_dataset(tmp_path / "data", DET_IMAGES, DET_GT)
    result = replay(data, model, tmp_path / "run", replace(SETTINGS, batch_size=4))
    assert result.n_error == 0 and result.n_scored == 4
    run = json.loads((tmp_path / "run/run.json").read_text())
    assert run["replay"]["batch_size"] == 1


def _static_batch_raw() -> np.ndarray:
    raw = np.array([[4, 4, 4, 2, 0.9, 0.05]], dtype=np.float32).T[None]
    return np.concatenate([raw, np.zeros((1, 6, 7), np.float32)], axis=2)
