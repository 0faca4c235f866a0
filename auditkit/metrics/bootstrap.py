"""Task metrics on weighted rows, for cluster-bootstrap intervals by part.

A bootstrap resample draws parts with replacement and keeps every image of each drawn part as
many times as it was drawn (:func:`auditkit.metrics.stats.cluster_bootstrap`). The same resample
is a vector of integer weights over the images (:func:`auditkit.metrics.stats.part_weights`):
each function here computes its metric for many weight vectors at once (one row of ``weights``
per resample), equal to the metric on the resampled (duplicated) rows. Pure; no I/O.

* :func:`weighted_auroc`: AUROC with mid-ranks (ties count one half), as
  ``sklearn.metrics.roc_auc_score(..., sample_weight=w)``;
* :func:`weighted_f1`: ``2 TP / (2 TP + FP + FN)`` of fixed decisions;
* :func:`evaluate_boxes` + :func:`weighted_ap`: COCO AP per IoU threshold and class exactly as
  pycocotools' ``evaluateImg`` / ``accumulate`` compute it (area "all", at most 100 detections
  per image and class), with each image's detections counted ``w`` times;
* :func:`pixel_image_stats` + :func:`weighted_pixel_auroc`, :func:`weighted_aupro`: the pixel
  histograms of :mod:`auditkit.metrics.segmentation` kept per image, summed with the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage

from auditkit.metrics.detection import BOX_COLUMNS, box_iou
from auditkit.metrics.segmentation import area_to_limit, binarize_mask

__all__ = [
    "BOOTSTRAP_BINS",
    "BoxEvaluation",
    "PixelStats",
    "evaluate_boxes",
    "pixel_image_stats",
    "weighted_ap",
    "weighted_aupro",
    "weighted_auroc",
    "weighted_f1",
    "weighted_overlap",
    "weighted_pixel_auroc",
]

_F = npt.NDArray[np.float64]
#: COCO's IoU thresholds 0.50:0.05:0.95 and recall points 0:0.01:1 (pycocotools ``Params``)
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
#: score bins of the per-image pixel histograms the pixel bootstraps sum
BOOTSTRAP_BINS = 1024
_CHUNK = 64  # resamples per vectorised step (bounds memory: chunk x T x detections)


def _weights(weights: npt.ArrayLike, n: int) -> _F:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2 or w.shape[1] != n:
        raise ValueError(f"weights must have shape (resamples, {n}), got {w.shape}")
    return w


def weighted_auroc(is_defect: npt.ArrayLike, score: npt.ArrayLike, weights: npt.ArrayLike) -> _F:
    """AUROC of ``score`` against ``is_defect`` for each row of ``weights`` (rows x units):
    ``sum_g P_g (N_<g + N_g / 2) / (P N)`` over the groups ``g`` of equal score, ``P_g`` and
    ``N_g`` the weighted defective and good units of the group. NaN where a row has no
    weighted defective or no good unit."""
    d = np.asarray(is_defect, dtype=bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    w = _weights(weights, d.size)
    _, group = np.unique(s, return_inverse=True)
    n_groups = int(group.max()) + 1 if group.size else 0
    onehot = np.zeros((d.size, n_groups), dtype=np.float64)
    onehot[np.arange(d.size), group] = 1.0
    pos = (w * d) @ onehot  # (R, G), groups in ascending score
    neg = (w * ~d) @ onehot
    below = np.cumsum(neg, axis=1) - neg
    p_tot, n_tot = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (pos * (below + neg / 2.0)).sum(axis=1) / (p_tot * n_tot)
    return np.where((p_tot > 0) & (n_tot > 0), auc, np.nan)


def weighted_f1(is_defect: npt.ArrayLike, is_reject: npt.ArrayLike, weights: npt.ArrayLike) -> _F:
    """``2 TP / (2 TP + FP + FN)`` of the decisions for each row of ``weights``; NaN when the
    denominator is 0."""
    d = np.asarray(is_defect, dtype=bool).ravel()
    r = np.asarray(is_reject, dtype=bool).ravel()
    w = _weights(weights, d.size)
    tp = w @ (d & r).astype(np.float64)
    fp = w @ (~d & r).astype(np.float64)
    fn = w @ (d & ~r).astype(np.float64)
    den = 2 * tp + fp + fn
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, 2 * tp / den, np.nan)


# --------------------------------------------------------------------------- COCO AP


@dataclass(frozen=True)
class BoxEvaluation:
    """pycocotools' per-image evaluation (``evaluateImg``, area "all", ``maxDets`` 100) kept
    for re-accumulation: per class, its detections in ``accumulate``'s order (score
    descending, stable on image order then the image's own order), each detection's image and
    whether it matched at each IoU threshold; and the ground-truth boxes per image and class."""

    classes: tuple[str, ...]
    n_images: int
    det_image: tuple[npt.NDArray[np.intp], ...]
    det_matched: tuple[npt.NDArray[np.bool_], ...]  # (T, D) per class
    gt_count: npt.NDArray[np.int64]  # (K, n_images)


def _match(ious: _F) -> npt.NDArray[np.bool_]:
    """pycocotools' greedy matching of score-ordered detections (rows) to ground truth
    (columns) at every IoU threshold: each detection takes the unmatched box of highest IoU
    at least ``min(t, 1 - 1e-10)``, the last such box on ties. Returns (T, D) matched."""
    t_count, (n_det, n_gt) = IOU_THRESHOLDS.size, ious.shape
    thr = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[:, None]
    taken = np.zeros((t_count, n_gt), dtype=bool)
    matched = np.zeros((t_count, n_det), dtype=bool)
    rows = np.arange(t_count)
    for d in range(n_det):
        cand = np.where(~taken & (ious[d][None, :] >= thr), ious[d][None, :], -1.0)
        last = n_gt - 1 - np.argmax(cand[:, ::-1], axis=1)  # the last of equal highest IoUs
        hit = cand[rows, last] >= 0
        taken[rows[hit], last[hit]] = True
        matched[hit, d] = True
    return matched


def evaluate_boxes(
    gt: pd.DataFrame,
    detections: pd.DataFrame,
    *,
    image_ids: Sequence[Any],
    classes: Sequence[str],
    max_dets: int = 100,
) -> BoxEvaluation:
    """Per-image, per-class matching of detections to ground truth as pycocotools does it
    (``iouType="bbox"``, no crowd boxes, area "all"): detections of one image and class sorted
    by score (stable), the first ``max_dets`` kept; :func:`_match` at each of the 10 IoU
    thresholds. Tables as :func:`auditkit.metrics.detection.coco_metrics` takes them."""
    ids = [str(i) for i in image_ids]
    pos = {sid: i for i, sid in enumerate(ids)}
    names = [str(c) for c in classes]
    g_img = gt["sample_id"].astype(str).map(pos).to_numpy()
    d_img = detections["sample_id"].astype(str).map(pos).to_numpy()
    if pd.isna(g_img).any() or pd.isna(d_img).any():
        raise ValueError("boxes of images not in image_ids")
    g_img, d_img = g_img.astype(np.intp), d_img.astype(np.intp)
    g_cls = gt["class"].astype(str).to_numpy()
    d_cls = detections["class"].astype(str).to_numpy()
    g_box = gt[list(BOX_COLUMNS)].to_numpy(dtype=np.float64)
    d_box = detections[list(BOX_COLUMNS)].to_numpy(dtype=np.float64)
    d_score = detections["score"].to_numpy(dtype=np.float64)
    gt_count = np.zeros((len(names), len(ids)), dtype=np.int64)
    det_image: list[npt.NDArray[np.intp]] = []
    det_matched: list[npt.NDArray[np.bool_]] = []
    for k, name in enumerate(names):
        gk = np.flatnonzero(g_cls == name)
        dk = np.flatnonzero(d_cls == name)
        gt_count[k] = np.bincount(g_img[gk], minlength=len(ids))
        # per image: its detections by score (stable), truncated; images in image_ids order
        order = dk[np.lexsort((-d_score[dk], d_img[dk]))]
        kept, flags = [], []
        starts = np.searchsorted(d_img[order], np.arange(len(ids) + 1))
        g_sorted = gk[np.argsort(g_img[gk], kind="stable")]
        g_starts = np.searchsorted(g_img[g_sorted], np.arange(len(ids) + 1))
        for i in range(len(ids)):
            di = order[starts[i] : starts[i + 1]][:max_dets]
            if di.size == 0:
                continue
            gi = g_sorted[g_starts[i] : g_starts[i + 1]]
            kept.append(di)
            if gi.size:
                flags.append(_match(box_iou(d_box[di], g_box[gi])))
            else:
                flags.append(np.zeros((IOU_THRESHOLDS.size, di.size), dtype=bool))
        if kept:
            dets = np.concatenate(kept)
            m = np.concatenate(flags, axis=1)
            glob = np.argsort(-d_score[dets], kind="mergesort")
            det_image.append(d_img[dets][glob].astype(np.intp))
            det_matched.append(m[:, glob])
        else:
            det_image.append(np.zeros(0, dtype=np.intp))
            det_matched.append(np.zeros((IOU_THRESHOLDS.size, 0), dtype=bool))
    return BoxEvaluation(tuple(names), len(ids), tuple(det_image), tuple(det_matched), gt_count)


def weighted_ap(ev: BoxEvaluation, weights: npt.ArrayLike) -> _F:
    """AP per resample, IoU threshold and class, shape (R, T, K): pycocotools' ``accumulate``
    with each image's detections and ground truth counted ``w`` times. Precision ``tp / (tp
    + fp)`` at each detection, made monotone from the right, sampled at the 101 recall
    points (0 past the last detection); AP is the mean of the samples; NaN where the class
    has no (weighted) ground truth (pycocotools' -1)."""
    w = _weights(weights, ev.n_images)
    n_res, n_t, n_k = w.shape[0], IOU_THRESHOLDS.size, len(ev.classes)
    out = np.full((n_res, n_t, n_k), np.nan)
    eps = np.spacing(1)
    for k in range(n_k):
        npig = w @ ev.gt_count[k].astype(np.float64)  # (R,)
        matched = ev.det_matched[k]
        # past the last matched detection recall stays and precision only falls: no recall
        # point samples there and the monotone envelope before it is unchanged, so cut it off
        hits = np.flatnonzero(matched.any(axis=0))
        keep = int(hits[-1]) + 1 if hits.size else min(1, matched.shape[1])
        tp_flags = matched[:, :keep].astype(np.float64)  # (T, D)
        det_image = ev.det_image[k][:keep]
        n_det = tp_flags.shape[1]
        for start in range(0, n_res, _CHUNK):
            wd = w[start : start + _CHUNK][:, det_image]  # (r, D)
            tp = np.cumsum(wd[:, None, :] * tp_flags[None], axis=2)
            fp = np.cumsum(wd, axis=1)[:, None, :] - tp
            with np.errstate(divide="ignore", invalid="ignore"):
                rc = tp / npig[start : start + _CHUNK, None, None]
            pr = tp / (fp + tp + eps)
            pr = np.maximum.accumulate(pr[..., ::-1], axis=2)[..., ::-1]
            q = _sample_at_recall(rc, pr) if n_det else np.zeros((*rc.shape[:2], 1))
            ap_k = q.mean(axis=2)
            ap_k[npig[start : start + _CHUNK] <= 0] = np.nan
            out[start : start + wd.shape[0], :, k] = ap_k
    return out


def _sample_at_recall(rc: _F, pr: _F) -> _F:
    """pycocotools' ``q[j] = pr[searchsorted(rc, recThrs[j], "left")]`` (0 past the end) for
    every row of (R, T, D) arrays at once. ``rc`` is non-decreasing along D, so the first d with
    ``rc[d] >= thr_j`` is the number of d whose count of thresholds ``<= rc[d]`` is at most j:
    the same float comparisons, vectorised."""
    n_res, n_t, n_det = rc.shape
    n_thr = RECALL_POINTS.size
    pos = np.searchsorted(RECALL_POINTS, rc, side="right")  # thresholds <= rc[d], in 0..n_thr
    rows = np.arange(n_res * n_t).reshape(n_res, n_t, 1)
    counts = np.bincount((rows * (n_thr + 1) + pos).ravel(), minlength=n_res * n_t * (n_thr + 1))
    first = np.cumsum(counts.reshape(n_res, n_t, n_thr + 1), axis=2)[..., :n_thr]
    inside = first < n_det
    q = np.take_along_axis(pr, np.minimum(first, n_det - 1), axis=2)
    return np.where(inside, q, 0.0)


# --------------------------------------------------------------------------- pixels


@dataclass(frozen=True)
class PixelStats:
    """Per image: histograms over ``bins`` equal score bins of ``[lo, hi]`` of its defect
    pixels (``pos``), normal pixels (``neg``) and region overlap weights (``overlap``: each
    pixel of a connected defect region weighs 1 / the region's size), and its region count;
    and its predicted / true / both defect pixel counts (IoU, Dice)."""

    pos: _F
    neg: _F
    overlap: _F
    regions: npt.NDArray[np.int64]
    intersection: npt.NDArray[np.int64]
    n_true: npt.NDArray[np.int64]
    n_pred: npt.NDArray[np.int64]


def pixel_image_stats(
    masks: Sequence[npt.ArrayLike],
    maps: Sequence[npt.ArrayLike],
    pred_masks: Sequence[npt.ArrayLike],
    *,
    score_range: tuple[float, float],
    bins: int = BOOTSTRAP_BINS,
    connectivity: int = 8,
) -> PixelStats:
    """:class:`PixelStats` of each image (one map read at a time), with the binning and region
    rule of :func:`auditkit.metrics.segmentation.pixel_auroc` / ``aupro``."""
    lo, hi = score_range
    structure = ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1)
    n = len(masks)
    pos, neg, ovl = (np.zeros((n, bins)) for _ in range(3))
    regions, inter, n_true, n_pred = (np.zeros(n, dtype=np.int64) for _ in range(4))
    for i in range(n):
        fg = binarize_mask(masks[i])
        s = np.asarray(maps[i], dtype=np.float64)
        pm = binarize_mask(pred_masks[i])
        if hi > lo:
            idx = np.clip(np.floor((s - lo) * (bins / (hi - lo))), 0, bins - 1).astype(np.int64)
        else:
            idx = np.zeros(s.shape, dtype=np.int64)
        lab, count = ndimage.label(fg, structure=structure)
        sizes = np.bincount(lab.ravel(), minlength=count + 1).astype(np.float64)
        sizes[0] = 1.0
        f, li = idx.ravel(), lab.ravel()
        pos[i] = np.bincount(f, weights=fg.ravel().astype(np.float64), minlength=bins)
        neg[i] = np.bincount(f, weights=(~fg).ravel().astype(np.float64), minlength=bins)
        ovl[i] = np.bincount(f, weights=np.where(li > 0, 1.0 / sizes[li], 0.0), minlength=bins)
        regions[i] = count
        inter[i] = int((fg & pm).sum())
        n_true[i] = int(fg.sum())
        n_pred[i] = int(pm.sum())
    return PixelStats(pos, neg, ovl, regions, inter, n_true, n_pred)


def _descending(h: _F) -> _F:
    """(R, B) histograms -> (R, B + 1) totals at or above each threshold, highest first."""
    return np.concatenate([np.zeros((h.shape[0], 1)), np.cumsum(h[:, ::-1], axis=1)], axis=1)


def weighted_pixel_auroc(stats: PixelStats, weights: npt.ArrayLike) -> _F:
    """Pixel AUROC (trapezoids over the binned ROC curve) per row of ``weights``."""
    w = _weights(weights, stats.pos.shape[0])
    tp, fp = _descending(w @ stats.pos), _descending(w @ stats.neg)
    p, n = tp[:, -1:], fp[:, -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr, fpr = tp / p, fp / n
        auc = np.sum((fpr[:, 1:] - fpr[:, :-1]) * (tpr[:, 1:] + tpr[:, :-1]) / 2.0, axis=1)
    return np.where((p[:, 0] > 0) & (n[:, 0] > 0), auc, np.nan)


def weighted_aupro(stats: PixelStats, weights: npt.ArrayLike, fpr_limit: float = 0.3) -> _F:
    """AUPRO to ``fpr_limit``, normalised, per row of ``weights`` (the regions of an image
    drawn twice count twice)."""
    w = _weights(weights, stats.pos.shape[0])
    fp = _descending(w @ stats.neg)
    ov = _descending(w @ stats.overlap)
    n_reg = w @ stats.regions.astype(np.float64)
    out = np.full(w.shape[0], np.nan)
    for r in range(w.shape[0]):
        if n_reg[r] <= 0 or fp[r, -1] <= 0:
            continue
        fpr = np.minimum(fp[r] / fp[r, -1], 1.0)
        pro = np.minimum(ov[r] / n_reg[r], 1.0)
        out[r] = min(max(area_to_limit(fpr, pro, fpr_limit) / fpr_limit, 0.0), 1.0)
    return out


def weighted_overlap(stats: PixelStats, weights: npt.ArrayLike) -> tuple[_F, _F]:
    """(IoU, Dice) of the predicted defect pixels per row of ``weights``: ``I / (T + P - I)``
    and ``2 I / (T + P)`` of the weighted sums; NaN when ``T + P = 0``."""
    w = _weights(weights, stats.pos.shape[0])
    i = w @ stats.intersection.astype(np.float64)
    t = w @ stats.n_true.astype(np.float64)
    p = w @ stats.n_pred.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(t + p > 0, i / (t + p - i), np.nan)
        dice = np.where(t + p > 0, 2 * i / (t + p), np.nan)
    return iou, dice
