"""A model of power, never a measurement (``measured`` is False; every output says
"modelled").

* ``--declared-watts W``: the host draws W watts whenever the replay runs (E = W x t).
* otherwise ``rated watts x CPU utilisation``: P = R x u, where u is this process's CPU time
  (user + system, its threads and waited-for children; ``os.times``; plus what its decode
  worker processes report, :func:`add_worker_cpu`) over the window's wall
  time and the logical CPUs, clipped to [0, 1]. R is ``--rated-watts``, or, when no rating is
  given, an assumption of 10 W per logical CPU (labelled as such: no source, only an order of
  magnitude for a server core).

The whole machine's utilisation (``/proc/stat``, other processes included) is recorded beside
it for context when readable; it does not enter the figure.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from auditkit.energy.interface import Reading

ASSUMED_WATTS_PER_CPU = 10.0


_worker_cpu_seconds = 0.0


def add_worker_cpu(seconds: float) -> None:
    """Count CPU seconds that worker processes spent for this replay and that ``os.times``
    cannot see: decode workers are forked by a forkserver, so they are not this process's
    children (without this, ``--decode-processes`` halved the modelled energy per image)."""
    global _worker_cpu_seconds
    _worker_cpu_seconds += seconds


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system + _worker_cpu_seconds


def host_busy_jiffies(stat: Path = Path("/proc/stat")) -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from ``/proc/stat`` (busy = total - idle - iowait),
    or None when unreadable (not Linux)."""
    try:
        first = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not first or first[0] != "cpu":
        return None
    values = [int(v) for v in first[1:]]
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal (guest is in user)
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return total - idle, total


class ModelMeter:
    name = "model"
    measured = False
    boundary = "host"
    sampling_interval_s: float | None = None

    def __init__(
        self,
        declared_watts: float | None = None,
        rated_watts: float | None = None,
        *,
        cpus: int | None = None,
    ) -> None:
        self.declared_watts = declared_watts
        self.cpus = cpus or os.cpu_count() or 1
        if declared_watts is not None:
            self.rated_watts: float | None = None
            self.source = "--declared-watts"
        elif rated_watts is not None:
            self.rated_watts = rated_watts
            self.source = "--rated-watts"
        else:
            self.rated_watts = ASSUMED_WATTS_PER_CPU * self.cpus
            self.source = (
                f"assumed {ASSUMED_WATTS_PER_CPU:g} W per logical CPU x {self.cpus} "
                "(no --rated-watts or --declared-watts given; not a rating)"
            )

    def describe(self) -> dict[str, Any]:
        formula = (
            "P = declared watts"
            if self.declared_watts is not None
            else "P = rated watts x process CPU utilisation"
        )
        return {
            "formula": formula,
            "declared_watts": self.declared_watts,
            "rated_watts": self.rated_watts,
            "watts_source": self.source,
            "logical_cpus": self.cpus,
        }

    def start(self) -> tuple[float, float, tuple[int, int] | None]:
        return time.perf_counter(), _cpu_seconds(), host_busy_jiffies()

    def stop(self, token: tuple[float, float, tuple[int, int] | None]) -> Reading:
        wall = time.perf_counter() - token[0]
        cpu = _cpu_seconds() - token[1]
        host_after = host_busy_jiffies()
        utilisation = modelled_utilisation(cpu, wall, self.cpus)
        host_util = None
        if token[2] is not None and host_after is not None and host_after[1] > token[2][1]:
            host_util = (host_after[0] - token[2][0]) / (host_after[1] - token[2][1])
        watts = modelled_watts(self.declared_watts, self.rated_watts, utilisation)
        return Reading(
            energy_j=watts * wall,
            seconds=wall,
            details={
                "process_cpu_seconds": cpu,
                "process_cpu_utilisation": utilisation,
                "host_cpu_utilisation": host_util,
                "modelled_power_w": watts,
            },
        )


def modelled_utilisation(cpu_seconds: float, wall_seconds: float, cpus: int) -> float:
    """CPU seconds over (wall seconds x logical CPUs), clipped to [0, 1]."""
    if wall_seconds <= 0:
        return 0.0
    return min(1.0, max(0.0, cpu_seconds / (wall_seconds * cpus)))


def modelled_watts(declared: float | None, rated: float | None, utilisation: float) -> float:
    """Declared watts when given, else rated watts x utilisation."""
    if declared is not None:
        return declared
    assert rated is not None
    return rated * utilisation
