"""Labelled data from a manifest (CSV or Parquet) into the samples table.

A manifest has one row per image with at least ``path`` and ``label``; ``sample_id`` and
``part_id`` are optional (``sample_id`` defaults to the path, ``part_id`` to ``sample_id``).
Every other column is metadata (line, shift, camera, ...) and is kept as text.

Paths are relative to the manifest's folder (the data root) and must stay inside it: an absolute
path or one that climbs out with ``..`` is refused, so a manifest cannot make the audit read (and
hash into a signed report) files it was not meant to.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from auditkit.errors import DataError
from auditkit.run import SAMPLE_COLUMNS as STANDARD_COLUMNS

REQUIRED_COLUMNS = ("path", "label")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Dataset:
    """The samples table of a labelled data set, with where it came from.

    ``boxes``, for detection data: one row per ground-truth box, columns ``sample_id``,
    ``class``, ``x1``, ``y1``, ``x2``, ``y2`` (float pixels of the original image, x right,
    y down, corners exclusive of nothing: width = x2 - x1). ``None`` when the data has no boxes.
    Segmentation and anomaly data name a mask per image in the samples column ``mask`` (a path
    relative to ``root``; empty when the image has no mask, i.e. no defect pixels).
    """

    root: Path
    manifest: Path
    format: str
    samples: pd.DataFrame
    manifest_sha256: str
    boxes: pd.DataFrame | None = None

    @property
    def metadata_columns(self) -> list[str]:
        return [c for c in self.samples.columns if c not in STANDARD_COLUMNS]


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_digest(samples: pd.DataFrame) -> str:
    """SHA-256 over the sorted ``sample_id, path, sha256, label`` lines (see docs/run-format.md)."""
    lines = sorted(
        "\t".join(row)
        for row in zip(
            samples["sample_id"], samples["path"], samples["sha256"], samples["label"], strict=True
        )
    )
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            table = pd.read_parquet(path)
            return table.astype(str).where(table.notna(), "")
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"manifest not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"expected a manifest file, got a folder: {path}") from None
    except Exception as exc:  # pandas/pyarrow raise many types for a malformed file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read manifest {path}: {first}") from None


def safe_relative_path(root: Path, raw: str) -> str:
    """Normalise a manifest path, lexically; refuse absolute paths and escapes via ``..``.

    Returns the ``/``-separated relative path. A symbolic link that leads out of the root is
    refused when the file is opened (:func:`_inside_root`). No ``Path`` is kept per row: at
    200,000 images those alone cost about 80 MB.
    """
    text = raw.strip().replace("\\", "/")
    if not text:
        raise DataError("manifest row has an empty path")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise DataError(f"manifest path {raw!r} is absolute; paths must be relative to {root}")
    normal = posixpath.normpath(text)
    if normal == ".." or normal.startswith("../"):
        raise DataError(f"manifest path {raw!r} escapes the data root {root}")
    return normal


def _inside_root(root: str, relative: str) -> str:
    """The file's real path, refusing a symbolic link that leads out of ``root`` (real path)."""
    real = os.path.realpath(os.path.join(root, relative))
    if not real.startswith(root + os.sep):
        raise DataError(
            f"manifest path {relative!r} escapes the data root {root} through a symbolic link"
        )
    return real


def load_manifest(manifest: Path, *, good_label: str = "good") -> Dataset:
    """Read a manifest, check its paths, and hash every file.

    Missing files are not an error here: they become rows with status ``unreadable`` so the
    report counts them. Decoding happens in replay, which marks undecodable files the same way.
    """
    manifest = manifest.resolve()
    table = _read_table(manifest)
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
    if "sample_id" not in table.columns or (table["sample_id"] == "").any():
        fallback = table["path"]
        table["sample_id"] = (
            table["sample_id"].where(table["sample_id"] != "", fallback)
            if "sample_id" in table.columns
            else fallback
        )
    duplicated = table["sample_id"][table["sample_id"].duplicated()]
    if not duplicated.empty:
        raise DataError(f"manifest {manifest.name}: duplicate sample_id {duplicated.iloc[0]!r}")
    if "part_id" not in table.columns:
        table["part_id"] = table["sample_id"]
    table["part_id"] = table["part_id"].where(table["part_id"] != "", table["sample_id"])
    if (table["label"] == "").any():
        row = int((table["label"] == "").to_numpy().argmax())
        raise DataError(f"manifest {manifest.name}: empty label for {table['path'].iloc[row]!r}")

    hashes, statuses, errors = [], [], []
    real_root = os.path.realpath(root)
    for relative in table["path"]:
        try:
            hashes.append(sha256_file(_inside_root(real_root, relative)))
            statuses.append("ok")
            errors.append("")
        except FileNotFoundError:
            hashes.append("")
            statuses.append("unreadable")
            errors.append("file not found")
        except OSError as exc:
            hashes.append("")
            statuses.append("unreadable")
            errors.append(f"cannot read file: {exc.strerror or exc}")
    table["sha256"] = hashes
    table["status"] = statuses
    table["error"] = errors
    table["is_defect"] = table["label"] != good_label

    metadata = [c for c in table.columns if c not in STANDARD_COLUMNS]
    samples = table[list(STANDARD_COLUMNS) + metadata].reset_index(drop=True)
    return Dataset(
        root=root,
        manifest=manifest,
        format="manifest",
        samples=samples,
        manifest_sha256=manifest_digest(samples),
    )
