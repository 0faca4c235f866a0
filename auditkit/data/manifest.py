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
import itertools
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from auditkit.data.images import open_regular
from auditkit.errors import DataError, first_line, not_utf8_place
from auditkit.run import SAMPLE_COLUMNS as STANDARD_COLUMNS

REQUIRED_COLUMNS = ("path", "label")
#: bytes read at a time when a file is hashed (shared with the layout loaders)
CHUNK = 1 << 20
#: rows handled at a time where a Python object per row is made (lines, paths, hashes): the
#: text columns stay in Arrow arrays, so memory grows by bytes per image, not by Python objects
ROWS = 1 << 14
_TAB = pa.scalar("\t", pa.large_string())
_DIGEST_COLUMNS = ("sample_id", "path", "sha256", "label")


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


def sha256_file(path: str | Path, buffer: memoryview | None = None) -> str:
    """SHA-256 of a file's bytes. With ``buffer`` (one reused per thread), read through it: a
    fresh 1 MB read per file, shrunk to the file's size, fragments the C heap and lets the
    resident set grow with the data set. A FIFO, device or folder is refused before reading
    (:class:`auditkit.data.images.NotRegularFile`)."""
    digest = hashlib.sha256()
    if buffer is None:
        with open_regular(path) as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest()
    with open_regular(path, buffering=0) as handle:
        while size := handle.readinto(buffer):
            digest.update(buffer[:size])
    return digest.hexdigest()


def arrow_text(values: pd.Series) -> pa.ChunkedArray:
    """A text column as an Arrow ``large_string`` array (no copy when it is one already)."""
    array = values.array
    found = (
        array.__arrow_array__()  # pandas' Arrow-backed text: its own chunks, no copy
        if hasattr(array, "__arrow_array__")
        else pa.array(values.to_numpy(dtype=object), from_pandas=True)
    )
    chunked = pa.chunked_array([found]) if isinstance(found, pa.Array) else found
    return chunked if chunked.type == pa.large_string() else chunked.cast(pa.large_string())


def text_column(arrays: list[pa.Array]) -> pd.Series:
    """Arrow text chunks as a ``str`` column, kept in their chunks."""
    return pd.Series(pd.array(pa.chunked_array(arrays, type=pa.large_string()), dtype="str"))


def _sample_line_chunks(samples: pd.DataFrame) -> Iterator[list[str]]:
    """The ``sample_id, path, sha256, label`` lines in sorted order, a chunk at a time.

    Sorting by sample_id alone gives the order of the joined lines (UTF-8 byte order is code
    point order) when the ids are unique and none holds a character at or below TAB (which
    could sort differently from the TAB after a shorter id); otherwise the whole lines are
    sorted.
    """
    table = pa.table({c: arrow_text(samples[c]) for c in _DIGEST_COLUMNS})
    ids = table["sample_id"]
    if (
        pc.count_distinct(ids).as_py() == len(ids)
        and not pc.any(pc.match_substring_regex(ids, "[\\x00-\\x09]")).as_py()
    ):
        order = pc.sort_indices(ids)
    else:
        lines = pc.binary_join_element_wise(*(table[c] for c in _DIGEST_COLUMNS), _TAB)
        order = pc.sort_indices(lines)
    for start in range(0, len(order), ROWS):
        chunk = table.take(order[start : start + ROWS])
        yield pc.binary_join_element_wise(*(chunk[c] for c in _DIGEST_COLUMNS), _TAB).to_pylist()


def manifest_digest(samples: pd.DataFrame, boxes: pd.DataFrame | None = None) -> str:
    """SHA-256 over the sorted ``sample_id, path, sha256, label`` lines (see docs/run-format.md).

    With ground-truth boxes, the sorted lines ``box, sample_id, class, x1, y1, x2, y2``
    (coordinates as Python's ``repr`` of the float) follow, so a moved box changes the digest;
    without boxes the digest is exactly the one above.
    """
    box_lines: list[str] = []
    if boxes is not None and not boxes.empty:
        box_lines = sorted(
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
    # hashed a chunk at a time: the sample lines are never all held as Python strings
    digest = hashlib.sha256()
    separator = ""
    for chunk in itertools.chain(_sample_line_chunks(samples), [box_lines]):
        if chunk:
            digest.update((separator + "\n".join(chunk)).encode("utf-8"))
            separator = "\n"
    return digest.hexdigest()


def not_utf8(path: Path, what: str) -> DataError:
    """The one-line error for a text file that is not UTF-8, naming where in the *file* its
    first invalid byte is (:func:`auditkit.errors.not_utf8_place`)."""
    place = not_utf8_place(path.read_bytes())
    return DataError(f"{what} {path} is not UTF-8: {place}; save it as UTF-8")


def read_table(path: Path, what: str = "manifest") -> pd.DataFrame:
    """A CSV or Parquet table with every value as text (missing values as ``""``). A FIFO or
    device is refused before reading; a CSV that is not UTF-8 is :func:`not_utf8`."""
    try:
        if os.path.exists(path) and not os.path.isdir(path) and not os.path.isfile(path):
            raise DataError(f"{what} {path} is not a regular file")
        if path.suffix.lower() == ".parquet":
            table = pd.read_parquet(path)
            return table.astype(str).where(table.notna(), "")
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"expected a {what} file, got a folder: {path}") from None
    except UnicodeDecodeError:
        raise not_utf8(path, what) from None
    except DataError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for a malformed file
        raise DataError(f"cannot read {what} {path}: {first_line(exc)}") from None


def safe_relative_path(root: Path, raw: str) -> str:
    """Normalise a manifest path, lexically; refuse absolute paths and escapes via ``..``.

    Returns the ``/``-separated relative path. A symbolic link that leads out of the root is
    refused when the file is opened (:func:`inside_root`). No ``Path`` is kept per row: at
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


def inside_root(root: str, relative: str) -> str:
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
