"""From a loader's rows to the samples table: ids, metadata, hashes, column order.

Every layout ends here, so every data set is checked and hashed the same way. Files are hashed
once, by a few threads, each holding one file open at a time; with ``probe`` the bytes read for
the hash are also decoded (size and mode for ``data check``), so no file is read twice.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image

from auditkit.data.images import open_regular, refuse_unknown_range, unreadable_reason
from auditkit.data.interface import Loaded, LoadOptions, Problem
from auditkit.data.manifest import (
    CHUNK,
    ROWS,
    Dataset,
    inside_root,
    manifest_digest,
    sha256_file,
    text_column,
)
from auditkit.data.metadata import from_path, join_side_table
from auditkit.errors import DataError
from auditkit.run import SAMPLE_COLUMNS

BOX_COLUMNS = ("sample_id", "class", "x1", "y1", "x2", "y2")
#: samples columns that are neither standard nor metadata
EXTRA_COLUMNS = ("mask",)
_THREADS = 4
#: files per thread task, and files in flight per window (bounds memory, not open files)
_RUN = 64
_WINDOW = 4096


def boxes_table(rows: Iterable[tuple[str, str, float, float, float, float]]) -> pd.DataFrame:
    """The boxes table from ``(sample_id, class, x1, y1, x2, y2)`` rows."""
    table = pd.DataFrame(list(rows), columns=list(BOX_COLUMNS))
    table["sample_id"] = table["sample_id"].astype(str)
    table["class"] = table["class"].astype(str)
    for column in ("x1", "y1", "x2", "y2"):
        table[column] = table[column].astype(np.float64)
    return table


_BUFFERS = threading.local()


def _buffer() -> memoryview:
    """This thread's read buffer, reused for every file it hashes."""
    buffer: memoryview | None = getattr(_BUFFERS, "buffer", None)
    if buffer is None:
        buffer = _BUFFERS.buffer = memoryview(bytearray(CHUNK))
    return buffer


def _scan_one(real_root: str, relative: str, probe: bool) -> tuple[str, str, str, int, int, str]:
    """(sha256, status, error, width, height, mode) of one file."""
    try:
        real = inside_root(real_root, relative)
        if not probe:
            return sha256_file(real, _buffer()), "ok", "", 0, 0, ""
        with open_regular(real) as handle:
            data = handle.read()
    except OSError as exc:  # missing, a FIFO or a device (refused before reading), ...
        return "", "unreadable", unreadable_reason(exc), 0, 0, ""
    digest = hashlib.sha256(data).hexdigest()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            refuse_unknown_range(image)  # what the replay would refuse
            return digest, "ok", "", image.width, image.height, image.mode
    except Exception as exc:  # Pillow raises many types for a damaged file
        return digest, "unreadable", unreadable_reason(exc), 0, 0, ""


def scan_files(
    root: Path, paths: Sequence[str], *, probe: bool = False
) -> Iterator[tuple[str, str, str, int, int, str]]:
    """``_scan_one`` for every path, in order. Each thread task scans a run of files (one open
    at a time): a task per file would cost more in futures than small images cost to read."""
    real_root = os.path.realpath(root)

    def scan(run: Sequence[str]) -> list[tuple[str, str, str, int, int, str]]:
        return [_scan_one(real_root, p, probe) for p in run]

    threads = min(_THREADS, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for start in range(0, len(paths), _WINDOW):
            window = paths[start : start + _WINDOW]
            runs = [window[i : i + _RUN] for i in range(0, len(window), _RUN)]
            for scanned in pool.map(scan, runs):
                yield from scanned


def finish(
    root: Path,
    source: Path,
    fmt: str,
    table: pd.DataFrame,
    options: LoadOptions,
    *,
    boxes: pd.DataFrame | None = None,
    problems: Iterable[Problem] = (),
    declared_sizes: dict[str, tuple[int, int]] | None = None,
) -> Loaded:
    """Complete a loader's rows into a :class:`Loaded` data set.

    ``table`` has ``path`` (safe, relative to ``root``), ``label``, ``is_defect`` and optionally
    ``sample_id`` (default: the path), ``part_id`` (default: the sample id), ``mask`` and
    metadata columns. Metadata options are applied here, then every file is hashed.
    """
    if table.empty:
        raise DataError(f"no images found in {source} (read as {fmt})")
    table = table.reset_index(drop=True)
    if "sample_id" not in table.columns:
        table["sample_id"] = table["path"]
    duplicated = table["sample_id"][table["sample_id"].duplicated()]
    if not duplicated.empty:
        raise DataError(f"{source.name}: duplicate sample_id {duplicated.iloc[0]!r}")
    if "part_id" not in table.columns:
        table["part_id"] = table["sample_id"]
    table["part_id"] = table["part_id"].where(table["part_id"] != "", table["sample_id"])
    found = list(problems)
    if options.metadata is not None:
        found += join_side_table(table, options.metadata)
    if options.metadata_from_path:
        found += from_path(table, options.metadata_from_path)

    # a chunk of rows at a time: the text columns go into Arrow arrays, not a Python string
    # per image and column
    text: dict[str, list[pa.Array]] = {"sha256": [], "status": [], "error": [], "mode": []}
    width, height = np.zeros(len(table), dtype=np.int64), np.zeros(len(table), dtype=np.int64)
    for start in range(0, len(table), ROWS):
        paths = table["path"].iloc[start : start + ROWS].tolist()
        scanned = list(scan_files(root, paths, probe=options.probe))
        for j, name in enumerate(("sha256", "status", "error")):
            text[name].append(pa.array([s[j] for s in scanned], type=pa.large_string()))
        found += [
            Problem("unreadable_image", path, s[2])
            for path, s in zip(paths, scanned, strict=True)
            if s[1] != "ok"
        ]
        if options.probe:
            width[start : start + len(paths)] = [s[3] for s in scanned]
            height[start : start + len(paths)] = [s[4] for s in scanned]
            text["mode"].append(pa.array([s[5] for s in scanned], type=pa.large_string()))
        del paths, scanned
    for name in ("sha256", "status", "error"):
        table[name] = text_column(text[name])
    table["is_defect"] = table["is_defect"].astype(bool)
    images = None
    if options.probe:
        images = pd.DataFrame(
            {
                "sample_id": table["sample_id"],
                "width": width,
                "height": height,
                "mode": text_column(text["mode"]),
            }
        )
    extra = [c for c in EXTRA_COLUMNS if c in table.columns]
    metadata = [c for c in table.columns if c not in SAMPLE_COLUMNS and c not in extra]
    for column in metadata + extra:
        table[column] = table[column].astype(str)
    samples = table[list(SAMPLE_COLUMNS) + metadata + extra]
    dataset = Dataset(
        root=root,
        manifest=source,
        format=fmt,
        samples=samples,
        manifest_sha256=manifest_digest(samples, boxes),
        boxes=boxes,
    )
    return Loaded(
        dataset=dataset,
        problems=tuple(found),
        images=images,
        declared_sizes=declared_sizes or {},
    )


def labels_from_boxes(
    sample_ids: Sequence[str], boxes: pd.DataFrame, good_label: str
) -> tuple[list[str], list[bool]]:
    """Image-level labels of detection data (docs/data-formats.md, "the label rule").

    An image with no box is the good class and not a defect. An image with boxes is a defect
    when any box's class is not the good class; its label is the class whose boxes cover the
    largest total area (x2 - x1) * (y2 - y1), ties going to the alphabetically first class.
    """
    labels = dict.fromkeys(sample_ids, good_label)
    defect = dict.fromkeys(sample_ids, False)
    if not boxes.empty:
        area = (boxes["x2"] - boxes["x1"]).clip(lower=0) * (boxes["y2"] - boxes["y1"]).clip(lower=0)
        totals = (
            pd.DataFrame({"sample_id": boxes["sample_id"], "class": boxes["class"], "area": area})
            .groupby(["sample_id", "class"], sort=True)["area"]
            .sum()
            .reset_index()
            .sort_values(["sample_id", "area", "class"], ascending=[True, False, True])
        )
        largest = totals.drop_duplicates("sample_id")
        labels.update(zip(largest["sample_id"], largest["class"], strict=True))
        for sample_id in boxes["sample_id"][boxes["class"] != good_label].unique():
            defect[sample_id] = True
    return [labels[s] for s in sample_ids], [defect[s] for s in sample_ids]
