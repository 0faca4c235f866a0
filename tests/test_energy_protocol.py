"""The energy protocol: figures by hand, repeated passes to fill the window, the idle baseline,
and what ``--energy auto`` picks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from auditkit.energy.carbon import grid_intensity
from auditkit.energy.interface import EnergyInputError, EnergyOptions, Reading
from auditkit.energy.protocol import EnergyRun, energy_block, metric_entries, select_meter


class ScriptedMeter:
    """A measuring meter whose readings are given in advance (joules, seconds)."""

    name = "nvml"
    measured = True
    boundary = "device"
    sampling_interval_s = 0.1

    def __init__(self, readings: list[tuple[float, float]]) -> None:
        self.readings = list(readings)
        self.started = 0

    def describe(self) -> dict[str, Any]:
        return {"devices": ["scripted"]}

    def start(self) -> int:
        self.started += 1
        return self.started

    def stop(self, token: int) -> Reading:
        joules, seconds = self.readings.pop(0)
        return Reading(energy_j=joules, seconds=seconds)


def test_energy_block_by_hand() -> None:
    meter = ScriptedMeter([])
    block = energy_block(
        meter,
        Reading(energy_j=120.0, seconds=10.0),
        Reading(energy_j=40.0, seconds=5.0),
        images=2000,
        passes=3,
        grid=grid_intensity(),
        embodied_g_per_1000=0.5,
    )
    # idle 40 J / 5 s = 8 W; above idle 120 - 8 x 10 = 40 J; 120 J / 2000 = 0.06 J per image;
    # x 1000 / 3600 = 0.016667 Wh per 1,000; x 475 g/kWh / 1000 = 0.0079167 g, + 0.5 embodied
    assert block["idle"] == {"seconds": 5.0, "power_w": 8.0}
    assert block["energy_above_idle_j"] == pytest.approx(40.0)
    assert block["mean_power_w"] == pytest.approx(12.0)
    assert block["j_per_image"] == pytest.approx(0.06)
    assert block["wh_per_1000_inspections"] == pytest.approx(60.0 / 3600.0)
    carbon = block["carbon"]
    assert carbon["gco2e_per_1000_inspections"] == pytest.approx(60.0 / 3600.0 * 0.475 + 0.5)
    assert carbon["grid_intensity_g_per_kwh"] == 475.0 and "IEA" in carbon["source"]
    assert block["window"] == {"seconds": 10.0, "images": 2000, "scored_images": 2000, "passes": 3}
    assert block["measured"] is True and block["label"] == "measured"
    assert block["method"] == "nvml" and block["boundary"] == "device"
    assert block["sampling_interval_s"] == 0.1
    assert "replayed the images 3 times" in block["uncertainty"]
    assert "edge error up to about 1.0 %" in block["uncertainty"]


def test_no_idle_means_no_above_idle_figure() -> None:
    block = energy_block(
        ScriptedMeter([]), Reading(50.0, 12.0), None, images=10, passes=1, grid=grid_intensity()
    )
    assert block["idle"] == {"seconds": 0.0, "power_w": None}
    assert block["energy_above_idle_j"] is None
    assert "No idle baseline" in block["uncertainty"]


def test_window_is_filled_with_extra_passes() -> None:
    now = [0.0]
    slept: list[float] = []
    meter = ScriptedMeter([(40.0, 5.0), (130.0, 12.0)])
    run = EnergyRun(
        meter,
        EnergyOptions(method="nvml"),
        sleep=slept.append,
        clock=lambda: now[0],
    )
    assert (run.idle_seconds, run.window_seconds) == (5.0, 10.0)  # measuring meter defaults

    def extra_pass() -> int:
        now[0] += 3.0
        return 24

    run.begin()
    now[0] += 3.0  # the replay's own pass took 3 s
    run.end(20, extra_pass)
    # 3 s, 6 s, 9 s are short of 10 s: three extra passes, the last ending at 12 s
    assert run.passes == 4 and run.images == 20 + 3 * 24
    assert slept == [5.0]
    block = run.block()
    assert block["window"]["passes"] == 4 and block["window"]["first_pass_images"] == 20
    assert block["idle"]["power_w"] == pytest.approx(8.0)
    assert block["j_per_image"] == pytest.approx(130.0 / 92)


def test_model_defaults_no_idle_no_repeats() -> None:
    meter = select_meter(EnergyOptions(method="model", declared_watts=10.0))[0]
    assert meter is not None
    run = EnergyRun(meter, EnergyOptions(method="model", declared_watts=10.0))
    assert (run.idle_seconds, run.window_seconds) == (0.0, 0.0)
    run.begin()
    run.end(5, lambda: pytest.fail("a model window is not extended by default"))
    block = run.block()
    assert block["measured"] is False and block["label"] == "modelled"
    assert "MODELLED, NOT MEASURED" in block["uncertainty"]
    assert "shorter than 10 s" in block["uncertainty"]


def test_auto_on_a_machine_without_counters_picks_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    meter, skipped = select_meter(EnergyOptions(powercap_root=tmp_path / "no-powercap"))
    assert meter is not None and meter.name == "model" and not meter.measured
    assert "does not exist" in skipped["rapl"]
    assert "inference runs on the CPU" in skipped["nvml"]  # never tried: it cannot see the work
    assert skipped["powerlog"] == "no --power-log given"
    meter, skipped = select_meter(
        EnergyOptions(powercap_root=tmp_path / "no-powercap"), gpu_inference=True
    )
    assert meter is not None and meter.name == "model"
    assert list(skipped) == ["nvml", "rapl", "powerlog"]  # the GPU's own counter first
    assert "nvidia-ml-py is not installed" in skipped["nvml"]


def test_auto_prefers_rapl_then_a_given_power_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    zone = tmp_path / "powercap" / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "energy_uj").write_text("5\n")
    (zone / "max_energy_range_uj").write_text("1000\n")
    meter, _ = select_meter(EnergyOptions(powercap_root=tmp_path / "powercap"))
    assert meter is not None and meter.name == "rapl"
    log = tmp_path / "power.csv"
    log.write_text("timestamp,watts\n1,10\n2,10\n")
    meter, _ = select_meter(EnergyOptions(powercap_root=tmp_path / "x", power_log=log))
    assert meter is not None and meter.name == "powerlog"
    # a power log that was given but cannot be used is an error, not a fallback to the model
    log.write_text("timestamp,watts\n1,nan\n2,10\n")
    with pytest.raises(EnergyInputError, match="finite"):
        select_meter(EnergyOptions(powercap_root=tmp_path / "x", power_log=log))
    assert select_meter(EnergyOptions(method="off")) == (None, {})
    with pytest.raises(EnergyInputError, match="does not exist"):
        select_meter(EnergyOptions(method="rapl", powercap_root=tmp_path / "x"))


def test_no_images_in_the_window_gives_no_per_image_figures() -> None:
    block = energy_block(
        ScriptedMeter([]), Reading(5.0, 10.0), None, images=0, passes=1, grid=grid_intensity()
    )
    assert block["j_per_image"] is None and block["wh_per_1000_inspections"] is None
    assert block["carbon"]["gco2e_per_1000_inspections"] is None
    assert block["carbon"]["grid_intensity_g_per_kwh"] == 475.0
    assert block["energy_j"] == 5.0


def test_dask_executor_is_stated() -> None:
    run = EnergyRun(ScriptedMeter([(30.0, 12.0)]), EnergyOptions(method="nvml", idle_seconds=0))
    run.begin()
    run.end(100, None, executor="dask")
    block = run.block()
    assert block["window"]["executor"] == "dask" and block["window"]["passes"] == 1
    assert "Dask cluster: no extra passes" in block["uncertainty"]


def test_energy_per_image_divides_by_the_scored_images() -> None:
    # the field report: 60 images, 59 replayed in the window, 58 of them scored. 11.8 J over
    # the window is 11.8 / 58 J per inspected image (not / 59)
    block = energy_block(
        ScriptedMeter([]),
        Reading(11.8, 2.0),
        None,
        images=59,
        scored_images=58,
        passes=1,
        grid=grid_intensity(),
    )
    assert block["window"]["images"] == 59 and block["window"]["scored_images"] == 58
    assert block["j_per_image"] == pytest.approx(11.8 / 58)
    assert block["wh_per_1000_inspections"] == pytest.approx(11.8 / 58 * 1000 / 3600)


def test_extra_passes_count_their_scored_images() -> None:
    now = [0.0]
    meter = ScriptedMeter([(100.0, 12.0)])
    run = EnergyRun(meter, EnergyOptions(method="nvml", idle_seconds=0), clock=lambda: now[0])

    def extra_pass() -> tuple[int, int]:
        now[0] += 4.0
        return 20, 18  # 2 unreadable images are processed again, and again not scored

    run.begin()
    now[0] += 4.0
    run.end(20, extra_pass, first_pass_scored=18)
    # 4 s and 8 s are short of 10 s: two extra passes, three in all
    assert (run.passes, run.images, run.scored_images) == (3, 60, 54)
    assert run.block()["j_per_image"] == pytest.approx(100.0 / 54)


def test_an_external_dask_scheduler_gives_no_energy_per_image() -> None:
    # the meter reads this (idle) host while the workers elsewhere do the work
    run = EnergyRun(ScriptedMeter([(3.0, 10.0)]), EnergyOptions(method="nvml", idle_seconds=0))
    run.begin()
    run.end(1000, None, executor="dask", scheduler="tcp://10.0.0.5:8786")
    block = run.block()
    assert block["measured"] is False and block["label"] == "not measured"
    assert block["j_per_image"] is None and block["wh_per_1000_inspections"] is None
    assert block["carbon"]["gco2e_per_1000_inspections"] is None
    assert "tcp://10.0.0.5:8786" in block["not_measured_reason"]
    entries = {e["name"]: e for e in metric_entries(block)}
    assert entries["energy_j_per_image"]["value"] is None
    assert entries["energy_j_per_image"]["method"] == "not measured"


def test_a_local_dask_cluster_is_seen_by_a_counter_but_not_by_the_model() -> None:
    counted = EnergyRun(ScriptedMeter([(30.0, 10.0)]), EnergyOptions(method="nvml", idle_seconds=0))
    counted.begin()
    counted.end(100, None, executor="dask")
    assert counted.block()["j_per_image"] == pytest.approx(0.3)
    model = select_meter(EnergyOptions(method="model", declared_watts=10.0))[0]
    assert model is not None
    modelled = EnergyRun(model, EnergyOptions(method="model", declared_watts=10.0))
    modelled.begin()
    modelled.end(100, None, executor="dask")
    block = modelled.block()
    assert block["j_per_image"] is None and "CPU time" in block["not_measured_reason"]
