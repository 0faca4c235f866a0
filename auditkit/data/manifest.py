"""The labelled data set (:class:`Dataset`, the contract every layout's loader returns), path
safety, file hashes and the manifest digest; :func:`load_manifest` for the manifest layout.

A manifest has one row per image with at least ``path`` and ``label``; ``sample_id`` and
``part_id`` are optional (``sample_id`` defaults to the path, ``part_id`` to ``sample_id``).
Every other column is metadata (line, shift, camera, ...) and is kept as text. Other layouts:
:mod:`auditkit.data.loaders` (docs/data-formats.md).

Paths are relative to the data root and must stay inside it: an absolute path or one that climbs
out with ``..`` is refused, so a manifest (or a COCO ``file_name``, a mask path, ...) cannot make
the audit read (and hash into a signed report) files it was not meant to.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass
from functools import lru_cache
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
        """Columns beyond the standard ones, except ``mask`` (which is ground truth)."""
        return [c for c in self.samples.columns if c not in STANDARD_COLUMNS and c != "mask"]


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_digest(samples: pd.DataFrame, boxes: pd.DataFrame | None = None) -> str:
    """SHA-256 over the sorted ``sample_id, path, sha256, label`` lines (see docs/run-format.md).

    With ground-truth boxes, the sorted lines ``box, sample_id, class, x1, y1, x2, y2``
    (coordinates as Python's ``repr`` of the float) follow, so a moved box changes the digest;
    without boxes the digest is exactly the one above.
    """
    lines = sorted(
        "\t".join(row)
        for row in zip(
            samples["sample_id"], samples["path"], samples["sha256"], samples["label"], strict=True
        )
    )
    if boxes is not None and not boxes.empty:
        lines += sorted(
            "\t".join(["box", str(sid), str(cls), *(repr(float(v)) for v in xy)])
            for sid, cls, *xy in zip(
                boxes["sample_id"],
                boxes["class"],
                boxes["x1"],
                boxes["y1"],
                boxes["x2"],
                boxes["y2"],
                strict=True,
            )
        )
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def read_table(path: Path, what: str = "manifest") -> pd.DataFrame:
    """A CSV or Parquet table with every value as text (missing values as ``""``)."""
    try:
        if path.suffix.lower() == ".parquet":
            table = pd.read_parquet(path)
            return table.astype(str).where(table.notna(), "")
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"expected a {what} file, got a folder: {path}") from None
    except Exception as exc:  # pandas/pyarrow raise many types for a malformed file
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read {what} {path}: {first}") from None


def safe_relative_path(root: Path, raw: str) -> str:
    """Normalise a manifest path, lexically; refuse absolute paths and escapes via ``..``.

    Returns the ``/``-separated relative path. A symbolic link that leads out of the root is
    refused when the file is opened (:func:`_inside_root`). No ``Path`` is kept per row: at
    200,000 images those alone cost about 80 MB.
    """
    text = raw.strip().replace("\\", "/")
    if not text:
        raise DataError("a row has an empty path")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise DataError(f"path {raw!r} is absolute; paths must be relative to {root}")
    normal = posixpath.normpath(text)
    if normal == ".." or normal.startswith("../"):
        raise DataError(f"path {raw!r} escapes the data root {root}")
    return normal


@lru_cache(maxsize=4096)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def _inside_root(root: str, relative: str) -> str:
    """The file's real path, refusing a symbolic link that leads out of ``root`` (real path).

    The real path of each folder is resolved once (a data set has few folders and many files);
    only a file that is itself a symbolic link is resolved in full.
    """
    full = os.path.join(root, relative)
    if os.path.islink(full):
        real = os.path.realpath(full)
    else:
        folder, name = os.path.split(full)
        real = os.path.join(_real_folder(folder), name)
    if not real.startswith(root + os.sep):
        raise DataError(f"path {relative!r} escapes the data root {root} through a symbolic link")
    return real


def load_manifest(manifest: Path, *, good_label: str = "good") -> Dataset:
    """Read a manifest, check its paths, and hash every file (see
    :mod:`auditkit.data.manifest_format` for the columns, boxes and masks included).

    Missing files are not an error here: they become rows with status ``unreadable`` so the
    report counts them. Decoding happens in replay, which marks undecodable files the same way.
    """
    from auditkit.data.interface import LoadOptions
    from auditkit.data.manifest_format import load

    return load(manifest, LoadOptions(format="manifest", good_label=good_label)).dataset
