"""The Dask executor: a 2-worker local cluster gives the same samples and predictions tables as
the local executor (corrupt and missing images included; a detector's detections and an anomaly
model's maps too), resumes through the same checkpoint shards, and leaves no processes behind;
without dask installed, one line and exit 5."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from auditkit.audit import run_replay
from auditkit.errors import InputError
from auditkit.replay.checkpoint import TooManyErrors
from auditkit.replay.dask_executor import MISSING
from auditkit.replay.pipeline import ReplaySettings
from tests.conftest import card_dict, write_dataset, write_tiny_model

pytest.importorskip("distributed")  # installed with the dev environment (auditkit[dask])

N_IMAGES, CORRUPT_LATE = 200, 150
SETTINGS = ReplaySettings(
    batch_size=8, single_stream_samples=5, warmup_batches=1, checkpoint_images=32
)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """200 images: 2 corrupt and 1 missing at the start, one more corrupt at row 150."""
    root = tmp_path_factory.mktemp("dask")
    model = write_tiny_model(root / "tiny.onnx")
    (root / "tiny.card.yaml").write_text(yaml.safe_dump(card_dict()))
    manifest = write_dataset(root, N_IMAGES, corrupt=2, missing=1)
    (root / f"images/img{CORRUPT_LATE:03d}.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return manifest, model


@pytest.fixture(scope="module")
def local_run(data: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    manifest, model = data
    out = tmp_path_factory.mktemp("local") / "run"
    run_replay(manifest, model, out, settings=SETTINGS)
    return out


@pytest.fixture()
def no_stray_processes() -> Iterator[None]:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    left = [
        p
        for p in psutil.Process().children(recursive=True)
        if p.pid not in before and "resource_tracker" not in " ".join(p.cmdline())
    ]  # multiprocessing's resource tracker lives as long as this process, by design
    _, alive = psutil.wait_procs(left, timeout=10)
    assert not alive, f"processes left behind: {[p.cmdline() for p in alive]}"


def _assert_same_tables(a: Path, b: Path) -> None:
    for name in ("samples.parquet", "predictions.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(a / name), pd.read_parquet(b / name))


def test_dask_local_cluster_matches_local_executor(
    data: tuple[Path, Path], local_run: Path, tmp_path: Path, no_stray_processes: None
) -> None:
    manifest, model = data
    result = run_replay(
        manifest, model, tmp_path / "dask", settings=SETTINGS, executor="dask", workers=2
    )
    assert result.n_images == N_IMAGES and result.n_unreadable == 4
    _assert_same_tables(local_run, result.run.path)
    replay = json.loads((result.run.path / "run.json").read_text())["replay"]
    assert replay["executor"] == "dask" and replay["workers"] == 2
    assert replay["distributed"]["workers"] == 2
    assert replay["distributed"]["scheduler"].startswith("tcp://")
    assert replay["single_stream_parity"]["agree"]
    timings = pd.read_parquet(result.run.path / "timings.parquet")
    offline = timings[timings["scenario"] == "offline"]
    assert offline["n"].sum() == N_IMAGES - 1  # the missing file is never decoded
    assert offline["batch"].tolist() == list(range(len(offline)))
    local = json.loads((local_run / "run.json").read_text())["replay"]
    assert local["executor"] == "local" and local["distributed"] is None


def test_dask_existing_scheduler_resumes_through_checkpoint(
    data: tuple[Path, Path], local_run: Path, tmp_path: Path, no_stray_processes: None
) -> None:
    from distributed import LocalCluster

    manifest, model = data
    out = tmp_path / "run"
    with LocalCluster(
        n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=40
    ) as cluster:
        address = cluster.scheduler_address
        with pytest.raises(TooManyErrors):  # the 4th failure, at row 150, stops the replay
            run_replay(
                manifest, model, out, settings=SETTINGS, scheduler=address,
                executor="dask", max_errors="3",
            )  # fmt: skip
        shards = sorted((out / "shards").glob("shard-*.parquet"))
        committed = sum(len(pd.read_parquet(s)) for s in shards)
        assert 0 < committed < N_IMAGES - 1
        result = run_replay(
            manifest, model, out, settings=SETTINGS, executor="dask", scheduler=address,
            resume=True,
        )  # fmt: skip
    assert result.resumed
    _assert_same_tables(local_run, out)
    replay = json.loads((out / "run.json").read_text())["replay"]
    assert replay["checkpoint"]["sessions"] == 2
    assert replay["distributed"]["scheduler"] == address
    offline = pd.read_parquet(out / "timings.parquet").query("scenario == 'offline'")
    assert offline["n"].sum() == N_IMAGES - 1  # committed rows were not replayed again


def test_missing_dask_is_one_line_exit_5(
    data: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, model = data
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(InputError, match="pip install auditkit\\[dask\\]") as caught:
        run_replay(manifest, model, tmp_path / "run", settings=SETTINGS, executor="dask")
    assert str(caught.value) == MISSING and caught.value.exit_code == 5
    assert not (tmp_path / "run").exists()

    code = (
        "import sys; sys.modules['distributed'] = None; from auditkit.cli import main; "
        f"sys.argv = ['auditkit', 'replay', {str(manifest)!r}, '--model', {str(model)!r}, "
        f"'--out', {str(tmp_path / 'cli')!r}, '--executor', 'dask', '--no-progress']; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 5
    assert MISSING in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_executor_options_are_checked() -> None:
    with pytest.raises(InputError, match="unknown executor"):
        ReplaySettings(executor="ray")
    with pytest.raises(InputError, match="--scheduler needs --executor dask"):
        ReplaySettings(scheduler="tcp://localhost:8786")
    with pytest.raises(InputError, match="--workers"):
        ReplaySettings(executor="dask", workers=0)


def test_dask_replays_detectors_and_anomaly_models_like_the_local_executor(
    tmp_path: Path, no_stray_processes: None
) -> None:
    import numpy as np
    from distributed import LocalCluster

    from auditkit.replay.pipeline import replay
    from tests.test_replay_tasks import (
        DET_GT,
        DET_IMAGES,
        anomaly_model,
        detector,
        make_dataset,
    )

    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[2:6, :] = 255
    anomaly_images = [
        {"sample_id": f"i{k}", "size": (8, 8), "label": "crack" if k % 2 else "good",
         "mask": mask if k % 2 else None}
        for k in range(7)
    ]  # fmt: skip
    cases = [
        (make_dataset(tmp_path / "det", DET_IMAGES, DET_GT), detector(tmp_path),
         ("predictions", "detections", "boxes")),
        (make_dataset(tmp_path / "anomaly", anomaly_images, None), anomaly_model(tmp_path),
         ("predictions", "maps", "masks")),
    ]  # fmt: skip
    local = ReplaySettings(batch_size=2, single_stream_samples=2, warmup_batches=1)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=40
    ) as cluster:
        on_dask = ReplaySettings(
            batch_size=2, single_stream_samples=2, warmup_batches=1, executor="dask",
            scheduler=cluster.scheduler_address,
        )  # fmt: skip
        for i, (data, model, tables) in enumerate(cases):
            replay(data, model, tmp_path / f"local-{i}", local)
            replay(data, model, tmp_path / f"dask-{i}", on_dask)
            for name in tables:
                a = pd.read_parquet(tmp_path / f"local-{i}/{name}.parquet")
                b = pd.read_parquet(tmp_path / f"dask-{i}/{name}.parquet")
                pd.testing.assert_frame_equal(a, b)
            if "maps" in tables:
                index = pd.read_parquet(tmp_path / f"local-{i}/maps.parquet")
                assert len(index) == len(anomaly_images)
                for file, key in zip(index["file"], index["map_key"], strict=True):
                    with (
                        np.load(tmp_path / f"local-{i}" / file) as x,
                        np.load(tmp_path / f"dask-{i}" / file) as y,
                    ):
                        np.testing.assert_array_equal(x[key], y[key])
            else:
                assert len(pd.read_parquet(tmp_path / f"dask-{i}/detections.parquet")) > 0
