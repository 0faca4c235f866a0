"""External power meter: a CSV of timestamped watts, integrated over the replay window.

The MLPerf Power way: a wall meter (or a PDU, or the meter's own logger) writes
``timestamp,watts`` rows while the replay runs; ``timestamp`` is Unix seconds or ISO 8601 (a
timestamp without a zone is taken as UTC). The boundary is ``wall``: everything behind the
socket, other processes included.

Clocks. The log's clock and this host's may differ: ``offset_s`` is what to add to a log
timestamp to get this host's time (``host = log + offset``). Given, it is used as is. Not given,
it is **estimated by aligning the power rise with the window start**: for every candidate offset
on a grid (``search_s`` either way, step a tenth of the log's sampling interval), the mean power
inside the shifted window minus the mean power over the ``lead_s`` seconds just before it; the
candidate with the largest rise wins. This needs the log to run before the window (the idle
baseline gives such a stretch) and a visible rise; when the rise is not clearly above the
noise of the stretch before, the estimate is refused. It is exact only to about one sampling
interval (recorded as ``offset_resolution_s``).

Energy is the trapezoid integral of the piecewise-linear power between the window's edges
(power at an edge interpolated between its neighbouring samples).
"""

from __future__ import annotations

import csv
import hashlib
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from auditkit.energy.interface import EnergyInputError, Reading


@dataclass(frozen=True)
class PowerLog:
    """Samples in the log's own clock: Unix seconds (strictly increasing) and watts."""

    path: Path
    t: np.ndarray
    watts: np.ndarray
    sha256: str

    @property
    def interval_s(self) -> float:
        return float(np.median(np.diff(self.t)))


def _parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    stamp = datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def read_power_log(path: Path) -> PowerLog:
    """Parse the CSV; one clear :class:`EnergyInputError` for anything unusable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise EnergyInputError(f"power log not found: {path}") from None
    except OSError as exc:
        raise EnergyInputError(f"cannot read power log {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise EnergyInputError(f"power log {path} is not UTF-8 text") from None
    reader = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(reader, [])]
    if "timestamp" not in header or "watts" not in header:
        raise EnergyInputError(
            f"power log {path}: expected columns 'timestamp' and 'watts', got {header or 'none'}"
        )
    it, iw = header.index("timestamp"), header.index("watts")
    times: list[float] = []
    watts: list[float] = []
    for line, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        try:
            t = _parse_time(row[it].strip())
            w = float(row[iw])
        except (ValueError, IndexError):
            raise EnergyInputError(
                f"power log {path}, line {line}: cannot read timestamp and watts from {row}"
            ) from None
        if not (math.isfinite(t) and math.isfinite(w)) or w < 0:
            raise EnergyInputError(
                f"power log {path}, line {line}: watts must be a finite number >= 0, got {w}"
            )
        if times and t <= times[-1]:
            raise EnergyInputError(
                f"power log {path}, line {line}: timestamps must increase ({row[it].strip()})"
            )
        times.append(t)
        watts.append(w)
    if len(times) < 2:
        raise EnergyInputError(f"power log {path} has fewer than 2 samples")
    return PowerLog(path, np.asarray(times), np.asarray(watts), hashlib.sha256(raw).hexdigest())


def integrate(t: np.ndarray, watts: np.ndarray, a: float, b: float) -> float:
    """Joules of the piecewise-linear power through ``(t, watts)`` from ``a`` to ``b``
    (``t[0] <= a <= b <= t[-1]``)."""
    inside = (t > a) & (t < b)
    xs = np.concatenate([[a], t[inside], [b]])
    ys = np.interp(xs, t, watts)
    return float(np.sum((ys[1:] + ys[:-1]) * np.diff(xs)) / 2.0)


def _cumulative(t: np.ndarray, watts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum((watts[1:] + watts[:-1]) * np.diff(t) / 2.0)])


def estimate_offset(
    log: PowerLog, start: float, end: float, *, lead_s: float = 5.0, search_s: float = 30.0
) -> tuple[float, float]:
    """The offset (``host = log + offset``) that best aligns the power rise with the window
    ``[start, end]`` (host clock), and the rise in watts; see the module docstring."""
    length = end - start
    lead = min(lead_s, length)
    step = log.interval_s / 10.0
    candidates = np.arange(-search_s, search_s + step / 2, step)
    a = start - candidates  # window start in log time, per candidate
    ok = (a - lead >= log.t[0]) & (a + length <= log.t[-1])
    if not ok.any():
        raise EnergyInputError(
            f"cannot estimate the power log's clock offset: {log.path} does not cover the "
            f"window and the {lead:.0f} s before it within ±{search_s:.0f} s; give "
            "--power-log-offset"
        )
    cum = _cumulative(log.t, log.watts)
    a = a[ok]
    e_in = np.interp(a + length, log.t, cum) - np.interp(a, log.t, cum)
    e_before = np.interp(a, log.t, cum) - np.interp(a - lead, log.t, cum)
    rise = e_in / length - e_before / lead
    best = int(np.argmax(rise))
    offset = float(candidates[ok][best])
    before = (log.t >= a[best] - lead) & (log.t <= a[best])
    noise = float(np.std(log.watts[before])) if before.sum() > 1 else 0.0
    if rise[best] <= max(3.0 * noise, 1e-9):
        raise EnergyInputError(
            f"cannot estimate the power log's clock offset: no power rise at the window start "
            f"in {log.path} (rise {rise[best]:.2f} W, noise {noise:.2f} W); give "
            "--power-log-offset"
        )
    return offset, float(rise[best])


class PowerlogMeter:
    name = "powerlog"
    measured = True
    boundary = "wall"
    #: the idle stretch is read after the window, once the clock offset is known
    deferred_idle = True

    def __init__(
        self,
        path: Path,
        offset_s: float | None = None,
        *,
        lead_s: float = 5.0,
        search_s: float = 30.0,
        wait_s: float = 2.0,
    ) -> None:
        self.path = path
        self.log = read_power_log(path)  # fail before the replay when it is unusable
        self.given_offset = offset_s
        self.offset_s: float | None = offset_s
        self.rise_w: float | None = None
        self.lead_s = lead_s
        self.search_s = search_s
        self.wait_s = wait_s
        self.sampling_interval_s: float | None = self.log.interval_s

    def describe(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "sha256": self.log.sha256,
            "samples": len(self.log.t),
            "clock_offset_s": self.offset_s,
            "clock_offset": "given" if self.given_offset is not None else "estimated",
            "clock_offset_resolution_s": self.log.interval_s,
            "estimate_rise_w": self.rise_w,
            "estimate_search_s": None if self.given_offset is not None else self.search_s,
        }

    def start(self) -> float:
        return time.time()

    def stop(self, token: float) -> Reading:
        end = time.time()
        self._reload_until(end)
        if self.offset_s is None:
            self.offset_s, self.rise_w = estimate_offset(
                self.log, token, end, lead_s=self.lead_s, search_s=self.search_s
            )
        return self.span(token, end)

    def _reload_until(self, end: float) -> None:
        """The logger may not have written the window's last seconds yet: re-read a little."""
        deadline = time.monotonic() + self.wait_s
        while self.log.t[-1] + (self.offset_s or 0.0) < end and time.monotonic() < deadline:
            time.sleep(min(0.5, self.wait_s))
            self.log = read_power_log(self.path)

    def span(self, start: float, end: float) -> Reading:
        """The reading of ``[start, end]`` (host clock) with the offset already fixed."""
        assert self.offset_s is not None
        a, b = start - self.offset_s, end - self.offset_s
        t, w = self.log.t, self.log.watts
        if a < t[0] or b > t[-1]:
            raise EnergyInputError(
                f"power log {self.path} does not cover the replay window: log "
                f"{_iso(t[0])} to {_iso(t[-1])}, window {_iso(a)} to {_iso(b)} in the log's "
                f"clock (offset {self.offset_s:+.3f} s)"
            )
        inside = (t >= a) & (t <= b)
        return Reading(
            energy_j=integrate(t, w, a, b),
            seconds=end - start,
            t_s=t[inside] - a,
            watts=w[inside],
            details={"clock_offset_s": self.offset_s},
        )


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
