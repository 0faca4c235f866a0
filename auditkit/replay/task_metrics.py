"""``metrics.json`` entries read from the task files of a run directory (docs/run-format.md).

:func:`task_metric_entries` loads ``boxes.parquet``, ``detections.parquet`` and the maps and masks
(one array at a time, through lazy sequences) and hands them to the pure functions of
:mod:`auditkit.metrics.tasks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image

from auditkit.models.adapters import CLASS_INDEX_MAPS
from auditkit.models.card import ModelCard
from auditkit.replay.task_outputs import GT_BOX_COLUMNS, NpzArrays

if TYPE_CHECKING:  # scipy.stats loads in ~1 s: not at replay time
    from auditkit.metrics.tasks import Bootstrap


class _Lazy(Sequence[np.ndarray]):
    """Arrays made one at a time by ``make(i)`` (pixel metrics stream over them)."""

    def __init__(self, n: int, make: Any) -> None:
        self._n = n
        self._make = make

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._make(i) for i in range(*index.indices(self._n))]
        return self._make(int(index))


def _resized(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if values.shape == shape:
        return values
    image = Image.fromarray(values.astype(np.float32), mode="F")
    out = image.resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
    return np.asarray(out, dtype=np.float32)


def task_metric_entries(
    run_path: Path,
    info: dict[str, Any],
    card: ModelCard,
    samples: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    level: float,
    method: str,
    sided: str,
    bootstrap: Bootstrap | None = None,
) -> list[dict[str, Any]]:
    """The ``metrics.json`` entries of the task files in ``run_path`` (and the model's size and
    compute from run.json), via :mod:`auditkit.metrics.tasks`; ``bootstrap``: how their
    cluster-bootstrap intervals are drawn (none without).

    Pixel metrics use the images with a map and a known ground truth: a readable mask, or no
    defect (an all-background mask). A defective image without a mask is left out. A map whose
    size differs from its mask's is resized to it (bilinear). Predicted masks: the model's own
    (``pred_mask``; for class maps, pixels of a positive class), else ``map >=
    maps.pixel_threshold``.
    """
    from auditkit.metrics.tasks import (
        anomaly_entries,
        detection_entries,
        model_entries,
    )

    entries = model_entries(info.get("model", {}).get("complexity"))
    if card.task == "detection":
        gt_path = run_path / "boxes.parquet"
        gt = (
            pd.read_parquet(gt_path)
            if gt_path.exists()
            else pd.DataFrame(columns=list(GT_BOX_COLUMNS))
        )
        detections = pd.read_parquet(run_path / "detections.parquet")
        entries += detection_entries(
            samples,
            gt,
            detections,
            classes=list(card.classes),
            match_iou=card.detection.match_iou,
            score_threshold=card.operating_threshold,
            level=level,
            method=method,
            sided=sided,
            bootstrap=bootstrap,
        )
    if card.task == "anomaly":
        entries += anomaly_entries(samples, predictions, bootstrap)
    if card.task in ("anomaly", "segmentation") and (run_path / "maps.parquet").exists():
        convention = str(info.get("model", {}).get("convention", ""))
        entries += _pixel_entries(run_path, card, samples, convention, bootstrap)
    return entries


def _pixel_entries(
    run_path: Path,
    card: ModelCard,
    samples: pd.DataFrame,
    convention: str,
    bootstrap: Bootstrap | None = None,
) -> list[dict[str, Any]]:
    from auditkit.metrics.tasks import class_overlap_entries, segmentation_entries, slice_masks

    maps = pd.read_parquet(run_path / "maps.parquet")
    maps = maps[maps["map_key"] != ""]
    masks_path = run_path / "masks.parquet"
    masks = pd.read_parquet(masks_path) if masks_path.exists() else None
    mask_ref: dict[str, tuple[str, str]] = {}
    if masks is not None:
        good = masks[masks["status"] == "ok"]
        mask_ref = dict(
            zip(
                good["sample_id"].astype(str),
                zip(good["file"], good["key"], strict=True),
                strict=True,
            )
        )
    defect = dict(zip(samples["sample_id"].astype(str), samples["is_defect"], strict=True))
    known = [
        i
        for i, sid in enumerate(maps["sample_id"].astype(str))
        if sid in mask_ref or not defect.get(sid, True)
    ]
    rows = maps.iloc[known].reset_index(drop=True)
    if rows.empty or not mask_ref:
        return []
    map_reader, mask_reader = NpzArrays(run_path), NpzArrays(run_path)
    positive = [card.classes.index(c) for c in card.positive_classes if c in card.classes]
    shapes = list(zip(rows["height"].astype(int), rows["width"].astype(int), strict=True))

    def true_mask(i: int) -> np.ndarray:
        ref = mask_ref.get(str(rows["sample_id"].iat[i]))
        if ref is None:
            return np.zeros(shapes[i], dtype=np.uint8)
        return mask_reader.get(*ref)

    def score_map(i: int) -> np.ndarray:
        raw = map_reader.get(str(rows["file"].iat[i]), str(rows["map_key"].iat[i]))
        return _resized(raw.astype(np.float32), true_mask(i).shape)

    def pred_mask(i: int) -> np.ndarray:
        label_key = str(rows["label_key"].iat[i])
        if label_key:
            labels = map_reader.get(str(rows["file"].iat[i]), label_key)
            # a class-index map: pixels of a positive class; a pred_mask: its foreground
            classes_map = convention in CLASS_INDEX_MAPS
            pred = np.isin(labels, positive) if classes_map else labels > 0
            return _resized(pred.astype(np.float32), true_mask(i).shape) > 0.5
        return score_map(i) >= card.maps.pixel_threshold

    label_of = dict(zip(samples["sample_id"].astype(str), samples["label"], strict=True))
    index_of = {c: k for k, c in enumerate(card.classes)}
    no_class = 255  # a pixel value that is none of the card's classes

    def true_classes(i: int) -> np.ndarray:
        """The mask's defect pixels carry the image label's class, the rest the good class."""
        mask = true_mask(i)
        label = index_of.get(str(label_of.get(str(rows["sample_id"].iat[i]))), no_class)
        return np.where(mask > 0, label, index_of.get(card.good_class, no_class)).astype(np.int64)

    def pred_classes(i: int) -> np.ndarray:
        labels = map_reader.get(str(rows["file"].iat[i]), str(rows["label_key"].iat[i]))
        shape = true_mask(i).shape
        if labels.shape != shape:
            image = Image.fromarray(labels.astype(np.uint8), mode="L")
            labels = np.asarray(image.resize((shape[1], shape[0]), Image.Resampling.NEAREST))
        return labels.astype(np.int64)

    n = len(rows)
    try:
        part_of = dict(zip(samples["sample_id"].astype(str), samples["part_id"], strict=True))
        parts = [str(part_of[str(sid)]) for sid in rows["sample_id"]]
        slices = slice_masks(
            samples.set_index(samples["sample_id"].astype(str)).loc[
                rows["sample_id"].astype(str).tolist()
            ]
        )
        entries = segmentation_entries(
            _Lazy(n, true_mask),
            _Lazy(n, score_map),
            _Lazy(n, pred_mask),
            parts=parts,
            bootstrap=bootstrap,
            slices=slices,
        )
        if convention in CLASS_INDEX_MAPS and (rows["label_key"] != "").all():
            classes = {card.classes[k]: k for k in positive}
            entries += class_overlap_entries(
                _Lazy(n, pred_classes),
                _Lazy(n, true_classes),
                classes,
                parts=parts,
                bootstrap=bootstrap,
                slices=slices,
            )
        return entries
    finally:
        map_reader.close()
        mask_reader.close()
