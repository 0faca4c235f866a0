"""The measurement protocol: idle baseline, an energy window of at least 10 s around the same
replay that gives the accuracy, and the figures of ``run.json``'s ``energy`` block.

1. **Idle** (``idle_seconds``, before the window): the meter reads the machine doing nothing;
   idle power = idle joules / idle seconds.
2. **Window**: the meter starts, the replay's scenario runs (its predictions are the run's), and
   while the window is shorter than ``window_seconds`` the same images are replayed again
   (extra passes, results discarded: only the first pass's predictions are kept); the meter
   stops. ``passes``, ``images`` (all images processed in the window) and ``scored_images``
   (those of them that were scored: unreadable images and inference errors are processed but
   not inspected) are recorded.
3. **Figures**: total joules, above-idle joules (total - idle power x window seconds), mean
   power, joules per image (total / scored images: the figure describes the inspections the
   results rest on), Wh per 1,000 inspections, and carbon by SCI.

A meter that cannot see the work gives no per-image figures: with ``--executor dask
--scheduler ADDRESS`` the batches run on other machines while the meter reads this one (the
idle host), and with ``--executor dask`` on a local cluster the model meter misses the workers'
CPU time. Then ``measured`` is False, ``label`` is "not measured", the per-image, per-1,000 and
carbon figures are null and ``not_measured_reason`` says why.

Defaults: a measuring meter (RAPL, NVML, power log) gets 5 s of idle and a 10 s window; the
model gets neither (it has no counter to resolve and no idle to drift; its figures are modelled
whatever the window), so the default replay stays quick. ``--idle-seconds`` and
``--energy-window-seconds`` (>= 10) apply to every meter when given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from auditkit.energy.carbon import GridIntensity, grid_intensity, sci_g_per_1000
from auditkit.energy.interface import (
    MEASURED,
    MEASURED_IDLE_S,
    MEASURED_WINDOW_S,
    MIN_WINDOW_S,
    MODELLED,
    EnergyInputError,
    EnergyOptions,
    Meter,
    Reading,
)

AUTO_ORDER = ("rapl", "nvml", "powerlog", "model")
#: ``label`` of a window whose meter could not see the work (an external Dask cluster)
NOT_MEASURED = "not measured"


def make_meter(name: str, options: EnergyOptions) -> Meter:
    """The meter ``name``; :class:`EnergyInputError` (exit 5) when it cannot be used here."""
    if name == "rapl":
        from auditkit.energy.rapl import RaplMeter

        return RaplMeter(options.powercap_root)
    if name == "nvml":
        from auditkit.energy.nvml import NvmlMeter

        return NvmlMeter()
    if name == "powerlog":
        from auditkit.energy.powerlog import PowerlogMeter

        if options.power_log is None:
            raise EnergyInputError("--energy powerlog needs --power-log FILE")
        return PowerlogMeter(options.power_log, options.power_log_offset_s)
    if name == "model":
        from auditkit.energy.model import ModelMeter

        return ModelMeter(options.declared_watts, options.rated_watts)
    raise EnergyInputError(f"unknown energy method {name!r}")


def select_meter(
    options: EnergyOptions, *, gpu_inference: bool = False
) -> tuple[Meter | None, dict[str, str]]:
    """The meter for ``options.method`` (None for ``off``) and, for ``auto``, why each better
    method was passed over (method -> reason). ``auto`` tries RAPL, NVML, the power log (only
    when ``--power-log`` is given; a given log that cannot be used is an error, not a reason to
    fall back) and the model, in that order. The meter must see the work: when the inference
    runs on an NVIDIA GPU (``gpu_inference``) NVML comes before RAPL, since the board draws most
    of the power; when it runs on the CPU NVML is passed over, since an idle board's counter
    would be reported as the energy of a replay it never saw."""
    if options.method == "off":
        return None, {}
    if options.method != "auto":
        return make_meter(options.method, options), {}
    skipped: dict[str, str] = {}
    order = ("nvml", "rapl", "powerlog", "model") if gpu_inference else AUTO_ORDER
    for name in order:
        if name == "nvml" and not gpu_inference:
            skipped[name] = "inference runs on the CPU: a GPU board's counter would not see it"
            continue
        if name == "powerlog":
            if options.power_log is None:
                skipped[name] = "no --power-log given"
                continue
            return make_meter(name, options), skipped
        try:
            return make_meter(name, options), skipped
        except EnergyInputError as exc:
            if name == "model":
                raise
            skipped[name] = str(exc)
    raise AssertionError("unreachable: the model meter is always available")


class EnergyRun:
    """One run's protocol: ``begin()`` before the replay's scenario, ``end()`` after it."""

    def __init__(
        self,
        meter: Meter,
        options: EnergyOptions,
        *,
        skipped: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.meter = meter
        self.clock = clock
        self.options = options
        self.skipped = skipped or {}
        self.sleep = sleep
        self.idle_seconds = (
            options.idle_seconds
            if options.idle_seconds is not None
            else (MEASURED_IDLE_S if meter.measured else 0.0)
        )
        self.window_seconds = (
            options.window_seconds
            if options.window_seconds is not None
            else (MEASURED_WINDOW_S if meter.measured else 0.0)
        )
        self.grid: GridIntensity = grid_intensity(options.grid_intensity, options.country)
        self.idle: Reading | None = None
        self.window: Reading | None = None
        self.images = 0
        self.first_pass_images = 0
        self.scored_images = 0
        self.passes = 0
        self.scheduler: str | None = None
        self.resumed = False
        self.executor = "local"
        self._idle_span: tuple[Any, Any] | None = None
        self._token: Any = None
        self._started = 0.0

    def begin(self) -> None:
        """Idle baseline, then the window's first edge."""
        if self.idle_seconds > 0:
            token = self.meter.start()
            self.sleep(self.idle_seconds)
            if getattr(self.meter, "deferred_idle", False):
                self._idle_span = (token, self.meter.start())
            else:
                self.idle = self.meter.stop(token)
        self._token = self.meter.start()
        self._started = self.clock()

    def end(
        self,
        first_pass_images: int,
        extra_pass: Callable[[], int | tuple[int, int]] | None = None,
        *,
        first_pass_scored: int | None = None,
        resumed: bool = False,
        executor: str = "local",
        scheduler: str | None = None,
    ) -> None:
        """After the scenario: replay again with ``extra_pass`` (returns the images it
        processed and, as a pair, how many of them it scored; a plain count means all were
        scored) until the window lasts ``window_seconds``, then the window's last edge.
        ``first_pass_scored``: the images of the first pass that were scored (default: all);
        ``scheduler``: the external Dask scheduler the batches ran on, if any."""
        self.first_pass_images = first_pass_images
        self.images = first_pass_images
        self.scored_images = first_pass_images if first_pass_scored is None else first_pass_scored
        self.passes = 1
        self.resumed = resumed
        self.executor = executor
        self.scheduler = scheduler
        while extra_pass is not None and self.clock() - self._started < self.window_seconds:
            counted = extra_pass()
            n, scored = counted if isinstance(counted, tuple) else (counted, counted)
            if n <= 0:
                break
            self.images += n
            self.scored_images += scored
            self.passes += 1
        self.window = self.meter.stop(self._token)
        if self.idle is None and self._idle_span is not None:
            self.idle = self.meter.span(*self._idle_span)  # type: ignore[attr-defined]

    def block(self) -> dict[str, Any]:
        """``run.json``'s ``energy`` block (docs/run-format.md, docs/energy.md)."""
        assert self.window is not None, "end() first"
        return energy_block(
            self.meter,
            self.window,
            self.idle,
            images=self.images,
            scored_images=self.scored_images,
            passes=self.passes,
            blind=self._blind(),
            grid=self.grid,
            embodied_g_per_1000=self.options.embodied_g_per_1000,
            extra={
                "first_pass_images": self.first_pass_images,
                "resumed": self.resumed,
                "target_seconds": self.window_seconds,
                "executor": self.executor,
                **({"scheduler": self.scheduler} if self.scheduler else {}),
            },
            skipped=self.skipped,
        )

    def _blind(self) -> str | None:
        """Why the meter cannot see the work of this replay, or None when it can."""
        if self.executor == "local":
            return None
        if self.scheduler:
            return (
                f"the batches ran on the Dask cluster of {self.scheduler}; the meter read this "
                "machine only, not the workers that did the work"
            )
        if not self.meter.measured:
            return "the batches ran in Dask worker processes whose CPU time the model does not see"
        return None

    def write_power(self, path: Path) -> bool:
        """``power.parquet`` (``t_s`` from the window start, ``watts``) when the meter gave
        samples; False (nothing written) otherwise."""
        reading = self.window
        if reading is None or reading.t_s is None or reading.watts is None:
            return False
        if len(reading.t_s) == 0:
            return False
        import pandas as pd

        table = pd.DataFrame(
            {"t_s": reading.t_s.astype("float64"), "watts": reading.watts.astype("float64")}
        )
        from auditkit.run import write_table_atomic

        write_table_atomic(path, table)
        return True


def energy_block(
    meter: Meter,
    window: Reading,
    idle: Reading | None,
    *,
    images: int,
    passes: int,
    grid: GridIntensity,
    scored_images: int | None = None,
    blind: str | None = None,
    embodied_g_per_1000: float = 0.0,
    extra: dict[str, Any] | None = None,
    skipped: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The figures, from one window reading and an optional idle reading (pure).

    ``images``: processed in the window; ``scored_images`` (default ``images``): those scored,
    the denominator of the per-image figures; ``blind``: why the meter could not see the work
    (no per-image figures then, ``measured`` False, ``label`` "not measured")."""
    idle_power = idle.mean_power_w if idle is not None and idle.seconds > 0 else None
    energy = window.energy_j
    above = energy - idle_power * window.seconds if idle_power is not None else None
    scored = images if scored_images is None else scored_images
    j_per_image = energy / scored if scored > 0 and blind is None else None
    wh_per_1000 = j_per_image * 1000.0 / 3600.0 if j_per_image is not None else None
    carbon = {
        "grid_intensity_g_per_kwh": grid.g_per_kwh,
        "source": grid.source,
        "embodied_g_per_1000": embodied_g_per_1000,
        # null when no image was processed in the window (nothing to divide by)
        "gco2e_per_1000_inspections": sci_g_per_1000(
            wh_per_1000, grid.g_per_kwh, embodied_g_per_1000
        )
        if wh_per_1000 is not None
        else None,
        "formula": "SCI (ISO/IEC 21031): (E x I + M) per 1,000 inspections",
    }
    meter_info = dict(meter.describe())
    meter_info.update(window.details)
    if idle is not None:
        meter_info["idle_details"] = idle.details
    if skipped:
        meter_info["auto_skipped"] = dict(skipped)
    label = MEASURED if meter.measured else MODELLED
    block: dict[str, Any] = {
        "method": meter.name,
        "measured": bool(meter.measured) and blind is None,
        "label": label if blind is None else NOT_MEASURED,
        "boundary": meter.boundary,
        "meter": meter_info,
        "sampling_interval_s": meter.sampling_interval_s,
        "idle": {"seconds": idle.seconds if idle is not None else 0.0, "power_w": idle_power},
        "window": {
            "seconds": window.seconds,
            "images": images,
            "scored_images": scored,
            "passes": passes,
            **(extra or {}),
        },
        "energy_j": energy,
        "energy_above_idle_j": above,
        "mean_power_w": window.mean_power_w,
        "j_per_image": j_per_image,
        "wh_per_1000_inspections": wh_per_1000,
        "carbon": carbon,
        "uncertainty": uncertainty(meter, window, idle, passes=passes, extra=extra or {}),
    }
    if blind is not None:
        block["not_measured_reason"] = blind
    return block


_BOUNDARY = {
    "rapl": "the CPU packages and DRAM only (RAPL counters; not GPUs, disks, fans, power-supply "
    "losses); RAPL values are the processor's own energy estimates, modelled on-chip on some "
    "processors",
    "nvml": "the GPU board(s) only (NVML cumulative energy counter read at the window's edges; "
    "not the host's CPU, memory or power supply)",
    "powerlog": "everything behind the external meter's socket, other processes on the machine "
    "included; accuracy is the meter's own (not known to auditkit)",
    "model": "MODELLED, NOT MEASURED: power from a declared or rated figure and CPU time, not "
    "from any meter; it can be wrong by a factor of 2 or more and must not be called measured",
}


def uncertainty(
    meter: Meter,
    window: Reading,
    idle: Reading | None,
    *,
    passes: int,
    extra: dict[str, Any],
) -> str:
    """The plain-words statement of what the figures cover and how far to trust them."""
    parts = [f"{meter.name}: {_BOUNDARY.get(meter.name, meter.boundary)}."]
    interval = meter.sampling_interval_s
    if meter.measured and interval:
        share = interval / window.seconds if window.seconds > 0 else float("inf")
        parts.append(
            f"Counter or sample interval {interval:.3g} s against a {window.seconds:.2f} s "
            f"window: edge error up to about {100 * share:.1f} %."
        )
    if window.seconds < MIN_WINDOW_S:
        parts.append(
            f"The window lasted {window.seconds:.2f} s, shorter than {MIN_WINDOW_S:g} s"
            + (": too short for a counter's resolution." if meter.measured else ".")
        )
    if passes > 1:
        parts.append(
            f"The window replayed the images {passes} times to last long enough; only the "
            "first pass's predictions are kept."
        )
    if idle is not None and idle.seconds > 0:
        parts.append(
            f"Idle baseline: {idle.seconds:.1f} s before the window; idle power drifts "
            "(GPUs after load: tens of watts), so above-idle figures carry that uncertainty."
        )
    else:
        parts.append("No idle baseline was taken: above-idle figures are not given.")
    if extra.get("executor", "local") != "local":
        parts.append(
            "Offline batches ran on a Dask cluster: no extra passes; the meter sees this machine "
            "only (workers elsewhere are not included, and local workers' CPU time is not this "
            "process's, so a model misses it)."
        )
    if extra.get("resumed"):
        parts.append(
            "The replay was resumed: the window covers only the images replayed in this "
            "session (and any extra passes), not the interrupted earlier session."
        )
    return " ".join(parts)


#: ``metrics.json`` names and the ``energy`` block keys they come from
METRIC_KEYS = (
    ("energy_wh_per_1000_inspections", "wh_per_1000_inspections"),
    ("energy_j_per_image", "j_per_image"),
    ("gco2e_per_1000_inspections", None),
    ("idle_power_w", None),
    ("mean_power_w", "mean_power_w"),
)


def metric_entries(block: dict[str, Any] | None) -> list[dict[str, Any]]:
    """``metrics.json`` entries of a run's ``energy`` block, each with ``method`` "measured"
    or "modelled"; none when energy was off (or the run predates energy)."""
    if not block or block.get("method") in (None, "off"):
        return []
    carbon = block.get("carbon") or {}
    values = {
        "gco2e_per_1000_inspections": carbon.get("gco2e_per_1000_inspections"),
        "idle_power_w": (block.get("idle") or {}).get("power_w"),
    }
    label = MEASURED if block.get("measured") else MODELLED
    if block.get("label") == NOT_MEASURED:
        label = NOT_MEASURED
    return [
        {
            "name": name,
            "slice": {},
            "unit": "image",
            "value": block.get(key) if key else values[name],
            "k": None,
            "n": None,
            "interval": None,
            "method": label,
        }
        for name, key in METRIC_KEYS
    ]
