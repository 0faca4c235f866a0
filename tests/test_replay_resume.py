"""Checkpoint and resume: a replay killed (SIGKILL), interrupted (SIGINT) or stopped by
--max-errors, then resumed, gives the same tables row for row as an uninterrupted replay; a run
directory from another model, data set or settings is refused."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from auditkit.audit import run_replay
from auditkit.errors import InputError
from auditkit.replay.checkpoint import TooManyErrors
from auditkit.replay.pipeline import ReplaySettings
from tests.conftest import CLASSES, SIZE, card_dict, write_dataset, write_tiny_model

BATCH, EVERY, SINGLE = 4, 8, 5
SETTINGS = ReplaySettings(
    batch_size=BATCH, single_stream_samples=SINGLE, warmup_batches=1, checkpoint_images=EVERY
)
CLI_OPTIONS = (
    "--batch-size",
    str(BATCH),
    "--single-stream",
    str(SINGLE),
    "--checkpoint-every",
    str(EVERY),
    "--no-progress",
)


def write_slow_model(path: Path, depth: int = 400, width: int = 256) -> Path:
    """A deterministic classifier that costs a few ms per image (a deep chain of MatMul+Tanh
    sharing one weight), so a subprocess can be stopped half-way through a few hundred images."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    w_in = rng.normal(size=(SIZE * SIZE, width)).astype(np.float32) / SIZE
    # gain 0.5: a contracting chain, so rounding differences shrink instead of growing
    w = (0.5 * rng.normal(size=(width, width)) / np.sqrt(width)).astype(np.float32)
    w_out = rng.normal(size=(width, len(CLASSES))).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W_in"], ["h0"]),
    ]
    for i in range(depth):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "W"], [f"m{i}"]))
        nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"h{i + 1}"]))
    nodes.append(helper.make_node("MatMul", [f"h{depth}", "W_out"], ["logits"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=1))
    graph = helper.make_graph(
        nodes,
        "slow",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, SIZE, SIZE])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", len(CLASSES)])],
        initializer=[
            numpy_helper.from_array(w_in, "W_in"),
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(w_out, "W_out"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    path.with_suffix(".card.yaml").write_text(yaml.safe_dump(card_dict()))
    return path


@pytest.fixture()
def slow_model(tmp_path: Path) -> Path:
    return write_slow_model(tmp_path / "slow.onnx")


def _default_sigint() -> None:
    # a shell starts background jobs with SIGINT ignored, and Python then never raises
    # KeyboardInterrupt: give the child the terminal's default, as a user's Ctrl-C would find it
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "auditkit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def wait_for_shards(process: subprocess.Popen[str], shards: Path, n: int) -> None:
    deadline = time.monotonic() + 60
    while len(list(shards.glob("shard-*.parquet"))) < n:
        assert process.poll() is None, "the replay ended before it could be stopped"
        assert time.monotonic() < deadline, "no shards appeared"
        time.sleep(0.005)
    assert process.poll() is None, "the replay ended before it could be stopped"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditkit", *args], capture_output=True, text=True, check=False
    )


def assert_same_run(a: Path, b: Path) -> None:
    for table in ("samples", "predictions"):
        try:
            pd.testing.assert_frame_equal(
                pd.read_parquet(a / f"{table}.parquet"), pd.read_parquet(b / f"{table}.parquet")
            )
        except AssertionError as exc:
            raise AssertionError(f"{table}.parquet differs: {exc}") from None
    ta, tb = pd.read_parquet(a / "timings.parquet"), pd.read_parquet(b / "timings.parquet")
    for scenario in ("offline", "single-stream"):
        rows_a = ta[ta["scenario"] == scenario][["batch", "n"]].reset_index(drop=True)
        rows_b = tb[tb["scenario"] == scenario][["batch", "n"]].reset_index(drop=True)
        pd.testing.assert_frame_equal(rows_a, rows_b)
    ja, jb = json.loads((a / "run.json").read_text()), json.loads((b / "run.json").read_text())
    assert ja["run_id"] == jb["run_id"]
    assert ja["replay"]["single_stream_parity"]["agree"] is True
    assert not (b / "shards").exists()  # merged and cleaned up


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path: Path, slow_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=160, corrupt=3, missing=2)
    out = tmp_path / "killed"
    args = ("replay", str(manifest), "--model", str(slow_model), "--out", str(out))
    process = start_cli(*args, *CLI_OPTIONS)
    try:
        wait_for_shards(process, out / "shards", 3)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    assert not (out / "run.json").exists()
    kept = len(list((out / "shards").glob("shard-*.parquet")))
    assert 3 <= kept < 160 // EVERY

    resumed = run_cli(*args, *CLI_OPTIONS, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "replayed 160 images: 155 scored, 5 unreadable" in resumed.stdout
    # the uninterrupted run, in a process like the others
    whole = run_cli(
        "replay",
        str(manifest),
        "--model",
        str(slow_model),
        "--out",
        str(tmp_path / "whole"),
        *CLI_OPTIONS,
    )
    assert whole.returncode == 0, whole.stderr
    assert_same_run(tmp_path / "whole", out)
    info = json.loads((out / "run.json").read_text())
    assert info["replay"]["checkpoint"]["resumed"] is True
    assert info["replay"]["checkpoint"]["sessions"] == 2


def test_ctrl_c_stops_cleanly_and_resumes(tmp_path: Path, slow_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=160, corrupt=1)
    out = tmp_path / "interrupted"
    args = ("replay", str(manifest), "--model", str(slow_model), "--out", str(out), *CLI_OPTIONS)
    process = start_cli(*args)
    try:
        wait_for_shards(process, out / "shards", 2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert stderr.strip() == "interrupted: resume with --resume"
    assert (out / "shards/checkpoint.json").exists() and not (out / "run.json").exists()
    resumed = run_cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    # in this process too (pytest has imported WeasyPrint, which loosens Pillow process-wide)
    run_replay(manifest, slow_model, tmp_path / "whole", settings=SETTINGS)
    assert_same_run(tmp_path / "whole", out)


def test_max_errors_stops_resumably(tmp_path: Path, tiny_model: Path) -> None:
    # corrupt images 0-2 and missing 3-4 come first; more appear later in the data set
    manifest = write_dataset(tmp_path / "data", n=60, corrupt=3)
    run_replay(manifest, tiny_model, tmp_path / "whole", settings=SETTINGS)
    out = tmp_path / "stopped"
    with pytest.raises(TooManyErrors, match=r"3 images failed, more than --max-errors 2"):
        run_replay(manifest, tiny_model, out, settings=SETTINGS, max_errors="2")
    assert list((out / "shards").glob("shard-*.parquet"))  # the failing batch was kept
    assert not (out / "run.json").exists()
    # resuming with the same limit stops again at once; a higher one finishes the run
    with pytest.raises(TooManyErrors):
        run_replay(manifest, tiny_model, out, settings=SETTINGS, max_errors="2", resume=True)
    result = run_replay(manifest, tiny_model, out, settings=SETTINGS, max_errors="10%", resume=True)
    assert result.resumed and result.n_unreadable == 3
    assert_same_run(tmp_path / "whole", out)

    cli = subprocess.run(
        [
            *(sys.executable, "-m", "auditkit", "replay", str(manifest)),
            *("--model", str(tiny_model), "--out", str(tmp_path / "cli")),
            *("--max-errors", "1%", *CLI_OPTIONS),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 5, cli.stderr
    lines = [line for line in cli.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "more than --max-errors 1%" in lines[0], cli.stderr
    assert "resume with --resume" in lines[0]


def test_resume_refuses_another_model_data_set_or_settings(
    tmp_path: Path, tiny_model: Path
) -> None:
    manifest = write_dataset(tmp_path / "data", n=40, corrupt=2)
    out = tmp_path / "run"
    with pytest.raises(TooManyErrors):
        run_replay(manifest, tiny_model, out, settings=SETTINGS, max_errors="0")
    other_model = write_tiny_model(tmp_path / "other.onnx", nan=True)
    (tmp_path / "other.card.yaml").write_text(yaml.safe_dump(card_dict()))
    with pytest.raises(InputError, match="different model"):
        run_replay(manifest, other_model, out, settings=SETTINGS, resume=True)
    other_data = write_dataset(tmp_path / "data2", n=41, corrupt=2)
    with pytest.raises(InputError, match="different data set"):
        run_replay(other_data, tiny_model, out, settings=SETTINGS, resume=True)
    bigger = ReplaySettings(batch_size=8, single_stream_samples=SINGLE, checkpoint_images=EVERY)
    with pytest.raises(InputError, match=r"different settings \(batch_size 4 -> 8\)"):
        run_replay(manifest, tiny_model, out, settings=bigger, resume=True)
    cli = subprocess.run(
        [
            *(sys.executable, "-m", "auditkit", "replay", str(manifest)),
            *("--model", str(other_model), "--out", str(out), "--resume", *CLI_OPTIONS),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 5
    lines = [line for line in cli.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "different model" in lines[0], cli.stderr
    # the refused attempts left the checkpoint as it was: the right inputs still resume
    result = run_replay(manifest, tiny_model, out, settings=SETTINGS, resume=True)
    assert result.resumed and result.n_scored == 38
    with pytest.raises(InputError, match="nothing to resume"):
        run_replay(manifest, tiny_model, out, settings=SETTINGS, resume=True)


def test_fresh_replay_over_an_interrupted_one_starts_over(tmp_path: Path, tiny_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=30, corrupt=1)
    out = tmp_path / "run"
    with pytest.raises(TooManyErrors):
        run_replay(manifest, tiny_model, out, settings=SETTINGS, max_errors="0")
    result = run_replay(manifest, tiny_model, out, settings=SETTINGS)
    assert not result.resumed and result.n_images == 30
    run_replay(manifest, tiny_model, tmp_path / "whole", settings=SETTINGS)
    assert_same_run(tmp_path / "whole", out)


def test_a_run_directory_in_use_by_another_replay_is_refused(
    tmp_path: Path, tiny_model: Path
) -> None:
    import fcntl
    import os

    from auditkit.errors import RunDirError

    manifest = write_dataset(tmp_path / "data", n=8)
    out = tmp_path / "run"
    out.mkdir()
    # what a replay running in another process holds: the lock on another open file (this
    # process's own RunDir.writing() is re-entrant, so it would not stand for another one)
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(RunDirError, match="in use by another auditkit command"):
            run_replay(manifest, tiny_model, out, settings=SETTINGS)
        assert not (out / "shards").exists()  # nothing of the other writer's was touched
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    result = run_replay(manifest, tiny_model, out, settings=SETTINGS)  # released: it runs
    assert result.n_scored == 8
