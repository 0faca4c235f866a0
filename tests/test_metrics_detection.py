"""COCO mAP against pycocotools' COCOeval; the inspection view on a hand-worked example."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import pandas as pd
import pytest

from auditkit.metrics.detection import (
    box_iou,
    coco_metrics,
    decisions_by_part,
    detection_decisions,
    inspection_rates,
)
from auditkit.metrics.stats import binomial_interval

STAT_KEYS = [
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "ar_1",
    "ar_10",
    "ar_100",
    "ar_small",
    "ar_medium",
    "ar_large",
]
GT_COLS = ["sample_id", "class", "x1", "y1", "x2", "y2"]
DT_COLS = ["sample_id", "class", "score", "x1", "y1", "x2", "y2"]


def make_fixture(
    seed: int, n_img: int = 120, classes: tuple[str, ...] = ("scratch", "dent", "stain", "pit")
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], list[str]]:
    """Crowd-free boxes of mixed sizes: every 7th image without GT, every 11th without dets."""
    rng = np.random.default_rng(seed)
    ids = [f"img-{i:04d}" for i in range(n_img)]
    gt: list[tuple[Any, ...]] = []
    for i in range(n_img):
        if i % 7 == 0:
            continue
        for _ in range(int(rng.integers(1, 6))):
            side = float(rng.choice([12.0, 20.0, 50.0, 80.0, 150.0]))  # small, medium, large
            w, h = side * rng.uniform(0.5, 1.5, 2)
            x, y = rng.uniform(0, 500, 2)
            gt.append((ids[i], str(rng.choice(classes)), x, y, x + w, y + h))
    dt: list[tuple[Any, ...]] = []
    for sid, cls, x1, y1, x2, y2 in gt:
        if ids.index(sid) % 11 == 0:
            continue
        for _ in range(int(rng.integers(0, 3))):  # 0, 1 or 2 (duplicate) detections per box
            j = rng.normal(0, 0.15 * (x2 - x1), 4)
            c = cls if rng.random() < 0.85 else str(rng.choice(classes))
            nx1, ny1 = x1 + j[0], y1 + j[1]
            dt.append(
                (sid, c, float(rng.random()), nx1, ny1, max(x2 + j[2], nx1), max(y2 + j[3], ny1))
            )
    for i in range(n_img):
        if i % 11 == 0:
            continue
        for _ in range(int(rng.integers(0, 5))):  # false positives, everywhere
            x, y = rng.uniform(0, 500, 2)
            w, h = rng.uniform(3, 160, 2)
            dt.append(
                (ids[i], str(rng.choice(classes)), float(rng.random() * 0.8), x, y, x + w, y + h)
            )
    order = rng.permutation(len(dt))
    dt_df = pd.DataFrame([dt[k] for k in order], columns=DT_COLS)
    return pd.DataFrame(gt, columns=GT_COLS), dt_df, ids, list(classes)


def pycocotools_stats(
    gt: pd.DataFrame, dt: pd.DataFrame, ids: list[str], classes: list[str]
) -> tuple[np.ndarray, Any]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    img = {s: i + 1 for i, s in enumerate(ids)}
    cat = {c: k + 1 for k, c in enumerate(classes)}

    def rows(df: pd.DataFrame) -> list[tuple[int, int, list[float]]]:
        c = df[["x1", "y1", "x2", "y2"]].to_numpy(dtype=float).tolist()
        return [
            (img[s], cat[k], [x1, y1, x2 - x1, y2 - y1])
            for s, k, (x1, y1, x2, y2) in zip(
                df["sample_id"].tolist(), df["class"].tolist(), c, strict=True
            )
        ]

    anns = [
        {
            "id": n + 1,
            "image_id": i,
            "category_id": k,
            "bbox": b,
            "area": b[2] * b[3],
            "iscrowd": 0,
        }
        for n, (i, k, b) in enumerate(rows(gt))
    ]
    res = [
        {"image_id": i, "category_id": k, "bbox": b, "score": sc}
        for (i, k, b), sc in zip(rows(dt), dt["score"].tolist(), strict=True)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = {
            "images": [{"id": i + 1, "width": 640, "height": 640} for i in range(len(ids))],
            "categories": [{"id": k, "name": c} for c, k in cat.items()],
            "annotations": anns,
        }
        cg.createIndex()
        cd = cg.loadRes(res) if res else COCO()
        ev = COCOeval(cg, cd, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return np.asarray(ev.stats), ev


def _close(ours: float | None, ref: float) -> bool:
    if ref == -1:
        return ours is None
    return ours is not None and abs(ours - ref) <= 1e-9


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_coco_metrics_equal_pycocotools(seed: int, capfd: pytest.CaptureFixture[str]) -> None:
    gt, dt, ids, classes = make_fixture(seed)
    assert (gt["x2"] - gt["x1"]).mul(gt["y2"] - gt["y1"]).lt(32**2).any()  # small boxes exist
    assert (gt["x2"] - gt["x1"]).mul(gt["y2"] - gt["y1"]).gt(96**2).any()  # large boxes exist
    capfd.readouterr()
    ours = coco_metrics(gt, dt, image_ids=ids, classes=classes)
    assert capfd.readouterr().out == ""  # the engine prints nothing
    ref, ev = pycocotools_stats(gt, dt, ids, classes)
    for key, value in zip(STAT_KEYS, ref, strict=True):
        assert _close(ours[key], float(value)), key
    precision = ev.eval["precision"]
    for k, name in enumerate(classes):
        s = precision[:, :, k, 0, -1]
        assert _close(ours["ap_per_class"][name], float(np.mean(s[s > -1])))
        s50 = precision[0, :, k, 0, -1]
        assert _close(ours["ap50_per_class"][name], float(np.mean(s50[s50 > -1])))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coco_metrics_equal_pycocotools_with_tied_scores(seed: int) -> None:
    gt, dt, ids, classes = make_fixture(seed)
    dt["score"] = (dt["score"] * 5).round() / 5  # six score values: many ties
    ours = coco_metrics(gt, dt, image_ids=ids, classes=classes)
    ref, _ = pycocotools_stats(gt, dt, ids, classes)
    for key, value in zip(STAT_KEYS, ref, strict=True):
        assert _close(ours[key], float(value)), key


def test_coco_metrics_class_without_gt_and_no_detections() -> None:
    gt, dt, ids, classes = make_fixture(5, n_img=40, classes=("a", "b"))
    classes = [*classes, "never"]
    ours = coco_metrics(gt, dt, image_ids=ids, classes=classes)
    ref, _ = pycocotools_stats(gt, dt, ids, classes)
    assert ours["ap_per_class"]["never"] is None
    for key, value in zip(STAT_KEYS, ref, strict=True):
        assert _close(ours[key], float(value)), key
    empty = coco_metrics(gt, dt.iloc[:0], image_ids=ids, classes=classes)
    assert empty["map"] == 0.0 and empty["ar_100"] == 0.0
    no_gt = coco_metrics(gt.iloc[:0], dt, image_ids=ids, classes=classes)
    assert no_gt["map"] is None and no_gt["ap_per_class"]["a"] is None


def test_coco_metrics_perfect_and_rejects_unknown() -> None:
    gt = pd.DataFrame([("i1", "a", 0.0, 0.0, 10.0, 10.0)], columns=GT_COLS)
    dt = pd.DataFrame([("i1", "a", 0.9, 0.0, 0.0, 10.0, 10.0)], columns=DT_COLS)
    m = coco_metrics(gt, dt, image_ids=["i1", "i2"], classes=["a"])
    assert m["map"] == pytest.approx(1.0) and m["ar_100"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="sample_id"):
        coco_metrics(gt, dt, image_ids=["i2"], classes=["a"])
    with pytest.raises(ValueError, match="class"):
        coco_metrics(gt, dt, image_ids=["i1"], classes=["b"])
    with pytest.raises(ValueError, match="score"):
        coco_metrics(gt, dt.drop(columns="score"), image_ids=["i1"], classes=["a"])


def test_box_iou_hand_worked() -> None:
    iou = box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    assert iou.shape == (1, 3)
    assert iou[0].tolist() == pytest.approx([50 / 150, 0.0, 1.0])


def hand_worked() -> tuple[pd.DataFrame, pd.DataFrame]:
    gt = pd.DataFrame(
        [
            ("A", "scratch", 0, 0, 10, 10),  # A: found
            ("B", "scratch", 0, 0, 10, 10),  # B: detection elsewhere only -> escaped
            ("C", "scratch", 0, 0, 10, 10),  # C: one of two defects found -> not escaped
            ("C", "dent", 50, 50, 60, 60),
            ("D", "dent", 0, 0, 10, 10),  # D: right box below threshold -> escaped
            ("E", "dent", 0, 0, 10, 10),  # E: right place, wrong class
        ],
        columns=GT_COLS,
    )
    dt = pd.DataFrame(
        [
            ("A", "scratch", 0.9, 1, 1, 10, 10),  # IoU 0.81
            ("B", "scratch", 0.8, 40, 40, 50, 50),  # IoU 0
            ("C", "scratch", 0.7, 0, 0, 10, 9),  # IoU 0.9
            ("D", "dent", 0.3, 0, 0, 10, 10),  # under the threshold
            ("E", "scratch", 0.95, 0, 0, 10, 10),  # wrong class
            ("F", "scratch", 0.6, 0, 0, 5, 5),  # good image: overkill
            ("G", "scratch", 0.4, 0, 0, 5, 5),  # good image, under the threshold
        ],
        columns=DT_COLS,
    )
    return gt, dt


def test_detection_decisions_hand_worked() -> None:
    gt, dt = hand_worked()
    ids = ["A", "B", "C", "D", "E", "F", "G", "H"]
    d = detection_decisions(gt, dt, iou=0.5, score_threshold=0.5, image_ids=ids)
    d = d.set_index("sample_id")
    assert d["is_defect"].tolist() == [True] * 5 + [False] * 3
    assert d["is_reject"].tolist() == [True, True, True, False, True, True, False, False]
    assert d["escaped"].tolist() == [False, True, False, True, True, False, False, False]
    assert d["overkill"].tolist() == [False] * 5 + [True, False, False]
    assert d["n_gt"].tolist() == [1, 1, 2, 1, 1, 0, 0, 0]
    assert d["n_matched"].tolist() == [1, 0, 1, 0, 0, 0, 0, 0]
    assert d["n_detections"].tolist() == [1, 1, 1, 0, 1, 1, 0, 0]

    blind = detection_decisions(
        gt, dt, iou=0.5, score_threshold=0.5, image_ids=ids, class_aware=False
    ).set_index("sample_id")
    assert blind.loc["E", "escaped"] == False  # noqa: E712 - numpy bool
    strict = detection_decisions(gt, dt, iou=0.85, score_threshold=0.5, image_ids=ids)
    assert strict.set_index("sample_id").loc["A", "escaped"] == True  # noqa: E712

    rates = inspection_rates(d.reset_index())
    # escapes B, D, E out of 5 defective; overkill F out of 3 good; boxes: 6 - 2 matched
    assert (rates.loc["escape_rate", "k"], rates.loc["escape_rate", "n"]) == (3, 5)
    assert (rates.loc["overkill_rate", "k"], rates.loc["overkill_rate", "n"]) == (1, 3)
    assert (rates.loc["box_miss_rate", "k"], rates.loc["box_miss_rate", "n"]) == (4, 6)
    low, high = binomial_interval(3, 5)
    assert rates.loc["escape_rate", "value"] == pytest.approx(0.6)
    assert rates.loc["escape_rate", "low"] == pytest.approx(low)
    assert rates.loc["escape_rate", "high"] == pytest.approx(high)


def test_detection_decisions_greedy_by_score() -> None:
    # two GT boxes, two detections: the higher-scoring one takes the GT of best IoU
    gt = pd.DataFrame(
        [("A", "a", 0, 0, 10, 10), ("A", "a", 6, 0, 16, 10)],
        columns=GT_COLS,
    )
    dt = pd.DataFrame(
        [("A", "a", 0.5, 0, 0, 10, 10), ("A", "a", 0.9, 2, 0, 12, 10)],
        columns=DT_COLS,
    )
    # 0.9 box: IoU 8/12 with GT0, 6/14 with GT1 -> takes GT0; 0.5 box: GT0 taken, GT1 IoU 4/16
    d = detection_decisions(gt, dt, iou=0.4, score_threshold=0.0, image_ids=["A"])
    assert d["n_matched"].tolist() == [1]
    d2 = detection_decisions(gt, dt, iou=0.25, score_threshold=0.0, image_ids=["A"])
    assert d2["n_matched"].tolist() == [2]


def test_inspection_rates_empty_denominators() -> None:
    gt = pd.DataFrame(columns=GT_COLS)
    dt = pd.DataFrame(columns=DT_COLS)
    d = detection_decisions(gt, dt, iou=0.5, score_threshold=0.5, image_ids=["x", "y"])
    rates = inspection_rates(d)
    assert rates.loc["escape_rate", "n"] == 0
    escape = rates.loc["escape_rate"].to_numpy(dtype=float)  # k, n, value, low, high
    assert np.isnan(escape[2:]).all()
    assert rates.loc["overkill_rate", "k"] == 0 and rates.loc["overkill_rate", "n"] == 2


def test_decisions_by_part_hand_worked() -> None:
    gt, dt = hand_worked()
    ids = ["A", "B", "C", "D", "E", "F", "G", "H"]
    d = detection_decisions(gt, dt, iou=0.5, score_threshold=0.5, image_ids=ids)
    # P1 = A (found) + B (escaped image): the part's defect is found on view A -> not escaped
    # P2 = D + E: both escaped -> escaped; P3 = F + G: good, F rejected -> overkill; P4 = C, H
    part_of = {"A": "P1", "B": "P1", "D": "P2", "E": "P2", "F": "P3", "G": "P3", "C": "P4"}
    part_of["H"] = "P4"
    parts = decisions_by_part(d, pd.Series(part_of)).set_index("part_id")
    assert parts.index.tolist() == ["P1", "P4", "P2", "P3"]
    assert parts["escaped"].tolist() == [False, False, True, False]
    assert parts["overkill"].tolist() == [False, False, False, True]
    assert parts["n_images"].tolist() == [2, 2, 2, 2]
    assert parts["n_gt"].tolist() == [2, 2, 2, 0]
    rates = inspection_rates(parts.reset_index())
    assert (rates.loc["escape_rate", "k"], rates.loc["escape_rate", "n"]) == (1, 3)
    assert (rates.loc["overkill_rate", "k"], rates.loc["overkill_rate", "n"]) == (1, 1)
    with pytest.raises(ValueError, match="without a part"):
        decisions_by_part(d, {"A": "P1"})
