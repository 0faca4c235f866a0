"""Decoding in worker processes (``--decode-processes``) and several inference streams
(``--inference-streams``): the same tables as the default pipeline, the replay's strict decoding
rules in the workers, and a worker that dies stops the replay resumably."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile

from auditkit.audit import run_replay
from auditkit.errors import InputError
from auditkit.models.card import InputSpec
from auditkit.replay import pipeline
from auditkit.replay.checkpoint import ReplayInterrupted
from auditkit.replay.decoding import DecodedBatch, ImagePaths, decode_batch
from auditkit.replay.pipeline import ReplaySettings
from tests.conftest import write_dataset
from tests.test_replay_resume import SETTINGS, assert_same_run

PROCESSES = replace(SETTINGS, decode_processes=2, inference_streams=3)


def _truncate(image: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, size=(64, 64), dtype=np.uint8)
    Image.fromarray(noise, "L").save(image)
    data = image.read_bytes()
    image.write_bytes(data[: len(data) * 2 // 3])  # header intact, the pixel data cut short


def test_decode_processes_and_inference_streams_give_the_same_run_as_threads(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_dataset(tmp_path / "data", n=40, corrupt=2, missing=1)
    _truncate(tmp_path / "data/images/img009.png")
    # what WeasyPrint does on import, in this process: the workers must decode strictly anyway
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    run_replay(manifest, tiny_model, tmp_path / "threads", settings=SETTINGS)
    result = run_replay(manifest, tiny_model, tmp_path / "processes", settings=PROCESSES)
    assert_same_run(tmp_path / "threads", tmp_path / "processes")
    streams = replace(SETTINGS, inference_streams=2)
    run_replay(manifest, tiny_model, tmp_path / "streams", settings=streams)
    assert_same_run(tmp_path / "threads", tmp_path / "streams")
    samples = pd.read_parquet(tmp_path / "processes/samples.parquet")
    assert result.n_unreadable == 4
    assert samples["status"][9] == "unreadable"
    assert samples["error"][9].startswith("cannot decode image")
    assert samples["error"][2] == "file not found"


def _decode_or_die(paths: list[str], spec: InputSpec) -> DecodedBatch:
    """In a worker process: decode, unless the batch holds image 20 (then the worker dies)."""
    if any(p.endswith("img020.png") for p in paths):
        os._exit(1)
    return decode_batch(paths, spec)


def test_a_dead_decode_worker_stops_the_replay_resumably(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_dataset(tmp_path / "data", n=40)
    run_replay(manifest, tiny_model, tmp_path / "whole", settings=SETTINGS)
    out = tmp_path / "stopped"
    monkeypatch.setattr(pipeline, "decode_batch", _decode_or_die)
    settings = replace(SETTINGS, decode_processes=1, prefetch_batches=1)
    with pytest.raises(ReplayInterrupted, match="a decode worker process died") as stopped:
        run_replay(manifest, tiny_model, out, settings=settings)
    assert "resume with --resume" in str(stopped.value)
    assert stopped.value.exit_code == 130
    # images 0-19 (five batches of 4) were decoded before the worker died, and are kept
    shards = pd.concat(pd.read_parquet(p) for p in sorted((out / "shards").glob("shard-*")))
    assert len(shards) == 20
    monkeypatch.undo()
    result = run_replay(manifest, tiny_model, out, settings=settings, resume=True)
    assert result.resumed
    assert_same_run(tmp_path / "whole", out)


def test_decode_threads_and_processes_are_one_choice() -> None:
    with pytest.raises(InputError, match="not both"):
        ReplaySettings(decode_threads=4, decode_processes=2)
    with pytest.raises(InputError, match="decode-processes"):
        ReplaySettings(decode_processes=-1)
    with pytest.raises(InputError, match="inference-streams"):
        ReplaySettings(inference_streams=0)
    too_many = 4 * (os.cpu_count() or 1) + 1
    with pytest.raises(InputError, match=f"--decode-processes {too_many} is more than 4 x"):
        ReplaySettings(decode_processes=too_many)
    assert ReplaySettings(decode_processes=3).identity() == ReplaySettings().identity()


def test_image_paths_as_text_match_the_paths(tmp_path: Path) -> None:
    relative = pd.Series(["a/1.png", "b/2.png", "3.png"], dtype="str")
    paths = ImagePaths(tmp_path, relative)
    rows = np.array([2, 0, 1])
    assert paths.files(rows) == [str(paths[int(i)]) for i in rows]
    assert paths[0:2] == [tmp_path / "a/1.png", tmp_path / "b/2.png"]


def test_decode_workers_cpu_time_enters_the_modelled_energy(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auditkit.energy import model as energy_model

    # the model meter counts what workers report, on top of this process's own CPU time
    meter = energy_model.ModelMeter(rated_watts=None, declared_watts=None, cpus=1)
    token = meter.start()
    energy_model.add_worker_cpu(3.0)
    assert meter.stop(token).details["process_cpu_seconds"] >= 3.0 - 1e-6
    monkeypatch.setattr(energy_model, "_worker_cpu_seconds", 0.0)

    reported: list[float] = []
    monkeypatch.setattr(pipeline, "add_worker_cpu", reported.append)
    manifest = write_dataset(tmp_path / "data", n=20)
    offline = replace(SETTINGS, scenario="offline")
    run_replay(manifest, tiny_model, tmp_path / "threads", settings=offline)
    assert reported == []  # decode threads' CPU time is this process's own
    on_processes = replace(offline, decode_processes=2)
    run_replay(manifest, tiny_model, tmp_path / "processes", settings=on_processes)
    assert len(reported) == 5 and all(s > 0 for s in reported)  # one per batch of 4
