"""Detection metrics: COCO mAP identical to pycocotools, and the inspection (accept/reject) view.

Inputs are the run-file tables of a detection task (``docs/run-format.md``):

* ground truth (``boxes.parquet``): ``sample_id, class, x1, y1, x2, y2``;
* predictions (``detections.parquet``): ``sample_id, class, score, x1, y1, x2, y2``;

with boxes in original-image pixels, ``x1 <= x2`` and ``y1 <= y2``. Box area is
``(x2 - x1) * (y2 - y1)`` and the IoU of two boxes is ``area(A ∩ B) / area(A ∪ B)`` on continuous
coordinates (no ``+ 1`` pixel convention), exactly as pycocotools computes it for ``bbox``.

:func:`coco_metrics` gives the COCO numbers. :func:`detection_decisions` turns boxes into one
accept/reject decision per image, and :func:`inspection_rates` gives escape and overkill rates of
those decisions with binomial bounds, so a detector is judged in the same words as a classifier.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from auditkit.metrics.classification import Rate
from auditkit.metrics.stats import binomial_interval

__all__ = [
    "BOX_COLUMNS",
    "box_iou",
    "coco_metrics",
    "decisions_by_part",
    "detection_decisions",
    "inspection_rates",
]

#: Coordinate columns of ``boxes.parquet`` and ``detections.parquet``.
BOX_COLUMNS: tuple[str, ...] = ("x1", "y1", "x2", "y2")


def _silent(*_args: Any, **_kwargs: Any) -> None:
    """A print function that prints nothing (faster-coco-eval reports progress through one)."""


def _check_table(df: pd.DataFrame, name: str, *, score: bool) -> None:
    needed = ["sample_id", "class", *(["score"] if score else []), *BOX_COLUMNS]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; it needs {needed}")
    coords = df[list(BOX_COLUMNS)].to_numpy(dtype=np.float64)
    if not np.isfinite(coords).all():
        raise ValueError(f"{name} has non-finite box coordinates")
    if np.any(coords[:, 2] < coords[:, 0]) or np.any(coords[:, 3] < coords[:, 1]):
        raise ValueError(f"{name} has boxes with x2 < x1 or y2 < y1")
    if score and not np.isfinite(df["score"].to_numpy(dtype=np.float64)).all():
        raise ValueError(f"{name} has non-finite scores")


def _index_of(
    values: pd.Series, universe: Sequence[Any], what: str, table: str
) -> npt.NDArray[np.int64]:
    """Position of each value in ``universe``; unknown values raise."""
    pos = pd.Index(list(universe)).get_indexer(values)
    if np.any(pos < 0):
        unknown = sorted({str(v) for v in values[pos < 0]})[:5]
        raise ValueError(f"{table} has {what} not in the given {what}s: {unknown}")
    return pos.astype(np.int64)


def box_iou(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """IoU matrix of boxes ``a`` (``(n, 4)``) against ``b`` (``(m, 4)``), each ``x1, y1, x2, y2``.

    ``iou[i, j] = |a_i ∩ b_j| / |a_i ∪ b_j|`` with areas on continuous coordinates; a pair whose
    union is empty (two zero-area boxes) has IoU 0.
    """
    aa = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    bb = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.minimum(aa[:, None, 2], bb[None, :, 2]) - np.maximum(aa[:, None, 0], bb[None, :, 0])
    ih = np.minimum(aa[:, None, 3], bb[None, :, 3]) - np.maximum(aa[:, None, 1], bb[None, :, 1])
    inter = np.clip(iw, 0.0, None) * np.clip(ih, 0.0, None)
    area_a = (aa[:, 2] - aa[:, 0]) * (aa[:, 3] - aa[:, 1])
    area_b = (bb[:, 2] - bb[:, 0]) * (bb[:, 3] - bb[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return iou.astype(np.float64)


def _coco_annotations(
    df: pd.DataFrame, img_pos: npt.NDArray[np.int64], cat_pos: npt.NDArray[np.int64], *, score: bool
) -> list[dict[str, Any]]:
    """COCO ``bbox`` annotation dicts (ids from 1; image and category ids are 1-based positions)."""
    c = df[list(BOX_COLUMNS)].to_numpy(dtype=np.float64)
    w = c[:, 2] - c[:, 0]
    h = c[:, 3] - c[:, 1]
    x1 = c[:, 0].tolist()
    y1 = c[:, 1].tolist()
    wl = w.tolist()
    hl = h.tolist()
    area = (w * h).tolist()
    imgs = (img_pos + 1).tolist()
    cats = (cat_pos + 1).tolist()
    records = [
        {
            "id": i + 1,
            "image_id": imgs[i],
            "category_id": cats[i],
            "bbox": [x1[i], y1[i], wl[i], hl[i]],
            "area": area[i],
            "iscrowd": 0,
        }
        for i in range(len(x1))
    ]
    if score:
        for record, value in zip(
            records, df["score"].to_numpy(dtype=np.float64).tolist(), strict=True
        ):
            record["score"] = value
    return records


def _summarize(s: npt.NDArray[np.float64]) -> float | None:
    """pycocotools' ``_summarize``: the mean of entries ``> -1``; None where it would give -1."""
    valid = s[s > -1]
    return float(np.mean(valid)) if valid.size else None


def coco_metrics(
    gt: pd.DataFrame,
    detections: pd.DataFrame,
    *,
    image_ids: Sequence[Any],
    classes: Sequence[str],
    image_sizes: Mapping[Any, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """COCO box metrics, identical to pycocotools ``COCOeval(iouType="bbox")``.

    The evaluation engine is faster-coco-eval (Apache-2.0), a C++ port of pycocotools'
    ``evaluate``/``accumulate`` with identical results; the COCO dictionaries are built in memory
    and the engine prints nothing. Every ground-truth box is a non-crowd object whose area is its
    box area ``w * h``; each detection's area is ``w * h`` as in pycocotools' ``loadRes``.

    Definitions (pycocotools defaults): 10 IoU thresholds ``0.50:0.05:0.95``; 101 recall points
    ``0:0.01:1``; at most 100 detections per image and class, highest scores first; area ranges
    all ``[0, 1e10]``, small ``[0, 32²]``, medium ``[32², 96²]``, large ``[96², 1e10]``. For each
    class, IoU threshold and area range, detections are matched greedily by score to the
    unmatched ground truth of highest IoU (at least the threshold), and precision is interpolated
    (made monotone) and sampled at the 101 recall points; AP is the mean of those samples.

    Parameters
    ----------
    gt : DataFrame
        Ground truth ``sample_id, class, x1, y1, x2, y2``.
    detections : DataFrame
        Predictions ``sample_id, class, score, x1, y1, x2, y2``.
    image_ids : sequence
        Every evaluated image, including those with no ground truth or no detections (an image
        without ground truth still contributes its detections as false positives). Boxes of
        other images raise :class:`ValueError`.
    classes : sequence of str
        The detector's class names. A box of another class raises :class:`ValueError`.
    image_sizes : mapping, optional
        ``sample_id -> (width, height)``, recorded in the COCO image entries. Box metrics do not
        depend on it.

    Returns
    -------
    dict
        ``map`` (AP@[.50:.95]), ``map_50``, ``map_75``, ``map_small``, ``map_medium``,
        ``map_large``, ``ar_1``, ``ar_10``, ``ar_100`` (AR@100: recall with at most 100
        detections per image, averaged over IoU thresholds and classes), ``ar_small``,
        ``ar_medium``, ``ar_large`` -- pycocotools' 12 ``stats`` in that order -- and
        ``ap_per_class`` (class -> AP@[.50:.95] over all areas), ``ap50_per_class``. A value that
        pycocotools reports as ``-1`` (no ground truth to average over) is None here. Averages
        over classes include only classes with ground truth.
    """
    from faster_coco_eval import COCO, COCOeval_faster

    _check_table(gt, "ground truth", score=False)
    _check_table(detections, "detections", score=True)
    ids = list(image_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("image_ids has duplicates")
    names = [str(c) for c in classes]
    if len(set(names)) != len(names):
        raise ValueError("classes has duplicates")
    sizes = dict(image_sizes or {})
    images = []
    for i, sid in enumerate(ids):
        w, h = sizes.get(sid, (0, 0))
        images.append({"id": i + 1, "width": int(w), "height": int(h), "file_name": str(sid)})
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(names)]

    gt_img = _index_of(gt["sample_id"], ids, "sample_id", "ground truth")
    gt_cat = _index_of(gt["class"].astype(str), names, "class", "ground truth")
    dt_img = _index_of(detections["sample_id"], ids, "sample_id", "detections")
    dt_cat = _index_of(detections["class"].astype(str), names, "class", "detections")

    coco_gt = COCO(print_function=_silent)
    coco_gt.dataset = {
        "images": images,
        "categories": categories,
        "annotations": _coco_annotations(gt, gt_img, gt_cat, score=False),
    }
    coco_gt.createIndex()
    coco_dt = COCO(print_function=_silent)
    coco_dt.dataset = {
        "images": images,
        "categories": categories,
        "annotations": _coco_annotations(detections, dt_img, dt_cat, score=True),
    }
    coco_dt.createIndex()

    ev = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=_silent)
    ev.params.imgIds = list(range(1, len(ids) + 1))
    ev.params.catIds = list(range(1, len(names) + 1))
    ev.evaluate()
    ev.accumulate()

    p = ev.params
    precision = np.asarray(ev.eval["precision"], dtype=np.float64)  # [T, R, K, A, M]
    recall = np.asarray(ev.eval["recall"], dtype=np.float64)  # [T, K, A, M]
    iou_thrs = np.asarray(p.iouThrs)
    t50 = np.where(iou_thrs == 0.5)[0]
    t75 = np.where(iou_thrs == 0.75)[0]
    area = {label: i for i, label in enumerate(p.areaRngLbl)}
    m = {d: i for i, d in enumerate(p.maxDets)}
    m100 = m[100]
    a_all = area["all"]
    out: dict[str, Any] = {
        "map": _summarize(precision[:, :, :, a_all, m100]),
        "map_50": _summarize(precision[t50][:, :, :, a_all, m100]),
        "map_75": _summarize(precision[t75][:, :, :, a_all, m100]),
        "map_small": _summarize(precision[:, :, :, area["small"], m100]),
        "map_medium": _summarize(precision[:, :, :, area["medium"], m100]),
        "map_large": _summarize(precision[:, :, :, area["large"], m100]),
        "ar_1": _summarize(recall[:, :, a_all, m[1]]),
        "ar_10": _summarize(recall[:, :, a_all, m[10]]),
        "ar_100": _summarize(recall[:, :, a_all, m100]),
        "ar_small": _summarize(recall[:, :, area["small"], m100]),
        "ar_medium": _summarize(recall[:, :, area["medium"], m100]),
        "ar_large": _summarize(recall[:, :, area["large"], m100]),
    }
    out["ap_per_class"] = {
        name: _summarize(precision[:, :, k, a_all, m100]) for k, name in enumerate(names)
    }
    out["ap50_per_class"] = {
        name: _summarize(precision[t50][:, :, k, a_all, m100]) for k, name in enumerate(names)
    }
    return out


def detection_decisions(
    gt: pd.DataFrame,
    detections: pd.DataFrame,
    *,
    iou: float,
    score_threshold: float,
    image_ids: Sequence[Any],
    class_aware: bool = True,
) -> pd.DataFrame:
    """One accept/reject decision per image from boxes: the inspection view of a detector.

    Only detections with ``score >= score_threshold`` count. Per image:

    * ``is_defect``: the image has at least one ground-truth box;
    * ``is_reject``: at least one detection counts;
    * matching: counting detections, highest score first (ties in input order), each take the
      unmatched ground-truth box of highest IoU among those with ``IoU >= iou`` (and of the
      same class when ``class_aware``); a box matches at most one detection (the pycocotools
      greedy rule, at one IoU and one score threshold);
    * ``escaped``: the image has a defect and **none** of its ground-truth boxes is matched.

    So a defective image escapes when no prediction matches its defect, as the metrics issue
    words it: it is accepted, or it is rejected only for boxes elsewhere (a reject for the
    wrong reason is not a catch). A defective image with one of two defects found does not
    escape (the part is rejected for a real defect); the defect-level view is in ``n_gt`` and
    ``n_matched`` (``n_gt - n_matched`` defects missed).

    ``overkill`` is ``is_reject`` on an image without ground truth. A defective image that is
    neither escaped nor rejected cannot occur.

    Parameters
    ----------
    gt, detections : DataFrame
        Run-file tables (see the module docstring).
    iou : float
        Minimum IoU for a match, in ``(0, 1]``.
    score_threshold : float
        Minimum score for a detection to count.
    image_ids : sequence
        Every inspected image; boxes of other images raise :class:`ValueError`.
    class_aware : bool
        When True (default), a detection matches only ground truth of its class.

    Returns
    -------
    DataFrame
        One row per image, in ``image_ids`` order: ``sample_id, is_defect, is_reject, escaped,
        overkill, n_gt, n_detections, n_matched`` (``n_detections`` counts detections at or above
        the threshold).
    """
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"iou must lie in (0, 1], got {iou!r}")
    _check_table(gt, "ground truth", score=False)
    _check_table(detections, "detections", score=True)
    ids = list(image_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("image_ids has duplicates")
    n_img = len(ids)
    g_img = _index_of(gt["sample_id"], ids, "sample_id", "ground truth")
    d_img_all = _index_of(detections["sample_id"], ids, "sample_id", "detections")
    keep = detections["score"].to_numpy(dtype=np.float64) >= score_threshold
    d_img = d_img_all[keep]
    d_score = detections["score"].to_numpy(dtype=np.float64)[keep]
    d_box = detections[list(BOX_COLUMNS)].to_numpy(dtype=np.float64)[keep]
    g_box = gt[list(BOX_COLUMNS)].to_numpy(dtype=np.float64)
    g_cls = gt["class"].astype(str).to_numpy()
    d_cls = detections["class"].astype(str).to_numpy()[keep]

    n_gt = np.bincount(g_img, minlength=n_img)
    n_det = np.bincount(d_img, minlength=n_img)
    n_matched = np.zeros(n_img, dtype=np.int64)

    # group rows by image; detections by image then descending score (stable on input order)
    g_order = np.argsort(g_img, kind="stable")
    d_order = np.lexsort((-d_score, d_img))
    g_start = np.searchsorted(g_img[g_order], np.arange(n_img + 1))
    d_start = np.searchsorted(d_img[d_order], np.arange(n_img + 1))
    both = np.flatnonzero((n_gt > 0) & (n_det > 0))
    for i in both.tolist():
        gi = g_order[g_start[i] : g_start[i + 1]]
        di = d_order[d_start[i] : d_start[i + 1]]
        ious = box_iou(d_box[di], g_box[gi])
        if class_aware:
            ious = np.where(d_cls[di][:, None] == g_cls[gi][None, :], ious, -1.0)
        free = np.ones(gi.size, dtype=bool)
        for row in ious:
            cand = np.where(free & (row >= iou), row, -1.0)
            j = int(np.argmax(cand))
            if cand[j] >= iou:
                free[j] = False
        n_matched[i] = int(gi.size - free.sum())

    is_defect = n_gt > 0
    is_reject = n_det > 0
    return pd.DataFrame(
        {
            "sample_id": ids,
            "is_defect": is_defect,
            "is_reject": is_reject,
            "escaped": is_defect & (n_matched == 0),
            "overkill": ~is_defect & is_reject,
            "n_gt": n_gt.astype(np.int64),
            "n_detections": n_det.astype(np.int64),
            "n_matched": n_matched,
        }
    )


def decisions_by_part(
    decisions: pd.DataFrame, part_of: Mapping[Any, Any] | pd.Series
) -> pd.DataFrame:
    """Image decisions of :func:`detection_decisions` aggregated to parts (several views each).

    ``part_of`` maps every ``sample_id`` to its part (a mapping or a Series indexed by
    ``sample_id``). Per part: ``is_defect`` and ``is_reject`` if any of its images is; counts
    summed; ``escaped`` when the part has a defect and none of its ground-truth boxes, on any
    view, is matched (the image rule, applied to the part); ``overkill`` when a good part is
    rejected. Rows in order of first appearance, with ``part_id`` first.
    """
    lookup = part_of if isinstance(part_of, pd.Series) else pd.Series(dict(part_of))
    parts = decisions["sample_id"].map(lookup)
    if parts.isna().any():
        missing = decisions.loc[parts.isna(), "sample_id"].astype(str).tolist()[:5]
        raise ValueError(f"sample_id(s) without a part: {missing}")
    g = decisions.assign(part_id=parts.to_numpy()).groupby("part_id", sort=False)
    out = g.agg(
        is_defect=("is_defect", "any"),
        is_reject=("is_reject", "any"),
        n_images=("sample_id", "size"),
        n_gt=("n_gt", "sum"),
        n_detections=("n_detections", "sum"),
        n_matched=("n_matched", "sum"),
    ).reset_index()
    out.insert(3, "escaped", out["is_defect"] & (out["n_matched"] == 0))
    out.insert(4, "overkill", ~out["is_defect"] & out["is_reject"])
    return out


def inspection_rates(
    decisions: pd.DataFrame,
    *,
    level: float = 0.95,
    method: str = "clopper_pearson",
    sided: str = "one",
) -> pd.DataFrame:
    """Escape and overkill rates of :func:`detection_decisions` (images) or
    :func:`decisions_by_part` (parts) output, with binomial bounds.

    * ``escape_rate = #escaped / #is_defect`` (defective images none of whose defects is matched);
    * ``overkill_rate = #overkill / #(not is_defect)`` (good images with a counting detection);
    * ``box_miss_rate = sum(n_gt - n_matched) / sum(n_gt)`` (defects, not images, missed: boxes
      are not independent trials within an image, so read its bounds as indicative).

    Bounds from :func:`auditkit.metrics.stats.binomial_interval` at ``level``/``method``/
    ``sided``. A rate with ``n == 0`` has value, low and high NaN (no evidence: never 0).

    Returns a DataFrame indexed by rate name with columns ``k, n, value, low, high``.
    """
    need = {"is_defect", "escaped", "overkill", "n_gt", "n_matched"}
    if not need.issubset(decisions.columns):
        raise ValueError(f"decisions lacks columns {sorted(need - set(decisions.columns))}")
    d = decisions["is_defect"].to_numpy(dtype=bool)
    rates = {
        "escape_rate": Rate(k=int(decisions["escaped"].to_numpy(dtype=bool).sum()), n=int(d.sum())),
        "overkill_rate": Rate(
            k=int(decisions["overkill"].to_numpy(dtype=bool).sum()), n=int((~d).sum())
        ),
        "box_miss_rate": Rate(
            k=int((decisions["n_gt"] - decisions["n_matched"]).sum()),
            n=int(decisions["n_gt"].sum()),
        ),
    }
    rows: dict[str, dict[str, Any]] = {}
    for name, r in rates.items():
        low = high = math.nan
        if r.n:
            low, high = binomial_interval(r.k, r.n, level=level, method=method, sided=sided)
        value = r.value if r.value is not None else math.nan
        rows[name] = {"k": r.k, "n": r.n, "value": value, "low": low, "high": high}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "name"
    return out
