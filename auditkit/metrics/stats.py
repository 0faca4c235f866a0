"""Confidence bounds that verdicts rest on: binomial intervals and order-statistic bounds.

Every rate in an audit (escape, overkill, ...) is a binomial proportion ``k / n``. This module
is the one place that turns ``(k, n)`` into bounds.

``sided`` follows ``docs/run-format.md``:

* ``sided="one"``: ``low`` is the one-sided lower bound at ``level`` and ``high`` the one-sided
  upper bound at ``level``. Each tail holds ``1 - level``; together they form a two-sided
  interval at ``2 * level - 1`` (one-sided 95 % bounds are the ends of the two-sided 90 % one).
* ``sided="two"``: ``low`` and ``high`` are the ends of an equal-tailed two-sided interval at
  ``level``; each tail holds ``(1 - level) / 2``.

Methods:

* ``"clopper_pearson"`` (default, exact): ``low = Beta.ppf(a, k, n - k + 1)``,
  ``high = Beta.isf(a, k + 1, n - k)``, with ``low = 0`` exactly when ``k = 0`` and ``high = 1``
  exactly when ``k = n``. Coverage is at least the nominal level.
  Equals ``statsmodels`` ``proportion_confint(method="beta")`` and ``scipy.stats.binomtest(k,
  n).proportion_ci(method="exact")``.
* ``"wilson"``: the Wilson score interval, ``(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) /
  (1 + z^2/n)`` with ``z = Phi^-1(1 - a)``, clipped to ``[0, 1]``.
* ``"jeffreys"``: the equal-tailed Jeffreys interval ``Beta(k + 1/2, n - k + 1/2)`` quantiles,
  with the boundary modification of Brown, Cai and DasGupta (2001): ``low = 0`` when ``k = 0``
  and ``high = 1`` when ``k = n``.

where ``a`` is the tail probability: ``1 - level`` for ``sided="one"``, ``(1 - level) / 2`` for
``sided="two"``.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as _st

IntervalMethod = Literal["clopper_pearson", "wilson", "jeffreys"]
Sided = Literal["one", "two"]

INTERVAL_METHODS: tuple[str, ...] = ("clopper_pearson", "wilson", "jeffreys")
SIDED: tuple[str, ...] = ("one", "two")

__all__ = [
    "INTERVAL_METHODS",
    "SIDED",
    "IntervalMethod",
    "Sided",
    "binomial_interval",
    "binomial_intervals",
    "demonstration_sample_size",
    "quantile_bounds",
    "tail_probability",
    "zero_failure_sample_size",
    "zero_failure_upper_bound",
]


def tail_probability(level: float, sided: str) -> float:
    """Probability mass outside the bound in each tail: ``1 - level`` (one) or ``(1 - level)/2``.

    ``level`` must lie in ``(0, 1)``; with ``sided="one"`` it must exceed 0.5 so that the
    lower bound never exceeds the upper bound.
    """
    if sided not in SIDED:
        raise ValueError(f"sided must be one of {SIDED}, got {sided!r}")
    if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    if sided == "one":
        if level <= 0.5:
            raise ValueError(f"a one-sided level must exceed 0.5, got {level!r}")
        return 1.0 - float(level)
    return (1.0 - float(level)) / 2.0


def binomial_intervals(
    k: npt.ArrayLike,
    n: npt.ArrayLike,
    level: float = 0.95,
    method: str = "clopper_pearson",
    sided: str = "one",
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Vectorised :func:`binomial_interval`: bounds for arrays of counts ``k`` out of ``n``.

    Returns ``(low, high)`` as float arrays of the broadcast shape. Entries with ``n == 0`` have
    no interval and come back as NaN (the scalar :func:`binomial_interval` raises instead).
    ``k`` and ``n`` must be whole numbers with ``0 <= k <= n``.
    """
    if method not in INTERVAL_METHODS:
        raise ValueError(f"method must be one of {INTERVAL_METHODS}, got {method!r}")
    a = tail_probability(level, sided)
    k_arr = np.asarray(k)
    n_arr = np.asarray(n)
    k_f, n_f = np.broadcast_arrays(k_arr.astype(np.float64), n_arr.astype(np.float64))
    if np.any(k_f != np.round(k_f)) or np.any(n_f != np.round(n_f)):
        raise ValueError("k and n must be whole numbers")
    if np.any(k_f < 0) or np.any(k_f > n_f):
        raise ValueError("k must satisfy 0 <= k <= n")
    empty = n_f == 0
    n_safe = np.where(empty, 1.0, n_f)  # placeholder, masked out below
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "clopper_pearson":
            low = _st.beta.ppf(a, k_f, n_safe - k_f + 1.0)
            high = _st.beta.isf(a, k_f + 1.0, n_safe - k_f)
        elif method == "jeffreys":
            low = _st.beta.ppf(a, k_f + 0.5, n_safe - k_f + 0.5)
            high = _st.beta.isf(a, k_f + 0.5, n_safe - k_f + 0.5)
        else:  # wilson
            z = float(_st.norm.isf(a))
            z2 = z * z
            p = k_f / n_safe
            denom = 1.0 + z2 / n_safe
            center = (p + z2 / (2.0 * n_safe)) / denom
            half = z * np.sqrt(p * (1.0 - p) / n_safe + z2 / (4.0 * n_safe**2)) / denom
            low = np.clip(center - half, 0.0, 1.0)
            high = np.clip(center + half, 0.0, 1.0)
    low = np.where(k_f == 0, 0.0, low)
    high = np.where(k_f == n_f, 1.0, high)
    low = np.where(empty, np.nan, low).astype(np.float64)
    high = np.where(empty, np.nan, high).astype(np.float64)
    return low, high


def binomial_interval(
    k: int,
    n: int,
    level: float = 0.95,
    method: str = "clopper_pearson",
    sided: str = "one",
) -> tuple[float, float]:
    """Confidence bounds ``(low, high)`` for a binomial proportion ``k / n``.

    Parameters
    ----------
    k : int
        Number of events (e.g. escaped defective parts), ``0 <= k <= n``.
    n : int
        Number of trials (the rate's denominator, e.g. defective parts). ``n == 0`` raises
        :class:`ValueError`: there is no evidence to bound.
    level : float
        Confidence level, e.g. 0.95.
    method : {"clopper_pearson", "wilson", "jeffreys"}
        See the module docstring for the exact formulas.
    sided : {"one", "two"}
        ``"one"``: ``(one-sided lower bound at level, one-sided upper bound at level)``;
        ``"two"``: the ends of a two-sided interval at ``level``.

    Examples
    --------
    0 escapes in 600 defective parts, one-sided 95 % Clopper–Pearson upper bound:

    >>> round(binomial_interval(0, 600)[1], 5)
    0.00498
    """
    if n == 0:
        raise ValueError("n == 0: a rate with no trials has no interval")
    low, high = binomial_intervals(k, n, level=level, method=method, sided=sided)
    return float(low), float(high)


def zero_failure_upper_bound(n: int, level: float = 0.95) -> float:
    """One-sided upper bound on a rate after 0 events in ``n`` trials: ``1 - (1 - level)^(1/n)``.

    This is the Clopper–Pearson bound for ``k = 0``; at 95 % it is close to ``3 / n`` (the rule
    of three).
    """
    if n <= 0:
        raise ValueError("n must be positive")
    return float(-math.expm1(math.log1p(-level) / n))


def demonstration_sample_size(p: float, level: float = 0.95, failures: int = 0) -> int:
    """Smallest ``n`` such that ``failures`` events in ``n`` trials demonstrate ``rate <= p``.

    Demonstration means the one-sided Clopper–Pearson upper bound at ``level`` is at most ``p``,
    i.e. ``P(Bin(n, p) <= failures) <= 1 - level``. Examples at 95 % for ``p = 0.5 %``: 598 (0
    failures), 947 (1), 1258 (2), 2100 (5).
    """
    if not 0.0 < p < 1.0:
        raise ValueError("p must lie strictly between 0 and 1")
    tail_probability(level, "one")
    if failures < 0:
        raise ValueError("failures must be >= 0")
    alpha = 1.0 - level

    def ok(n: int) -> bool:
        return bool(_st.binom.cdf(failures, n, p) <= alpha)

    lo = failures + 1
    hi = max(lo, zero_failure_sample_size(p, level))
    while not ok(hi):
        hi *= 2
    while lo < hi:  # smallest n in [lo, hi] with ok(n); ok is monotone in n
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def zero_failure_sample_size(p: float, level: float = 0.95) -> int:
    """Smallest ``n`` with 0 events in ``n`` trials demonstrating ``rate <= p`` at ``level``.

    ``n = ceil(log(1 - level) / log(1 - p))``; e.g. 598 for ``p = 0.5 %`` and 299 for ``1 %`` at
    95 %.
    """
    if not 0.0 < p < 1.0:
        raise ValueError("p must lie strictly between 0 and 1")
    tail_probability(level, "one")
    n = math.ceil(math.log1p(-level) / math.log1p(-p))
    # guard against floating-point rounding at exact integers
    while n > 1 and (1.0 - p) ** (n - 1) <= 1.0 - level:
        n -= 1
    while (1.0 - p) ** n > 1.0 - level:
        n += 1
    return int(n)


def _order_statistic_ranks(n: int, q: float, level: float) -> tuple[int | None, int | None]:
    """1-based ranks ``(j_low, j_high)`` of the order statistics bounding the ``q``-quantile.

    ``x_(j_high)`` is the smallest order statistic with ``P(x_(j) >= xi_q) >= level``, i.e.
    ``P(Bin(n, q) <= j - 1) >= level``; ``x_(j_low)`` the largest with ``P(x_(j) <= xi_q) >=
    level``, i.e. ``P(Bin(n, q) >= j) >= level``. Either is None when no rank in ``1..n``
    qualifies.
    """
    j = np.arange(1, n + 1)
    cdf = _st.binom.cdf(j - 1, n, q)  # P(Bin <= j-1), non-decreasing in j
    hi_ok = np.flatnonzero(cdf >= level)
    j_high = int(j[hi_ok[0]]) if hi_ok.size else None
    sf = _st.binom.sf(j - 1, n, q)  # P(Bin >= j), non-increasing in j
    lo_ok = np.flatnonzero(sf >= level)
    j_low = int(j[lo_ok[-1]]) if lo_ok.size else None
    return j_low, j_high


def quantile_bounds(
    values: npt.ArrayLike, q: float, level: float = 0.95
) -> tuple[float | None, float | None]:
    """Distribution-free one-sided lower and upper confidence bounds for the ``q``-quantile.

    Each bound is an order statistic of ``values`` chosen with the binomial distribution, so it
    holds at ``level`` for any continuous distribution (no normality assumption):

    * upper bound ``x_(j)``, ``j`` the smallest rank with ``P(Bin(n, q) <= j - 1) >= level``;
      it exists only when ``1 - q^n >= level`` (for p99 at 95 %: ``n >= 299``);
    * lower bound ``x_(j)``, ``j`` the largest rank with ``P(Bin(n, q) >= j) >= level``;
      it exists only when ``1 - (1 - q)^n >= level``.

    A bound that does not exist for this ``n`` is None. Example: ``n = 1000``, ``q = 0.99``,
    ``level = 0.95``: the upper bound is the 996th smallest value.

    ``values`` must be finite; ``q`` in ``(0, 1)``.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("values is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError("values must be finite")
    if not 0.0 < q < 1.0:
        raise ValueError("q must lie strictly between 0 and 1")
    tail_probability(level, "one")
    j_low, j_high = _order_statistic_ranks(x.size, q, level)
    ranks = [j - 1 for j in (j_low, j_high) if j is not None]
    part = np.partition(x, ranks) if ranks else x
    low = float(part[j_low - 1]) if j_low is not None else None
    high = float(part[j_high - 1]) if j_high is not None else None
    return low, high
