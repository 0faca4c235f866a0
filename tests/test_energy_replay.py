"""Energy in the replay: the window wraps the replay that gives the accuracy, extra passes keep
the first pass's predictions, run.json / metrics.json / power.parquet, resume, the CLI."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import auditkit.audit
from auditkit.audit import run_metrics, run_replay
from auditkit.energy.interface import EnergyInputError, EnergyOptions
from auditkit.energy.model import ModelMeter
from auditkit.energy.powerlog import PowerlogMeter
from auditkit.energy.protocol import EnergyRun
from auditkit.errors import ExitCode
from auditkit.replay.checkpoint import TooManyErrors
from auditkit.replay.pipeline import ReplaySettings
from tests.conftest import write_dataset

SETTINGS = ReplaySettings(batch_size=4, single_stream_samples=5, warmup_batches=1)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auditkit", *args], capture_output=True, text=True, check=False
    )


def use_energy_run(monkeypatch: pytest.MonkeyPatch, energy_run: EnergyRun) -> None:
    """Give run_replay a prepared protocol (a window shorter than the CLI allows: fast)."""
    monkeypatch.setattr(auditkit.audit, "_energy_run", lambda options, **_: energy_run)


def write_constant_log(path: Path, watts: float, around: float, step: float = 0.25) -> Path:
    times = np.arange(around - 120.0, around + 120.0, step)
    path.write_text("timestamp,watts\n" + "".join(f"{t:.3f},{watts}\n" for t in times))
    return path


def test_extra_passes_fill_the_window_and_keep_the_first_predictions(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_dataset(tmp_path / "data", n=12, corrupt=1)
    plain = run_replay(manifest, tiny_model, tmp_path / "plain", settings=SETTINGS)
    log = write_constant_log(tmp_path / "power.csv", 50.0, time.time())
    meter = PowerlogMeter(log, offset_s=0.0, wait_s=0.0)
    energy_run = EnergyRun(meter, EnergyOptions(method="powerlog", power_log=log, idle_seconds=0))
    energy_run.window_seconds = 0.3  # several passes of 12 images
    use_energy_run(monkeypatch, energy_run)
    out = tmp_path / "measured"
    run_replay(manifest, tiny_model, out, settings=SETTINGS, energy=EnergyOptions())

    pd.testing.assert_frame_equal(
        pd.read_parquet(plain.run.path / "predictions.parquet"),
        pd.read_parquet(out / "predictions.parquet"),
    )
    energy = json.loads((out / "run.json").read_text())["energy"]
    window = energy["window"]
    assert window["passes"] > 1 and window["first_pass_images"] == 12
    assert window["images"] == 12 * window["passes"]
    # the corrupt image is processed in every pass but never scored
    assert window["scored_images"] == 11 * window["passes"]
    assert window["seconds"] >= 0.3
    # a constant 50 W wall meter: 50 J per second of window, per scored image
    assert energy["energy_j"] == pytest.approx(50.0 * window["seconds"], rel=1e-6)
    assert energy["j_per_image"] == pytest.approx(energy["energy_j"] / (11 * window["passes"]))
    assert energy["method"] == "powerlog" and energy["measured"] is True
    assert energy["label"] == "measured" and energy["boundary"] == "wall"
    assert energy["sampling_interval_s"] == pytest.approx(0.25)
    power = pd.read_parquet(out / "power.parquet")
    assert list(power.columns) == ["t_s", "watts"] and (power["watts"] == 50.0).all()
    assert power["t_s"].min() >= 0 and power["t_s"].max() <= window["seconds"]

    names = {m["name"]: m for m in run_metrics(out)["metrics"] if "method" in m}
    assert set(names) == {
        "energy_wh_per_1000_inspections",
        "energy_j_per_image",
        "gco2e_per_1000_inspections",
        "idle_power_w",
        "mean_power_w",
    }
    assert {m["method"] for m in names.values()} == {"measured"}
    assert names["energy_j_per_image"]["value"] == energy["j_per_image"]
    assert names["mean_power_w"]["value"] == pytest.approx(50.0)


def test_resumed_replay_measures_only_its_own_window(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_dataset(tmp_path / "data", n=40, corrupt=3)
    out = tmp_path / "run"
    with pytest.raises(TooManyErrors):
        run_replay(manifest, tiny_model, out, settings=SETTINGS, max_errors="2")
    energy_run = EnergyRun(ModelMeter(declared_watts=30.0), EnergyOptions(idle_seconds=0))
    use_energy_run(monkeypatch, energy_run)
    run_replay(manifest, tiny_model, out, settings=SETTINGS, resume=True, energy=EnergyOptions())
    energy = json.loads((out / "run.json").read_text())["energy"]
    assert energy["window"]["resumed"] is True
    assert energy["window"]["first_pass_images"] == 40 - 4  # the first batch was kept before
    assert "resumed" in energy["uncertainty"]
    assert energy["energy_j"] == pytest.approx(30.0 * energy["window"]["seconds"])


def test_power_log_not_covering_the_window_is_an_input_error(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_dataset(tmp_path / "data", n=8)
    log = write_constant_log(tmp_path / "old.csv", 40.0, 1_000_000_000.0)  # in 2001
    meter = PowerlogMeter(log, offset_s=0.0, wait_s=0.0)
    energy_run = EnergyRun(meter, EnergyOptions(method="powerlog", power_log=log, idle_seconds=0))
    energy_run.window_seconds = 0.0
    use_energy_run(monkeypatch, energy_run)
    with pytest.raises(EnergyInputError, match="does not cover the replay window") as info:
        run_replay(
            manifest, tiny_model, tmp_path / "run", settings=SETTINGS, energy=EnergyOptions()
        )
    assert info.value.exit_code == ExitCode.INPUT
    assert not (tmp_path / "run" / "run.json").exists()  # no figure without its measurement


def expected_auto_method() -> str:
    """What ``--energy auto`` must pick on the machine running the test."""
    if Path("/sys/class/powercap").is_dir():
        return "rapl"
    if importlib.util.find_spec("pynvml") is not None:
        return "nvml"
    return "model"  # the CI machine kind: no powercap in the kernel, no GPU


def test_cli_energy_auto_is_labelled_in_every_output(tmp_path: Path, tiny_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=12)
    out = tmp_path / "run"
    replayed = run_cli(
        "replay", str(manifest), "--model", str(tiny_model), "--out", str(out),
        "--single-stream", "4", "--no-progress", "--idle-seconds", "0", "--country", "FR",
    )  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    energy = json.loads((out / "run.json").read_text())["energy"]
    method = expected_auto_method()
    assert energy["method"] == method
    if method == "model":
        assert energy["measured"] is False and energy["label"] == "modelled"
        assert "energy (MODELLED, model" in replayed.stdout
        assert "MODELLED, NOT MEASURED" in energy["uncertainty"]
        assert set(energy["meter"]["auto_skipped"]) == {"rapl", "nvml", "powerlog"}
    assert energy["carbon"]["grid_intensity_g_per_kwh"] == 55.0
    assert "2020" in energy["carbon"]["source"]
    evaluated = run_cli("evaluate", str(out))
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    labels = {m["name"]: m["method"] for m in metrics if "method" in m}
    assert len(labels) == 5
    assert set(labels.values()) == {"modelled" if method == "model" else "measured"}


@pytest.mark.parametrize(
    ("log_text", "message"),
    [
        (None, "power log not found"),
        ("when,what\n1,2\n", "expected columns 'timestamp' and 'watts'"),
        ("timestamp,watts\n1,100\n2,NaN\n", "line 3: watts must be a finite number"),
    ],
)
def test_cli_bad_power_log_one_line_exit_5(
    tmp_path: Path, tiny_model: Path, log_text: str | None, message: str
) -> None:
    manifest = write_dataset(tmp_path / "data", n=4)
    log = tmp_path / "power.csv"
    if log_text is not None:
        log.write_text(log_text)
    result = run_cli(
        "replay", str(manifest), "--model", str(tiny_model), "--out", str(tmp_path / "run"),
        "--energy", "powerlog", "--power-log", str(log), "--no-progress",
    )  # fmt: skip
    assert result.returncode == 5, result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert message in lines[0]
    assert not (tmp_path / "run").exists()  # refused before the run directory was touched


def test_energy_off_writes_the_off_block(tmp_path: Path, tiny_model: Path) -> None:
    manifest = write_dataset(tmp_path / "data", n=4)
    out = tmp_path / "run"
    run_replay(manifest, tiny_model, out, settings=SETTINGS, energy=EnergyOptions(method="off"))
    assert json.loads((out / "run.json").read_text())["energy"] == {"method": "off"}
    assert not (out / "power.parquet").exists()
    assert not [m for m in run_metrics(out)["metrics"] if "method" in m]


def test_energy_package_imports_without_pydantic_or_pandas(tmp_path: Path) -> None:
    """benchmarks/energy_gpu.py runs where only NumPy (and torch, pynvml) are installed."""
    code = (
        "import sys\n"
        "for m in ('pydantic', 'pandas', 'onnxruntime', 'scipy', 'yaml'): sys.modules[m] = None\n"
        "import auditkit.energy, auditkit.energy.rapl, auditkit.energy.nvml\n"
        "import auditkit.energy.powerlog, auditkit.energy.model, auditkit.energy.carbon\n"
        "import runpy; sys.argv = ['energy_gpu.py', '--dry-run', '--batches', '4',\n"
        "    '--out', sys.argv[1]]\n"
        "runpy.run_path('benchmarks/energy_gpu.py', run_name='__main__')\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "energy_gpu.json"
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert "error" not in report
    window = report["windows"][0]
    assert window["batch"] == 4 and window["images"] > 0
    assert report["counter_update_interval_s"] is not None
    assert window["energy_block"]["method"] == "nvml" and window["energy_block"]["measured"]
    # the fake board draws a constant 100 W: counter and polled power agree
    assert window["power_poll"]["mean_w"] == 100.0


@pytest.mark.slow
def test_an_external_dask_scheduler_reports_energy_as_not_measured(
    tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("distributed")
    from distributed import LocalCluster

    manifest = write_dataset(tmp_path / "data", n=16, corrupt=1)
    log = write_constant_log(tmp_path / "power.csv", 50.0, time.time())
    meter = PowerlogMeter(log, offset_s=0.0, wait_s=0.0)
    energy_run = EnergyRun(meter, EnergyOptions(method="powerlog", power_log=log, idle_seconds=0))
    use_energy_run(monkeypatch, energy_run)
    out = tmp_path / "run"
    with LocalCluster(
        n_workers=1, threads_per_worker=1, dashboard_address=None, silence_logs=40
    ) as cluster:
        address = cluster.scheduler_address
        run_replay(
            manifest, tiny_model, out, settings=SETTINGS, energy=EnergyOptions(),
            executor="dask", scheduler=address,
        )  # fmt: skip
    energy = json.loads((out / "run.json").read_text())["energy"]
    # the meter read this machine, the workers behind the scheduler did the work
    assert energy["measured"] is False and energy["label"] == "not measured"
    assert energy["j_per_image"] is None and energy["wh_per_1000_inspections"] is None
    assert address in energy["not_measured_reason"]
    assert energy["window"]["scored_images"] == 15 and energy["window"]["images"] == 16
    entries = {m["name"]: m for m in run_metrics(out)["metrics"] if "method" in m}
    assert entries["energy_j_per_image"]["value"] is None
    assert entries["energy_j_per_image"]["method"] == "not measured"
