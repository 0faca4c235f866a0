"""Metadata (line, shift, camera, ...) for layouts that carry none: a side table or the path.

* ``--metadata FILE`` (CSV or Parquet): one row per image, joined on the column ``path`` (the
  image's path relative to the data root, as ``data check`` prints it) or, when there is no
  ``path`` column, on ``file_name`` (the image's file name, which must then be unique in the
  data set). A key that appears twice, or a row that matches no image, is an error; an image
  with no row is a ``metadata_missing`` problem.
* ``--metadata-from-path REGEX``: a regular expression with named groups, searched in each
  image's path (``/``-separated, relative to the data root); each group becomes a column. An
  image whose path does not match is a ``metadata_unmatched`` problem, never a silent blank.

A column or group named ``part_id`` sets the part (the decision unit) instead of adding metadata.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

import pandas as pd

from auditkit.data.interface import Problem
from auditkit.data.manifest import read_table
from auditkit.errors import DataError
from auditkit.run import SAMPLE_COLUMNS

_RESERVED = frozenset(SAMPLE_COLUMNS) - {"part_id"} | {"mask"}


def _check_new_columns(samples: pd.DataFrame, names: list[str], source: str) -> None:
    for name in names:
        if name in _RESERVED:
            raise DataError(f"{source}: column {name!r} is reserved; rename it")
        if name in samples.columns and name != "part_id":
            raise DataError(f"{source}: column {name!r} is already in the data set's metadata")


def _assign(samples: pd.DataFrame, column: str, values: list[str]) -> None:
    if column == "part_id":
        given = pd.Series(values, index=samples.index)
        samples["part_id"] = given.where(given != "", samples["part_id"])
    else:
        samples[column] = values


def join_side_table(samples: pd.DataFrame, file: Path) -> list[Problem]:
    """Add the columns of the side table ``file`` to ``samples`` (in place); see module doc."""
    table = read_table(file, "metadata table")
    if "path" in table.columns:
        key = "path"
        keys = [posixpath.normpath(k.strip().replace("\\", "/")) for k in table["path"]]
        images = list(samples["path"])
    elif "file_name" in table.columns:
        key = "file_name"
        keys = [k.strip() for k in table["file_name"]]
        images = [posixpath.basename(p) for p in samples["path"]]
        seen: dict[str, str] = {}
        for name, path in zip(images, samples["path"], strict=True):
            if name in seen:
                raise DataError(
                    f"metadata table {file.name} is keyed by file_name, but {name!r} names "
                    f"two images ({seen[name]}, {path}); key it by path instead"
                )
            seen[name] = path
    else:
        raise DataError(
            f"metadata table {file.name} needs a column 'path' or 'file_name' to join on; "
            f"found: {', '.join(table.columns)}"
        )
    duplicated = pd.Series(keys)[pd.Series(keys).duplicated()]
    if not duplicated.empty:
        raise DataError(f"metadata table {file.name}: {key} {duplicated.iloc[0]!r} appears twice")
    row_of = {k: i for i, k in enumerate(keys)}
    unmatched = sorted(set(keys) - set(images))
    if unmatched:
        raise DataError(
            f"metadata table {file.name}: {len(unmatched)} row(s) match no image in the data "
            f"set, first {key} {unmatched[0]!r}"
        )
    columns = [c for c in table.columns if c != key and c not in ("path", "file_name")]
    _check_new_columns(samples, columns, f"metadata table {file.name}")
    rows = [row_of.get(k, -1) for k in images]
    for column in columns:
        values = table[column].astype(str).str.strip().tolist()
        _assign(samples, column, [values[r] if r >= 0 else "" for r in rows])
    return [
        Problem("metadata_missing", path, f"no row in {file.name}")
        for path, r in zip(samples["path"], rows, strict=True)
        if r < 0
    ]


def from_path(samples: pd.DataFrame, pattern: str) -> list[Problem]:
    """Add one column per named group of ``pattern``, searched in each path (in place)."""
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise DataError(
            f"--metadata-from-path {pattern!r} is not a valid regular expression: {exc}"
        ) from None
    names = list(regex.groupindex)
    if not names:
        raise DataError(
            f"--metadata-from-path {pattern!r} has no named group; write e.g. "
            "'(?P<line>L\\d)/(?P<shift>day|night)/'"
        )
    _check_new_columns(samples, names, "--metadata-from-path")
    values: dict[str, list[str]] = {name: [] for name in names}
    problems = []
    for path in samples["path"]:
        found = regex.search(path)
        if found is None:
            problems.append(Problem("metadata_unmatched", path, f"path does not match {pattern}"))
        for name in names:
            values[name].append((found.group(name) or "") if found else "")
    for name in names:
        _assign(samples, name, values[name])
    return problems
