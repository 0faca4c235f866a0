"""The replay's per-image state and its final tables, in memory that grows by bytes per image.

A Python string per image and column costs about 60 bytes, a list slot 8 more: at 200,000
images the statuses, errors and paths alone took tens of MB, and merging the shards by
concatenating every score first doubled that at the end. Here

* each image's status is one byte (:class:`RowStates`: codes into a few names) and its error
  text is kept only for the images that failed;
* the shards are read one at a time (:func:`scan_shards`), checked against the rows to replay,
  and their statuses applied;
* ``predictions.parquet`` is streamed shard by shard (:func:`write_predictions`): the rows of a
  shard are in sample order and shards follow one another, so writing each shard's scored rows
  in turn gives the same table, row for row, as building it whole;
* ``samples.parquet`` is written from the Arrow-backed columns in row groups
  (:func:`write_samples`), without a Python object per cell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from auditkit.errors import InputError
from auditkit.memory import release_memory
from auditkit.replay.checkpoint import Checkpoint
from auditkit.run import atomic_file

#: statuses of a sample (docs/run-format.md), in code order
STATUSES = ("ok", "unreadable", "error")
#: rows per Parquet row group of samples.parquet: bounds the writer's buffers
ROWS_PER_GROUP = 1 << 14
TIMING_COLUMNS = ["scenario", "batch", "n", "decode_s", "infer_s", "e2e_s"]


@dataclass
class RowStates:
    """Status and error of every sample: ``codes[i]`` indexes ``names``; ``errors`` maps the
    rows with an error text to it (empty text elsewhere)."""

    codes: np.ndarray
    names: list[str]
    errors: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, samples: pd.DataFrame) -> RowStates:
        codes, uniques = pd.factorize(samples["status"], sort=False)
        names = [str(u) for u in uniques]
        names += [s for s in STATUSES if s not in names]
        error = samples["error"]
        failed = np.flatnonzero((error != "").to_numpy(dtype=bool) & error.notna().to_numpy())
        errors = {int(i): str(error.iat[int(i)]) for i in failed}
        return cls(codes=codes.astype(np.int8), names=names, errors=errors)

    def code(self, name: str) -> int:
        if name not in self.names:
            self.names.append(name)
        return self.names.index(name)

    def rows(self, name: str) -> np.ndarray:
        """Rows whose status is ``name``, ascending."""
        return np.flatnonzero(self.codes == self.code(name))

    def count(self, name: str) -> int:
        return int((self.codes == self.code(name)).sum())

    def update(self, rows: np.ndarray, status: np.ndarray, error: np.ndarray) -> None:
        """Set the status and error of ``rows`` (a shard's object arrays)."""
        for name in pd.unique(status):
            self.codes[rows[status == name]] = self.code(str(name))
        for row, text in zip(rows.tolist(), error.tolist(), strict=True):
            if text:
                self.errors[row] = str(text)
            else:
                self.errors.pop(row, None)

    def columns(self, index: pd.Index) -> tuple[pd.Series, pd.Series]:
        """The ``status`` and ``error`` columns (text, Arrow-backed) on the samples' ``index``."""
        names = pa.array(self.names, type=pa.large_string())
        status = names.take(pa.array(self.codes.astype(np.int32)))
        messages = ["", *sorted(set(self.errors.values()))]
        position = {m: i for i, m in enumerate(messages)}
        codes = np.zeros(len(self.codes), dtype=np.int32)
        for row, text in self.errors.items():
            codes[row] = position[text]
        error = pa.array(messages, type=pa.large_string()).take(pa.array(codes))
        # the ``str`` dtype a column of Python strings gets: the same samples.parquet schema
        return (
            pd.Series(pd.array(pa.chunked_array([status]), dtype="str"), index=index),
            pd.Series(pd.array(pa.chunked_array([error]), dtype="str"), index=index),
        )


@dataclass
class ShardScan:
    """What the committed shards hold: images, failures, wall seconds, writers, timings."""

    images: int = 0
    failed: int = 0
    wall_s: float = 0.0
    sessions: set[str] = field(default_factory=set)
    timings: list[pd.DataFrame] = field(default_factory=list)

    def timing_table(self, extra: list[dict[str, Any]]) -> pd.DataFrame:
        """The batch timings of the shards, then ``extra`` rows (``timings.parquet``)."""
        frames = [t for t in self.timings if len(t)]
        if extra:
            frames.append(pd.DataFrame(extra, columns=TIMING_COLUMNS))
        if not frames:
            return pd.DataFrame([], columns=TIMING_COLUMNS)
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def scan_shards(
    checkpoint: Checkpoint,
    classes: list[str],
    todo: np.ndarray,
    run_path: Path,
    states: RowStates | None = None,
) -> ShardScan:
    """Read the shards in order, one at a time, checking that they continue ``todo`` (the rows
    to replay); apply their statuses to ``states`` when given."""
    scan = ShardScan()
    for path in checkpoint.shards():
        shard = checkpoint.read(path, classes)
        end = scan.images + len(shard.rows)
        if end > len(todo) or not np.array_equal(shard.rows, todo[scan.images : end]):
            raise InputError(
                f"cannot resume {run_path}: its shards do not match the data set; "
                "replay again without --resume"
            )
        scan.images = end
        scan.failed += int((shard.status != "ok").sum())
        scan.wall_s += shard.wall_s
        scan.sessions.add(shard.session)
        if shard.timings:
            scan.timings.append(pd.DataFrame(shard.timings, columns=TIMING_COLUMNS))
        if states is not None:
            states.update(shard.rows, shard.status, shard.error)
        del shard
        release_memory()
    return scan


PredictionRows = Callable[[pd.DataFrame, np.ndarray], pd.DataFrame]


def write_predictions(
    checkpoint: Checkpoint,
    classes: list[str],
    sample_ids: pd.Series,
    target: Path,
    make: PredictionRows,
    keep: np.ndarray,
) -> dict[int, np.ndarray]:
    """Write ``predictions.parquet`` shard by shard; return the class scores of rows ``keep``.

    ``make(samples, scores)`` builds the prediction rows of some samples (columns
    ``sample_id`` and ``status``) from their class scores; it is called per shard, and once on
    no rows when no shard holds a scored image, so that the empty table keeps its columns.
    """
    kept: dict[int, np.ndarray] = {}
    writer: pq.ParquetWriter | None = None
    with atomic_file(target) as tmp:
        for path in checkpoint.shards():
            shard = checkpoint.read(path, classes)
            for row in np.flatnonzero(np.isin(shard.rows, keep)):
                kept[int(shard.rows[row])] = shard.scores[row]
            frame = make(
                pd.DataFrame(
                    {
                        "sample_id": sample_ids.take(shard.rows).to_numpy(),
                        "status": shard.status,
                    }
                ),
                shard.scores,
            )
            if frame.empty:
                continue
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            del shard, frame, table
            release_memory()
        if writer is None:  # nothing scored: the whole (empty) table, as built at once
            empty = pd.DataFrame({"sample_id": pd.Series([], dtype="str"), "status": []})
            make(empty, np.zeros((0, len(classes)))).to_parquet(tmp, index=False)
        if writer is not None:
            writer.close()  # the footer, before the file is fsynced and renamed
    return kept


def _arrow(values: pd.Series) -> pa.ChunkedArray:
    array = values.array
    if hasattr(array, "__arrow_array__"):  # Arrow-backed: its own chunks, no copy
        found = array.__arrow_array__()
        return found if isinstance(found, pa.ChunkedArray) else pa.chunked_array([found])
    return pa.chunked_array([pa.array(values.to_numpy(), from_pandas=True)])


def count_distinct(values: pd.Series) -> int:
    """``values.nunique()`` (missing values not counted), in Arrow: no Python object per row."""
    return int(pc.count_distinct(_arrow(values)).as_py())


def value_counts(values: pd.Series) -> dict[str, int]:
    """``values.value_counts().sort_index()`` as a dict of text keys, in Arrow."""
    counted = pc.value_counts(_arrow(values)).to_pylist()
    return {
        str(c["values"]): int(c["counts"])
        for c in sorted(counted, key=lambda c: str(c["values"]))
        if c["values"] is not None
    }


def write_samples(target: Path, samples: pd.DataFrame) -> None:
    """``samples.parquet`` from the Arrow-backed columns, in row groups of ``ROWS_PER_GROUP``."""
    table = pa.Table.from_pandas(samples, preserve_index=False)
    with atomic_file(target) as handle:
        pq.write_table(table, handle, row_group_size=ROWS_PER_GROUP)
    del table
    release_memory()
