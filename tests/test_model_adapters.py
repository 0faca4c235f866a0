"""Output conventions: ONNX graphs with known outputs decode to hand-computed predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from auditkit.errors import ModelError
from auditkit.models.adapters import detect_convention
from auditkit.models.adapters.geometry import Letterbox, boxes_to_original, map_to_original
from auditkit.models.adapters.nms import batched_nms, nms
from auditkit.models.card import ModelCard
from auditkit.models.onnx_model import DeployedModel
from tests.onnx_builders import card, constant_model

ONE = np.zeros((1, 1, 8, 8), dtype=np.float32)


def load(
    tmp_path: Path, outputs: dict[str, np.ndarray], card_dict: dict[str, Any], **kw: Any
) -> DeployedModel:
    path = constant_model(tmp_path / "m.onnx", outputs, **kw)
    return DeployedModel.load(path, ModelCard.model_validate(card_dict))


# --------------------------------------------------------------------------- NMS, by hand


def test_nms_hand_worked_case() -> None:
    boxes = np.array(
        [
            [10, 10, 20, 20],  # A .9 class 0
            [11, 10, 21, 20],  # B .8 class 0: IoU(A) = 90 / 110 = 0.818 > .45 -> dropped
            [10, 10, 20, 20],  # C .7 class 1: same box as A, other class -> kept
            [30, 30, 40, 40],  # D .6 class 0: no overlap -> kept
            [15, 10, 25, 20],  # E .5 class 0: IoU(A) = 50 / 150 = 0.333 <= .45 -> kept
        ],
        dtype=float,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    classes = np.array([0, 0, 1, 0, 0])
    assert batched_nms(boxes, scores, classes, 0.45).tolist() == [0, 2, 3, 4]
    # class-agnostic: C is A's twin (IoU 1) and goes too
    assert nms(boxes, scores, 0.45).tolist() == [0, 3, 4]
    # at IoU 0.3 E (0.333) is suppressed by A
    assert batched_nms(boxes, scores, classes, 0.3).tolist() == [0, 2, 3]


def test_nms_keeps_a_box_exactly_at_the_threshold_and_ties_in_input_order() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [50, 50, 60, 60]], dtype=float)
    # IoU of the first two = 50 / 100 = 0.5: not strictly above 0.5 -> both kept
    assert nms(boxes, [0.5, 0.5, 0.5], 0.5).tolist() == [0, 1, 2]
    assert nms(boxes, [0.5, 0.5, 0.5], 0.49).tolist() == [0, 2]
    assert nms(np.zeros((0, 4)), [], 0.5).tolist() == []


# --------------------------------------------------------------------------- geometry, by hand


def test_letterbox_and_plain_resize_box_mapping_by_hand() -> None:
    # a 128 x 64 image into 64 x 64: r = 0.5, resized 64 x 32, top pad round(15.9) = 16
    box = Letterbox.of(128, 64, 64, 64)
    assert (box.gain, box.new_w, box.new_h, box.left, box.top) == (0.5, 64, 32, 0, 16)
    inp = np.array([[24.0, 28.0, 40.0, 36.0]])
    got = boxes_to_original(inp, (128, 64), (64, 64), "letterbox")
    np.testing.assert_allclose(got, [[48.0, 24.0, 80.0, 40.0]])  # ((x-0)/.5, (y-16)/.5)
    got = boxes_to_original(inp, (128, 64), (64, 64), "stretch")
    np.testing.assert_allclose(got, [[48.0, 28.0, 80.0, 36.0]])  # x * 128/64, y * 64/64
    # odd sizes: 100 x 50 into 64 x 64: r = .64, 64 x 32, top round(15.9) = 16
    got = boxes_to_original(np.array([[0.0, 16.0, 64.0, 48.0]]), (100, 50), (64, 64), "letterbox")
    np.testing.assert_allclose(got, [[0.0, 0.0, 100.0, 50.0]])
    # boxes are clipped to the image
    got = boxes_to_original(np.array([[-5.0, 0.0, 70.0, 64.0]]), (128, 64), (64, 64), "letterbox")
    np.testing.assert_allclose(got, [[0.0, 0.0, 128.0, 64.0]])


def test_map_to_original_crops_the_letterbox_padding() -> None:
    plane = np.zeros((8, 8), dtype=np.float32)
    plane[2:6, :] = 0.7  # the image region of a 16 x 8 original in an 8 x 8 letterbox
    got = map_to_original(plane, (16, 8), (8, 8), "letterbox")
    assert got.shape == (8, 16)
    np.testing.assert_allclose(got, 0.7, atol=1e-6)
    stretched = map_to_original(plane, (16, 8), (8, 8), "stretch")
    assert stretched.shape == (8, 16) and stretched[0, 0] == 0.0


# --------------------------------------------------------------------------- classifier


def test_classifier_logits_softmax_and_sigmoid(tmp_path: Path) -> None:
    logits = np.array([[0.0, 1.0, 2.0]], dtype=np.float32)
    c = card("classification", ["good", "a", "b"], output={"name": "out", "kind": "logits"})
    model = load(tmp_path, {"out": logits}, c)
    assert model.convention == "classifier"
    e = np.exp([0.0, 1.0, 2.0])
    np.testing.assert_allclose(
        model.predict(np.zeros((2, 1, 8, 8), np.float32)), [e / e.sum()] * 2, rtol=1e-6
    )
    c = card("classification", ["good", "defect"], output={"name": "p", "kind": "sigmoid"})
    model = load(tmp_path, {"p": np.array([[0.8]], dtype=np.float32)}, c)
    np.testing.assert_allclose(model.predict(ONE), [[0.2, 0.8]], rtol=1e-6)


def test_probabilities_outside_0_1_are_a_model_error_and_nan_a_row_error(tmp_path: Path) -> None:
    from auditkit.models.onnx_model import NotProbabilities

    c = card("classification", ["good", "a"], output={"name": "out", "kind": "probabilities"})
    model = load(tmp_path, {"out": np.array([[1.5, -0.5]], dtype=np.float32)}, c)
    with pytest.raises(NotProbabilities, match=r"values -0\.5 to 1\.5 \(must lie in \[0, 1\]\)"):
        model.run(ONE)
    model = load(tmp_path, {"out": np.array([[np.nan, 0.5]], dtype=np.float32)}, c)
    assert model.run(ONE).errors == ["model output contains NaN or infinity"]
    # independent per-class probabilities (sigmoid) need not sum to 1: outside [0, 1] is the row's
    c = card("classification", ["good", "a"], output={"name": "out", "kind": "sigmoid"})
    model = load(tmp_path, {"out": np.array([[1.5, 0.9]], dtype=np.float32)}, c)
    assert (
        model.run(ONE)
        .errors[0]
        .startswith("model output declared as probabilities lies outside [0, 1]")
    )


# --------------------------------------------------------------------------- detection


def _raw_output() -> np.ndarray:
    """(1, 4 + 2, 4) anchors: cx cy w h, score class 0, score class 1."""
    anchors = [
        (32, 32, 16, 8, 0.9, 0.1),  # x1 y1 x2 y2 = 24 28 40 36, class 0 .9
        (33, 32, 16, 8, 0.8, 0.2),  # IoU with the first = 120 / 136 > .45: suppressed
        (32, 32, 16, 8, 0.1, 0.7),  # same box, class 1: kept (class-wise NMS)
        (10, 10, 4, 4, 0.0005, 0.0002),  # below the score threshold
    ]
    return np.array(anchors, dtype=np.float32).T[None]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("letterbox", [48.0, 24.0, 80.0, 40.0]), ("stretch", [48.0, 28.0, 80.0, 36.0])],
)
def test_ultralytics_raw_decodes_to_original_pixels(
    tmp_path: Path, mode: str, expected: list[float]
) -> None:
    c = card(
        "detection",
        ["scratch", "pit"],
        size=64,
        input={"resize_mode": mode},
        detection={"nms_iou": 0.45, "score_threshold": 0.001},
    )
    model = load(tmp_path, {"output0": _raw_output()}, c, input_shape=("N", 1, 64, 64))
    assert model.convention == "ultralytics_raw"  # detected from the graph
    decoded = model.run(np.zeros((1, 1, 64, 64), np.float32), [(128, 64)])
    det = decoded.detections[0]
    np.testing.assert_allclose(det[:, :4], [expected, expected], rtol=1e-6)
    np.testing.assert_allclose(det[:, 4], [0.9, 0.7], rtol=1e-6)
    assert det[:, 5].tolist() == [0, 1]
    np.testing.assert_allclose(decoded.scores, [[0.9, 0.7]], rtol=1e-6)


def test_nms_included_and_separate_outputs(tmp_path: Path) -> None:
    rows = np.array([[[24, 28, 40, 36, 0.9, 1], [0, 0, 0, 0, 0, 0]]], dtype=np.float32)
    # three classes: with two, (batch, K, 6) would also read as RT-DETR's (batch, K, 4 + 2)
    three = ["scratch", "pit", "crack"]
    c = card("detection", three, size=64, input={"resize_mode": "letterbox"})
    model = load(tmp_path, {"dets": rows}, c, input_shape=("N", 1, 64, 64))
    assert model.convention == "nms_included"
    det = model.run(np.zeros((1, 1, 64, 64), np.float32), [(128, 64)]).detections[0]
    np.testing.assert_allclose(det, [[48, 24, 80, 40, 0.9, 1]], rtol=1e-6)

    outs = {
        "boxes": np.array([[[0.375, 0.4375, 0.625, 0.5625], [0, 0, 0, 0]]], dtype=np.float32),
        "scores": np.array([[0.6, 0.0]], dtype=np.float32),
        "labels": np.array([[0, 0]], dtype=np.int64),
    }
    c = card("detection", ["scratch", "pit"], size=64, output={"box_units": "normalized"})
    model = load(tmp_path, outs, c, input_shape=("N", 1, 64, 64))
    assert model.convention == "boxes_scores_labels"
    det = model.run(np.zeros((1, 1, 64, 64), np.float32), [(128, 64)]).detections[0]
    # normalised .375 * 64 = 24 input px; stretch: x * 2, y * 1
    np.testing.assert_allclose(det, [[48, 28, 80, 36, 0.6, 0]], rtol=1e-6)


def test_card_class_count_and_input_size_disagreements_name_both_values(tmp_path: Path) -> None:
    c = card("detection", ["scratch", "pit", "crack"], size=64)
    with pytest.raises(ModelError, match=r"6 rows, i\.e\. 2 classes, but the card declares 3"):
        load(
            tmp_path,
            {"output0": _raw_output()},
            {**c, "output": {"convention": "ultralytics_raw"}},
            input_shape=("N", 1, 64, 64),
        )
    c = card("detection", ["scratch", "pit"], size=32)
    with pytest.raises(ModelError, match="axis 2: 64 != 32"):
        load(tmp_path, {"output0": _raw_output()}, c, input_shape=("N", 1, 64, 64))
    c = card("segmentation", ["good", "a", "b"])
    with pytest.raises(ModelError, match=r"model: 2 classes, card: 3"):
        load(tmp_path, {"seg": np.zeros((1, 2, 8, 8), np.float32)}, c)


def test_ambiguous_graph_is_refused_and_the_card_settles_it(tmp_path: Path) -> None:
    signature = {"out": ["N", 6, 6]}  # 4 + 2 classes rows, or 6 rows of x1 y1 x2 y2 score class
    two = ModelCard.model_validate(card("detection", ["a", "b"]))
    with pytest.raises(
        ModelError,
        match=r"reads as nms_included or ultralytics_raw or rtdetr; set output\.convention",
    ):
        detect_convention(signature, two)
    with pytest.raises(ModelError, match="reads as no known convention"):
        detect_convention({"out": ["N", "K", "A"]})
    with pytest.raises(ModelError, match=r"2 outputs .* and none is named"):
        detect_convention({"a": ["N", 3], "b": ["N", 3]})
    c = ModelCard.model_validate(
        card("detection", ["a", "b"], output={"convention": "nms_included"})
    )
    assert detect_convention(signature, c) == "nms_included"
    c = ModelCard.model_validate(card("classification", ["good", "a"], output={"name": "out"}))
    with pytest.raises(
        ModelError,
        match=r"follow the nms_included convention .* card declares task 'classification'",
    ):
        detect_convention({"out": ["N", 300, 6]}, c)


# --------------------------------------------------------------------------- anomaly, segmentation


def test_anomalib_outputs_and_letterboxed_map(tmp_path: Path) -> None:
    amap = np.zeros((1, 1, 8, 8), dtype=np.float32)
    amap[0, 0, 2:6, :] = 0.7
    outs = {
        "pred_score": np.array([0.83], dtype=np.float32),
        "anomaly_map": amap,
        "pred_label": np.array([True]),
    }
    c = card(
        "anomaly",
        ["good", "anomalous"],
        input={"resize_mode": "letterbox"},
        maps={"threshold_source": "model"},
    )
    model = load(tmp_path, outs, c)
    assert model.convention == "anomalib"
    decoded = model.run(ONE, [(16, 8)])
    np.testing.assert_allclose(decoded.scores, [[0.83, 1.0]], rtol=1e-6)
    assert decoded.maps[0].shape == (8, 16)
    np.testing.assert_allclose(decoded.maps[0], 0.7, atol=1e-6)
    c = card("anomaly", ["good", "anomalous"], maps={"threshold_source": "model"})
    with pytest.raises(ModelError, match="has no output 'pred_label'"):
        load(tmp_path, {k: outs[k] for k in ("pred_score", "anomaly_map")}, c)


def test_segmentation_class_logits_and_defect_map(tmp_path: Path) -> None:
    logits = np.zeros((1, 3, 8, 8), dtype=np.float32)
    logits[0, 1, :2, :2] = 4.0  # class "a" at the top-left 2 x 2
    c = card("segmentation", ["good", "a", "b"], output={"kind": "logits"})
    model = load(tmp_path, {"seg": logits}, c)
    assert model.convention == "segmentation_classes"
    decoded = model.run(ONE, [(8, 8)])
    p_a = np.exp(4.0) / (np.exp(4.0) + 2.0)
    np.testing.assert_allclose(decoded.scores, [[1 / 3, p_a, 1 / 3]], rtol=1e-6)
    assert decoded.label_maps[0][:2, :2].tolist() == [[1, 1], [1, 1]]
    assert decoded.label_maps[0][2:].max() == 0
    np.testing.assert_allclose(decoded.maps[0][0, 0], 1 - 1 / (np.exp(4.0) + 2.0), rtol=1e-5)

    c = card("segmentation", ["good", "defect"], output={"kind": "logits"})
    model = load(tmp_path, {"defect": np.zeros((1, 1, 8, 8), np.float32)}, c)
    assert model.convention == "segmentation_defect_map"
    np.testing.assert_allclose(model.run(ONE, [(4, 4)]).maps[0], np.full((4, 4), 0.5))


def test_letterbox_preprocessing_pads_with_the_card_value() -> None:
    from PIL import Image

    from auditkit.models.card import InputSpec
    from auditkit.models.preprocess import preprocess

    spec = InputSpec(name="x", height=8, width=8, resize_mode="letterbox", pad_value=114)
    image = Image.fromarray(np.full((8, 16), 200, dtype=np.uint8), "L")  # 16 wide, 8 high
    got = preprocess(image, spec)[0]
    # r = 0.5: the image becomes 8 x 4, pasted at top = round(2 - 0.1) = 2
    np.testing.assert_allclose(got[[0, 1, 6, 7]], 114 / 255, rtol=1e-6)
    np.testing.assert_allclose(got[2:6], 200 / 255, rtol=1e-6)


def test_class_names_come_from_metadata_props_when_the_card_has_none(tmp_path: Path) -> None:
    c = card("classification", ["good", "a", "b"], output={"name": "out"})
    del c["classes"], c["positive_classes"]
    logits = np.array([[0.2, 0.3, 0.5]], dtype=np.float32)
    model = load(
        tmp_path, {"out": logits}, c, metadata={"names": "{0: 'good', 1: 'dent', 2: 'rust'}"}
    )
    assert model.card.classes == ["good", "dent", "rust"]
    assert model.card.positive_classes == ["dent", "rust"]  # every class but good_class
    with pytest.raises(ModelError, match=r"the card lists no classes and m\.onnx.s metadata_props"):
        load(tmp_path, {"out": logits}, c)
    with pytest.raises(ModelError, match=r"\(model: 3 classes, card: 2\)"):
        load(tmp_path, {"out": logits}, c, metadata={"classes": '["good", "dent"]'})


def _greedy_reference(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    """The greedy rule written plainly: in descending score (ties in input order), keep a box
    unless its IoU with an already kept box is above ``thr``."""

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
        return iw * ih / union if union > 0 else 0.0

    kept: list[int] = []
    for i in sorted(range(len(scores)), key=lambda i: (-scores[i], i)):
        if all(iou(boxes[i], boxes[k]) <= thr for k in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_blocked_nms_is_the_greedy_rule_box_for_box(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 700  # more than two blocks of 256
    xy = rng.uniform(0, 100, size=(n, 2)).round()  # integer corners: exact IoU ties occur
    wh = rng.uniform(2, 30, size=(n, 2)).round()
    boxes = np.column_stack([xy, xy + wh])
    scores = rng.choice(np.linspace(0.05, 1, 40), size=n)  # many equal scores
    for thr in (0.3, 0.5):
        want = _greedy_reference(boxes, scores, thr)
        assert nms(boxes, scores, thr).tolist() == want
        assert nms(boxes, scores, thr, max_keep=37).tolist() == want[:37]
    classes = rng.integers(0, 3, size=n)
    want = sorted(
        (
            i
            for c in range(3)
            for i in np.flatnonzero(classes == c)[
                _greedy_reference(boxes[classes == c], scores[classes == c], 0.45)
            ]
        ),
        key=lambda i: (-scores[i], i),
    )
    assert batched_nms(boxes, scores, classes, 0.45).tolist() == want
    assert batched_nms(boxes, scores, classes, 0.45, max_keep=50).tolist() == want[:50]
