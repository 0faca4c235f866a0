"""Pixel metrics against scikit-learn and a slow, obvious AUPRO; IoU/Dice by hand."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import f1_score, roc_auc_score

from auditkit.metrics.segmentation import (
    aupro,
    binarize_mask,
    f1_max,
    image_auroc,
    iou_dice,
    pixel_auroc,
)


def make_maps(
    seed: int, n: int = 6, shape: tuple[int, int] = (24, 32), levels: int | None = 40
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Masks with a few rectangular regions (some touching diagonally), two normal images, and
    noisy maps that score the regions higher; quantised to ``levels`` steps when given."""
    rng = np.random.default_rng(seed)
    masks, maps = [], []
    for i in range(n):
        m = np.zeros(shape, dtype=np.uint8)
        if i >= 2:
            for _ in range(int(rng.integers(1, 4))):
                y, x = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 4)
                h, w = rng.integers(1, 6, 2)
                m[y : y + h, x : x + w] = 1
            if i == 2:  # two regions touching only at a corner: one region when 8-connected
                m[:] = 0
                m[2:5, 2:5] = 1
                m[5:8, 5:8] = 1
        s = rng.random(shape) + 0.6 * m * rng.random(shape)
        if levels is not None:
            s = np.round(s / s.max() * levels) / levels
        masks.append(m)
        maps.append(s)
    return masks, maps


def aupro_reference(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray], limit: float) -> float:
    """The definition, literally: one curve point per distinct score, loops everywhere."""
    regions = []
    for i, m in enumerate(masks):
        lab, n = ndimage.label(m > 0, structure=np.ones((3, 3), dtype=int))
        regions += [(i, lab == r) for r in range(1, n + 1)]
    normal = np.concatenate([s[m == 0] for m, s in zip(masks, maps, strict=True)])
    thresholds = sorted({float(v) for s in maps for v in s.ravel()}, reverse=True)
    points = [(0.0, 0.0)]
    for t in thresholds:
        fpr = float(np.mean(normal >= t))
        pro = float(np.mean([np.mean(maps[i][r] >= t) for i, r in regions]))
        points.append((fpr, pro))
    area = 0.0
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x0 >= limit:
            break
        if x1 > limit:
            y1 = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            x1 = limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / limit


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("limit", [0.3, 0.05, 1.0])
def test_aupro_equals_slow_reference(seed: int, limit: float) -> None:
    masks, maps = make_maps(seed)
    ref = aupro_reference(masks, maps, limit)
    assert aupro(masks, maps, fpr_limit=limit) == pytest.approx(ref, abs=1e-6)
    assert aupro(masks, maps, fpr_limit=limit, bins=None) == pytest.approx(ref, abs=1e-9)
    # 0-255 masks read the same (foreground > 127)
    masks255 = [m * 255 for m in masks]
    assert aupro(masks255, maps, fpr_limit=limit) == pytest.approx(ref, abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_aupro_exact_on_continuous_scores(seed: int) -> None:
    masks, maps = make_maps(seed, levels=None)
    ref = aupro_reference(masks, maps, 0.3)
    assert aupro(masks, maps, bins=None) == pytest.approx(ref, abs=1e-9)
    assert aupro(masks, maps) == pytest.approx(ref, abs=1e-3)  # streaming, by bin width


def test_aupro_connectivity() -> None:
    masks, maps = make_maps(0)
    assert ndimage.label(masks[2])[1] == 2  # 4-connected: two regions, 8-connected: one
    four = aupro(masks, maps, connectivity=4)
    eight = aupro(masks, maps)
    assert eight == pytest.approx(aupro_reference(masks, maps, 0.3), abs=1e-6)
    assert four != eight


@pytest.mark.parametrize("limit", [0.3, 0.01, 1.0])
def test_aupro_never_above_one(limit: float) -> None:
    masks, _ = make_maps(3)
    perfect = [m.astype(np.float64) for m in masks]  # every region pixel above every normal one
    assert aupro(masks, perfect, fpr_limit=limit) == 1.0
    for seed in range(10):
        masks, maps = make_maps(seed, levels=None)
        assert 0.0 <= aupro(masks, maps, fpr_limit=limit) <= 1.0
    # anomaly maps on an unusual range are fine too
    masks, maps = make_maps(7)
    v = aupro(masks, [s * 1e6 - 5e5 for s in maps], fpr_limit=limit)
    assert v == pytest.approx(aupro(masks, maps, fpr_limit=limit), abs=1e-9)


def test_aupro_errors() -> None:
    masks, maps = make_maps(0)
    with pytest.raises(ValueError, match="region"):
        aupro(masks[:2], maps[:2])
    with pytest.raises(ValueError, match="normal"):
        aupro([np.ones((3, 3))], [np.zeros((3, 3))])
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro(masks, maps, fpr_limit=0.0)
    with pytest.raises(ValueError, match="shape"):
        aupro(masks, [s.T for s in maps])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pixel_auroc_equals_sklearn(seed: int) -> None:
    masks, maps = make_maps(seed)
    y = np.concatenate([m.ravel() for m in masks])
    s = np.concatenate([p.ravel() for p in maps])
    ref = roc_auc_score(y, s)
    assert pixel_auroc(masks, maps) == pytest.approx(ref, abs=1e-6)  # quantised: exact
    assert pixel_auroc([m * 255 for m in masks], maps) == pytest.approx(ref, abs=1e-6)
    masks_c, maps_c = make_maps(seed, levels=None)
    yc = np.concatenate([m.ravel() for m in masks_c])
    sc = np.concatenate([p.ravel() for p in maps_c])
    refc = roc_auc_score(yc, sc)
    assert pixel_auroc(masks_c, maps_c, bins=None) == pytest.approx(refc, abs=1e-12)
    assert pixel_auroc(masks_c, maps_c) == pytest.approx(refc, abs=1e-4)
    # a fixed score range gives the same result when it covers the scores
    assert pixel_auroc(masks, maps, score_range=(0.0, 1.0)) == pytest.approx(ref, abs=1e-6)


def test_pixel_metrics_stream_lazy_sequences() -> None:
    """Maps produced one at a time on access: nothing forces them all into memory."""
    masks, maps = make_maps(4)

    class Lazy(Sequence[np.ndarray]):
        def __init__(self) -> None:
            self.loaded = 0

        def __len__(self) -> int:
            return len(maps)

        def __getitem__(self, i):
            if isinstance(i, slice):
                raise TypeError("no slicing")
            out = maps[i].copy()  # IndexError ends an iteration
            self.loaded += 1
            return out

    lazy = Lazy()
    assert pixel_auroc(masks, lazy) == pytest.approx(pixel_auroc(masks, maps))
    assert aupro(masks, lazy) == pytest.approx(aupro(masks, maps))
    assert lazy.loaded == 4 * len(maps)  # range pass + histogram pass, twice


def test_pixel_auroc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both"):
        pixel_auroc([np.zeros((4, 4))], [np.random.default_rng(0).random((4, 4))])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_image_auroc_equals_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(300) < 0.3
    s = np.round(rng.random(300) + 0.4 * y, 1)  # many ties
    assert image_auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert image_auroc(y.astype(int), s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    with pytest.raises(ValueError):
        image_auroc(np.zeros(5), np.arange(5))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_f1_max_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(200) < 0.25
    s = np.round(rng.random(200) + 0.5 * y, 2)
    f1s = {float(t): f1_score(y, s >= t) for t in np.unique(s)}
    best = max(f1s.values())
    f1, thr = f1_max(y, s)
    assert f1 == pytest.approx(best, abs=1e-12)
    assert thr == max(t for t, v in f1s.items() if v >= best - 1e-12)
    assert f1_score(y, s >= thr) == pytest.approx(f1, abs=1e-12)


def test_f1_max_hand_worked() -> None:
    # at 0.8: tp=2, fp=0, fn=1 -> 0.8; at 0.4: tp=3, fp=1 -> 6/7; at 0.1: tp=3, fp=2 -> 0.75
    f1, thr = f1_max([1, 1, 0, 1, 0], [0.9, 0.8, 0.4, 0.4, 0.1])
    assert (f1, thr) == (pytest.approx(6 / 7), 0.4)
    with pytest.raises(ValueError, match="positive"):
        f1_max([0, 0], [0.1, 0.2])


def test_iou_dice_hand_worked() -> None:
    pred = [np.array([[1, 1, 0], [0, 2, 2]]), np.array([[0, 0], [3, 3]])]
    true = [np.array([[1, 0, 0], [0, 2, 2]]), np.array([[2, 0], [0, 0]])]
    out = iou_dice(pred, true, {"a": 1, "b": 2, "c": 3, "d": 4})
    # a: I=1, T=1, P=2; b: I=2, T=3, P=2; c: I=0, T=0, P=2; d: absent
    assert out.loc["a", "iou"] == pytest.approx(1 / 2)
    assert out.loc["a", "dice"] == pytest.approx(2 / 3)
    assert out.loc["b", "iou"] == pytest.approx(2 / 3)
    assert out.loc["b", "dice"] == pytest.approx(4 / 5)
    assert out.loc["c", "iou"] == 0.0 and out.loc["c", "dice"] == 0.0
    assert np.isnan(out["iou"].to_numpy()[3]) and np.isnan(out["dice"].to_numpy()[3])
    counts = out[["intersection", "union", "n_true", "n_pred"]].to_numpy()
    assert counts[1].tolist() == [2, 3, 3, 2]
    seq = iou_dice(pred, true, [2, 1])
    assert list(seq.index) == ["2", "1"]
    assert seq.loc["1", "iou"] == pytest.approx(1 / 2)


def test_iou_dice_binary_masks_0_255() -> None:
    pred = [np.array([[255, 255], [0, 0]], dtype=np.uint8)]
    true = [np.array([[1, 0], [0, 0]], dtype=np.uint8)]
    out = iou_dice(pred, true)
    assert out.loc["defect", "iou"] == pytest.approx(0.5)
    assert out.loc["defect", "dice"] == pytest.approx(2 / 3)


def test_binarize_mask_rule() -> None:
    assert binarize_mask(np.array([0, 1, 1])).tolist() == [False, True, True]
    assert binarize_mask(np.array([0, 127, 128, 255])).tolist() == [False, False, True, True]
    assert binarize_mask(np.array([0.0, 0.4, 0.6])).tolist() == [False, False, True]
    assert binarize_mask(np.array([True, False])).tolist() == [True, False]
