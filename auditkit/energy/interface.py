"""The meter interface: every energy method reads a window the same way.

A meter is started at a window's first edge and stopped at its last; ``stop`` returns a
:class:`Reading` (joules over the window, and power samples when the method has them). The
method, whether it measures or models, its boundary and its sampling interval are attributes, so
every number written carries how it was obtained.

This package imports only the standard library and NumPy at import time (benchmarks/energy_gpu.py
runs it where pydantic and pandas may be missing); optional libraries are imported when used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from auditkit.errors import InputError

#: ``--energy`` choices; ``auto`` picks the first available of rapl, nvml, powerlog, model.
METHODS = ("auto", "rapl", "nvml", "powerlog", "model", "off")
#: the minimum energy window a user may ask for (counters need many update periods)
MIN_WINDOW_S = 10.0
#: defaults for measured meters (a model has no counter to resolve and no idle to drift)
MEASURED_IDLE_S = 5.0
MEASURED_WINDOW_S = 10.0

MEASURED = "measured"
MODELLED = "modelled"


class EnergyInputError(InputError):
    """A meter cannot be used as asked (missing counters, bad power log): exit 5."""


@dataclass(frozen=True)
class Reading:
    """Energy over one window.

    ``energy_j``: joules between the window's edges. ``seconds``: the window's wall time.
    ``t_s``/``watts``: power samples inside the window (``t_s`` from the window start), or
    ``None`` when the method reads only the edges. ``details``: method-specific facts (domains,
    utilisation, clock offset ...), JSON-ready.
    """

    energy_j: float
    seconds: float
    t_s: np.ndarray | None = None
    watts: np.ndarray | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_power_w(self) -> float:
        return self.energy_j / self.seconds if self.seconds > 0 else 0.0


class Meter(Protocol):
    """One energy method. ``start`` returns an opaque token; ``stop(token)`` reads the window."""

    #: ``rapl``, ``nvml``, ``powerlog`` or ``model``
    name: str
    #: True only when the joules come from a physical counter or meter, never from a model
    measured: bool
    #: what the number covers: ``device`` (GPU board), ``host`` (CPU packages + DRAM, or a model
    #: of the host), ``wall`` (everything behind the wall socket)
    boundary: str
    #: seconds between the meter's updates or samples, when known
    sampling_interval_s: float | None

    def start(self) -> Any: ...

    def stop(self, token: Any) -> Reading: ...

    def describe(self) -> dict[str, Any]:
        """Method details for ``run.json`` ``energy.meter`` (JSON-ready)."""
        ...


@dataclass(frozen=True)
class EnergyOptions:
    """Options of ``--energy`` and its companions (docs/energy.md).

    ``idle_seconds``/``window_seconds`` None mean the defaults: 5 s idle and a 10 s window for a
    measuring meter, no idle and the replay alone for the model.
    """

    method: str = "auto"
    power_log: Path | None = None
    #: seconds to add to the power log's timestamps to get this host's clock; None: estimate
    power_log_offset_s: float | None = None
    declared_watts: float | None = None
    rated_watts: float | None = None
    idle_seconds: float | None = None
    window_seconds: float | None = None
    grid_intensity: float | None = None
    country: str | None = None
    embodied_g_per_1000: float = 0.0
    #: sysfs powercap root (injectable for tests)
    powercap_root: Path = Path("/sys/class/powercap")

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise EnergyInputError(
                f"unknown --energy {self.method!r}: expected one of {', '.join(METHODS)}"
            )
        for name, value in (
            ("--declared-watts", self.declared_watts),
            ("--rated-watts", self.rated_watts),
        ):
            if value is not None and not (np.isfinite(value) and value > 0):
                raise EnergyInputError(f"{name} must be a positive number, got {value}")
        if self.idle_seconds is not None and not (
            np.isfinite(self.idle_seconds) and self.idle_seconds >= 0
        ):
            raise EnergyInputError(f"--idle-seconds must be >= 0, got {self.idle_seconds}")
        if self.window_seconds is not None and not (
            np.isfinite(self.window_seconds) and self.window_seconds >= MIN_WINDOW_S
        ):
            raise EnergyInputError(
                f"--energy-window-seconds must be >= {MIN_WINDOW_S:g}, got {self.window_seconds}"
            )
        if not (np.isfinite(self.embodied_g_per_1000) and self.embodied_g_per_1000 >= 0):
            raise EnergyInputError(
                f"--embodied-g-per-1000 must be >= 0, got {self.embodied_g_per_1000}"
            )
        if self.power_log_offset_s is not None and not np.isfinite(self.power_log_offset_s):
            raise EnergyInputError("--power-log-offset must be a finite number of seconds")
        if self.method == "powerlog" and self.power_log is None:
            raise EnergyInputError("--energy powerlog needs --power-log FILE")
