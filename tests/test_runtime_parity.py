"""--reference-outputs: the vendor's own scores compared with the replayed ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from auditkit.audit import record_runtime_parity, run_replay
from auditkit.errors import DataError
from auditkit.replay.pipeline import ReplaySettings
from tests.conftest import write_dataset

SETTINGS = ReplaySettings(batch_size=4, single_stream_samples=0, scenario="offline")


def test_parity_counts_differences_and_decisions(tmp_path: Path, tiny_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=12, corrupt=1)
    run = tmp_path / "run"
    run_replay(manifest, tiny_model, run, settings=SETTINGS)
    predictions = pd.read_parquet(run / "predictions.parquet")
    reference = predictions[["sample_id", "score"]].copy()
    # the vendor's runtime differs by 0.001 on every image and flips the decision of one
    reference["score"] += 0.001
    flipped = reference.index[0]
    reference.loc[flipped, "score"] = 0.9 if not predictions.loc[flipped, "is_reject"] else 0.1
    expected_max = abs(reference.loc[flipped, "score"] - predictions.loc[flipped, "score"])
    # one reference row for the corrupt image: given, but not scored here
    reference.loc[len(reference)] = ["s0", 0.5]
    reference.to_csv(tmp_path / "vendor.csv", index=False)

    parity = record_runtime_parity(run, tmp_path / "vendor.csv")
    assert parity["n_reference"] == 12
    assert parity["n_compared"] == 11 and parity["n_not_scored"] == 1
    assert parity["max_abs_difference"]["score"] == pytest.approx(expected_max)
    assert parity["decisions_agree"] == 10
    recorded = json.loads((run / "run.json").read_text())["replay"]["runtime_parity"]
    assert recorded == parity


def test_bad_reference_files_are_one_line_errors(tmp_path: Path, tiny_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=4)
    run = tmp_path / "run"
    run_replay(manifest, tiny_model, run, settings=SETTINGS)
    (tmp_path / "nokey.csv").write_text("image,score\na,0.1\n")
    with pytest.raises(DataError, match="need a sample_id or path column"):
        record_runtime_parity(run, tmp_path / "nokey.csv")
    (tmp_path / "noscore.csv").write_text("sample_id,prob\ns1,0.1\n")
    with pytest.raises(DataError, match="no usable score column"):
        record_runtime_parity(run, tmp_path / "noscore.csv")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "auditkit",
            "replay",
            str(manifest),
            "--model",
            str(tiny_model),
            "--out",
            str(tmp_path / "run2"),
            "--reference-outputs",
            str(tmp_path / "missing.csv"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 5 and "reference outputs not found" in result.stderr
    assert not (tmp_path / "run2").exists()  # refused before replaying anything
