"""The manifest layout: a CSV or Parquet table, one row per image (or per box).

Columns: ``path`` and ``label`` (required); ``sample_id``, ``part_id`` (optional); ``mask``
(optional: a mask image's path relative to the manifest's folder, empty for an image with no
defect pixels); ``x1, y1, x2, y2`` and ``box_class`` (optional ground-truth boxes, in pixels of
the original image). Every other column is metadata.

Boxes are written the way labelling tools export them (CVAT, Label Studio, the TensorFlow
object-detection CSV): **one row per box**, the image's columns repeated on each of its rows. An
image with no box has one row with empty box columns. ``box_class`` defaults to the row's label.
The rows of one image must agree on every column but the box columns.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from auditkit.data.build import boxes_table, finish
from auditkit.data.interface import Loaded, LoadOptions, Problem
from auditkit.data.manifest import REQUIRED_COLUMNS, Dataset, read_table, safe_relative_path
from auditkit.errors import DataError

BOX_FIELDS = ("x1", "y1", "x2", "y2")


def detect(path: Path) -> str | None:
    if path.is_file() and path.suffix.lower() in (".csv", ".parquet"):
        return f"{path.name} is a CSV/Parquet table"
    for name in ("manifest.csv", "manifest.parquet"):
        if path.is_dir() and (path / name).is_file():
            return f"it holds {name}"
    return None


def _manifest_file(path: Path) -> Path:
    if path.is_dir():
        for name in ("manifest.csv", "manifest.parquet"):
            if (path / name).is_file():
                return path / name
        raise DataError(f"expected a manifest file (CSV or Parquet), got a folder: {path}")
    return path


def _boxes(table: pd.DataFrame, name: str) -> tuple[pd.DataFrame, pd.DataFrame, list[Problem]]:
    """Split a one-row-per-box table into image rows and the boxes table."""
    present = [c for c in BOX_FIELDS if c in table.columns]
    if len(present) < len(BOX_FIELDS):
        missing = [c for c in BOX_FIELDS if c not in table.columns]
        raise DataError(f"manifest {name} has box column(s) {present} but lacks {missing}")
    has_box = (table[list(BOX_FIELDS)] != "").any(axis=1)
    rows: list[tuple[str, str, float, float, float, float]] = []
    problems = []
    box_class = table["box_class"] if "box_class" in table.columns else table["label"]
    picked = table[has_box]
    for sample_id, path, label, cls, *given in zip(
        picked["sample_id"],
        picked["path"],
        picked["label"],
        box_class[has_box],
        *(picked[c] for c in BOX_FIELDS),
        strict=True,
    ):
        try:
            x1, y1, x2, y2 = (float(v) for v in given)
        except ValueError:
            detail = f"box corners not numbers: {', '.join(map(str, given))}"
            problems.append(Problem("malformed_label", str(path), detail))
            continue
        rows.append((str(sample_id), str(cls or label), x1, y1, x2, y2))
    images = table.drop(columns=[c for c in (*BOX_FIELDS, "box_class") if c in table.columns])
    # the rows of one image repeat its columns: they must agree
    per_image = images.groupby("sample_id", sort=False).nunique()
    conflicting = per_image[(per_image > 1).any(axis=1)]
    if not conflicting.empty:
        column = conflicting.columns[(conflicting > 1).to_numpy()[0]][0]
        raise DataError(
            f"manifest {name}: the rows of {conflicting.index[0]!r} disagree on {column!r}"
        )
    images = images.drop_duplicates("sample_id").reset_index(drop=True)
    return images, boxes_table(rows), problems


def load(path: Path, options: LoadOptions) -> Loaded:
    manifest = _manifest_file(path).resolve()
    table = read_table(manifest)
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(
            f"manifest {manifest.name} lacks column(s) {', '.join(missing)}; "
            f"found: {', '.join(table.columns)}"
        )
    if table.empty:
        raise DataError(f"manifest {manifest.name} has no rows")
    root = manifest.parent
    table = table.fillna("")
    for column in table.columns:
        table[column] = table[column].astype(str).str.strip()
    table["path"] = [safe_relative_path(root, p) for p in table["path"]]
    if "sample_id" not in table.columns:
        table["sample_id"] = table["path"]
    table["sample_id"] = table["sample_id"].where(table["sample_id"] != "", table["path"])
    if (table["label"] == "").any():
        row = int((table["label"] == "").to_numpy().argmax())
        raise DataError(f"manifest {manifest.name}: empty label for {table['path'].iloc[row]!r}")
    if "mask" in table.columns:
        table["mask"] = [safe_relative_path(root, m) if m else "" for m in table["mask"]]

    boxes, problems = None, list[Problem]()
    if any(c in table.columns for c in BOX_FIELDS):
        table, boxes, problems = _boxes(table, manifest.name)
    table["is_defect"] = table["label"] != options.good_label
    return finish(root, manifest, "manifest", table, options, boxes=boxes, problems=problems)


def load_manifest(manifest: Path, *, good_label: str = "good") -> Dataset:
    """Read a manifest, check its paths, and hash every file (the columns, boxes and masks
    included are those of :func:`load`).

    Missing files are not an error here: they become rows with status ``unreadable`` so the
    report counts them. Decoding happens in replay, which marks undecodable files the same way.
    """
    return load(manifest, LoadOptions(format="manifest", good_label=good_label)).dataset
