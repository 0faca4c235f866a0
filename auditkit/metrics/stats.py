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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats as _st
from scipy.optimize import brentq as _brentq

IntervalMethod = Literal["clopper_pearson", "wilson", "jeffreys"]
Sided = Literal["one", "two"]

INTERVAL_METHODS: tuple[str, ...] = ("clopper_pearson", "wilson", "jeffreys")
SIDED: tuple[str, ...] = ("one", "two")

__all__ = [
    "INTERVAL_METHODS",
    "SIDED",
    "BootstrapResult",
    "IntervalMethod",
    "Sided",
    "binomial_interval",
    "binomial_intervals",
    "bonferroni_level",
    "cluster_bootstrap",
    "demonstration_sample_size",
    "holm_adjust",
    "holm_levels",
    "mcnemar_exact",
    "newcombe_interval",
    "newcombe_intervals",
    "paired_difference_interval",
    "part_weights",
    "percentile_bounds",
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


# --------------------------------------------------------------------------- differences


def _z(level: float, sided: str) -> float:
    return float(_st.norm.isf(tail_probability(level, sided)))


def newcombe_intervals(
    k1: npt.ArrayLike,
    n1: npt.ArrayLike,
    k2: npt.ArrayLike,
    n2: npt.ArrayLike,
    level: float = 0.95,
    sided: str = "two",
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Vectorised :func:`newcombe_interval`; entries with ``n1 == 0`` or ``n2 == 0`` are NaN."""
    n1_a, n2_a = np.asarray(n1), np.asarray(n2)
    l1, u1 = binomial_intervals(k1, n1_a, level=level, method="wilson", sided=sided)
    l2, u2 = binomial_intervals(k2, n2_a, level=level, method="wilson", sided=sided)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1 = np.asarray(k1, dtype=np.float64) / n1_a
        p2 = np.asarray(k2, dtype=np.float64) / n2_a
    d = p1 - p2
    low = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)


def newcombe_interval(
    k1: int, n1: int, k2: int, n2: int, level: float = 0.95, sided: str = "two"
) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``p1 - p2`` of two independent proportions.

    ``p1 = k1 / n1``, ``p2 = k2 / n2`` (e.g. the escape rates of two slices), ``(l_i, u_i)`` the
    Wilson score bounds of each (:func:`binomial_interval` ``method="wilson"`` at the same
    ``level`` and ``sided``)::

        low  = (p1 - p2) - sqrt((p1 - l1)^2 + (u2 - p2)^2)
        high = (p1 - p2) + sqrt((u1 - p1)^2 + (p2 - l2)^2)

    (Newcombe 1998, Stat. Med. 17:873, method 10). ``sided="two"`` (default): the ends of a
    two-sided interval at ``level``; ``sided="one"``: one-sided bounds at ``level`` each.
    Equals statsmodels ``confint_proportions_2indep(k1, n1, k2, n2, method="newcomb",
    compare="diff", alpha=1 - level)``. Example (DOMAIN.md): 8/800 vs 1/800 misses, difference
    0.875 pp, 95 % interval (0.11, 1.84) pp.

    Raises :class:`ValueError` when ``n1`` or ``n2`` is 0.
    """
    if n1 == 0 or n2 == 0:
        raise ValueError("n1 == 0 or n2 == 0: a difference of rates with no trials")
    low, high = newcombe_intervals(k1, n1, k2, n2, level=level, sided=sided)
    return float(low), float(high)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for paired decisions on the same units.

    ``b`` and ``c`` are the discordant counts (units where only the first rule, resp. only the
    second rule, has the event, e.g. escapes only under the candidate model / only under the
    baseline). Under H0 ``b ~ Bin(b + c, 1/2)``; ``p = min(1, 2 P(Bin(b + c, 1/2) <= min(b,
    c)))``, and ``p = 1`` when ``b + c == 0``. Equals statsmodels ``mcnemar([[a, b], [c, d]],
    exact=True).pvalue``.
    """
    if b < 0 or c < 0:
        raise ValueError("b and c must be >= 0")
    m = b + c
    if m == 0:
        return 1.0
    return float(min(1.0, 2.0 * _st.binom.cdf(min(b, c), m, 0.5)))


def _tango_statistic(delta: float, b: int, c: int, n: int) -> float:
    """Tango's score statistic ``T(delta)`` for ``H0: (b - c) / n = delta`` (decreasing)."""
    # constrained ML estimate of the probability of the ``c`` cell under H0
    a2 = 2.0 * n
    b2 = -b - c + (2.0 * n - b + c) * delta
    c2 = -c * delta * (1.0 - delta)
    p_c = (math.sqrt(max(b2 * b2 - 4.0 * a2 * c2, 0.0)) - b2) / (2.0 * a2)
    num = b - c - n * delta
    var = n * (2.0 * p_c + delta * (1.0 - delta))
    if var <= 0.0:
        return 0.0 if num == 0 else math.copysign(math.inf, num)
    return num / math.sqrt(var)


def paired_difference_interval(
    b: int, c: int, n: int, level: float = 0.95, sided: str = "two"
) -> tuple[float, float]:
    """Tango's score interval for the difference of two paired proportions, ``(b - c) / n``.

    Two decision rules (candidate and baseline model) are applied to the same ``n`` units;
    ``b`` units have the event (e.g. escape) under the first rule only, ``c`` under the second
    only. The difference of the two rates is ``(b - c) / n``. The interval (Tango 1998, Stat.
    Med. 17:891; Fagerland, Lydersen & Laake 2014, recommended for paired differences) is the
    set of ``delta`` not rejected by the score test

        T(delta) = (b - c - n delta) / sqrt(n (2 q~ + delta (1 - delta)))

    where ``q~`` is the maximum-likelihood estimate of the ``c``-cell probability under
    ``H0: difference = delta``, the root of ``2n q^2 + (-b - c + (2n - b + c) delta) q - c
    delta (1 - delta) = 0``. ``low`` solves ``T = z``, ``high`` solves ``T = -z``
    (``z = Phi^-1(1 - a)``, ``a`` as in :func:`tail_probability`), by Brent's method to
    1e-12. Within ``[-1, 1]``; ``low = -1`` when ``c = n`` and ``high = 1`` when ``b = n``.

    The tests check it against a slow, direct inversion of the score test with a numerically
    maximised constrained likelihood.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    if b < 0 or c < 0 or b + c > n:
        raise ValueError("b and c must satisfy 0 <= b, c and b + c <= n")
    z = _z(level, sided)
    est = (b - c) / n
    eps = 1e-15

    def bound(target: float, lo: float, hi: float, edge: float) -> float:
        def f(x: float) -> float:
            return _tango_statistic(x, b, c, n) - target

        f_edge = f(edge)
        if (target > 0 and f_edge <= 0) or (target < 0 and f_edge >= 0):
            return -1.0 if target > 0 else 1.0
        return float(_brentq(f, lo, hi, xtol=1e-14, rtol=1e-12))

    low = -1.0 if est <= -1.0 else bound(z, -1.0 + eps, est, -1.0 + eps)
    high = 1.0 if est >= 1.0 else bound(-z, est, 1.0 - eps, 1.0 - eps)
    return low, high


# --------------------------------------------------------------------------- multiplicity


def holm_adjust(p_values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Holm step-down adjusted p-values (family-wise error control, never weaker than
    Bonferroni).

    With ``p_(1) <= ... <= p_(m)`` sorted ascending, the adjusted value of ``p_(i)`` is
    ``max_{j <= i} min(1, (m - j + 1) p_(j))``; returned in the input order. A hypothesis is
    rejected at family-wise level ``alpha`` when its adjusted p-value is ``<= alpha``. Equals
    statsmodels ``multipletests(p, method="holm")[1]``.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m, dtype=np.float64)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def holm_levels(p_values: npt.ArrayLike, level: float = 0.95) -> npt.NDArray[np.float64]:
    """Per-hypothesis confidence levels of Holm's step-down procedure, in the input order.

    The hypothesis with the ``r``-th smallest p-value (ties by input order) is judged at
    ``1 - (1 - level) / (m - r + 1)``: the smallest p-value at the Bonferroni level
    ``1 - (1 - level) / m``, the largest at ``level``. For rates judged by one-sided exact
    bounds (a slice "passes" ``rate <= T`` when its Clopper–Pearson upper bound is ``<= T``,
    i.e. when the exact binomial p-value of ``H0: rate > T`` is ``<= 1 - bound level``), Holm
    across ``m`` slices is: sort the slices by that p-value, judge each at its level here, and
    stop at the first slice that does not pass (every later slice does not pass either). This
    is equivalent to :func:`holm_adjust` ``<= 1 - level``.

    Holm does not give simultaneous *intervals*; to print bounds that hold together for all
    ``m`` slices use :func:`bonferroni_level`.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    tail_probability(level, "one")
    m = p.size
    order = np.argsort(p, kind="stable")
    levels = np.empty(m, dtype=np.float64)
    levels[order] = 1.0 - (1.0 - level) / (m - np.arange(m))
    return levels


def bonferroni_level(m: int, level: float = 0.95) -> float:
    """Per-slice level ``1 - (1 - level) / m`` at which ``m`` bounds hold simultaneously.

    With one-sided Clopper–Pearson bounds this gives DOMAIN.md's zero-failure sizes per slice
    for ``escape <= 0.5 %`` at family-wise 95 %: 598 (m = 1), 875 (4), 1,013 (8), 1,094 (12).
    """
    if m < 1:
        raise ValueError("m must be >= 1")
    tail_probability(level, "one")
    return 1.0 - (1.0 - level) / m


# --------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    """A cluster-bootstrap estimate.

    ``estimate`` is the statistic on all rows; ``low``/``high`` the percentile interval
    (two-sided at ``level``: the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles of the
    resampled statistics, numpy's linear interpolation) or None when fewer than 2 resamples
    gave a value. ``n_valid`` counts the resamples whose statistic was defined (not None or
    NaN, e.g. an AUC of a resample without defective parts). ``seed`` is the seed of
    ``numpy.random.default_rng`` that reproduces the resamples; record it in the run.
    """

    estimate: float | None
    low: float | None
    high: float | None
    level: float
    n_resamples: int
    n_valid: int
    seed: int
    n_parts: int
    method: str = "cluster_percentile"


def cluster_bootstrap(
    statistic: Callable[[npt.NDArray[np.intp]], float | None],
    parts: npt.ArrayLike,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> BootstrapResult:
    """Percentile bootstrap that resamples *parts* (clusters), not images.

    Parameters
    ----------
    statistic : callable
        ``statistic(rows)`` -> float or None, where ``rows`` is an integer array of row
        positions (a row may occur several times); e.g. ``lambda r: roc_auc(d[r], s[r])``.
    parts : array
        The part id of each row (image). Each resample draws ``n_parts`` parts with
        replacement (``rng.integers``) and takes *all* rows of every drawn part, as many
        times as it was drawn, so images of one part stay together.
    n_resamples, seed, level
        Number of resamples; seed of ``numpy.random.default_rng``; two-sided level.
    """
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    tail_probability(level, "two")
    codes, uniques = pd.factorize(np.asarray(parts, dtype=object).ravel(), sort=True)
    if codes.size == 0:
        raise ValueError("no rows to resample")
    n_parts = len(uniques)
    order = np.argsort(codes, kind="stable").astype(np.intp)
    sizes = np.bincount(codes, minlength=n_parts)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))

    def value(rows: npt.NDArray[np.intp]) -> float:
        v = statistic(rows)
        return math.nan if v is None else float(v)

    est = value(np.arange(codes.size, dtype=np.intp))
    rng = np.random.default_rng(seed)
    out = np.empty(n_resamples, dtype=np.float64)
    for i in range(n_resamples):  # one statistic call per resample; rows built vectorised
        drawn = rng.integers(0, n_parts, size=n_parts)
        lengths = sizes[drawn]
        total = int(lengths.sum())
        offsets = np.repeat(starts[drawn] - np.cumsum(lengths) + lengths, lengths)
        out[i] = value(order[offsets + np.arange(total)])
    valid = out[np.isfinite(out)]
    low = high = None
    if valid.size >= 2:
        a = (1.0 - level) / 2.0
        lo_q, hi_q = np.quantile(valid, [a, 1.0 - a])
        low, high = float(lo_q), float(hi_q)
    return BootstrapResult(
        estimate=None if math.isnan(est) else est,
        low=low,
        high=high,
        level=float(level),
        n_resamples=int(n_resamples),
        n_valid=int(valid.size),
        seed=int(seed),
        n_parts=int(n_parts),
    )


def part_weights(
    parts: npt.ArrayLike, *, n_resamples: int = 1000, seed: int = 0
) -> npt.NDArray[np.int64]:
    """The resamples of :func:`cluster_bootstrap` as weights: row ``r`` holds, for every row
    (image) of ``parts``, how many times resample ``r`` drew its part.

    The draws are exactly :func:`cluster_bootstrap`'s (parts factorised in sorted order, one
    ``rng.integers(0, n_parts, size=n_parts)`` per resample from ``numpy.random.default_rng(
    seed)``), so a statistic computed with these weights equals that statistic on the
    resampled rows: a weighted sum over the resampled rows is ``weights @ values``.
    Shape ``(n_resamples, len(parts))``.
    """
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    codes, uniques = pd.factorize(np.asarray(parts, dtype=object).ravel(), sort=True)
    if codes.size == 0:
        raise ValueError("no rows to resample")
    n_parts = len(uniques)
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, codes.size), dtype=np.int64)
    for i in range(n_resamples):
        drawn = np.bincount(rng.integers(0, n_parts, size=n_parts), minlength=n_parts)
        out[i] = drawn[codes]
    return out


def percentile_bounds(
    values: npt.ArrayLike, *, level: float = 0.95, sided: str = "one"
) -> tuple[float | None, float | None]:
    """Percentile bootstrap bounds of resampled statistics (NaN resamples left out).

    ``sided="one"``: the ``1 - level`` and ``level`` quantiles (two one-sided bounds at
    ``level``); ``"two"``: the ``(1 - level)/2`` and ``(1 + level)/2`` quantiles. numpy's linear
    interpolation. ``(None, None)`` when fewer than 2 resamples have a value.
    """
    a = tail_probability(level, sided)
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size < 2:
        return None, None
    lo, hi = np.quantile(v, [a, 1.0 - a])
    return float(lo), float(hi)
