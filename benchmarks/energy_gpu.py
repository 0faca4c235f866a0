"""Check auditkit's NVML meter and protocol against a known GPU load (issue 8, GPU path).

Runs on an NVIDIA GPU machine with PyTorch (CUDA) and nvidia-ml-py; needs neither pydantic nor
onnxruntime-gpu (it imports only ``auditkit.energy``, which needs the standard library and
NumPy). From the repository root:

    PYTHONPATH=. python3 benchmarks/energy_gpu.py --out $OUT/energy_gpu.json
    PYTHONPATH=. python3 benchmarks/energy_gpu.py --dry-run --out /tmp/energy_gpu.json

Steps (about 1.5 minutes with the defaults; stays well under 4):

1. the NVML counter's update interval (poll it as fast as possible for ``--probe-seconds`` and
   take the median step between changes) and the cost of one counter read and one power read;
2. ``auditkit.energy.protocol.EnergyRun`` with ``NvmlMeter``: an idle baseline
   (``--idle-seconds``), then for each batch size a window of at least ``--window-seconds`` in
   which a PyTorch re-implementation of the sample classifier (SteelNet of
   sample_data/train_models.py, random weights: energy does not depend on their values) runs on
   random 1x64x64 inputs already on the GPU, ``torch.cuda.synchronize()`` at the window's edges
   and between chunks; the window is extended chunk by chunk as the protocol extends a replay;
3. per window: joules from the counter, images, energy per image (mJ, total and above idle),
   mean power and images/s; as a cross-check, a thread polls ``nvmlDeviceGetPowerUsage`` every
   ``--poll-ms`` over the same window, and the trapezoid integral of that power is compared with
   the counter (ratio counter / integral; the power reading is a trailing ~1 s average on recent
   boards, so short windows disagree more);
4. an idle reading after the load (idle power drifts after load: P-state hysteresis).

Prints a summary and writes JSON. ``--dry-run`` uses a fake NVML (a 100 W board whose counter
updates every 100 ms) and PyTorch on the CPU when installed (NumPy otherwise) with 1 s phases,
to check the code path without a GPU. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from anywhere, with or without PYTHONPATH
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from auditkit.energy.interface import EnergyOptions  # noqa: E402
from auditkit.energy.nvml import NvmlMeter, counter_update_interval, load_pynvml  # noqa: E402
from auditkit.energy.protocol import EnergyRun  # noqa: E402

SIDE = 64
N_CLASSES = 5


class FakeNvml:
    """A stand-in for ``pynvml``: one 100 W board, energy counter updated every 100 ms."""

    WATTS = 100.0
    PERIOD = 0.1

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return "Fake NVML board (dry run)"

    def nvmlSystemGetDriverVersion(self) -> str:
        return "fake"

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        elapsed = time.perf_counter() - self.t0
        ticks = math.floor(elapsed / self.PERIOD)
        return int(ticks * self.PERIOD * self.WATTS * 1000.0)

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return int(self.WATTS * 1000)


def _say(text: str) -> None:
    print(text, flush=True)


def read_cost_ms(fn: Callable[[], Any], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1000.0


class PowerPoller:
    """Polls ``nvmlDeviceGetPowerUsage`` (mW) in a thread; trapezoid integral in joules."""

    def __init__(self, nvml: Any, handle: Any, period_s: float) -> None:
        self.nvml, self.handle, self.period = nvml, handle, period_s
        self.t: list[float] = []
        self.w: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        self.t.append(time.perf_counter())
        self.w.append(self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._sample()

    def start(self) -> None:
        self._sample()
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        self._sample()
        t, w = np.asarray(self.t), np.asarray(self.w)
        joules = float(np.sum((w[1:] + w[:-1]) * np.diff(t)) / 2.0)
        return {
            "samples": len(t),
            "integral_j": joules,
            "mean_w": float(np.mean(w)),
            "max_w": float(np.max(w)),
        }


def make_workload(dry_run: bool, seed: int) -> tuple[str, Callable[[int], Callable[[], int]]]:
    """(description, factory): factory(batch) gives one chunk's function (returns images)."""
    try:
        import torch
        from torch import nn
    except ImportError:
        if not dry_run:
            raise
        return _numpy_workload(seed)

    device = "cuda" if torch.cuda.is_available() and not dry_run else "cpu"
    if device == "cpu" and not dry_run:
        raise RuntimeError("torch.cuda.is_available() is False: no GPU for the check")
    torch.manual_seed(seed)

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )

    class SteelNet(nn.Module):
        """sample_data/train_models.py's classifier, with its softmax."""

        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(block(1, 16), block(16, 32), block(32, 64))
            self.head = nn.Linear(128, N_CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = self.features(x)
            pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
            return torch.softmax(self.head(pooled), dim=1)

    net = SteelNet().to(device).eval()

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def factory(batch: int) -> Callable[[], int]:
        x = torch.randn(batch, 1, SIDE, SIDE, device=device)
        iterations = 200 if device == "cuda" else 5
        with torch.inference_mode():
            for _ in range(20 if device == "cuda" else 2):  # warm-up (cuDNN autotuning)
                net(x)
        sync()

        def chunk() -> int:
            with torch.inference_mode():
                for _ in range(iterations):
                    net(x)
            sync()
            return iterations * batch

        return chunk

    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    return f"torch {torch.__version__} SteelNet fp32 on {device} ({name})", factory


def _numpy_workload(seed: int) -> tuple[str, Callable[[int], Callable[[], int]]]:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(SIDE * SIDE, N_CLASSES)).astype(np.float32)

    def factory(batch: int) -> Callable[[], int]:
        x = rng.normal(size=(batch, SIDE * SIDE)).astype(np.float32)

        def chunk() -> int:
            for _ in range(5):
                x @ w
            return 5 * batch

        return chunk

    return "numpy stand-in (no torch; dry run)", factory


def run(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Fill ``report`` step by step (a failure keeps what was measured before it)."""
    started = time.perf_counter()
    nvml = FakeNvml() if args.dry_run else load_pynvml()
    meter = NvmlMeter([args.device], nvml=nvml, probe_seconds=0)
    handle = meter.handles[0]
    try:
        driver = nvml.nvmlSystemGetDriverVersion()
        report["driver"] = driver.decode() if isinstance(driver, bytes) else str(driver)
    except Exception as exc:
        report["driver"] = f"unknown ({exc})"
    report["device"] = meter.describe()["devices"][0]
    _say(f"device: {report['device']['name']}, driver {report['driver']}")

    # 1. counter update interval and read costs
    interval = counter_update_interval(meter, args.probe_seconds)
    meter.sampling_interval_s = interval
    report["counter_update_interval_s"] = interval
    report["counter_read_ms"] = read_cost_ms(meter.read_mj, args.read_reps)
    report["power_read_ms"] = read_cost_ms(
        lambda: nvml.nvmlDeviceGetPowerUsage(handle), args.read_reps
    )
    _say(
        f"counter update interval {_fmt(interval, 's', 3)}, one counter read "
        f"{report['counter_read_ms']:.3f} ms, one power read {report['power_read_ms']:.4f} ms"
    )

    # 2. workload, idle baseline, one window per batch size
    description, factory = make_workload(args.dry_run, args.seed)
    report["workload"] = description
    _say(f"workload: {description}")
    chunks = {b: factory(b) for b in args.batches}  # model built and warmed up before idle
    options = EnergyOptions(method="nvml", idle_seconds=args.idle_seconds)
    windows: list[dict[str, Any]] = []
    idle_power: float | None = None
    for i, batch in enumerate(args.batches):
        energy_run = EnergyRun(meter, options)
        energy_run.window_seconds = args.window_seconds  # >= 10 s unless --dry-run
        if i > 0:
            energy_run.idle_seconds = 0.0  # one idle baseline, before the first window
        poller = PowerPoller(nvml, handle, args.poll_ms / 1000.0)
        chunk = chunks[batch]
        energy_run.begin()
        poller.start()
        first = chunk()
        energy_run.end(first, chunk)
        cross = poller.stop()
        if energy_run.idle is not None:
            idle_power = energy_run.idle.mean_power_w
            report["idle"] = {
                "seconds": energy_run.idle.seconds,
                "energy_j": energy_run.idle.energy_j,
                "power_w": idle_power,
            }
            _say(f"idle: {idle_power:.1f} W over {energy_run.idle.seconds:.1f} s")
        reading = energy_run.window
        assert reading is not None
        images = energy_run.images
        above = reading.energy_j - idle_power * reading.seconds if idle_power is not None else None
        window = {
            "batch": batch,
            "seconds": reading.seconds,
            "passes": energy_run.passes,
            "images": images,
            "images_per_s": images / reading.seconds,
            "energy_j": reading.energy_j,
            "mean_power_w": reading.mean_power_w,
            "mj_per_image": reading.energy_j / images * 1000.0,
            "energy_above_idle_j": above,
            "mj_per_image_above_idle": above / images * 1000.0 if above is not None else None,
            "power_poll": cross,
            "counter_over_power_integral": reading.energy_j / cross["integral_j"]
            if cross["integral_j"] > 0
            else None,
            "energy_block": energy_run.block(),
        }
        windows.append(window)
        _say(
            f"batch {batch:>4}: {reading.seconds:.1f} s, {images:,} images "
            f"({window['images_per_s']:,.0f}/s), {reading.energy_j:.1f} J, "
            f"mean {reading.mean_power_w:.1f} W, {window['mj_per_image']:.3f} mJ/image total, "
            f"{_fmt(window['mj_per_image_above_idle'], 'mJ/image above idle', 3)}; "
            f"counter / power integral {_fmt(window['counter_over_power_integral'], '', 3)}"
        )
    report["windows"] = windows

    # 3. idle after the load
    if args.idle_after_seconds > 0:
        token = meter.start()
        time.sleep(args.idle_after_seconds)
        after = meter.stop(token)
        report["idle_after_load"] = {
            "seconds": after.seconds,
            "energy_j": after.energy_j,
            "power_w": after.mean_power_w,
        }
        _say(f"idle after load: {after.mean_power_w:.1f} W over {after.seconds:.1f} s")
    report["total_seconds"] = time.perf_counter() - started


def _fmt(value: float | None, unit: str, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}g} {unit}".strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("energy_gpu.json"))
    parser.add_argument("--dry-run", action="store_true", help="fake NVML, CPU, 1 s phases")
    parser.add_argument("--device", type=int, default=0)
    parser.add_argument("--batches", default="1,64,256", help="comma-separated batch sizes")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--idle-after-seconds", type=float, default=5.0)
    parser.add_argument("--window-seconds", type=float, default=10.0)
    parser.add_argument("--probe-seconds", type=float, default=1.0)
    parser.add_argument("--read-reps", type=int, default=200)
    parser.add_argument("--poll-ms", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.batches = [int(b) for b in str(args.batches).split(",") if b.strip()]
    if args.dry_run:
        args.idle_seconds = min(args.idle_seconds, 1.0)
        args.idle_after_seconds = min(args.idle_after_seconds, 0.5)
        args.window_seconds = min(args.window_seconds, 1.0)
        args.probe_seconds = min(args.probe_seconds, 0.5)
        args.read_reps = min(args.read_reps, 50)
    elif args.window_seconds < 10:
        parser.error("--window-seconds must be >= 10 (counter resolution)")
    report: dict[str, Any] = {
        "format": "auditkit.bench.energy_gpu/1",
        "dry_run": args.dry_run,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"platform": platform.platform(), "python": platform.python_version()},
        "args": {k: v for k, v in vars(args).items() if k != "out"},
    }
    try:
        run(args, report)
    except Exception as exc:  # keep what was measured before the failure
        traceback.print_exc()
        report["error"] = f"{type(exc).__name__}: {exc}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    _say(f"wrote {args.out}")
    return 1 if "error" in report else 0


if __name__ == "__main__":
    os.environ.setdefault("CUDA_MODULE_LOADING", "LAZY")
    sys.exit(main())
