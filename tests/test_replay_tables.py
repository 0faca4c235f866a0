"""The replay's streamed tables equal the tables built whole, the way replay used to build them:
all scores in one matrix, ``predictions_table`` over every sample, one ``to_parquet``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from auditkit.errors import InputError
from auditkit.models.card import ModelCard
from auditkit.replay.checkpoint import Checkpoint, Shard
from auditkit.replay.pipeline import predictions_table
from auditkit.replay.tables import (
    RowStates,
    count_distinct,
    scan_shards,
    value_counts,
    write_predictions,
    write_samples,
)
from tests.conftest import CLASSES, card_dict

MODEL: Any = SimpleNamespace(card=ModelCard.model_validate(card_dict()))


def _samples(n: int) -> pd.DataFrame:
    status = np.full(n, "ok", dtype=object)
    error = np.full(n, "", dtype=object)
    status[[1, n - 2]] = "unreadable"
    error[[1, n - 2]] = "file not found"
    return pd.DataFrame(
        {
            "sample_id": [f"s{i:03d}" for i in range(n)],
            "label": ["good"] * n,
            "status": status,
            "error": error,
        }
    )


def _replayed(samples: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Statuses, errors and scores a replay could give the rows still ``ok``."""
    rng = np.random.default_rng(seed)
    todo = np.flatnonzero(samples["status"].to_numpy() == "ok")
    status = np.full(len(todo), "ok", dtype=object)
    error = np.full(len(todo), "", dtype=object)
    failed = rng.choice(len(todo), size=3, replace=False)
    status[failed[:2]] = "unreadable"
    error[failed[:2]] = "cannot decode image: broken"
    status[failed[2]] = "error"
    error[failed[2]] = "model output contains NaN or infinity"
    scores = rng.dirichlet(np.ones(len(CLASSES)), size=len(todo))
    scores[failed] = np.nan
    return status, error, scores


def _write_shards(checkpoint: Checkpoint, todo: np.ndarray, parts: list[tuple[Any, ...]]) -> None:
    checkpoint.start({"model_sha256": "m", "manifest_sha256": "d", "settings": {}, "session": {}})
    status, error, scores = parts[0]
    for index, rows in enumerate(np.array_split(np.arange(len(todo)), 3)):
        shard = Shard(index, todo[rows], status[rows], error[rows], scores[rows], [], 1.0, "a")
        checkpoint.write(shard, CLASSES)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streamed_tables_equal_the_whole_tables(tmp_path: Path, seed: int) -> None:
    samples = _samples(40)
    todo = np.flatnonzero(samples["status"].to_numpy() == "ok")
    status, error, scores = _replayed(samples, seed)
    checkpoint = Checkpoint(tmp_path)
    _write_shards(checkpoint, todo, [(status, error, scores)])

    # the whole tables, built at once
    whole = samples.copy()
    all_status = whole["status"].to_numpy(dtype=object).copy()
    all_error = whole["error"].to_numpy(dtype=object).copy()
    all_scores = np.full((len(whole), len(CLASSES)), np.nan)
    all_status[todo], all_error[todo], all_scores[todo] = status, error, scores
    whole["status"], whole["error"] = all_status, all_error
    expected = tmp_path / "expected.parquet"
    predictions_table(whole, all_scores, MODEL).to_parquet(expected, index=False)
    whole.to_parquet(tmp_path / "expected-samples.parquet", index=False)

    # streamed
    states = RowStates.of(samples)
    scan = scan_shards(checkpoint, CLASSES, todo, tmp_path, states)
    assert scan.images == len(todo) and scan.failed == 3 and scan.wall_s == 3.0
    keep = todo[[0, 5, 20]]
    kept = write_predictions(
        checkpoint,
        CLASSES,
        samples["sample_id"],
        tmp_path / "predictions.parquet",
        lambda part, part_scores: predictions_table(part, part_scores, MODEL),
        keep,
    )
    streamed = samples.copy()
    streamed["status"], streamed["error"] = states.columns(streamed.index)
    write_samples(tmp_path / "samples.parquet", streamed)

    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "predictions.parquet"), pd.read_parquet(expected)
    )
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "samples.parquet"),
        pd.read_parquet(tmp_path / "expected-samples.parquet"),
    )
    assert states.count("ok") == len(todo) - 3
    assert sorted(kept) == keep.tolist()
    for row in keep:
        np.testing.assert_array_equal(kept[int(row)], all_scores[row])


def test_nothing_scored_gives_the_empty_table_with_its_columns(tmp_path: Path) -> None:
    samples = _samples(6)
    todo = np.flatnonzero(samples["status"].to_numpy() == "ok")
    n = len(todo)
    status = np.full(n, "error", dtype=object)
    error = np.full(n, "inference failed: boom", dtype=object)
    checkpoint = Checkpoint(tmp_path)
    _write_shards(checkpoint, todo, [(status, error, np.full((n, len(CLASSES)), np.nan))])
    whole = samples.copy()
    whole["status"] = "error"
    expected = predictions_table(whole, np.full((6, len(CLASSES)), np.nan), MODEL)
    expected.to_parquet(tmp_path / "expected.parquet", index=False)
    write_predictions(
        checkpoint,
        CLASSES,
        samples["sample_id"],
        tmp_path / "predictions.parquet",
        lambda part, part_scores: predictions_table(part, part_scores, MODEL),
        np.zeros(0, dtype=np.int64),
    )
    got = pd.read_parquet(tmp_path / "predictions.parquet")
    assert got.empty
    pd.testing.assert_frame_equal(got, pd.read_parquet(tmp_path / "expected.parquet"))


def test_shards_that_do_not_continue_the_rows_are_refused(tmp_path: Path) -> None:
    samples = _samples(12)
    todo = np.flatnonzero(samples["status"].to_numpy() == "ok")
    checkpoint = Checkpoint(tmp_path)
    _write_shards(checkpoint, todo, [_replayed(samples, 0)])
    with pytest.raises(InputError, match="shards do not match the data set"):
        scan_shards(checkpoint, CLASSES, todo[1:], tmp_path)


@pytest.mark.parametrize("dtype", ["str", object])
def test_arrow_counts_equal_pandas(dtype: Any) -> None:
    values = pd.Series(["pit", "good", "", "good", "crack", None, "pit", "good"], dtype=dtype)
    assert count_distinct(values) == values.nunique() == 4
    expected = {str(k): int(v) for k, v in values.value_counts().sort_index().items()}
    assert value_counts(values) == expected == {"": 1, "crack": 1, "good": 3, "pit": 2}
