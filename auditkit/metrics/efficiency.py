"""Latency and throughput from the replay's ``timings.parquet`` (MLPerf LoadGen scenarios).

* Single-stream latency: one image at a time, per-image end-to-end seconds (``e2e_s`` of the
  ``single-stream`` rows: read + decode + preprocess + inference). Percentiles are point
  estimates; their confidence bounds are distribution-free order statistics
  (:func:`~auditkit.metrics.stats.quantile_bounds`), so "p99 <= B" can be judged like a rate.
* Offline throughput: images per second of wall time over the whole batched run,
  ``n_images / wall_s``, never derived from per-batch latency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "LATENCY_QUANTILES",
    "EarlyStoppingEstimate",
    "early_stopping_min_samples",
    "early_stopping_percentile",
    "latency_summary",
    "single_stream_e2e_s",
    "throughput",
]

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
    # scipy.stats (~1 s) only here: the replay's early-stopping estimates need none of it
    from auditkit.metrics.stats import quantile_bounds

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


@dataclass(frozen=True)
class EarlyStoppingEstimate:
    """MLPerf LoadGen's early-stopping estimate of a latency percentile.

    ``value`` is the ``rank``-th highest latency (same unit as the input), or ``None`` with
    ``reason`` when there are too few samples for any estimate at ``confidence``.
    """

    percentile: float
    confidence: float
    n: int
    min_samples: int
    overlatency: int | None  # t: the t - 1 highest latencies are discarded
    rank: int | None  # the value is the rank-th highest latency (rank == t)
    value: float | None
    reason: str | None

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "percentile": self.percentile,
            "confidence": self.confidence,
            "n": self.n,
            "min_samples": self.min_samples,
            "rank_from_top": self.rank,
            "value": self.value,
            "reason": self.reason,
        }


def _max_overlatency(n: int, p: float, confidence: float) -> int:
    """The largest t with ``P(Binomial(n, 1 - p) <= t) <= 1 - confidence`` (-1 if none).

    This is MLPerf's rule "the largest t such that n >= h(t) + t", where h(t) is the smallest
    number of under-latency queries with ``I_p(h, t + 1) <= 1 - confidence``: the binomial tail
    decreases in h, so ``n >= h(t) + t`` holds exactly when the tail at ``h = n - t`` passes.
    """
    q = 1.0 - p
    log_q, log_p = math.log(q), math.log(p)
    log_pmf = n * log_p  # k = 0
    cdf = 0.0
    for k in range(n + 1):
        if k:
            log_pmf += math.log((n - k + 1) / k) + log_q - log_p
        cdf += math.exp(log_pmf)
        if cdf > 1.0 - confidence:
            return k - 1
    return n


def early_stopping_min_samples(percentile: float, confidence: float = 0.99) -> int:
    """The fewest samples for which an early-stopping estimate exists (64 for p90, 662 for p99
    at 99 % confidence)."""
    p = percentile / 100.0
    n = 1
    while _max_overlatency(n, p, confidence) < 1:
        n = n * 2
    low, high = n // 2, n  # t(low) < 1 <= t(high); t is non-decreasing in n
    while high - low > 1:
        mid = (low + high) // 2
        if _max_overlatency(mid, p, confidence) >= 1:
            high = mid
        else:
            low = mid
    return high


def early_stopping_percentile(
    latencies: npt.ArrayLike, percentile: float, confidence: float = 0.99
) -> EarlyStoppingEstimate:
    """MLPerf LoadGen's early-stopping estimate of the ``percentile`` latency.

    With n samples, take the largest t such that a run with t latencies above the bound would
    still show, at ``confidence``, that the true ``percentile`` is below it; discard the t - 1
    highest latencies and report the highest of the rest. Short runs therefore report a higher
    empirical percentile (n = 64 reports the maximum for p90, n = 100 the 3rd highest, n = 500
    the 34th highest). Fewer samples than :func:`early_stopping_min_samples` give ``value=None``
    and a reason instead of a number.
    """
    if not 0.0 < percentile < 100.0:
        raise ValueError("percentile must be in (0, 100)")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    x = np.asarray(latencies, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x)):
        raise ValueError("latencies must be finite")
    n = int(x.size)
    minimum = early_stopping_min_samples(percentile, confidence)
    t = _max_overlatency(n, percentile / 100.0, confidence) if n else -1
    if t < 1:
        return EarlyStoppingEstimate(
            percentile=percentile,
            confidence=confidence,
            n=n,
            min_samples=minimum,
            overlatency=None,
            rank=None,
            value=None,
            reason=f"insufficient samples: {n} < {minimum} needed for the early-stopping "
            f"p{percentile:g} at {100 * confidence:g}% confidence",
        )
    ordered = np.sort(x)
    return EarlyStoppingEstimate(
        percentile=percentile,
        confidence=confidence,
        n=n,
        min_samples=minimum,
        overlatency=t,
        rank=t,
        value=float(ordered[n - t]),
        reason=None,
    )
