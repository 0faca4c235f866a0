"""Is an audit significantly worse than the previous audit of the same deployment? (pure)

An audit is a **regression** of the one before it when

* its verdict went from ACCEPT to REJECT or HOLD; or
* for escape rate or overkill rate, the Newcombe hybrid score interval of
  ``current − previous`` (:func:`auditkit.metrics.stats.newcombe_interval`, two-sided at
  ``level``, default 95 %) lies entirely above 0: the rate rose, and the rise is not chance.

The rates are the overall ones: the criteria rows of that metric on all data (no parent, empty
slice) that carry ``k`` and ``n``; the first such row counts. A rate missing from either audit,
or with ``n == 0``, is not compared (and says so).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from auditkit.metrics.stats import newcombe_interval

#: the rates compared, in the users' words
RATES = {"escape_rate": "escape rate", "overkill_rate": "overkill rate"}
#: a verdict change from ACCEPT to one of these is a regression
WORSE_VERDICTS = {"REJECT", "HOLD"}


@dataclass(frozen=True)
class RateChange:
    """``current − previous`` of one rate: the counts, the point difference and its interval."""

    metric: str
    previous: tuple[int, int]  # k, n
    current: tuple[int, int]
    difference: float
    low: float
    high: float

    @property
    def worse(self) -> bool:
        return self.low > 0


@dataclass(frozen=True)
class Regression:
    """The comparison of an audit with the previous one: ``flagged`` when any reason holds."""

    reasons: list[str] = field(default_factory=list)
    changes: list[RateChange] = field(default_factory=list)
    not_compared: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)


def overall_rates(criteria: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, int]]:
    """metric → (k, n) of the overall criteria rows of the compared rates (see module doc)."""
    rates: dict[str, tuple[int, int]] = {}
    for row in criteria:
        metric = row.get("metric")
        if metric not in RATES or metric in rates or row.get("parent") is not None:
            continue
        if row.get("slice") not in (None, {}) or row.get("k") is None or row.get("n") is None:
            continue
        rates[str(metric)] = (int(row["k"]), int(row["n"]))
    return rates


def compare(
    previous_verdict: str,
    previous_rates: Mapping[str, tuple[int, int]],
    current_verdict: str,
    current_rates: Mapping[str, tuple[int, int]],
    level: float = 0.95,
) -> Regression:
    """The regression test of the module doc for one pair of consecutive audits."""
    reasons, changes, skipped = [], [], []
    if previous_verdict == "ACCEPT" and current_verdict in WORSE_VERDICTS:
        reasons.append(f"verdict {previous_verdict} → {current_verdict}")
    for metric, words in RATES.items():
        before, now = previous_rates.get(metric), current_rates.get(metric)
        if before is None or now is None or before[1] == 0 or now[1] == 0:
            skipped.append(f"{words}: not measured in both audits")
            continue
        low, high = newcombe_interval(now[0], now[1], before[0], before[1], level=level)
        change = RateChange(metric, before, now, now[0] / now[1] - before[0] / before[1], low, high)
        changes.append(change)
        if change.worse:
            reasons.append(
                f"{words} rose from {before[0]}/{before[1]} to {now[0]}/{now[1]}: difference "
                f"{change.difference * 100:+.2f} pp, {level:.0%} interval "
                f"({low * 100:.2f}, {high * 100:.2f}) pp excludes 0"
            )
    return Regression(reasons, changes, skipped)


def consecutive(
    verdicts: Sequence[str],
    rates: Sequence[Mapping[str, tuple[int, int]]],
    level: float = 0.95,
) -> list[Regression | None]:
    """The comparisons of a deployment's audits, oldest first (``verdicts[i]`` and
    ``rates[i]``, from :func:`overall_rates`, of the i-th audit): None for the first audit,
    then :func:`compare` of each with the one before it."""
    out: list[Regression | None] = [None] if verdicts else []
    for i in range(1, len(verdicts)):
        out.append(compare(verdicts[i - 1], rates[i - 1], verdicts[i], rates[i], level=level))
    return out
