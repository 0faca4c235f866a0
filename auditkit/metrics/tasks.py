"""``metrics.json`` entries of the detection, anomaly and segmentation tasks, and the model's
size and compute (docs/metrics.md).

Pure: tables and sequences of 2-D arrays in (the caller may pass lazy sequences that read one
map at a time), entries out. Every entry has the ``auditkit.metrics/1`` keys ``name, slice,
unit, value, k, n, interval``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from auditkit.errors import DataError
from auditkit.metrics.detection import (
    coco_metrics,
    decisions_by_part,
    detection_decisions,
    inspection_rates,
)
from auditkit.metrics.segmentation import aupro, f1_max, image_auroc, iou_dice, pixel_auroc

__all__ = [
    "anomaly_entries",
    "class_overlap_entries",
    "detection_entries",
    "model_entries",
    "segmentation_entries",
]

#: COCO numbers written for a detector, in this order (names of :func:`coco_metrics`)
COCO_NAMES = (
    *("map", "map_50", "map_75"),
    *(f"map_{area}" for area in ("small", "medium", "large")),
    *(f"ar_{k}" for k in (1, 10, 100)),
)


def _entry(
    name: str,
    value: float | None,
    *,
    unit: str,
    slice_: dict[str, Any] | None = None,
    k: int | None = None,
    n: int | None = None,
    interval: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "slice": dict(slice_ or {}),
        "unit": unit,
        "value": None if value is None or not np.isfinite(value) else float(value),
        "k": k,
        "n": n,
        "interval": interval,
        **(extra or {}),
    }


def model_entries(complexity: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """``model_parameters``, ``model_flops_per_image`` (1 multiply-add = 2 FLOPs, Conv/Gemm/
    MatMul at batch 1) and ``model_file_bytes`` from run.json's ``model.complexity``."""
    if not complexity:
        return []
    return [
        _entry("model_parameters", complexity.get("parameters"), unit="model"),
        _entry(
            "model_flops_per_image",
            complexity.get("flops_per_image"),
            unit="model",
            extra={"rule": complexity.get("rule")},
        ),
        _entry("model_file_bytes", complexity.get("file_bytes"), unit="model"),
    ]


def detection_entries(
    samples: pd.DataFrame,
    gt: pd.DataFrame,
    detections: pd.DataFrame,
    *,
    classes: Sequence[str],
    match_iou: float,
    score_threshold: float,
    level: float,
    method: str,
    sided: str,
) -> list[dict[str, Any]]:
    """COCO box metrics over the scored images (pycocotools definitions, via
    :func:`auditkit.metrics.detection.coco_metrics`: ``map`` = AP@[.50:.95], ``map_50``,
    ``map_75``, ..., ``ar_100``; ``ap`` and ``ap_50`` per class, slice ``{"class": c}``), then
    the inspection view at the part level (:func:`detection_decisions` with the card's
    ``match_iou`` and the operating threshold, :func:`decisions_by_part`):
    ``detection_escape_rate`` (a defective part none of whose ground-truth boxes is matched by a
    detection), ``detection_overkill_rate`` and ``box_miss_rate`` (unit ``box``), with bounds.
    """
    ok = samples[samples["status"].to_numpy() == "ok"]
    ids = ok["sample_id"].astype(str).tolist()
    keep = set(ids)
    gt = gt[gt["sample_id"].astype(str).isin(keep)].assign(
        sample_id=lambda t: t["sample_id"].astype(str)
    )
    unknown = sorted(set(gt["class"].astype(str)) - set(classes))
    if unknown:
        raise DataError(
            f"ground-truth box classes not among the model card's classes: {', '.join(unknown)} "
            f"(card classes: {', '.join(classes)})"
        )
    detections = detections.assign(sample_id=detections["sample_id"].astype(str))
    coco = coco_metrics(gt, detections, image_ids=ids, classes=classes)
    out = [_entry(name, coco[name], unit="image", n=len(ids)) for name in COCO_NAMES]
    for key, name in (("ap_per_class", "ap"), ("ap50_per_class", "ap_50")):
        for cls, value in coco[key].items():
            out.append(_entry(name, value, unit="image", slice_={"class": cls}))
    decisions = detection_decisions(
        gt, detections, iou=match_iou, score_threshold=score_threshold, image_ids=ids
    )
    part_of = pd.Series(ok["part_id"].astype(str).to_numpy(), index=ids)
    parts = decisions_by_part(decisions, part_of)
    rates = inspection_rates(parts, level=level, method=method, sided=sided)
    for rate, name, unit in (
        ("escape_rate", "detection_escape_rate", "part"),
        ("overkill_rate", "detection_overkill_rate", "part"),
        ("box_miss_rate", "box_miss_rate", "box"),
    ):
        row = {str(k): v for k, v in rates.loc[rate].to_dict().items()}
        n = int(row["n"])
        interval = (
            {
                "low": float(row["low"]),
                "high": float(row["high"]),
                "method": method,
                "level": level,
                "sided": sided,
            }
            if n
            else None
        )
        out.append(
            _entry(
                name,
                row["value"],
                unit=unit,
                k=int(row["k"]),
                n=n,
                interval=interval,
                extra={"match_iou": match_iou, "score_threshold": score_threshold},
            )
        )
    return out


def anomaly_entries(samples: pd.DataFrame, predictions: pd.DataFrame) -> list[dict[str, Any]]:
    """Image-level anomaly metrics of the scored images: ``image_auroc`` (rank AUROC of
    ``score`` against ``is_defect``) and ``image_f1_max`` with its ``threshold`` (the highest
    score threshold reaching the maximum F1). Null when both classes are not present."""
    joined = samples[["sample_id", "is_defect"]].merge(
        predictions[["sample_id", "score"]], on="sample_id"
    )
    labels = joined["is_defect"].to_numpy(dtype=bool)
    scores = joined["score"].to_numpy(dtype=np.float64)
    n = len(joined)
    both = 0 < labels.sum() < n
    auroc = image_auroc(labels, scores) if both else None
    f1, threshold = f1_max(labels, scores) if labels.any() else (None, None)
    return [
        _entry("image_auroc", auroc, unit="image", n=n),
        _entry("image_f1_max", f1, unit="image", n=n, extra={"threshold": threshold}),
    ]


def segmentation_entries(
    masks: Sequence[npt.ArrayLike],
    maps: Sequence[npt.ArrayLike],
    pred_masks: Sequence[npt.ArrayLike],
    *,
    fpr_limit: float = 0.3,
) -> list[dict[str, Any]]:
    """Pixel metrics over images with a known ground truth (a mask, or no defect):
    ``pixel_auroc``, ``aupro`` (to FPR ``fpr_limit``, normalised), and ``iou``/``dice`` of the
    predicted masks (slice ``{"class": "defect"}``, accumulated over all images). AUROC/AUPRO
    are null when the images have no defect pixel (or no normal pixel)."""
    n = len(masks)
    out: list[dict[str, Any]] = []
    for name, fn in (("pixel_auroc", pixel_auroc), ("aupro", aupro)):
        try:
            value: float | None = fn(masks, maps)
        except ValueError:
            value = None
        extra = {"fpr_limit": fpr_limit} if name == "aupro" else {}
        out.append(_entry(name, value, unit="pixel", n=n, extra=extra))
    table = iou_dice(pred_masks, masks)
    for name in ("iou", "dice"):
        out.append(
            _entry(
                name,
                float(table[name].iloc[0]),
                unit="pixel",
                slice_={"class": "defect"},
                n=n,
            )
        )
    return out


def class_overlap_entries(
    pred_labels: Sequence[npt.ArrayLike],
    true_labels: Sequence[npt.ArrayLike],
    classes: Mapping[str, int],
) -> list[dict[str, Any]]:
    """``iou`` and ``dice`` per class (slice ``{"class": name}``) of class-index maps,
    accumulated over all images (:func:`auditkit.metrics.segmentation.iou_dice`)."""
    table = iou_dice(pred_labels, true_labels, classes=classes)
    out: list[dict[str, Any]] = []
    for name in ("iou", "dice"):
        for cls in table.index:
            value = float(table.loc[cls, name])
            out.append(
                _entry(name, value, unit="pixel", slice_={"class": str(cls)}, n=len(true_labels))
            )
    return out
