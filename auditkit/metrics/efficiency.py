"""Latency and throughput from the replay's ``timings.parquet`` (MLPerf LoadGen scenarios).

* Single-stream latency: one image at a time, per-image end-to-end seconds (``e2e_s`` of the
  ``single-stream`` rows: read + decode + preprocess + inference). Percentiles are point
  estimates; their confidence bounds are distribution-free order statistics
  (:func:`~auditkit.metrics.stats.quantile_bounds`), so "p99 <= B" can be judged like a rate.
* Offline throughput: images per second of wall time over the whole batched run,
  ``n_images / wall_s``, never derived from per-batch latency.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from auditkit.metrics.stats import quantile_bounds

__all__ = ["LATENCY_QUANTILES", "latency_summary", "single_stream_e2e_s", "throughput"]

#: percentiles reported for single-stream latency
LATENCY_QUANTILES: tuple[int, ...] = (50, 90, 99)


def single_stream_e2e_s(timings: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Per-image end-to-end seconds of the ``single-stream`` rows of a timings table."""
    rows = timings[timings["scenario"] == "single-stream"]
    return rows["e2e_s"].to_numpy(dtype=np.float64)


def latency_summary(
    e2e_seconds: npt.ArrayLike, level: float = 0.95
) -> dict[str, float | int | None]:
    """Single-stream latency percentiles in milliseconds, with order-statistic bounds.

    Returns ``{"n", "p50_ms", "p90_ms", "p99_ms", "p50_low_ms", "p50_high_ms", ...,
    "p99_low_ms", "p99_high_ms"}``. ``pXX_ms`` is ``numpy.percentile`` (linear interpolation) of
    the latencies; ``pXX_low_ms`` / ``pXX_high_ms`` are the one-sided lower / upper
    ``level`` bounds of the quantile (None when ``n`` is too small for that bound, e.g. the
    upper bound of p99 at 95 % needs ``n >= 299``).
    """
    x = np.asarray(e2e_seconds, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("no latency measurements")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError("latencies must be finite and non-negative")
    ms = x * 1000.0
    out: dict[str, float | int | None] = {"n": int(ms.size)}
    points = np.percentile(ms, LATENCY_QUANTILES)
    for q, v in zip(LATENCY_QUANTILES, points, strict=True):
        out[f"p{q}_ms"] = float(v)
    for q in LATENCY_QUANTILES:
        low, high = quantile_bounds(ms, q / 100.0, level=level)
        out[f"p{q}_low_ms"] = low
        out[f"p{q}_high_ms"] = high
    return out


def throughput(n_images: int, wall_s: float) -> float:
    """Offline throughput in images per second: ``n_images / wall_s`` (wall time of the run)."""
    if n_images < 0:
        raise ValueError("n_images must be >= 0")
    if not wall_s > 0:
        raise ValueError("wall_s must be positive")
    return float(n_images) / float(wall_s)
