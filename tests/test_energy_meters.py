"""Energy meters against hand-worked values: RAPL (fake sysfs tree, wrap-around), NVML (fake
counter module), the power log (hand-integrated traces, clock offsets), the model, SCI."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from auditkit.energy.carbon import grid_intensity, sci_g_per_1000
from auditkit.energy.interface import EnergyInputError, EnergyOptions, Reading
from auditkit.energy.model import (
    ModelMeter,
    host_busy_jiffies,
    modelled_utilisation,
    modelled_watts,
)
from auditkit.energy.nvml import NvmlMeter, load_pynvml
from auditkit.energy.powerlog import (
    PowerlogMeter,
    estimate_offset,
    integrate,
    read_power_log,
)
from auditkit.energy.rapl import RaplMeter, counter_delta_uj, find_domains
from auditkit.errors import ExitCode

MAX_UJ = 262_143_328_850  # a typical package max_energy_range_uj


# --- RAPL -------------------------------------------------------------------------------------


def zone(root: Path, name: str, label: str, energy: int, max_range: int = MAX_UJ) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "name").write_text(label + "\n")
    (folder / "energy_uj").write_text(f"{energy}\n")
    (folder / "max_energy_range_uj").write_text(f"{max_range}\n")
    return folder


@pytest.fixture()
def powercap(tmp_path: Path) -> Path:
    root = tmp_path / "powercap"
    zone(root, "intel-rapl:0", "package-0", MAX_UJ - 1_000_000)
    zone(root, "intel-rapl:0:0", "core", 5)  # inside the package: not summed
    zone(root, "intel-rapl:0:1", "dram", 1_000, max_range=65_532_610_987)
    zone(root, "intel-rapl:1", "psys", 7)  # the platform: overlaps everything, not summed
    return root


def test_counter_delta_handles_one_wrap() -> None:
    assert counter_delta_uj(100, 350, MAX_UJ) == 250
    # 1,000,000 uJ to the top, then 2,000,000 past zero
    assert counter_delta_uj(MAX_UJ - 1_000_000, 2_000_000, MAX_UJ) == 3_000_000


def test_rapl_finds_package_and_dram_only(powercap: Path) -> None:
    domains = find_domains(powercap)
    assert [d.name for d in domains] == ["package-0", "dram-0"]
    assert domains[1].max_range_uj == 65_532_610_987


def test_rapl_window_sums_domains_across_a_wrap(powercap: Path) -> None:
    meter = RaplMeter(powercap, poll_seconds=3600)  # no poll between the edges
    token = meter.start()
    (powercap / "intel-rapl:0/energy_uj").write_text("2000000\n")  # wrapped: +3 J
    (powercap / "intel-rapl:0:1/energy_uj").write_text("501000\n")  # +0.5 J
    reading = meter.stop(token)
    assert reading.energy_j == pytest.approx(3.5)
    assert reading.details["energy_j_by_domain"] == pytest.approx({"package-0": 3.0, "dram-0": 0.5})
    assert meter.measured and meter.boundary == "host"


def test_rapl_polls_catch_two_wraps_in_one_window(powercap: Path) -> None:
    meter = RaplMeter(powercap, poll_seconds=3600)
    token = meter.start()
    package = powercap / "intel-rapl:0/energy_uj"
    package.write_text(f"{MAX_UJ - 10_000_000}\n")  # (max - 1e6 -> max - 1e7): a full wrap
    token[0].poll()
    package.write_text("4000000\n")  # and past zero again
    reading = meter.stop(token)
    expected_uj = (MAX_UJ - 9_000_000) + 14_000_000
    assert reading.details["energy_j_by_domain"]["package-0"] == pytest.approx(expected_uj / 1e6)


def test_rapl_missing_and_unreadable_are_reported(
    tmp_path: Path, powercap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(EnergyInputError, match="does not exist"):
        find_domains(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EnergyInputError, match="no package or DRAM zone"):
        find_domains(empty)
    original = Path.read_text

    def root_only(self: Path, *args: Any, **kwargs: Any) -> str:
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", root_only)
    with pytest.raises(EnergyInputError, match="readable by root only") as info:
        find_domains(powercap)
    assert info.value.exit_code == ExitCode.INPUT


# --- NVML -------------------------------------------------------------------------------------


class FakeNvml:
    """``pynvml`` with scripted counters (mJ), one list of readings per device."""

    def __init__(self, readings: list[list[int]], *, supported: bool = True) -> None:
        self.readings = [list(r) for r in readings]
        self.supported = supported
        self.reads = 0

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return len(self.readings)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        return f"Fake GPU {handle}".encode()

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        if not self.supported:
            raise RuntimeError("Not Supported")
        self.reads += 1
        return self.readings[handle].pop(0)


def test_nvml_counter_difference_over_devices() -> None:
    # first value: the support check at creation; then the window's two edges
    fake = FakeNvml([[0, 1_000, 4_500], [0, 5_000, 9_000]])
    meter = NvmlMeter(nvml=fake, probe_seconds=0)
    reading = meter.stop(meter.start())
    assert reading.energy_j == pytest.approx(3.5 + 4.0)
    assert reading.details["energy_j_by_device"] == pytest.approx({"gpu0": 3.5, "gpu1": 4.0})
    assert fake.reads == 6  # edges only: never polled inside the window
    assert meter.describe()["devices"][1]["name"] == "Fake GPU 1"
    assert meter.measured and meter.boundary == "device"


def test_nvml_unsupported_or_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EnergyInputError, match="not supported on Fake GPU 0"):
        NvmlMeter(nvml=FakeNvml([[0]], supported=False), probe_seconds=0)
    with pytest.raises(EnergyInputError, match="no NVIDIA GPU"):
        NvmlMeter(nvml=FakeNvml([]), probe_seconds=0)
    with pytest.raises(EnergyInputError, match="index 3"):
        NvmlMeter([3], nvml=FakeNvml([[0]]), probe_seconds=0)
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(EnergyInputError, match=r"auditkit\[gpu\]"):
        load_pynvml()


# --- power log --------------------------------------------------------------------------------


def write_log(path: Path, times: list[float] | np.ndarray, watts: list[float] | np.ndarray) -> Path:
    rows = [
        "timestamp,watts",
        *(f"{float(t)!r},{float(w)!r}" for t, w in zip(times, watts, strict=True)),
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


# Unix seconds 1000..1010; 100 W up to 1003, a linear ramp to 200 W at 1004, then 200 W
TRACE_T = [1000.0 + i for i in range(11)]
TRACE_W = [100.0, 100.0, 100.0, 100.0, 200.0, 200.0, 200.0, 200.0, 200.0, 200.0, 200.0]


def test_trapezoid_integral_by_hand() -> None:
    t, w = np.asarray(TRACE_T), np.asarray(TRACE_W)
    # 1002..1003: 100 J; 1003..1004: (100+200)/2 = 150 J; 1004..1006: 400 J
    assert integrate(t, w, 1002.0, 1006.0) == pytest.approx(650.0)
    # edges between samples: 0.5 s at 100 W, then 100 -> 150 W over 0.5 s = 62.5 J
    assert integrate(t, w, 1002.5, 1003.5) == pytest.approx(112.5)


def test_powerlog_window_with_given_clock_offset(tmp_path: Path) -> None:
    log = write_log(tmp_path / "power.csv", TRACE_T, TRACE_W)
    # the host's clock runs 0.5 s ahead of the meter's: host = log + 0.5
    meter = PowerlogMeter(log, offset_s=0.5)
    reading = meter.span(1002.5, 1006.5)
    assert reading.energy_j == pytest.approx(650.0)
    assert reading.seconds == pytest.approx(4.0)
    assert list(reading.t_s) == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])
    assert list(reading.watts) == [100.0, 100.0, 200.0, 200.0, 200.0]
    assert meter.describe()["clock_offset"] == "given"
    assert meter.measured and meter.boundary == "wall"


def test_powerlog_iso_timestamps_give_the_same_energy(tmp_path: Path) -> None:
    iso = [datetime.fromtimestamp(t, UTC).isoformat() for t in TRACE_T]
    path = tmp_path / "iso.csv"
    path.write_text(
        "Timestamp,Watts\n" + "".join(f"{s},{w}\n" for s, w in zip(iso, TRACE_W, strict=True))
    )
    log = read_power_log(path)
    assert list(log.t) == TRACE_T
    assert integrate(log.t, log.watts, 1002.0, 1006.0) == pytest.approx(650.0)


def test_powerlog_clock_offset_estimated_from_the_power_rise(tmp_path: Path) -> None:
    # meter clock: 10 Hz, 50 W idle until 20 s, 150 W under load until 35 s, idle again
    t = 1_700_000_000.0 + np.arange(0, 50, 0.1)
    rel = t - t[0]
    w = np.where((rel >= 20) & (rel < 35), 150.0, 50.0) + 0.5 * np.sin(rel * 7)
    log = read_power_log(write_log(tmp_path / "p.csv", t, w))
    true_offset = 7.3  # host = log + 7.3
    start, end = t[0] + 20 + true_offset, t[0] + 35 + true_offset
    offset, rise = estimate_offset(log, start, end, lead_s=5.0, search_s=30.0)
    assert offset == pytest.approx(true_offset, abs=0.1)  # within one sample interval
    assert rise == pytest.approx(100.0, abs=5.0)
    meter = PowerlogMeter(tmp_path / "p.csv", offset_s=offset)
    # 15 s at 150 W, give or take the sinusoid and one edge sample
    assert meter.span(start, end).energy_j == pytest.approx(15 * 150.0, rel=0.01)


def test_powerlog_refuses_to_estimate_without_a_rise(tmp_path: Path) -> None:
    t = np.arange(0, 60, 1.0) + 1e9
    log = read_power_log(write_log(tmp_path / "flat.csv", t, np.full(len(t), 80.0)))
    with pytest.raises(EnergyInputError, match="no power rise"):
        estimate_offset(log, t[0] + 30, t[0] + 45)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("time,power\n1,2\n2,3\n", "expected columns 'timestamp' and 'watts'"),
        ("timestamp,watts\n1,100\n2,nan\n", "line 3: watts must be a finite number"),
        ("timestamp,watts\n1,100\n2,-4\n", "line 3: watts must be a finite number"),
        ("timestamp,watts\n1,100\nyesterday,5\n", "line 3: cannot read timestamp"),
        ("timestamp,watts\n2,100\n1,100\n", "line 3: timestamps must increase"),
        ("timestamp,watts\n1,100\n", "fewer than 2 samples"),
    ],
)
def test_powerlog_bad_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(EnergyInputError, match=message) as info:
        read_power_log(path)
    assert info.value.exit_code == ExitCode.INPUT


def test_powerlog_missing_or_short(tmp_path: Path) -> None:
    with pytest.raises(EnergyInputError, match="power log not found"):
        PowerlogMeter(tmp_path / "none.csv")
    meter = PowerlogMeter(write_log(tmp_path / "p.csv", TRACE_T, TRACE_W), offset_s=0.0)
    with pytest.raises(EnergyInputError, match="does not cover the replay window"):
        meter.span(1008.0, 1020.0)


# --- model ------------------------------------------------------------------------------------


def test_model_arithmetic_by_hand(tmp_path: Path) -> None:
    assert modelled_utilisation(3.0, 2.0, 2) == pytest.approx(0.75)
    assert modelled_utilisation(9.0, 2.0, 2) == 1.0  # clipped
    assert modelled_watts(None, 40.0, 0.75) == pytest.approx(30.0)
    assert modelled_watts(25.0, 40.0, 0.75) == 25.0  # declared wins
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    assert host_busy_jiffies(stat) == (150, 1000)


def test_model_meter_is_labelled_and_declared_power_is_constant() -> None:
    meter = ModelMeter(declared_watts=20.0)
    reading = meter.stop(meter.start())
    assert reading.energy_j == pytest.approx(20.0 * reading.seconds)
    assert not meter.measured
    assert meter.describe()["watts_source"] == "--declared-watts"
    assumed = ModelMeter(cpus=4)
    assert assumed.rated_watts == 40.0 and "assumed" in assumed.describe()["watts_source"]


# --- carbon (SCI) -----------------------------------------------------------------------------


def test_sci_by_hand() -> None:
    # 2.5 Wh per 1,000 = 0.0025 kWh; x 300 g/kWh = 0.75 g; + 1.2 g embodied
    assert sci_g_per_1000(2.5, 300.0, 1.2) == pytest.approx(1.95)
    assert sci_g_per_1000(0.0, 300.0, 0.0) == 0.0


def test_grid_intensity_sources() -> None:
    world = grid_intensity()
    assert world.g_per_kwh == 475.0 and "IEA, 2019" in world.source
    assert "default" in world.source
    germany = grid_intensity(country="de")
    assert germany.g_per_kwh == 301.0 and "2020" in germany.source and "DEU" in germany.source
    assert grid_intensity(country="FRA").g_per_kwh == 55.0
    assert grid_intensity(123.0).source.startswith("--grid-intensity")
    with pytest.raises(EnergyInputError, match="no grid intensity for country 'XX'"):
        grid_intensity(country="XX")
    with pytest.raises(EnergyInputError, match="not both"):
        grid_intensity(100.0, "DEU")
    with pytest.raises(EnergyInputError, match="grid-intensity must be"):
        grid_intensity(float("nan"))


def test_options_are_checked() -> None:
    with pytest.raises(EnergyInputError, match="energy-window-seconds must be >= 10"):
        EnergyOptions(window_seconds=5)
    with pytest.raises(EnergyInputError, match="unknown --energy"):
        EnergyOptions(method="codecarbon")
    with pytest.raises(EnergyInputError, match="needs --power-log"):
        EnergyOptions(method="powerlog")
    with pytest.raises(EnergyInputError, match="declared-watts must be a positive"):
        EnergyOptions(declared_watts=float("nan"))


def test_reading_mean_power() -> None:
    assert Reading(energy_j=50.0, seconds=4.0).mean_power_w == 12.5
