"""Anomaly and segmentation metrics: image and pixel AUROC, AUPRO, F1-max, IoU and Dice.

Definitions follow anomalib's (``../shared/DOMAIN.md`` §6). Pixel metrics take sequences of
2-D arrays (one ground-truth mask and one anomaly map per image) and are memory-bounded: they
read one map at a time into a histogram over score bins, never all pixels at once.

**Masks.** A ground-truth mask is a 2-D array read by :func:`binarize_mask`: a boolean mask as
it is; a mask whose values all lie in ``[0, 1]`` (0/1 masks) has foreground ``> 0.5``; any other
mask is 8-bit grayscale (0–255) with foreground ``> 127``.

**Resolution of the streaming histograms.** With ``bins=B`` the score range ``[lo, hi]`` (the
smallest and largest score over all maps, found in a first pass, or ``score_range``) is cut into
``B`` equal bins, bin ``floor((s - lo) / (hi - lo) * B)`` (clipped to ``[0, B - 1]``). Every
threshold of the curves lies on a bin edge and scores inside one bin count as tied. The result
is exact (equal to the all-pixels computation) whenever each bin holds at most one distinct
score, e.g. for 8-bit quantised maps, or maps quantised to a grid of step at least
``(hi - lo) / B``. Otherwise the pixel-AUROC error is at most
``0.5 * sum_b P_b N_b / (P N)`` (the pairs of positive and negative pixels sharing a bin, which
count as half-ordered), and AUPRO moves by at most the change of the curve inside one bin.
For float16 maps whose scores span at most ``[0, 1]``, the default ``B = 2**16`` gives every
distinct value at or above ``2**-6`` its own bin (exact there, as for 8-bit maps).
``bins=None`` is the exact method: every distinct score is its own threshold (memory
proportional to the number of pixels, for small sets and for tests).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage

__all__ = [
    "DEFAULT_BINS",
    "aupro",
    "binarize_mask",
    "f1_max",
    "image_auroc",
    "iou_dice",
    "pixel_auroc",
]

#: Score bins of the streaming histograms (see the module docstring for the resolution).
DEFAULT_BINS = 2**16

_FloatArray = npt.NDArray[np.float64]
_IntArray = npt.NDArray[np.int64]


def binarize_mask(mask: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Foreground of a ground-truth mask: boolean as is; values in ``[0, 1]``: ``> 0.5``;
    otherwise 0–255 grayscale: ``> 127``.

    A 0–255 mask whose values are all 0 or 1 is thus read as a 0/1 mask.
    """
    m = np.asarray(mask)
    if m.dtype == np.bool_:
        return m
    if not np.issubdtype(m.dtype, np.number):
        raise ValueError(f"a mask must be numeric or boolean, got dtype {m.dtype}")
    if m.size == 0:
        return np.zeros(m.shape, dtype=bool)
    if np.issubdtype(m.dtype, np.floating) and not np.isfinite(m).all():
        raise ValueError("a mask has NaN or infinite values")
    if m.min() >= 0 and m.max() <= 1:
        return np.asarray(m > 0.5)
    return np.asarray(m > 127)


def _pairs(masks: Sequence[npt.ArrayLike], maps: Sequence[npt.ArrayLike]) -> Iterator[Any]:
    """``(foreground, scores)`` per image, one image at a time, shapes checked."""
    if len(masks) != len(maps):
        raise ValueError(f"{len(masks)} masks but {len(maps)} maps")

    def gen() -> Iterator[Any]:
        for i, (mk, mp) in enumerate(zip(masks, maps, strict=True)):
            fg = binarize_mask(mk)
            s = np.asarray(mp, dtype=np.float64)
            if fg.ndim != 2 or s.ndim != 2:
                raise ValueError(f"image {i}: masks and maps must be 2-D")
            if fg.shape != s.shape:
                raise ValueError(f"image {i}: mask shape {fg.shape} != map shape {s.shape}")
            yield fg, s

    return gen()


def map_score_range(maps: Sequence[npt.ArrayLike]) -> tuple[float, float]:
    """The smallest and largest score over all *maps* (empty maps skipped); a NaN or infinite
    score is a ``ValueError`` naming the map."""
    lo, hi = np.inf, -np.inf
    for i, mp in enumerate(maps):
        s = np.asarray(mp, dtype=np.float64)
        if s.size == 0:
            continue
        if not np.isfinite(s).all():
            raise ValueError(f"map {i} has NaN or infinite scores")
        lo = min(lo, float(s.min()))
        hi = max(hi, float(s.max()))
    if not np.isfinite(lo):
        raise ValueError("no pixels")
    return lo, hi


def _bin_index(s: _FloatArray, lo: float, hi: float, bins: int) -> _IntArray:
    if hi <= lo:
        return np.zeros(s.shape, dtype=np.int64)
    idx = np.floor((s - lo) * (bins / (hi - lo)))
    return np.clip(idx, 0, bins - 1).astype(np.int64)


class _Hist:
    """Per-threshold-bin sums of several pixel weights; bins ascending in score.

    Streaming (``bins`` an int): fixed equal-width bins over ``[lo, hi]``. Exact (``bins`` None):
    the pieces are kept and binned by distinct score at the end.
    """

    def __init__(self, bins: int | None, lo: float, hi: float, n: int) -> None:
        self.bins, self.lo, self.hi, self.n = bins, lo, hi, n
        self.sums = [np.zeros(bins or 0, dtype=np.float64) for _ in range(n)]
        self.pieces: list[tuple[_FloatArray, list[_FloatArray]]] = []

    def add(self, scores: _FloatArray, weights: list[_FloatArray]) -> None:
        if self.bins is None:
            self.pieces.append((scores.copy(), [w.astype(np.float64) for w in weights]))
            return
        idx = _bin_index(scores, self.lo, self.hi, self.bins)
        for acc, w in zip(self.sums, weights, strict=True):
            acc += np.bincount(idx, weights=w, minlength=self.bins)

    def result(self) -> list[_FloatArray]:
        if self.bins is not None:
            return self.sums
        if not self.pieces:
            return [np.zeros(0) for _ in range(self.n)]
        scores = np.concatenate([p[0] for p in self.pieces])
        _, inv = np.unique(scores, return_inverse=True)
        size = int(inv.max()) + 1 if inv.size else 0
        return [
            np.bincount(
                inv, weights=np.concatenate([p[1][j] for p in self.pieces]), minlength=size
            ).astype(np.float64)
            for j in range(self.n)
        ]


def _check_bins(bins: int | None) -> None:
    if bins is not None and (isinstance(bins, bool) or not isinstance(bins, int) or bins < 1):
        raise ValueError(f"bins must be a positive int or None, got {bins!r}")


def _descending_cumsum(h: _FloatArray) -> _FloatArray:
    """Totals at or above each threshold, from the highest threshold down, starting at 0."""
    return np.concatenate([[0.0], np.cumsum(h[::-1])])


def _trapezoid(y: _FloatArray, x: _FloatArray) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def pixel_auroc(
    masks: Sequence[npt.ArrayLike],
    maps: Sequence[npt.ArrayLike],
    *,
    bins: int | None = DEFAULT_BINS,
    score_range: tuple[float, float] | None = None,
) -> float:
    """Area under the ROC curve of all pixels of all images (anomalib's pixel AUROC).

    Positive = ground-truth foreground pixel (see :func:`binarize_mask`), score = the anomaly
    map's value. The ROC curve runs through one point per threshold (pixels with score at or
    above it are called anomalous), from ``(0, 0)`` to ``(1, 1)``; the area is by trapezoids, so
    tied scores count one half, as in scikit-learn's ``roc_auc_score`` on the flattened pixels.

    Parameters
    ----------
    masks, maps : sequences of 2-D arrays
        Ground-truth masks and anomaly maps, pairwise of the same shape.
    bins : int or None
        Histogram bins (memory-bounded; see the module docstring for the resolution), or None
        for the exact computation over every distinct score.
    score_range : (lo, hi), optional
        Range of the bins; scores outside are counted in the end bins. Default: the smallest
        and largest score over all maps (an extra pass over ``maps``).

    Raises :class:`ValueError` when there is no foreground or no background pixel.
    """
    _check_bins(bins)
    lo, hi = score_range if score_range is not None else map_score_range(maps)
    it = _pairs(masks, maps)
    hist = _Hist(bins, float(lo), float(hi), 2)
    for fg, s in it:
        if not np.isfinite(s).all():
            raise ValueError("a map has NaN or infinite scores")
        f = fg.ravel()
        hist.add(s.ravel(), [f.astype(np.float64), (~f).astype(np.float64)])
    pos, neg = hist.result()
    p_tot, n_tot = float(pos.sum()), float(neg.sum())
    if p_tot == 0 or n_tot == 0:
        raise ValueError("pixel AUROC needs both foreground and background pixels")
    tpr = _descending_cumsum(pos) / p_tot
    fpr = _descending_cumsum(neg) / n_tot
    return _trapezoid(tpr, fpr)


def area_to_limit(x: _FloatArray, y: _FloatArray, limit: float) -> float:
    """Trapezoid area under ``y(x)`` for ``x`` in ``[0, limit]``; ``x`` non-decreasing from 0,
    with ``y`` interpolated linearly at ``limit`` when the curve passes it between points."""
    k = int(np.searchsorted(x, limit, side="right"))  # points with x <= limit
    xs, ys = x[:k], y[:k]
    if k < x.size:
        x0, x1, y0, y1 = x[k - 1], x[k], y[k - 1], y[k]
        y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
        xs = np.append(xs, limit)
        ys = np.append(ys, y_lim)
    return _trapezoid(ys, xs)


def aupro(
    masks: Sequence[npt.ArrayLike],
    maps: Sequence[npt.ArrayLike],
    fpr_limit: float = 0.3,
    *,
    bins: int | None = DEFAULT_BINS,
    score_range: tuple[float, float] | None = None,
    connectivity: int = 8,
) -> float:
    """Normalised area under the per-region-overlap (PRO) curve up to ``fpr_limit``.

    * Regions: the connected components of each mask's foreground (:func:`scipy.ndimage.label`,
      8-connected by default as in anomalib and the MVTec AD evaluation code; ``connectivity=4``
      for edge neighbours only). ``R`` regions over all images.
    * At a threshold ``t`` (a pixel is called anomalous when its score ``>= t``):
      ``PRO(t) = (1/R) * sum_r |{p in r : s_p >= t}| / |r|`` and
      ``FPR(t) = |{p normal : s_p >= t}| / |{p normal}|`` over every normal (background) pixel
      of every image, including normal images.
    * The curve ``(FPR(t), PRO(t))`` from ``(0, 0)`` (threshold above every score) is integrated
      by trapezoids over ``FPR`` in ``[0, fpr_limit]``, interpolating ``PRO`` linearly at
      ``fpr_limit``, and divided by ``fpr_limit``.

    Each region's overlap is at most 1, so the result lies in ``[0, 1]`` (clipped against
    rounding; anomalib ≤ 2.2 could exceed 1, anomalib#3718).

    Parameters as :func:`pixel_auroc`; ``fpr_limit`` in ``(0, 1]``. Raises :class:`ValueError`
    when there is no foreground region or no normal pixel.
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must lie in (0, 1], got {fpr_limit!r}")
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    _check_bins(bins)
    structure = ndimage.generate_binary_structure(2, 2 if connectivity == 8 else 1)
    lo, hi = score_range if score_range is not None else map_score_range(maps)
    it = _pairs(masks, maps)
    hist = _Hist(bins, float(lo), float(hi), 2)
    n_regions = 0
    for fg, s in it:
        if not np.isfinite(s).all():
            raise ValueError("a map has NaN or infinite scores")
        lab, n = ndimage.label(fg, structure=structure)
        n_regions += int(n)
        lab_f = lab.ravel()
        sizes = np.bincount(lab_f, minlength=n + 1).astype(np.float64)
        sizes[0] = 1.0  # background: weight unused
        region_w = np.where(lab_f > 0, 1.0 / sizes[lab_f], 0.0)
        normal = (~fg.ravel()).astype(np.float64)
        hist.add(s.ravel(), [region_w, normal])
    overlap, neg = hist.result()
    n_tot = float(neg.sum())
    if n_regions == 0:
        raise ValueError("AUPRO needs at least one foreground region")
    if n_tot == 0:
        raise ValueError("AUPRO needs at least one normal pixel")
    fpr = np.minimum(_descending_cumsum(neg) / n_tot, 1.0)
    pro = np.minimum(_descending_cumsum(overlap) / n_regions, 1.0)
    value = area_to_limit(fpr, pro, float(fpr_limit)) / float(fpr_limit)
    return float(min(max(value, 0.0), 1.0))


def _binary_labels(labels: npt.ArrayLike, name: str = "labels") -> npt.NDArray[np.bool_]:
    y = np.asarray(labels).ravel()
    if y.dtype == np.bool_:
        return y
    if not np.all((y == 0) | (y == 1)):
        raise ValueError(f"{name} must be 0/1 or boolean")
    return y == 1


def _scores(scores: npt.ArrayLike, n: int) -> _FloatArray:
    s = np.asarray(scores, dtype=np.float64).ravel()
    if s.size != n:
        raise ValueError(f"{n} labels but {s.size} scores")
    if not np.isfinite(s).all():
        raise ValueError("scores have NaN or infinite values")
    return s


def image_auroc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve of image scores: ``P(s+ > s-) + P(s+ = s-) / 2``.

    Computed exactly from average ranks (Mann–Whitney U / ``(P N)``), equal to scikit-learn's
    ``roc_auc_score``. ``labels`` are 0/1 or boolean (1 = anomalous); both classes must occur.
    """
    from scipy.stats import rankdata

    y = _binary_labels(labels)
    s = _scores(scores, y.size)
    p = int(y.sum())
    n = int(y.size - p)
    if p == 0 or n == 0:
        raise ValueError("AUROC needs both positive and negative labels")
    ranks = rankdata(s)
    u = float(ranks[y].sum()) - p * (p + 1) / 2.0
    return u / (p * n)


def f1_max(labels: npt.ArrayLike, scores: npt.ArrayLike) -> tuple[float, float]:
    """Largest F1 over thresholds, and its threshold: ``(f1, threshold)``.

    A sample is called positive when ``score >= threshold``; thresholds range over the distinct
    scores. ``F1 = 2 TP / (2 TP + FP + FN)``. When several thresholds reach the maximum, the
    highest is returned (fewest rejects). ``labels`` 0/1 or boolean with at least one positive.
    Works for image scores and, flattened, for pixels.
    """
    y = _binary_labels(labels)
    s = _scores(scores, y.size)
    p = int(y.sum())
    if p == 0:
        raise ValueError("F1 needs at least one positive label")
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    tp = np.cumsum(y[order])
    called = np.arange(1, s.size + 1)
    last = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True])  # end of each tie group
    tp_t = tp[last].astype(np.float64)
    f1 = 2.0 * tp_t / (called[last] + p)
    best = int(np.argmax(f1))
    return float(f1[best]), float(s_sorted[last[best]])


def iou_dice(
    pred_masks: Sequence[npt.ArrayLike],
    true_masks: Sequence[npt.ArrayLike],
    classes: Mapping[str, int] | Sequence[int] | None = None,
) -> pd.DataFrame:
    """IoU and Dice per class, accumulated over all images.

    For class ``c``, with ``I`` its pixels predicted and true, ``T`` true and ``P`` predicted,
    summed over every image (dataset-level, as mmsegmentation and torchmetrics compute them):
    ``IoU = I / (T + P - I)`` and ``Dice = 2 I / (T + P)``; both NaN when ``T + P = 0``.

    Parameters
    ----------
    pred_masks, true_masks : sequences of 2-D arrays
        Predicted and true masks, pairwise of the same shape.
    classes : mapping or sequence, optional
        Label maps: ``{name: pixel value}`` or a sequence of pixel values (named by their
        value); other pixel values belong to no listed class. None (default): binary masks,
        read with :func:`binarize_mask`, as one class ``"defect"``.

    Returns
    -------
    DataFrame
        Indexed by class name: ``iou, dice, intersection, union, n_true, n_pred``.
    """
    if len(pred_masks) != len(true_masks):
        raise ValueError(f"{len(pred_masks)} predicted masks but {len(true_masks)} true masks")
    if classes is None:
        names = ["defect"]
        values = np.array([1], dtype=np.int64)
    elif isinstance(classes, Mapping):
        names = [str(k) for k in classes]
        values = np.array([int(v) for v in classes.values()], dtype=np.int64)
    else:
        values = np.array([int(v) for v in classes], dtype=np.int64)
        names = [str(v) for v in values.tolist()]
    if len(set(values.tolist())) != values.size:
        raise ValueError("classes map two names to one pixel value")
    k = values.size
    order = np.argsort(values)
    sorted_vals = values[order]

    def codes(m: npt.ArrayLike) -> _IntArray:
        if classes is None:
            return np.where(binarize_mask(m), 0, 1).astype(np.int64).ravel()
        a = np.asarray(m)
        whole = np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_
        if not whole and not np.all(a == np.round(a)):
            raise ValueError("label maps must hold whole numbers")
        a = a.astype(np.int64).ravel()
        pos = np.clip(np.searchsorted(sorted_vals, a), 0, k - 1)
        hit = sorted_vals[pos] == a
        return np.where(hit, order[pos], k).astype(np.int64)

    conf = np.zeros((k + 1) * (k + 1), dtype=np.int64)
    for i, (pm, tm) in enumerate(zip(pred_masks, true_masks, strict=True)):
        pa, ta = np.asarray(pm), np.asarray(tm)
        if pa.ndim != 2 or pa.shape != ta.shape:
            raise ValueError(
                f"image {i}: masks must be 2-D of one shape, got {pa.shape}, {ta.shape}"
            )
        conf += np.bincount(codes(ta) * (k + 1) + codes(pa), minlength=(k + 1) * (k + 1))
    cm = conf.reshape(k + 1, k + 1)[:k, :k]
    inter = np.diag(cm).astype(np.int64)
    n_true = conf.reshape(k + 1, k + 1)[:k, :].sum(axis=1)
    n_pred = conf.reshape(k + 1, k + 1)[:, :k].sum(axis=0)
    union = n_true + n_pred - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)
        tot = n_true + n_pred
        dice = np.where(tot > 0, 2.0 * inter / np.where(tot > 0, tot, 1), np.nan)
    out = pd.DataFrame(
        {
            "iou": iou.astype(np.float64),
            "dice": dice.astype(np.float64),
            "intersection": inter,
            "union": union.astype(np.int64),
            "n_true": n_true.astype(np.int64),
            "n_pred": n_pred.astype(np.int64),
        },
        index=pd.Index(names, name="class"),
    )
    return out
