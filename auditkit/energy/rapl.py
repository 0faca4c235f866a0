"""RAPL energy counters from sysfs powercap: CPU packages and DRAM (boundary ``host``).

Each zone ``intel-rapl:N`` (a package) and its sub-zone named ``dram`` has ``energy_uj``, a
counter in microjoules that wraps to 0 past ``max_energy_range_uj``. ``core``/``uncore``
sub-zones lie inside their package and ``psys`` overlaps everything, so only packages and DRAM
are summed. A background reader polls the counters (default every second) so that a long window
cannot wrap a counter twice unseen; its deltas also give power samples.

Since CVE-2020-8694 (Platypus) ``energy_uj`` is usually readable by root only: that case is
reported as such, never silently replaced by a model.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from auditkit.energy.interface import EnergyInputError, Reading

POWERCAP = Path("/sys/class/powercap")


@dataclass(frozen=True)
class RaplDomain:
    """One counter: ``name`` as sysfs gives it (``package-0``, ``dram``), its folder."""

    name: str
    path: Path
    max_range_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def counter_delta_uj(before: int, after: int, max_range_uj: int) -> int:
    """Microjoules from ``before`` to ``after`` on a counter that wraps to 0 past
    ``max_range_uj`` (at most one wrap between the two readings)."""
    if after >= before:
        return after - before
    return after + max_range_uj - before


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except PermissionError:
        raise EnergyInputError(
            f"RAPL counter {path} is readable by root only (the usual setting since "
            "CVE-2020-8694): run as root or grant read access (e.g. a udev rule or "
            "`chmod o+r`), or choose another --energy method"
        ) from None
    except OSError as exc:
        raise EnergyInputError(f"cannot read RAPL counter {path}: {exc.strerror}") from None


def find_domains(root: Path = POWERCAP) -> list[RaplDomain]:
    """The package and DRAM counters under ``root``; one clear error when there are none or
    they cannot be read."""
    if not root.is_dir():
        raise EnergyInputError(
            f"RAPL not available: {root} does not exist (kernel without powercap, or a VM)"
        )
    zones = sorted(p for p in root.glob("intel-rapl:*") if p.is_dir())
    domains: list[RaplDomain] = []
    for zone in zones:
        name_file = zone / "name"
        if not name_file.exists():
            continue
        name = _read_text(name_file)
        depth = zone.name.count(":")
        keep = (depth == 1 and name.startswith("package")) or (depth == 2 and name == "dram")
        if not keep:
            continue
        label = name if depth == 1 else f"{name}-{zone.name.split(':')[1]}"
        max_range = int(_read_text(zone / "max_energy_range_uj"))
        domain = RaplDomain(label, zone, max_range)
        _read_text(zone / "energy_uj")  # readable now, or a clear error now
        domains.append(domain)
    if not domains:
        raise EnergyInputError(f"RAPL not available: no package or DRAM zone under {root}")
    return domains


class _Poller:
    """Accumulates the counters' deltas; polled by a thread and at the window's edges."""

    def __init__(self, domains: list[RaplDomain]) -> None:
        self.domains = domains
        self.lock = threading.Lock()
        self.last = [d.read_uj() for d in domains]
        self.total_uj = [0] * len(domains)
        self.started = time.perf_counter()
        self.times = [0.0]
        self.energy = [0.0]

    def poll(self) -> None:
        with self.lock:
            now = [d.read_uj() for d in self.domains]
            for i, (d, a, b) in enumerate(zip(self.domains, self.last, now, strict=True)):
                self.total_uj[i] += counter_delta_uj(a, b, d.max_range_uj)
            self.last = now
            self.times.append(time.perf_counter() - self.started)
            self.energy.append(sum(self.total_uj) / 1e6)


class RaplMeter:
    name = "rapl"
    measured = True
    boundary = "host"

    def __init__(self, root: Path = POWERCAP, poll_seconds: float = 1.0) -> None:
        self.root = root
        self.domains = find_domains(root)
        self.poll_seconds = poll_seconds
        self.sampling_interval_s: float | None = poll_seconds

    def describe(self) -> dict[str, Any]:
        return {
            "source": str(self.root),
            "domains": [d.name for d in self.domains],
            "max_energy_range_uj": {d.name: d.max_range_uj for d in self.domains},
            "poll_seconds": self.poll_seconds,
        }

    def start(self) -> tuple[_Poller, threading.Event, threading.Thread]:
        poller = _Poller(self.domains)
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(self.poll_seconds):
                poller.poll()

        thread = threading.Thread(target=run, name="auditkit-rapl", daemon=True)
        thread.start()
        return poller, stop, thread

    def stop(self, token: tuple[_Poller, threading.Event, threading.Thread]) -> Reading:
        poller, stop, thread = token
        stop.set()
        thread.join()
        poller.poll()
        times = np.asarray(poller.times)
        energy = np.asarray(poller.energy)
        seconds = float(times[-1])
        per_domain = {d.name: uj / 1e6 for d, uj in zip(self.domains, poller.total_uj, strict=True)}
        t_s = watts = None
        if len(times) > 2:
            dt = np.diff(times)
            watts = np.diff(energy) / np.maximum(dt, 1e-9)
            t_s = times[1:]
        return Reading(
            energy_j=float(energy[-1]),
            seconds=seconds,
            t_s=t_s,
            watts=watts,
            details={"energy_j_by_domain": per_domain},
        )
