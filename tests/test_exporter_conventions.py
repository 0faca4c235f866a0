"""The exporters factories use: for each convention an ONNX model built here with the output
names and shapes its exporter writes, run by onnxruntime and decoded by auditkit, against a
NumPy reference decode written from the exporter's own post-processing (docs/model-conventions.md).

The references below are independent of auditkit's adapters: per-class greedy NMS written as
PaddleDetection's ``hard_nms`` loop, Ultralytics' ``scale_boxes`` letterbox inverse, the
PP-PicoDet post-process of PaddleDetection's deploy demo, and plain NumPy forward passes.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from auditkit.audit import run_metrics
from auditkit.errors import ModelError
from auditkit.models.card import ModelCard
from auditkit.models.inspect import inspect_model
from auditkit.models.onnx_model import DeployedModel
from auditkit.replay.pipeline import replay
from tests.onnx_builders import (
    card,
    constant_model,
    paddle_classifier,
    paddle_nms_model,
    paddle_nms_per_image,
)
from tests.test_cli import run_cli
from tests.test_replay_tasks import DET_GT, DET_IMAGES, SETTINGS, make_dataset

RNG_SEED = 20261204


def load(path: Path, card_dict: dict[str, Any]) -> DeployedModel:
    return DeployedModel.load(path, ModelCard.model_validate(card_dict))


def zeros(n: int, c: int, h: int, w: int) -> np.ndarray:
    return np.zeros((n, c, h, w), dtype=np.float32)


# --------------------------------------------------------------------------- NumPy references


def ref_iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def ref_class_nms(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float, top: int
) -> np.ndarray:
    """Rows ``x1 y1 x2 y2 score class``: per class, highest score first, a box kept unless its
    IoU with a kept box of its class is above ``iou`` (PaddleDetection's ``hard_nms``); then
    all classes by score, the ``top`` best."""
    rows = []
    for c in np.unique(classes):
        idx = [int(i) for i in np.flatnonzero(classes == c)]
        idx.sort(key=lambda i: -scores[i])
        kept: list[int] = []
        for i in idx:
            if all(ref_iou(boxes[i], boxes[j]) <= iou for j in kept):
                kept.append(i)
        rows += [[*boxes[i], scores[i], c] for i in kept]
    rows.sort(key=lambda r: -r[4])
    return np.array(rows[:top], dtype=np.float64).reshape(-1, 6)


def ref_letterbox_back(boxes: np.ndarray, w0: int, h0: int, w: int, h: int) -> np.ndarray:
    """Ultralytics ``scale_boxes``: undo the letterbox pad and gain, clip to the image."""
    gain = min(h / h0, w / w0)
    pad_x, pad_y = round((w - w0 * gain) / 2 - 0.1), round((h - h0 * gain) / 2 - 0.1)
    out = boxes.copy()
    out[:, [0, 2]] = ((out[:, [0, 2]] - pad_x) / gain).clip(0, w0)
    out[:, [1, 3]] = ((out[:, [1, 3]] - pad_y) / gain).clip(0, h0)
    return out


def assert_same_boxes(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


# --------------------------------------------------------------------------- Paddle2ONNX classifier


def _paddle_weights(seed: int = RNG_SEED) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "conv_w": rng.normal(size=(8, 3, 3, 3)).astype(np.float32),
        "conv_b": rng.normal(size=8).astype(np.float32),
        "fc_w": rng.normal(size=(8, 4)).astype(np.float32),
        "fc_b": rng.normal(size=4).astype(np.float32),
    }


def _numpy_forward(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """The Paddle classifier's forward pass in NumPy: 3x3 conv (pad 1), ReLU, mean, FC,
    softmax."""
    n, _, h, wd = x.shape
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, 8, h, wd))
    for dy in range(3):
        for dx in range(3):
            patch = padded[:, :, dy : dy + h, dx : dx + wd]  # (n, 3, h, w)
            out += np.einsum("nchw,oc->nohw", patch, w["conv_w"][:, :, dy, dx])
    out += w["conv_b"][None, :, None, None]
    pooled = np.maximum(out, 0).mean(axis=(2, 3))
    logits = pooled @ w["fc_w"] + w["fc_b"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return probs


@pytest.mark.parametrize("dynamic", ["symbolic", "minus_one"])
def test_paddle_constant_weights_are_counted_and_flops_use_the_input_size(
    tmp_path: Path, dynamic: str
) -> None:
    weights = _paddle_weights()
    path = paddle_classifier(tmp_path / "cls.onnx", weights, dynamic=dynamic)
    report = inspect_model(path)
    true_count = sum(v.size for v in weights.values())  # 216 + 8 + 32 + 4 = 260
    assert report["parameters"] == true_count == 260
    # the int64 Reshape target, the Resize scales and the 0-d scale (Constants too) are graph
    # structure, not weights
    assert report["parameters_by_source"] == {"initializers": 0, "constant_nodes": 260}
    # without a size the Conv cannot be counted; the MatMul after the global pool can
    assert report["flops_uncounted_by_op"] == {"Conv": 1}
    assert report["flops_by_op"]["MatMul"] == 2 * 8 * 4
    # at 16 x 16: Conv MACs = 8 x 16 x 16 outputs x 3 x 3 x 3; MatMul 4 x 8
    sized = inspect_model(path, input_size=(16, 24))
    assert sized["flops_by_op"]["Conv"] == 2 * 8 * 16 * 24 * 27
    assert sized["flops_per_image"] == 2 * (8 * 16 * 24 * 27 + 32)
    assert sized["flops_uncounted"] == [] and sized["flops_input_size"] == [16, 24]
    c = ModelCard.model_validate(
        card(
            "classification",
            ["good", "a", "b", "c"],
            size=16,
            input={"name": "x", "color": "RGB"},
            output={"name": "softmax_0.tmp_0"},
        )
    )
    assert inspect_model(path, c)["flops_by_op"]["Conv"] == 2 * 8 * 16 * 16 * 27


def test_paddle_classifier_runs_to_the_numpy_forward_pass(tmp_path: Path) -> None:
    weights = _paddle_weights()
    path = paddle_classifier(tmp_path / "cls.onnx", weights)
    c = card(
        "classification",
        ["good", "a", "b", "c"],
        size=16,
        input={"name": "x", "color": "RGB"},
        output={"name": "softmax_0.tmp_0"},
    )
    model = load(path, c)
    x = np.random.default_rng(1).uniform(size=(3, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x), _numpy_forward(x, weights), rtol=1e-4)


def test_cli_summarises_uncounted_ops_and_takes_input_size(tmp_path: Path) -> None:
    path = paddle_classifier(tmp_path / "cls.onnx", _paddle_weights(), dynamic="minus_one")
    result = run_cli("model", "inspect", str(path))
    assert result.returncode == 0, result.stderr
    assert "parameters: 260 (weights stored as initializers 0 and in Constant nodes 260;" in (
        result.stdout
    )
    uncounted = [x for x in result.stdout.splitlines() if x.startswith("  not counted")]
    assert uncounted == [
        "  not counted (shapes unknown): 1 node(s): Conv x 1; the input size is dynamic: "
        "give --input-size HxW or a card"
    ]
    result = run_cli("model", "inspect", str(path), "--input-size", "16x24", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["flops_per_image"] == 2 * (8 * 16 * 24 * 27 + 32)
    bad = run_cli("model", "inspect", str(path), "--input-size", "16")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "Invalid value for --input-size: input size must be HxW in pixels" in bad.stderr


# --------------------------------------------------------------------------- PaddleDetection + NMS

PPDET_CLASSES = ["scratch", "pit", "crack"]


def _ppdet_card(**extra: Any) -> dict[str, Any]:
    c = card("detection", PPDET_CLASSES, input={"name": "image", "color": "RGB"}, **extra)
    c["input"].update(height=64, width=96)
    return c


def test_paddledetection_multiclass_nms3_boxes_and_counts(tmp_path: Path) -> None:
    # rows class score x1 y1 x2 y2 (input pixels of a 96 wide, 64 high input)
    rows = np.array(
        [
            [0, 0.90, 10, 5, 40, 30],  # image 0
            [2, 0.60, 50, 20, 120, 70],  # image 0: beyond the input -> clipped to 96 x 64
            [1, 0.75, 0, 0, 8, 8],  # image 0
            [-1, 0.0, 0, 0, 0, 0],  # image 1: Paddle's placeholder row, no box
            [1, 0.0005, 3, 3, 9, 9],  # image 2: below score_threshold 0.001
            [0, 0.40, 20, 10, 30, 20],  # image 2
        ],
        dtype=np.float32,
    )
    image_of_row = np.array([0, 0, 0, 1, 2, 2])
    counts = np.array([3, 1, 2])
    path = paddle_nms_model(tmp_path / "ppdet.onnx", rows, image_of_row, counts)
    model = load(path, _ppdet_card())
    assert model.convention == "paddle_nms"  # from the graph's shapes
    sizes = [(192, 128), (96, 64), (48, 32)]  # originals: x2, x1, x0.5 of the input
    decoded = model.run(zeros(3, 3, 64, 96), sizes)
    assert decoded.errors == ["", "", ""]
    for i, (w0, h0) in enumerate(sizes):
        mine = rows[(image_of_row == i) & (rows[:, 0] >= 0) & (rows[:, 1] > 0.001)]
        boxes = mine[:, 2:6].astype(np.float64)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, 96) * w0 / 96
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, 64) * h0 / 64
        want = np.column_stack([boxes, mine[:, 1], mine[:, 0]])
        want = want[np.argsort(-want[:, 4], kind="stable")]
        assert_same_boxes(decoded.detections[i], want)
    # image 0: the clipped box is (50, 20, 96, 64) in input pixels -> (100, 40, 192, 128)
    np.testing.assert_allclose(decoded.detections[0][2, :4], [100, 40, 192, 128], rtol=1e-6)
    np.testing.assert_allclose(decoded.scores[0], [0.90, 0.75, 0.60], rtol=1e-6)
    assert decoded.detections[1].shape == (0, 6)
    report = inspect_model(path)
    assert report["convention"] == {"name": "paddle_nms", "task": "detection", "from": "graph"}


def test_paddle_counts_that_do_not_add_up_are_error_rows(tmp_path: Path) -> None:
    rows = np.array([[0, 0.9, 1, 1, 5, 5]], dtype=np.float32)
    path = paddle_nms_model(tmp_path / "bad.onnx", rows, np.array([0]), np.array([1, 1]))
    decoded = load(path, _ppdet_card()).run(zeros(2, 3, 64, 96))
    assert (
        decoded.errors
        == ["model output counts [1, 1] do not add up to the 1 rows of 'multiclass_nms3_0.tmp_0'"]
        * 2
    )


def test_an_input_auditkit_cannot_feed_is_refused_at_load(tmp_path: Path) -> None:
    import onnx

    path = paddle_nms_model(
        tmp_path / "m.onnx", np.zeros((1, 6), np.float32), np.array([0]), np.array([1])
    )
    model = onnx.load(path)
    model.graph.input.append(onnx.helper.make_tensor_value_info("mask", 1, [-1, 4]))
    onnx.save(model, path)
    with pytest.raises(ModelError, match=r"model input\(s\) mask of m\.onnx are not the card's"):
        load(path, _ppdet_card())


# ------------------------------------------------------------------ PP-PicoDet / GFL, no NMS


def ref_picodet(
    scores: list[np.ndarray],
    dists: list[np.ndarray],
    strides: list[int],
    input_hw: tuple[int, int],
    score_threshold: float,
    iou: float,
    top: int,
    nms_top_k: int = 1000,
) -> np.ndarray:
    """PaddleDetection's ``PicoDetPostProcess`` (deploy demo), one image: anchor centres,
    softmax expectation of each side's distribution, each level's ``nms_top_k`` best anchors,
    per-class thresholding and hard NMS."""
    boxes_all, scores_all = [], []
    for stride, dist, score in zip(strides, dists, scores, strict=True):
        topk_idx = np.argsort(score.max(axis=1))[::-1][:nms_top_k]  # the demo's nms_top_k
        fm_h, fm_w = input_hw[0] / stride, input_hw[1] / stride
        ww, hh = np.meshgrid(np.arange(fm_w), np.arange(fm_h))
        ct_row, ct_col = (hh.flatten() + 0.5) * stride, (ww.flatten() + 0.5) * stride
        center = np.stack((ct_col, ct_row, ct_col, ct_row), axis=1)
        reg_max = dist.shape[-1] // 4 - 1
        d = dist.reshape((-1, reg_max + 1)).astype(np.float64)
        e = np.exp(d - d.max(axis=1, keepdims=True))
        d = (e / e.sum(axis=1, keepdims=True) * np.arange(reg_max + 1)).sum(axis=1)
        distance = d.reshape((-1, 4)) * stride
        boxes_all.append((center + np.array([-1, -1, 1, 1]) * distance)[topk_idx])
        scores_all.append(score.astype(np.float64)[topk_idx])
    bboxes, conf = np.concatenate(boxes_all), np.concatenate(scores_all)
    anchor, cls = np.nonzero(conf > score_threshold)
    return ref_class_nms(bboxes[anchor], conf[anchor, cls], cls, iou, top)


def test_picodet_head_without_nms_decodes_as_paddle(tmp_path: Path) -> None:
    rng = np.random.default_rng(RNG_SEED)
    size, nc, reg_max, strides = 96, 3, 7, [8, 16, 32, 64]
    anchors = [math.ceil(size / s) ** 2 for s in strides]  # 144, 36, 9, 4 (96/64 -> 2 x 2)
    scores = [rng.uniform(0, 0.3, size=(a, nc)).astype(np.float32) for a in anchors]
    for s in scores:  # a few confident anchors per level, some in two classes
        hot = rng.choice(len(s), size=min(6, len(s)), replace=False)
        s[hot, rng.integers(0, nc, size=len(hot))] = rng.uniform(0.5, 0.95, size=len(hot))
    dists = [rng.normal(size=(a, 4 * (reg_max + 1))).astype(np.float32) * 2 for a in anchors]
    # the names Paddle2ONNX gives the eight head outputs; scores first, then distributions
    outputs = {f"transpose_{2 * k}.tmp_0": s[None] for k, s in enumerate(scores)}
    outputs |= {f"transpose_{2 * k + 1}.tmp_0": d[None] for k, d in enumerate(dists)}
    shapes = {name: list(v.shape) for name, v in outputs.items()}  # batch 1, static
    path = constant_model(
        tmp_path / "picodet.onnx",
        outputs,
        input_name="image",
        input_shape=(1, 3, size, size),
        output_shapes=shapes,
    )
    c = card(
        "detection",
        ["scratch", "pit", "crack"],
        size=size,
        input={"name": "image", "color": "RGB"},
        detection={"score_threshold": 0.25, "nms_iou": 0.5, "max_detections": 100},
    )
    model = load(path, c)
    assert model.convention == "gfl_raw" and model.fixed_batch == 1
    decoded = model.run(zeros(1, 3, size, size))
    want = ref_picodet(scores, dists, strides, (size, size), 0.25, 0.5, 100)
    assert len(want) >= 10  # the case exercises NMS across levels and classes
    assert_same_boxes(decoded.detections[0], want)
    # the same head exported with each level's scores and distributions in turn
    names = list(outputs)
    pairs = [n for pair in zip(names[:4], names[4:], strict=True) for n in pair]
    interleaved = constant_model(
        tmp_path / "interleaved.onnx",
        {n: outputs[n] for n in pairs},
        input_name="image",
        input_shape=(1, 3, size, size),
        output_shapes=shapes,
    )
    assert_same_boxes(load(interleaved, c).run(zeros(1, 3, size, size)).detections[0], want)
    # declared strides are checked against each level's anchor count
    bad = {**c, "detection": {**c["detection"], "strides": [8, 16, 32, 32]}}
    with pytest.raises(ModelError, match="head level 3 has 4 anchors, but stride 32"):
        load(path, bad)


def test_picodet_keeps_each_levels_1000_best_anchors_before_nms(tmp_path: Path) -> None:
    rng = np.random.default_rng(RNG_SEED + 1)
    size, strides = 264, [8, 16, 32, 64]
    anchors = [math.ceil(size / s) ** 2 for s in strides]  # 1089, 289, 81, 25
    scores = [np.zeros((a, 1), dtype=np.float32) for a in anchors]
    order = rng.permutation(anchors[0])  # 1000 confident anchors, 89 less so: cut by top-k
    scores[0][order[:1000], 0] = rng.uniform(0.85, 0.95, size=1000)
    scores[0][order[1000:], 0] = rng.uniform(0.4, 0.6, size=89)
    dists = [rng.normal(size=(a, 32)).astype(np.float32) * 3 for a in anchors]
    outputs = {f"transpose_{2 * k}.tmp_0": s[None] for k, s in enumerate(scores)}
    outputs |= {f"transpose_{2 * k + 1}.tmp_0": d[None] for k, d in enumerate(dists)}
    path = constant_model(
        tmp_path / "picodet.onnx",
        outputs,
        input_name="image",
        input_shape=(1, 3, size, size),
        output_shapes={name: list(v.shape) for name, v in outputs.items()},
    )
    c = card(
        "detection",
        ["defect"],
        size=size,
        input={"name": "image", "color": "RGB"},
        detection={"score_threshold": 0.25, "nms_iou": 0.5, "max_detections": 3000},
    )
    decoded = load(path, c).run(zeros(1, 3, size, size))
    want = ref_picodet(scores, dists, strides, (size, size), 0.25, 0.5, 3000)
    assert_same_boxes(decoded.detections[0], want)
    # without the cut some of the 89 would be detections: the case tests the cut
    uncut = ref_picodet(scores, dists, strides, (size, size), 0.25, 0.5, 3000, nms_top_k=2000)
    assert (uncut[:, 4] < 0.7).any() and not (want[:, 4] < 0.7).any()


# --------------------------------------------------------------------------- PaddleSeg


def test_paddleseg_label_map_and_probability_map(tmp_path: Path) -> None:
    rng = np.random.default_rng(RNG_SEED)
    labels = rng.integers(0, 3, size=(1, 8, 8)).astype(np.int32)
    labels[0, :, :] = np.where(labels[0] == 2, 0, labels[0])  # no "pit" pixel anywhere
    c = card("segmentation", ["good", "scratch", "pit"])
    path = constant_model(
        tmp_path / "seg.onnx", {"argmax_0.tmp_0": labels}, input_name="x", input_shape=(-1, 1, 8, 8)
    )
    model = load(path, {**c, "input": {**c["input"], "name": "x"}})
    assert model.convention == "segmentation_labels"  # an integer (batch, H, W) output
    decoded = model.run(zeros(1, 1, 8, 8), [(16, 16)])
    want = np.repeat(np.repeat(labels[0], 2, axis=0), 2, axis=1)  # nearest, x2
    np.testing.assert_array_equal(decoded.label_maps[0], want)
    np.testing.assert_array_equal(decoded.maps[0] > 0.5, np.isin(want, [1, 2]))
    np.testing.assert_array_equal(decoded.scores, [[1.0, 1.0, 0.0]])  # pit never predicted
    labels[0, 0, 0] = 7
    path = constant_model(tmp_path / "bad.onnx", {"argmax_0.tmp_0": labels})
    assert load(path, c).run(zeros(1, 1, 8, 8)).errors == [
        "model output has class index 7, not one of the card's 3 classes (0..2)"
    ]

    probs = rng.dirichlet(np.ones(3), size=(8, 8)).transpose(2, 0, 1)[None].astype(np.float32)
    path = constant_model(tmp_path / "soft.onnx", {"softmax_0.tmp_0": probs})
    model = load(path, c)
    assert model.convention == "segmentation_classes"
    decoded = model.run(zeros(1, 1, 8, 8), [(8, 8)])
    np.testing.assert_allclose(decoded.maps[0], probs[0, 1] + probs[0, 2], rtol=1e-5)
    np.testing.assert_array_equal(decoded.label_maps[0], probs[0].argmax(axis=0))


# --------------------------------------------------------------------------- Ultralytics

YOLO_CLASSES = ["scratch", "pit", "crack"]
YOLO_META = {"names": "{0: 'scratch', 1: 'pit', 2: 'crack'}", "imgsz": "[640, 640]"}


def _yolo_card(**extra: Any) -> dict[str, Any]:
    return card(
        "detection",
        YOLO_CLASSES,
        size=640,
        input={"color": "RGB", "resize_mode": "letterbox"},
        **extra,
    )


def test_yolov8_to_v11_raw_output(tmp_path: Path) -> None:
    rng = np.random.default_rng(RNG_SEED)
    n = 8400  # 80^2 + 40^2 + 20^2 anchors at 640
    raw = np.zeros((1, 7, n), dtype=np.float32)
    raw[0, 0:2] = rng.uniform(50, 590, size=(2, n))
    raw[0, 2:4] = rng.uniform(20, 120, size=(2, n))
    raw[0, 4:] = rng.uniform(0, 0.0009, size=(3, n))
    hot = rng.choice(n, size=40, replace=False)
    raw[0, 4 + rng.integers(0, 3, size=40), hot] = rng.uniform(0.2, 0.95, size=40)
    raw[0, 0:4, hot[:10]] = raw[0, 0:4, hot[10:20]] + 3  # near-duplicates for NMS
    path = constant_model(
        tmp_path / "yolo.onnx",
        {"output0": raw},
        input_shape=(1, 3, 640, 640),
        metadata=YOLO_META,
        output_shapes={"output0": [1, 7, n]},
    )
    model = load(path, _yolo_card())
    assert model.convention == "ultralytics_raw"
    decoded = model.run(zeros(1, 3, 640, 640), [(1280, 720)])
    pred = raw[0].astype(np.float64)
    score, cls = pred[4:].max(axis=0), pred[4:].argmax(axis=0)
    keep = score > 0.001
    cx, cy, w, h = pred[:4, keep]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    want = ref_class_nms(boxes, score[keep], cls[keep], 0.45, 300)
    want[:, :4] = ref_letterbox_back(want[:, :4], 1280, 720, 640, 640)
    assert len(want) >= 25
    assert_same_boxes(decoded.detections[0], want)


def test_yolov10_end_to_end_nms_free_output(tmp_path: Path) -> None:
    rows = np.zeros((1, 300, 6), dtype=np.float32)  # x1 y1 x2 y2 score class, zero padded
    rows[0, :4] = [
        [100, 200, 180, 260, 0.91, 2],
        [300, 300, 420, 380, 0.55, 0],
        [10, 150, 40, 500, 0.30, 1],
        [0, 0, 5, 5, 0.0004, 1],
    ]
    path = constant_model(
        tmp_path / "v10.onnx",
        {"output0": rows},
        input_shape=(1, 3, 640, 640),
        metadata=YOLO_META,
        output_shapes={"output0": [1, 300, 6]},
    )
    model = load(path, _yolo_card())
    assert model.convention == "nms_included"
    decoded = model.run(zeros(1, 3, 640, 640), [(640, 480)])
    want = rows[0, :3].astype(np.float64)
    want[:, :4] = ref_letterbox_back(want[:, :4], 640, 480, 640, 640)
    assert_same_boxes(decoded.detections[0], want)


def test_rtdetr_normalised_cxcywh_queries(tmp_path: Path) -> None:
    rng = np.random.default_rng(RNG_SEED)
    out = np.zeros((1, 300, 7), dtype=np.float32)
    out[0, :, 0:2] = rng.uniform(0.2, 0.8, size=(300, 2))
    out[0, :, 2:4] = rng.uniform(0.05, 0.3, size=(300, 2))
    out[0, :, 4:] = rng.uniform(0, 0.0009, size=(300, 3))
    out[0, :12, 4 + rng.integers(0, 3, size=12)] = rng.uniform(0.3, 0.9, size=12)
    path = constant_model(
        tmp_path / "rtdetr.onnx",
        {"output0": out},
        input_shape=(1, 3, 640, 640),
        output_shapes={"output0": [1, 300, 7]},
    )
    c = card("detection", YOLO_CLASSES, size=640, input={"color": "RGB"})  # plain resize
    model = load(path, c)
    assert model.convention == "rtdetr"
    decoded = model.run(zeros(1, 3, 640, 640), [(1000, 750)])
    # Ultralytics RTDETRPredictor.postprocess: xywh -> xyxy, best class, > conf, x orig size
    pred = out[0].astype(np.float64)
    bbox = np.column_stack(
        [
            pred[:, 0] - pred[:, 2] / 2,
            pred[:, 1] - pred[:, 3] / 2,
            pred[:, 0] + pred[:, 2] / 2,
            pred[:, 1] + pred[:, 3] / 2,
        ]
    )
    score, cls = pred[:, 4:].max(axis=1), pred[:, 4:].argmax(axis=1)
    want = np.column_stack([bbox * [1000, 750, 1000, 750], score, cls])[score > 0.001]
    want[:, [0, 2]] = want[:, [0, 2]].clip(0, 1000)
    want[:, [1, 3]] = want[:, [1, 3]].clip(0, 750)
    want = want[np.argsort(-want[:, 4], kind="stable")]
    assert len(want) >= 10
    assert_same_boxes(decoded.detections[0], want)


def test_two_classes_make_k_by_6_ambiguous_and_the_card_settles_it(tmp_path: Path) -> None:
    rows = np.zeros((1, 300, 6), dtype=np.float32)
    path = constant_model(
        tmp_path / "m.onnx",
        {"output0": rows},
        input_shape=(1, 3, 64, 64),
        output_shapes={"output0": [1, 300, 6]},
    )
    c = card("detection", ["scratch", "pit"], size=64, input={"color": "RGB"})
    with pytest.raises(ModelError, match=r"reads as nms_included or rtdetr; set output"):
        load(path, c)
    settled = card(
        "detection",
        ["scratch", "pit"],
        size=64,
        input={"color": "RGB"},
        output={"convention": "rtdetr"},
    )
    assert load(path, settled).convention == "rtdetr"


# --------------------------------------------------------------------------- torchvision, MMDeploy


def test_torchvision_boxes_scores_labels_with_background_label_zero(tmp_path: Path) -> None:
    outs = {
        "boxes": np.array([[10, 20, 50, 60], [30, 5, 64, 40], [0, 0, 4, 4]], dtype=np.float32),
        "scores": np.array([0.8, 0.95, 0.02], dtype=np.float32),
        "labels": np.array([2, 1, 3], dtype=np.int64),  # 0 is the background
    }
    path = constant_model(tmp_path / "tv.onnx", outs, input_shape=("N", 3, 64, 64))
    c = card("detection", YOLO_CLASSES, size=64, input={"color": "RGB"})
    model = load(path, c)
    assert model.convention == "torchvision"
    assert model.fixed_batch == 1  # the export decodes only the first image of a batch
    decoded = model.run(zeros(1, 3, 64, 64), [(128, 32)])
    b = outs["boxes"].astype(np.float64) * [2, 0.5, 2, 0.5]
    want = np.column_stack([b, outs["scores"], outs["labels"] - 1])
    want = want[np.argsort(-want[:, 4], kind="stable")]
    assert_same_boxes(decoded.detections[0], want)
    np.testing.assert_allclose(decoded.scores[0], [0.95, 0.8, 0.02], rtol=1e-6)


def test_torchvision_export_of_one_image_without_a_batch_axis(tmp_path: Path) -> None:

    outs = {
        "boxes": np.array([[2, 3, 6, 5]], dtype=np.float32),
        "scores": np.array([0.9], dtype=np.float32),
        "labels": np.array([1], dtype=np.int64),
    }
    # torch.onnx.export(model, ([image],), ...) with an image (3, H, W): the input has rank 3
    path = constant_model(tmp_path / "tv3.onnx", outs, input_shape=(1, "H", "W"))
    model = load(path, card("detection", ["scratch", "pit"]))
    assert model.fixed_batch == 1 and model.convention == "torchvision"
    decoded = model.run(zeros(1, 1, 8, 8), [(16, 8)])
    assert_same_boxes(decoded.detections[0], np.array([[4.0, 3, 12, 5, 0.9, 0]]))
    data = make_dataset(tmp_path / "data", DET_IMAGES, DET_GT)
    result = replay(data, model, tmp_path / "run", SETTINGS)
    assert result.n_error == 0 and result.n_scored == 4
    assert inspect_model(path, ModelCard.model_validate(card("detection", ["a", "b"])))[
        "flops_input_size"
    ] == [8, 8]
    with pytest.raises(ModelError, match=r"has shape \[1, 'H', 4\], .* \(axis 2: 4 != 8\)"):
        load(
            constant_model(tmp_path / "w.onnx", outs, input_shape=(1, "H", 4)),
            card("detection", ["scratch", "pit"]),
        )


def test_mmdeploy_end2end_dets_and_labels(tmp_path: Path) -> None:
    dets = np.array(
        [[[5, 5, 30, 30, 0.7], [40, 10, 60, 50, 0.9], [0, 0, 0, 0, 0.0]]], dtype=np.float32
    )
    labels = np.array([[1, 0, 0]], dtype=np.int64)
    path = constant_model(
        tmp_path / "end2end.onnx",
        {"dets": dets, "labels": labels},
        input_name="input",
        input_shape=("batch", 3, 64, 64),
        output_shapes={"dets": ["batch", "num_dets", 5], "labels": ["batch", "num_dets"]},
    )
    c = card("detection", YOLO_CLASSES, size=64, input={"name": "input", "color": "RGB"})
    model = load(path, c)
    assert model.convention == "mmdeploy_end2end"
    decoded = model.run(zeros(2, 3, 64, 64), [(64, 64), (32, 32)])
    for i, scale in enumerate([1.0, 0.5]):
        want = np.column_stack([dets[0, :2, :4] * scale, dets[0, :2, 4], labels[0, :2]])
        want = want[np.argsort(-want[:, 4], kind="stable")].astype(np.float64)
        assert_same_boxes(decoded.detections[i], want)


# --------------------------------------------------------------------------- anomalib


def test_anomalib_export_outputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(RNG_SEED)
    amap = rng.uniform(size=(1, 1, 8, 8)).astype(np.float32)
    outs = {  # anomalib's ONNX export, in its order
        "pred_score": np.array([0.64], dtype=np.float32),
        "pred_label": np.array([True]),
        "anomaly_map": amap,
        "pred_mask": amap > 0.5,
    }
    path = constant_model(tmp_path / "anomalib.onnx", outs, input_name="input")
    c = card("anomaly", ["good", "anomalous"], input={"name": "input"})
    model = load(path, c)
    assert model.convention == "anomalib"
    decoded = model.run(zeros(2, 1, 8, 8), [(8, 8), (8, 8)])
    np.testing.assert_allclose(decoded.scores, [[0.64, 1.0]] * 2, rtol=1e-6)
    np.testing.assert_allclose(decoded.maps[1], amap[0, 0], rtol=1e-6)
    np.testing.assert_array_equal(decoded.label_maps[0], (amap[0, 0] > 0.5).astype(np.uint8))


# --------------------------------------------------------------------------- through the replay


def test_paddledetection_replay_feeds_im_shape_and_any_batch(tmp_path: Path) -> None:

    # one box per image, (2, 3, 6, 9) in the 8 x 8 input: y2 = 9 is clipped to im_shape's 8
    path = paddle_nms_per_image(tmp_path / "ppdet.onnx", np.array([[0, 0.9, 2, 3, 6, 9]]))
    c = card("detection", ["scratch", "pit"], input={"name": "image"})
    model = load(path, c)
    assert model.fixed_batch is None  # any batch: the counts split the rows
    data = make_dataset(tmp_path / "data", DET_IMAGES, DET_GT)
    result = replay(data, model, tmp_path / "run", SETTINGS)  # batches of 2
    assert result.n_error == 0 and result.n_scored == 4

    det = pd.read_parquet(tmp_path / "run/detections.parquet")
    assert det["sample_id"].tolist() == ["a", "b", "c", "e"]
    # stretch: 16 x 8 images x * 2, y * 1; the 8 x 16 image x * 1, y * 2
    want = [[4, 3, 12, 8]] * 3 + [[2, 6, 6, 16]]
    np.testing.assert_allclose(det[["x1", "y1", "x2", "y2"]].to_numpy(), want, atol=1e-5)
    run = json.loads((tmp_path / "run/run.json").read_text())
    assert run["model"]["convention"] == "paddle_nms"


def test_torchvision_model_is_replayed_one_image_per_call(tmp_path: Path) -> None:

    outs = {
        "boxes": np.array([[2, 3, 6, 5]], dtype=np.float32),
        "scores": np.array([0.9], dtype=np.float32),
        "labels": np.array([1], dtype=np.int64),
    }
    path = constant_model(tmp_path / "tv.onnx", outs)  # input batch "N": dynamic
    model = load(path, card("detection", ["scratch", "pit"]))
    data = make_dataset(tmp_path / "data", DET_IMAGES, DET_GT)
    result = replay(data, model, tmp_path / "run", replace(SETTINGS, batch_size=4))
    assert result.n_error == 0 and result.n_scored == 4
    run = json.loads((tmp_path / "run/run.json").read_text())
    assert run["replay"]["batch_size"] == 1 and run["model"]["convention"] == "torchvision"


def test_paddleseg_label_map_iou_and_dice_per_class_by_hand(tmp_path: Path) -> None:

    labels = np.zeros((1, 8, 8), dtype=np.int32)
    labels[0, :4, :4] = 1  # class a predicted at the top-left 4 x 4
    labels[0, 4:, 4:] = 2  # class b at the bottom-right 4 x 4
    c = card("segmentation", ["good", "a", "b"])
    model = load(constant_model(tmp_path / "seg.onnx", {"argmax_0.tmp_0": labels}), c)
    assert model.convention == "segmentation_labels"
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
    # a: intersection 8, truth 8, predicted 16 + 16 (both images) -> IoU 8 / 32, Dice 16 / 40
    assert by[("iou", "a")] == pytest.approx(0.25) and by[("dice", "a")] == pytest.approx(0.4)
    # b: I = 16, T = 16, P = 32 -> IoU 16 / 32, Dice 32 / 48
    assert by[("iou", "b")] == pytest.approx(0.5) and by[("dice", "b")] == pytest.approx(2 / 3)


# ------------------------------------------------------------------- detected from the graph

F32 = np.float32


def _exports(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """One minimal model per exporter, named as the exporter names its outputs, and the
    convention ``model inspect`` must read from the graph alone (no card)."""
    picodet = {f"transpose_{2 * k}.tmp_0": np.zeros((1, a, 3), F32) for k, a in enumerate([16, 4])}
    picodet |= {
        f"transpose_{2 * k + 1}.tmp_0": np.zeros((1, a, 32), F32) for k, a in enumerate([16, 4])
    }
    # the same head with each level's scores and distributions in turn
    names = list(picodet)
    interleaved = {n: picodet[n] for pair in zip(names[:2], names[2:], strict=True) for n in pair}
    models: dict[str, tuple[dict[str, np.ndarray], dict[str, list[Any]] | None, str]] = {
        "yolov8": ({"output0": np.zeros((1, 7, 8400), F32)}, None, "ultralytics_raw"),
        "yolov10": ({"output0": np.zeros((1, 300, 6), F32)}, None, "nms_included"),
        "rtdetr": ({"output0": np.zeros((1, 300, 7), F32)}, None, "rtdetr"),
        "torchvision": (
            {
                "boxes": np.zeros((1, 4), F32),
                "scores": np.zeros(1, F32),
                "labels": np.zeros(1, np.int64),
            },
            {"boxes": ["N", 4], "scores": ["N"], "labels": ["N"]},
            "torchvision",
        ),
        "mmdeploy": (
            {"dets": np.zeros((1, 5, 5), F32), "labels": np.zeros((1, 5), np.int64)},
            None,
            "mmdeploy_end2end",
        ),
        "picodet": (picodet, {k: list(v.shape) for k, v in picodet.items()}, "gfl_raw"),
        "picodet_interleaved": (
            interleaved,
            {k: list(v.shape) for k, v in interleaved.items()},
            "gfl_raw",
        ),
        "paddleseg": (
            {"argmax_0.tmp_0": np.zeros((1, 8, 8), np.int32)},
            None,
            "segmentation_labels",
        ),
        "paddleseg_softmax": (
            {"softmax_0.tmp_0": np.zeros((1, 3, 8, 8), F32)},
            None,
            "segmentation_classes",
        ),
        "anomalib": (
            {"pred_score": np.zeros(1, F32), "anomaly_map": np.zeros((1, 1, 8, 8), F32)},
            None,
            "anomalib",
        ),
    }
    out = {
        name: (constant_model(tmp_path / f"{name}.onnx", outs, output_shapes=shapes), conv)
        for name, (outs, shapes, conv) in models.items()
    }
    ppdet = paddle_nms_per_image(tmp_path / "ppdet.onnx", np.zeros((1, 6)))
    out["paddledetection"] = (ppdet, "paddle_nms")
    return out


def test_model_inspect_reads_each_exporter_convention_from_the_graph(tmp_path: Path) -> None:
    for name, (path, convention) in _exports(tmp_path).items():
        found = inspect_model(path)["convention"]
        assert found == {"name": convention, "task": found["task"], "from": "graph"}, name
