"""Task metrics per metadata slice: ``ap`` / ``ap_50`` of one class on a slice's images
(pycocotools COCOeval on those images alone), ``iou`` / ``dice`` on a slice's images (plain NumPy
pixel counting), their cluster-bootstrap intervals redrawn from the recorded seed, and rubric
criteria that judge one class in each slice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from auditkit.metrics.stats import part_weights
from auditkit.metrics.tasks import (
    Bootstrap,
    class_overlap_entries,
    detection_entries,
    segmentation_entries,
)
from auditkit.rubric.evaluate import evaluate
from tests.test_task_rubrics import CLASSES, _pycocotools, _random_boxes, _rubric

#: one-sided 95 % percentile bounds: the 5 % and 95 % quantiles (numpy's linear interpolation)
QUANTILES = (0.05, 0.95)


def _bounds(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    lo, hi = np.quantile(v, QUANTILES)
    return float(lo), float(hi)


def _det_kwargs(classes: list[str], seed: int, resamples: int) -> dict[str, Any]:
    return dict(
        classes=classes,
        match_iou=0.5,
        score_threshold=0.5,
        level=0.95,
        method="clopper_pearson",
        sided="one",
        bootstrap=Bootstrap(resamples=resamples, seed=seed),
    )


def _by(entries: list[dict[str, Any]], name: str) -> dict[tuple[tuple[str, str], ...], Any]:
    """The entries of ``name`` keyed by their slice's sorted items."""
    return {tuple(sorted(e["slice"].items())): e for e in entries if e["name"] == name}


# ----------------------------------------------------------------- AP per class per slice


def _sliced_boxes() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[str]]:
    """28 images, two per part, lighting drawn per image (some parts straddle both); a third
    class ``dent`` has one box, in a bright image, so the dim slice has no dent ground truth."""
    rng = np.random.default_rng(17)
    n = 28
    gt, det = _random_boxes(rng, n)
    ids = [f"i{i}" for i in range(n)]
    lighting = rng.choice(["bright", "dim"], n)
    bright = ids[int(np.flatnonzero(lighting == "bright")[0])]
    gt = pd.concat(
        [gt, pd.DataFrame([(bright, "dent", 5.0, 5.0, 25.0, 25.0)], columns=gt.columns)],
        ignore_index=True,
    )
    det = pd.concat(
        [det, pd.DataFrame([(bright, "dent", 0.7, 6.0, 5.0, 25.0, 26.0)], columns=det.columns)],
        ignore_index=True,
    )
    samples = pd.DataFrame(
        {
            "sample_id": ids,
            "part_id": [f"p{i // 2}" for i in range(n)],
            "label": ["good"] * n,
            "is_defect": [s in set(gt["sample_id"]) for s in ids],
            "status": ["ok"] * n,
            "lighting": lighting,
        }
    )
    return samples, gt, det, [*CLASSES, "dent"]


def test_ap_per_class_per_slice_equals_pycocotools_on_the_slice_images() -> None:
    samples, gt, det, classes = _sliced_boxes()
    entries = detection_entries(samples, gt, det, **_det_kwargs(classes, seed=4, resamples=25))
    ap, ap50 = _by(entries, "ap"), _by(entries, "ap_50")
    for light in ("bright", "dim"):
        keep = samples.loc[samples["lighting"] == light, "sample_id"].tolist()
        precision = _pycocotools(
            gt[gt["sample_id"].isin(keep)], det[det["sample_id"].isin(keep)], keep, classes
        )  # (T, R, K), NaN where pycocotools has -1
        for k, cls in enumerate(classes):
            key = (("class", cls), ("lighting", light))
            got, got50 = ap[key], ap50[key]
            assert got["n"] == got50["n"] == len(keep)
            if np.isnan(precision[:, :, k]).all():  # no ground truth of the class here
                assert cls == "dent" and light == "dim"
                assert got["value"] is None and got["interval"] is None
                assert got50["value"] is None and got50["interval"] is None
                continue
            assert got["value"] == pytest.approx(precision[:, :, k].mean(), abs=1e-12)
            assert got50["value"] == pytest.approx(precision[0, :, k].mean(), abs=1e-12)
            assert got["interval"]["seed"] == 4 and got["interval"]["resamples"] == 25
    # the overall per-class entries are still those of all images, and each is the last entry
    # of its class (a reader keyed on the class alone, as the report's task chart, sees it)
    precision = _pycocotools(gt, det, samples["sample_id"].tolist(), classes)
    for k, cls in enumerate(classes):
        assert ap[(("class", cls),)]["value"] == pytest.approx(precision[:, :, k].mean())
        assert ap50[(("class", cls),)]["interval"] is not None
        for name in ("ap", "ap_50"):
            of_class = [e for e in entries if e["name"] == name and e["slice"].get("class") == cls]
            assert of_class[-1]["slice"] == {"class": cls} and len(of_class) == 3


def test_ap_interval_of_a_slice_is_pycocotools_on_the_parts_redrawn_with_the_seed() -> None:
    samples, gt, det, classes = _sliced_boxes()
    resamples, seed = 20, 6
    entries = detection_entries(
        samples, gt, det, **_det_kwargs(classes, seed=seed, resamples=resamples)
    )
    light = "dim"
    rows = samples[samples["lighting"] == light]
    keep = rows["sample_id"].tolist()
    # the recorded seed: part_weights over the slice's images only
    w = part_weights(rows["part_id"].to_numpy(dtype=object), n_resamples=resamples, seed=seed)
    ap_values: dict[str, list[float]] = {c: [] for c in CLASSES}
    ap50_values: dict[str, list[float]] = {c: [] for c in CLASSES}
    for row in w:
        # pycocotools on the slice's images, each copied as often as the resample drew its part
        ids, g, d = [], [], []
        for sid, count in zip(keep, row, strict=True):
            for c in range(int(count)):
                new = f"{sid}#{c}"
                ids.append(new)
                g.append(gt[gt["sample_id"] == sid].assign(sample_id=new))
                d.append(det[det["sample_id"] == sid].assign(sample_id=new))
        precision = _pycocotools(pd.concat(g), pd.concat(d), ids, classes)
        for k, cls in enumerate(CLASSES):
            p = precision[:, :, k]
            ap_values[cls].append(np.nan if np.isnan(p).all() else float(p.mean()))
            ap50_values[cls].append(np.nan if np.isnan(p[0]).all() else float(p[0].mean()))
    for cls in CLASSES:
        key = (("class", cls), ("lighting", light))
        for name, values in (("ap", ap_values[cls]), ("ap_50", ap50_values[cls])):
            interval = _by(entries, name)[key]["interval"]
            assert (interval["low"], interval["high"]) == pytest.approx(_bounds(values), abs=1e-12)


# ----------------------------------------------------------------- IoU / Dice per slice


def _pixels() -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray], list[str], np.ndarray]:
    """Nine images: L1 the first four (parts p0 p0 p1 p2), L2 the next four (p3 p3 p4 p5), and
    L3 one clean image predicted clean (no defect pixel at all: IoU undefined)."""
    rng = np.random.default_rng(9)
    masks = [(rng.random((10, 10)) < 0.25).astype(np.uint8) * 255 for _ in range(8)]
    maps = [np.round((m > 0) * 0.35 + rng.random((10, 10)) * 0.65, 2) for m in masks]
    masks.append(np.zeros((10, 10), dtype=np.uint8))
    maps.append(np.full((10, 10), 0.1))
    preds = [mp >= 0.5 for mp in maps]
    parts = ["p0", "p0", "p1", "p2", "p3", "p3", "p4", "p5", "p6"]
    line = np.array(["L1"] * 4 + ["L2"] * 4 + ["L3"])
    return masks, maps, preds, parts, line


def _counted(true: list[np.ndarray], pred: list[np.ndarray], reps: list[int]) -> tuple[float, ...]:
    """IoU and Dice of the images concatenated, each repeated ``reps`` times (NaN if empty)."""
    t = np.concatenate([np.tile(x.ravel(), r) for x, r in zip(true, reps, strict=True)])
    p = np.concatenate([np.tile(x.ravel(), r) for x, r in zip(pred, reps, strict=True)])
    inter, tt, pp = float(np.sum(t & p)), float(np.sum(t)), float(np.sum(p))
    if tt + pp == 0:
        return np.nan, np.nan
    return inter / (tt + pp - inter), 2 * inter / (tt + pp)


def test_binary_iou_dice_per_slice_are_numpy_counts_and_seeded_bootstrap() -> None:
    masks, maps, preds, parts, line = _pixels()
    resamples, seed = 40, 12
    slices = [({"line": v}, line == v) for v in ("L1", "L2", "L3")]
    entries = segmentation_entries(
        masks,
        maps,
        preds,
        parts=parts,
        bootstrap=Bootstrap(resamples=resamples, seed=seed),
        slices=slices,
    )
    iou, dice = _by(entries, "iou"), _by(entries, "dice")
    for slice_, mask in slices:
        idx = np.flatnonzero(mask)
        true = [masks[i] > 127 for i in idx]
        pred = [preds[i] for i in idx]
        key = (("class", "defect"), ("line", slice_["line"]))
        expect = _counted(true, pred, [1] * idx.size)
        if slice_["line"] == "L3":
            assert np.isnan(expect[0])
            assert iou[key]["value"] is None and iou[key]["interval"] is None
            assert dice[key]["value"] is None and dice[key]["interval"] is None
            continue
        assert iou[key]["value"] == pytest.approx(expect[0], abs=1e-15)
        assert dice[key]["value"] == pytest.approx(expect[1], abs=1e-15)
        assert iou[key]["n"] == idx.size == 4
        w = part_weights(
            np.asarray([parts[i] for i in idx], dtype=object), n_resamples=resamples, seed=seed
        )
        redrawn = [_counted(true, pred, [int(c) for c in row]) for row in w]
        for j, table in enumerate((iou, dice)):
            interval = table[key]["interval"]
            assert (interval["low"], interval["high"]) == pytest.approx(
                _bounds([r[j] for r in redrawn]), abs=1e-12
            )
            assert (interval["seed"], interval["resamples"]) == (seed, resamples)
    # the overall entry: all nine images, after the slices' entries
    overall = _counted([m > 127 for m in masks], preds, [1] * 9)
    assert iou[(("class", "defect"),)]["value"] == pytest.approx(overall[0])
    assert [e["slice"] for e in entries if e["name"] == "iou"][-1] == {"class": "defect"}


def test_iou_dice_per_class_per_slice_are_numpy_counts_and_seeded_bootstrap() -> None:
    rng = np.random.default_rng(14)
    true = [rng.integers(0, 3, (6, 6)) for _ in range(7)]
    pred = [np.where(rng.random((6, 6)) < 0.6, t, rng.integers(0, 3, (6, 6))) for t in true]
    true[6][:] = 0  # L3: one image with neither class in truth or prediction
    pred[6][:] = 0
    parts = ["p1", "p1", "p2", "p3", "p4", "p4", "p5"]
    line = np.array(["L1", "L1", "L1", "L2", "L2", "L2", "L3"])
    slices = [({"line": v}, line == v) for v in ("L1", "L2", "L3")]
    classes = {"a": 1, "b": 2}
    resamples, seed = 50, 3
    entries = class_overlap_entries(
        pred,
        true,
        classes,
        parts=parts,
        bootstrap=Bootstrap(resamples=resamples, seed=seed),
        slices=slices,
    )
    iou, dice = _by(entries, "iou"), _by(entries, "dice")
    assert len(entries) == 2 * 2 * (3 + 1)  # (iou, dice) x classes x (three slices + overall)
    for name in ("iou", "dice"):
        for cls in classes:
            of_class = [e for e in entries if e["name"] == name and e["slice"]["class"] == cls]
            assert of_class[-1]["slice"] == {"class": cls}  # the overall entry comes last
    for slice_, mask in slices:
        idx = np.flatnonzero(mask)
        w = part_weights(
            np.asarray([parts[i] for i in idx], dtype=object), n_resamples=resamples, seed=seed
        )
        for cls, v in classes.items():
            t = [true[i] == v for i in idx]
            p = [pred[i] == v for i in idx]
            key = (("class", cls), ("line", slice_["line"]))
            expect = _counted(t, p, [1] * idx.size)
            if slice_["line"] == "L3":
                assert iou[key]["value"] is None and dice[key]["interval"] is None
                continue
            assert iou[key]["value"] == pytest.approx(expect[0], abs=1e-15)
            assert dice[key]["value"] == pytest.approx(expect[1], abs=1e-15)
            redrawn = [_counted(t, p, [int(c) for c in row]) for row in w]
            for j, table in enumerate((iou, dice)):
                interval = table[key]["interval"]
                assert (interval["low"], interval["high"]) == pytest.approx(
                    _bounds([r[j] for r in redrawn]), abs=1e-12
                )


# ----------------------------------------------------------------- rubric criteria per slice


def _hand_detection() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Six parts, one image each. Dim: d1, d2 each a pit found exactly (AP 1 in every resample);
    bright: b1, b2 each a pit and a detection far from it (AP 0 in every resample); b3, d3 a
    scratch found exactly."""
    ids = ["d1", "d2", "d3", "b1", "b2", "b3"]
    samples = pd.DataFrame(
        {
            "sample_id": ids,
            "part_id": [f"p_{i}" for i in ids],
            "label": ["pit", "pit", "scratch", "pit", "pit", "scratch"],
            "is_defect": [True] * 6,
            "status": ["ok"] * 6,
            "lighting": ["dim"] * 3 + ["bright"] * 3,
        }
    )
    box = (10.0, 10.0, 30.0, 30.0)
    far = (60.0, 60.0, 80.0, 80.0)
    cls = ["pit", "pit", "scratch", "pit", "pit", "scratch"]
    gt = pd.DataFrame(
        [(s, c, *box) for s, c in zip(ids, cls, strict=True)],
        columns=["sample_id", "class", "x1", "y1", "x2", "y2"],
    )
    det_boxes = [box, box, box, far, far, box]
    det = pd.DataFrame(
        [(s, c, 0.9, *b) for s, c, b in zip(ids, cls, det_boxes, strict=True)],
        columns=["sample_id", "class", "score", "x1", "y1", "x2", "y2"],
    )
    return samples, gt, det


CRITERION = """  - id: c
    title: c
    metric: {{name: {name}, params: {{class: {cls}}}, slice_by: [lighting], aggregate: each{flt}}}
    requirement: {{op: ">=", threshold: 0.5, statistic: lower_bound}}
    severity: blocker"""


def test_a_criterion_on_ap_of_a_class_judges_each_lighting_slice(tmp_path: Path) -> None:
    samples, gt, det = _hand_detection()
    entries = detection_entries(samples, gt, det, **_det_kwargs(CLASSES, seed=0, resamples=30))
    metrics = {"task": "detection", "metrics": entries}
    loaded = _rubric(tmp_path, "detection", CRITERION.format(name="ap", cls="pit", flt=""))
    verdict = evaluate(metrics, loaded)
    crit = verdict["criteria"][0]
    by_slice = {s["slice"]["lighting"]: s for s in crit["slices"]}
    assert set(by_slice) == {"bright", "dim"}
    # hand-worked: dim pits all found with IoU 1 -> AP 1, bounds [1, 1] >= 0.5: PASS
    # (precision is tp / (tp + fp + eps), pycocotools' eps: 1 to the last bit or so)
    assert by_slice["dim"]["value"] == pytest.approx(1.0)
    assert by_slice["dim"]["low"] == pytest.approx(1.0)
    assert by_slice["dim"]["outcome"] == "PASS"
    # bright pits all missed -> AP 0 in every resample, upper bound 0 < 0.5: FAIL
    assert by_slice["bright"]["value"] == 0.0 and by_slice["bright"]["high"] == 0.0
    assert by_slice["bright"]["outcome"] == "FAIL"
    assert crit["outcome"] == "FAIL" and crit["slice"] == {"class": "pit", "lighting": "bright"}
    assert verdict["verdict"] == "REJECT"
    # scratch is found in both lightings; a filter keeps only the dim slice of pit
    scratch = _rubric(tmp_path, "detection", CRITERION.format(name="ap", cls="scratch", flt=""))
    assert evaluate(metrics, scratch)["criteria"][0]["outcome"] == "PASS"
    dim = CRITERION.format(name="ap_50", cls="pit", flt=", filter: {lighting: [dim]}")
    judged = evaluate(metrics, _rubric(tmp_path, "detection", dim))["criteria"][0]
    assert [s["slice"] for s in judged["slices"]] == [{"class": "pit", "lighting": "dim"}]
    assert judged["outcome"] == "PASS"


def test_a_criterion_on_iou_judges_each_lighting_slice(tmp_path: Path) -> None:
    true = np.zeros((4, 8, 8), dtype=np.uint8)
    true[:, 2:6, 2:6] = 255
    preds = [t > 0 for t in true[:2]] + [np.roll(t > 0, 4, axis=1) for t in true[2:]]
    maps = [p * 0.9 + 0.05 for p in preds]
    lighting = np.array(["dim", "dim", "bright", "bright"])
    slices = [({"lighting": v}, lighting == v) for v in ("bright", "dim")]
    entries = segmentation_entries(
        list(true),
        maps,
        preds,
        parts=["a", "b", "c", "d"],
        bootstrap=Bootstrap(resamples=30, seed=0),
        slices=slices,
    )
    crit = CRITERION.format(name="iou", cls="defect", flt="")
    verdict = evaluate(
        {"task": "segmentation", "metrics": entries}, _rubric(tmp_path, "segmentation", crit)
    )
    by_slice = {s["slice"]["lighting"]: s for s in verdict["criteria"][0]["slices"]}
    # hand-worked: dim predicted exactly (IoU 16/16 = 1); bright shifted by 4 columns onto
    # background (intersection 0: IoU 0 in every resample)
    assert (by_slice["dim"]["value"], by_slice["dim"]["outcome"]) == (1.0, "PASS")
    assert (by_slice["bright"]["value"], by_slice["bright"]["outcome"]) == (0.0, "FAIL")
    assert verdict["criteria"][0]["outcome"] == "FAIL"


def test_a_class_sliced_metric_by_metadata_needs_its_class(tmp_path: Path) -> None:
    from auditkit.errors import RubricError

    bare = """  - id: c
    title: c
    metric: {name: ap, slice_by: [lighting], aggregate: each}
    requirement: {op: ">=", threshold: 0.5}
    severity: blocker"""
    with pytest.raises(RubricError, match=r"ap is measured per class.*give params.class"):
        _rubric(tmp_path, "detection", bare)
    mixed = bare.replace("[lighting]", "[class, lighting]")
    with pytest.raises(RubricError, match=r"slice_by \[class\] alone"):
        _rubric(tmp_path, "detection", mixed)


def test_a_slice_without_ground_truth_of_the_class_is_a_data_gap(tmp_path: Path) -> None:
    samples, gt, det, classes = _sliced_boxes()
    entries = detection_entries(samples, gt, det, **_det_kwargs(classes, seed=0, resamples=20))
    crit = CRITERION.format(name="ap", cls="dent", flt="")
    verdict = evaluate(
        {"task": "detection", "metrics": entries}, _rubric(tmp_path, "detection", crit)
    )
    by_slice = {s["slice"]["lighting"]: s for s in verdict["criteria"][0]["slices"]}
    # dim has no dent box: no value, never pooled with bright; the criterion's on_insufficient
    assert by_slice["dim"]["value"] is None
    assert by_slice["dim"]["outcome"] == "INCONCLUSIVE"
    assert any("lighting=dim" in line for line in verdict["data_gaps"])


def test_replayed_class_maps_give_iou_per_class_per_lighting_by_hand(tmp_path: Path) -> None:
    """Through replay and run_metrics: a constant class map (a at the top-left 4 x 4, b at the
    bottom-right), two images per lighting; the metadata column reaches the per-class entries."""
    from dataclasses import replace

    from auditkit.audit import run_metrics
    from auditkit.data.manifest import manifest_digest
    from auditkit.models.card import ModelCard
    from auditkit.models.onnx_model import DeployedModel
    from auditkit.replay.pipeline import replay
    from tests.onnx_builders import card, constant_model
    from tests.test_replay_tasks import SETTINGS, make_dataset

    logits = np.zeros((1, 3, 8, 8), dtype=np.float32)
    logits[0, 1, :4, :4] = 5.0
    logits[0, 2, 4:, 4:] = 5.0
    c = card("segmentation", ["good", "a", "b"], output={"kind": "logits"})
    model = DeployedModel.load(
        constant_model(tmp_path / "seg.onnx", {"seg": logits}), ModelCard.model_validate(c)
    )
    exact_a = np.zeros((8, 8), dtype=np.uint8)
    exact_a[:4, :4] = 255  # dim: a where predicted (16 px)
    half_a = np.zeros((8, 8), dtype=np.uint8)
    half_a[:4, :2] = 255  # bright: 8 px of a inside the predicted 16
    images = [
        {"sample_id": "d1", "size": (8, 8), "label": "a", "mask": exact_a},
        {"sample_id": "d2", "size": (8, 8), "label": "good", "mask": None},
        {"sample_id": "b1", "size": (8, 8), "label": "a", "mask": half_a},
        {"sample_id": "b2", "size": (8, 8), "label": "a", "mask": half_a},
    ]
    data = make_dataset(tmp_path / "data", images, None)
    samples = data.samples.assign(lighting=["dim", "dim", "bright", "bright"])
    data = replace(data, samples=samples, manifest_sha256=manifest_digest(samples))
    replay(data, model, tmp_path / "run", SETTINGS)
    entries = run_metrics(tmp_path / "run")["metrics"]
    iou = _by(entries, "iou")
    # a, dim: I = 16 (d1), T = 16, P = 16 + 16 (d2 predicts a too) -> 16 / 32
    assert iou[(("class", "a"), ("lighting", "dim"))]["value"] == pytest.approx(0.5)
    # a, bright: I = 8 + 8, T = 16, P = 32 -> 16 / 32; b nowhere true: I = 0 -> 0
    assert iou[(("class", "a"), ("lighting", "bright"))]["value"] == pytest.approx(0.5)
    assert iou[(("class", "b"), ("lighting", "bright"))]["value"] == 0.0
    # binary defect, dim: true 16 (d1), predicted 32 + 32 (a or b, both images), I = 16
    assert iou[(("class", "defect"), ("lighting", "dim"))]["value"] == pytest.approx(16 / 64)
    assert iou[(("class", "a"), ("lighting", "dim"))]["n"] == 2
    assert iou[(("class", "a"), ("lighting", "dim"))]["interval"]["resamples"] == 1000
