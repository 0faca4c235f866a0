"""NVIDIA GPUs: NVML's cumulative energy counter (boundary ``device``: the GPU board only).

``nvmlDeviceGetTotalEnergyConsumption`` gives millijoules since the driver loaded (Volta and
later). It is read at the window's edges only: one read costs milliseconds (about 4 ms on an
H200), and the counter updates about every 100 ms there, so a window must span many updates
(>= 10 s). ``nvmlDeviceGetPowerUsage`` is a trailing average of about 1 s on recent boards and
moves energy into the next window; it is used only by the cross-check of
benchmarks/energy_gpu.py, never for the figures.

``nvidia-ml-py`` (module ``pynvml``) is imported when the meter is made: ``pip install
auditkit[gpu]``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from auditkit.energy.interface import EnergyInputError, Reading
from auditkit.errors import first_line


def load_pynvml() -> Any:
    try:
        import pynvml
    except ImportError:
        raise EnergyInputError(
            "NVML not available: nvidia-ml-py is not installed (pip install auditkit[gpu])"
        ) from None
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlMeter:
    name = "nvml"
    measured = True
    boundary = "device"

    def __init__(
        self,
        devices: Sequence[int] | None = None,
        *,
        nvml: Any = None,
        probe_seconds: float = 0.5,
    ) -> None:
        """``devices``: GPU indices (default: all). ``nvml``: the ``pynvml`` module (injectable
        for tests). ``probe_seconds``: poll the counter that long to measure its update
        interval (0: skip)."""
        self.nvml = nvml if nvml is not None else load_pynvml()
        try:
            self.nvml.nvmlInit()
            count = int(self.nvml.nvmlDeviceGetCount())
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            raise EnergyInputError(f"NVML not available: {first_line(exc)}") from None
        if count == 0:
            raise EnergyInputError("NVML not available: no NVIDIA GPU found")
        indices = list(range(count)) if devices is None else list(devices)
        bad = [i for i in indices if not 0 <= i < count]
        if bad:
            raise EnergyInputError(f"no NVIDIA GPU with index {bad[0]} ({count} found)")
        self.indices = indices
        self.handles = [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in indices]
        self.names = [_text(self.nvml.nvmlDeviceGetName(h)) for h in self.handles]
        try:
            self.read_mj()
        except Exception as exc:  # NVMLError_NotSupported on pre-Volta boards
            raise EnergyInputError(
                f"NVML energy counter not supported on {self.names[0]}: {first_line(exc)}"
            ) from None
        self.sampling_interval_s: float | None = (
            counter_update_interval(self, probe_seconds) if probe_seconds > 0 else None
        )

    def read_mj(self) -> list[int]:
        """The counters, millijoules since the driver loaded, one per device."""
        return [int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in self.handles]

    def describe(self) -> dict[str, Any]:
        return {
            "counter": "nvmlDeviceGetTotalEnergyConsumption",
            "devices": [
                {"index": i, "name": n} for i, n in zip(self.indices, self.names, strict=True)
            ],
            "counter_update_interval_s": self.sampling_interval_s,
        }

    def start(self) -> tuple[float, list[int]]:
        return time.perf_counter(), self.read_mj()

    def stop(self, token: tuple[float, list[int]]) -> Reading:
        after = self.read_mj()
        seconds = time.perf_counter() - token[0]
        per_device = {
            f"gpu{i}": (b - a) / 1000.0
            for i, a, b in zip(self.indices, token[1], after, strict=True)
        }
        return Reading(
            energy_j=sum(per_device.values()),
            seconds=seconds,
            details={"energy_j_by_device": per_device},
        )


def counter_update_interval(meter: NvmlMeter, seconds: float) -> float | None:
    """Median time between changes of the first device's counter, polled for ``seconds``;
    None when it changed fewer than twice."""
    changes: list[float] = []
    last = meter.read_mj()[0]
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        value = meter.read_mj()[0]
        if value != last:
            changes.append(time.perf_counter())
            last = value
    if len(changes) < 3:
        return None
    return float(np.median(np.diff(changes)))
