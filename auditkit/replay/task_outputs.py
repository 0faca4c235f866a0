"""Replay outputs of the detection, anomaly and segmentation tasks (docs/run-format.md).

While a replay runs, each checkpoint shard ``shards/shard-NNNNNN.parquet`` may have two side
files, written (atomically) just before it, so a shard and its side files commit together:

* ``shard-NNNNNN.detections.parquet``: ``row, class, score, x1, y1, x2, y2`` (``class`` an
  index into the card's classes; boxes in original-image pixels);
* ``shard-NNNNNN.maps.npz``: per scored image, ``map_<row>`` (float16 anomaly or
  defect-probability map in original-image pixels) and ``label_<row>`` (uint8 predicted mask
  or class-index map) when the model gives one.

When the replay completes, :func:`write_run_outputs` writes into the run directory
``detections.parquet``, ``boxes.parquet`` (ground truth), ``maps/part-NNNNNN.npz`` with the
index ``maps.parquet``, and ``masks/part-NNNNNN.npz`` (ground-truth masks) with the index
``masks.parquet``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from auditkit.errors import DataError
from auditkit.models.adapters import Decoded
from auditkit.models.card import ModelCard
from auditkit.run import atomic_file, write_table_atomic

DETECTION_COLUMNS = ("sample_id", "class", "score", "x1", "y1", "x2", "y2")
GT_BOX_COLUMNS = ("sample_id", "class", "x1", "y1", "x2", "y2")
MAP_INDEX_COLUMNS = ("sample_id", "file", "map_key", "label_key", "height", "width")
MASK_INDEX_COLUMNS = ("sample_id", "file", "key", "height", "width", "status", "error")
#: ground-truth masks per ``masks/part-NNNNNN.npz``
MASKS_PER_FILE = 1024


@dataclass
class TaskExtras:
    """Detections and maps of some images, keyed by row of the samples table."""

    det_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    det: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))
    maps: dict[int, np.ndarray] = field(default_factory=dict)
    label_maps: dict[int, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_decoded(cls, decoded: Decoded, rows: np.ndarray, ok: np.ndarray) -> TaskExtras:
        """The extras of the images ``rows[ok]`` (``ok``: per decoded image)."""
        extras = cls()
        keep = np.flatnonzero(ok)
        if decoded.detections is not None and len(keep):
            dets = [decoded.detections[i] for i in keep]
            extras.det_rows = np.concatenate(
                [np.full(len(d), rows[i], dtype=np.int64) for i, d in zip(keep, dets, strict=True)]
            )
            extras.det = np.concatenate(dets).reshape(-1, 6)
        for i in keep:
            row = int(rows[i])
            if decoded.maps is not None:
                extras.maps[row] = decoded.maps[i].astype(np.float16)
            if decoded.label_maps is not None:
                extras.label_maps[row] = decoded.label_maps[i].astype(np.uint8)
        return extras

    @classmethod
    def concat(cls, parts: Sequence[TaskExtras | None]) -> TaskExtras:
        out = cls()
        present = [p for p in parts if p is not None]
        if present:
            out.det_rows = np.concatenate([p.det_rows for p in present])
            out.det = np.concatenate([p.det for p in present]).reshape(-1, 6)
            for p in present:
                out.maps.update(p.maps)
                out.label_maps.update(p.label_maps)
        return out

    def empty(self) -> bool:
        return not len(self.det_rows) and not self.maps and not self.label_maps


def _atomic(target: Path, write: Any) -> None:
    with atomic_file(target) as handle:
        write(handle)


def _savez(handle: Any, arrays: dict[str, np.ndarray]) -> None:
    np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]


def _shard_files(shard_dir: Path, index: int) -> tuple[Path, Path]:
    stem = f"shard-{index:06d}"
    return shard_dir / f"{stem}.detections.parquet", shard_dir / f"{stem}.maps.npz"


def write_shard_extras(shard_dir: Path, index: int, extras: TaskExtras) -> None:
    """The side files of shard ``index`` (before the shard itself is committed)."""
    det_path, map_path = _shard_files(shard_dir, index)
    table = pd.DataFrame(
        {
            "row": extras.det_rows.astype(np.int64),
            "class": extras.det[:, 5].astype(np.int64),
            "score": extras.det[:, 4],
            "x1": extras.det[:, 0],
            "y1": extras.det[:, 1],
            "x2": extras.det[:, 2],
            "y2": extras.det[:, 3],
        }
    )
    _atomic(det_path, lambda tmp: table.to_parquet(tmp, index=False))
    arrays = {f"map_{r}": m for r, m in extras.maps.items()}
    arrays.update({f"label_{r}": m for r, m in extras.label_maps.items()})
    _atomic(map_path, lambda tmp: _savez(tmp, arrays))


def read_shard_detections(shard_dir: Path, index: int) -> TaskExtras:
    """Detections of shard ``index`` (its maps stay on disk: :func:`write_run_outputs` links
    them into the run directory)."""
    det_path, _ = _shard_files(shard_dir, index)
    extras = TaskExtras()
    if det_path.exists():
        t = pd.read_parquet(det_path)
        extras.det_rows = t["row"].to_numpy(dtype=np.int64)
        extras.det = np.column_stack(
            [t[c].to_numpy(dtype=np.float64) for c in ("x1", "y1", "x2", "y2", "score", "class")]
        ).reshape(-1, 6)
    return extras


def _stale(run_path: Path) -> None:
    for name in ("detections.parquet", "boxes.parquet", "maps.parquet", "masks.parquet"):
        (run_path / name).unlink(missing_ok=True)
    for folder in ("maps", "masks"):
        if (run_path / folder).is_symlink():  # remove the link, never what it points at
            (run_path / folder).unlink()
        elif (run_path / folder).exists():
            shutil.rmtree(run_path / folder)


def remove_outputs(run_path: Path) -> None:
    """A fresh replay removes the task files of an earlier one."""
    _stale(run_path)


def _map_index(
    run_path: Path, shard_dir: Path, n_shards: int, sample_ids: np.ndarray
) -> pd.DataFrame:
    """Each shard's maps as ``maps/part-NNNNNN.npz``; index them (row order)."""
    records: list[dict[str, Any]] = []
    target_dir = run_path / "maps"
    for index in range(n_shards):
        _, src = _shard_files(shard_dir, index)
        if not src.exists():
            continue
        with np.load(src) as data:
            keys = list(data.files)
            shapes = {k: data[k].shape for k in keys if k.startswith("map_")}
        labels = {k[len("label_") :] for k in keys if k.startswith("label_")}
        rows = sorted({int(k.split("_", 1)[1]) for k in keys})
        if not rows:
            continue
        target_dir.mkdir(exist_ok=True)
        name = f"maps/part-{index:06d}.npz"
        # linked (or copied), not moved: a crash before run.json leaves the shards whole for
        # --resume; the checkpoint's removal then drops the originals
        try:
            os.link(src, run_path / name)
        except OSError:
            shutil.copy2(src, run_path / name)
        for row in rows:
            shape = shapes.get(f"map_{row}")
            records.append(
                {
                    "_row": row,
                    "sample_id": str(sample_ids[row]),
                    "file": name,
                    "map_key": f"map_{row}" if shape is not None else "",
                    "label_key": f"label_{row}" if str(row) in labels else "",
                    "height": int(shape[0]) if shape is not None else 0,
                    "width": int(shape[1]) if shape is not None else 0,
                }
            )
    table = pd.DataFrame(records, columns=["_row", *MAP_INDEX_COLUMNS])
    return table.sort_values("_row", kind="stable").drop(columns="_row").reset_index(drop=True)


def _mask_index(run_path: Path, root: Path, manifest: Path, samples: pd.DataFrame) -> pd.DataFrame:
    """Ground-truth masks (samples column ``mask``, read by the data layer's one mask reader:
    files or COCO segmentations) as 0/1 uint8 in ``masks/part-*.npz``."""
    from auditkit.data.masks import COCO_PREFIX, read_mask

    records: list[dict[str, Any]] = []
    with_mask = np.flatnonzero(samples["mask"].fillna("").astype(str).str.strip().to_numpy() != "")
    for start in range(0, len(with_mask), MASKS_PER_FILE):
        name = f"masks/part-{start // MASKS_PER_FILE:06d}.npz"
        arrays: dict[str, np.ndarray] = {}
        for row in with_mask[start : start + MASKS_PER_FILE].tolist():
            rel = str(samples["mask"].iat[row]).strip()
            record = {"sample_id": str(samples["sample_id"].iat[row]), "file": "", "key": ""}
            if not rel.startswith(COCO_PREFIX) and not (root / rel).is_file():
                records.append(
                    {
                        **record,
                        "height": 0,
                        "width": 0,
                        "status": "missing",
                        "error": f"mask not found: {rel}",
                    }
                )
                continue
            try:
                pixels = read_mask(root, manifest, rel)
            except DataError as exc:
                records.append(
                    {**record, "height": 0, "width": 0, "status": "unreadable", "error": str(exc)}
                )
                continue
            assert pixels is not None  # rel is not empty
            mask = pixels.astype(np.uint8)
            key = f"mask_{row}"
            arrays[key] = mask
            records.append(
                {
                    **record,
                    "file": name,
                    "key": key,
                    "height": mask.shape[0],
                    "width": mask.shape[1],
                    "status": "ok",
                    "error": "",
                }
            )
        if arrays:
            (run_path / "masks").mkdir(exist_ok=True)
            _atomic(run_path / name, lambda tmp, a=arrays: _savez(tmp, a))
    return pd.DataFrame(records, columns=list(MASK_INDEX_COLUMNS))


def write_run_outputs(
    run_path: Path,
    shard_dir: Path,
    n_shards: int,
    samples: pd.DataFrame,
    classes: Sequence[str],
    *,
    task: str,
    root: Path,
    manifest: Path,
    boxes: pd.DataFrame | None,
) -> dict[str, Any]:
    """Write the task files of a completed replay; return what was written (for run.json)."""
    _stale(run_path)
    written: dict[str, Any] = {}
    sample_ids = samples["sample_id"].to_numpy(dtype=object)
    if task == "detection":
        extras = TaskExtras.concat([read_shard_detections(shard_dir, i) for i in range(n_shards)])
        names = np.asarray(list(classes), dtype=object)
        det = extras.det
        table = pd.DataFrame(
            {
                "sample_id": sample_ids[extras.det_rows].astype(str) if len(det) else [],
                "class": names[det[:, 5].astype(np.int64)] if len(det) else [],
                "score": det[:, 4],
                "x1": det[:, 0],
                "y1": det[:, 1],
                "x2": det[:, 2],
                "y2": det[:, 3],
            },
            columns=list(DETECTION_COLUMNS),
        )
        write_table_atomic(run_path / "detections.parquet", table)
        written["detections"] = len(table)
    if boxes is not None:
        gt = boxes[list(GT_BOX_COLUMNS)].copy()
        gt["sample_id"] = gt["sample_id"].astype(str)
        gt["class"] = gt["class"].astype(str)
        for c in GT_BOX_COLUMNS[2:]:
            gt[c] = gt[c].astype(np.float64)
        write_table_atomic(run_path / "boxes.parquet", gt.reset_index(drop=True))
        written["boxes"] = len(gt)
    if task in ("anomaly", "segmentation"):
        index = _map_index(run_path, shard_dir, n_shards, sample_ids)
        write_table_atomic(run_path / "maps.parquet", index)
        written["maps"] = len(index)
    if "mask" in samples.columns:
        masks = _mask_index(run_path, root, manifest, samples)
        write_table_atomic(run_path / "masks.parquet", masks)
        written["masks"] = int((masks["status"] == "ok").sum())
        written["masks_unreadable"] = int((masks["status"] != "ok").sum())
    return written


class NpzArrays:
    """Arrays named by an index (``file`` + key columns) under a run directory, read one at a
    time (the open file is cached), so metrics stream over maps without holding them all."""

    def __init__(self, run_path: Path) -> None:
        self.run_path = run_path
        self._name: str | None = None
        self._data: Any = None

    def get(self, file: str, key: str) -> np.ndarray:
        if file != self._name:
            self.close()
            self._data = np.load(self.run_path / file)
            self._name = file
        return np.asarray(self._data[key])

    def close(self) -> None:
        if self._data is not None:
            self._data.close()
        self._data = None
        self._name = None


def task_predictions_table(
    samples: pd.DataFrame, scores: np.ndarray, card: ModelCard, columns: Sequence[str]
) -> pd.DataFrame:
    """``predictions.parquet`` for the tasks other than a softmax classifier.

    ``score`` (the image's defect score) and ``is_reject``:

    * sigmoid classifier: the highest probability of the positive classes; ``>= threshold``;
    * detection: the highest box score of the positive classes (0 without boxes);
      ``>= operating_threshold``; ``pred_label`` the class of that box when rejected;
    * anomaly: ``pred_score``; ``is_reject`` the model's ``pred_label`` when
      ``maps.threshold_source`` is ``model``, else ``pred_score >= operating_threshold``;
      the model's own decision is kept in ``model_label`` (-1 when it gives none);
    * segmentation: the highest pixel defect probability (per positive class for class maps).

    ``pred_label`` is ``good_class`` for accepted images; ``score__<column>`` holds every summary
    column (:attr:`auditkit.models.adapters.Adapter.columns`).
    """
    ok = np.flatnonzero(samples["status"].to_numpy() == "ok")
    s = scores[ok]
    cols = list(columns)
    positive = [cols.index(c) for c in card.positive_classes if c in cols]
    names = np.asarray(cols, dtype=object)
    if positive:  # class-wise columns: classifier, detection, segmentation classes
        sub = s[:, positive]
        score = sub.max(axis=1) if len(s) else np.zeros(0)
        best = names[positive][sub.argmax(axis=1)] if len(s) else np.zeros(0, dtype=object)
    else:  # one score column: anomaly pred_score, defect map
        score = s[:, 0]
        best = np.full(len(s), card.positive_classes[0], dtype=object)
    is_reject = score >= card.operating_threshold
    extra: dict[str, Any] = {}
    if card.task == "anomaly":
        extra["model_label"] = s[:, 1].astype(np.int64)
        if card.maps.threshold_source == "model":
            is_reject = s[:, 1] > 0.5
    if card.task == "classification":
        pred_label = names[s.argmax(axis=1)] if len(s) else np.zeros(0, dtype=object)
    else:
        pred_label = np.where(is_reject, best, card.good_class).astype(object)
    table = pd.DataFrame(
        {
            "sample_id": samples["sample_id"].to_numpy()[ok],
            "score": score.astype(np.float64),
            "pred_label": pred_label,
            "is_reject": is_reject.astype(bool),
            **extra,
        }
    )
    for j, name in enumerate(cols):
        table[f"score__{name}"] = s[:, j]
    return table
