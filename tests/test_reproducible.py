"""Same inputs, same seed → same predictions, and the same metrics.json and verdicts.json apart
from the values measured from time (latency, throughput)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from auditkit.audit import run_evaluate, run_replay
from auditkit.replay.pipeline import ReplaySettings
from tests.conftest import write_dataset

TIMED = ("latency_", "throughput_")


def _without_time(document: dict[str, Any]) -> dict[str, Any]:
    out = dict(document)
    if "metrics" in out:
        out["metrics"] = [m for m in out["metrics"] if not m["name"].startswith(TIMED)]
    if "criteria" in out:
        out["criteria"] = [c for c in out["criteria"] if not c["metric"].startswith(TIMED)]
    return out


def test_two_runs_agree(tmp_path: Path, tiny_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=40, corrupt=2)
    settings = ReplaySettings(batch_size=8, single_stream_samples=12, seed=3)
    for name in ("a", "b"):
        run_replay(manifest, tiny_model, tmp_path / name, settings=settings)
        run_evaluate(tmp_path / name)
    for table in ("samples", "predictions"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / f"a/{table}.parquet"),
            pd.read_parquet(tmp_path / f"b/{table}.parquet"),
        )
    for name in ("metrics.json", "verdicts.json"):
        a = json.loads((tmp_path / "a" / name).read_text())
        b = json.loads((tmp_path / "b" / name).read_text())
        assert _without_time(a) == _without_time(b)
        assert a != {}  # the comparison saw real content
    a_metrics = json.loads((tmp_path / "a/metrics.json").read_text())
    assert any(m["name"] == "latency_p99_ms" for m in a_metrics["metrics"])
