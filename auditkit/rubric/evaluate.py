"""Judge measured metrics against a rubric: one outcome per criterion, one verdict per audit.

Decision rules (DOMAIN.md §3; ISO/IEC 17025 7.8.6, ILAC G8). For ``op: "<="`` with threshold T and
bounds L ≤ point ≤ U at the stated level:

* guarded_acceptance: PASS if U ≤ T, FAIL if L > T, otherwise INCONCLUSIVE (prove conformity);
* simple_acceptance:  PASS if point ≤ T, FAIL otherwise (shared risk);
* guarded_rejection:  FAIL if L > T, otherwise PASS (prove violation).

``>=`` mirrors. A requirement on ``statistic: point`` is decided on the point value whatever the
rule (there is no bound to guard with); ``statistic: p_value`` (homogeneity) passes when the
p-value is at least the threshold. Too little evidence (n below ``min_n``, a zero denominator, a
metric the run does not have) gives the criterion's ``on_insufficient`` outcome and a data-gap
line; slices are never pooled to make up the numbers.

Rates are re-bounded here from their ``k`` and ``n`` with the criterion's own statistics
(:func:`auditkit.metrics.stats.binomial_interval`, the function ``metrics.json`` uses), so a
per-criterion ``statistics`` override needs no second pass over the run. With ``multiplicity:
holm`` the slices of an ``each`` criterion are one family: each slice's conformity (and, under
the guarded rules, violation) is an exact one-sided binomial test at the threshold, the p-values
are Holm-adjusted (:func:`auditkit.metrics.stats.holm_adjust`) and compared with the tail
probability of the stated level; the bound shown is the Clopper–Pearson bound at that slice's
Holm level (:func:`auditkit.metrics.stats.holm_levels`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from auditkit.errors import ExitCode
from auditkit.metrics.classification import RATE_DEFINITIONS
from auditkit.metrics.groups import COUNT_COLUMNS, homogeneity_test, rate_difference, rate_ratio
from auditkit.metrics.stats import (
    binomial_interval,
    holm_adjust,
    holm_levels,
    mcnemar_exact,
    paired_difference_interval,
    tail_probability,
)
from auditkit.models.card import ModelCard
from auditkit.rubric.evidence import check_evidence
from auditkit.rubric.schema import (
    METRIC_INFO,
    METRICS,
    Criterion,
    LoadedRubric,
    MetricSpec,
    Outcome,
    Statistics,
    VerdictPolicy,
)

# worst first: the order in which a sliced criterion's outcome is chosen
_WORST_FIRST: tuple[Outcome, ...] = (
    "FAIL",
    "ERROR",
    "INCONCLUSIVE",
    "PASS",
    "ATTESTED",
    "SKIPPED",
)
VERDICT_EXIT = {
    "ACCEPT": ExitCode.ACCEPT,
    "REJECT": ExitCode.REJECT,
    "HOLD": ExitCode.HOLD,
    "CONDITIONAL": ExitCode.CONDITIONAL,
}
RULE_MEANING = {
    "guarded_acceptance": "PASS only when the confidence bound proves the requirement is met; "
    "FAIL when it proves it is not; INCONCLUSIVE otherwise",
    "simple_acceptance": "PASS or FAIL on the measured value; the bound is shown, not used",
    "guarded_rejection": "FAIL only when the confidence bound proves the requirement is not "
    "met; PASS otherwise",
}
ATTESTED_REASON = "attested, not verified"


@dataclass(frozen=True)
class Judgement:
    outcome: Outcome
    bound: float | None
    reason: str


def format_value(metric: str | None, x: Any) -> str:
    """A number as verdicts print it: rates, rate changes and shares in %, latency in ms, the
    rest to 4 significant digits; ``metric`` None for a plain number (a p-value)."""
    if x is None:
        return "n/a"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    name = metric or ""
    if METRICS.get(name) in ("rate", "paired") or name.endswith("_share"):
        return f"{100 * x:.2f}%"
    if name.endswith("_ms"):
        return f"{x:.3g} ms"
    return f"{x:.4g}"


def decide(
    rule: str,
    op: str,
    threshold: float,
    point: float,
    low: float | None,
    high: float | None,
    metric: str = "",
) -> Judgement:
    """Apply a decision rule to one measured value. Pure; see the module docstring."""
    le = op == "<="
    # The bound that would prove conformity, and the one that would prove violation.
    proving_bound, violating_bound = (high, low) if le else (low, high)
    proving_name, violating_name = ("upper", "lower") if le else ("lower", "upper")
    t = format_value(metric, threshold)

    def meets(x: float) -> bool:
        return x <= threshold if le else x >= threshold

    def word(x: float) -> str:
        return f"{op if meets(x) else ('>' if le else '<')} {t}"

    if rule == "simple_acceptance":
        outcome: Outcome = "PASS" if meets(point) else "FAIL"
        return Judgement(
            outcome, proving_bound, f"value {format_value(metric, point)} {word(point)}"
        )
    if rule == "guarded_rejection":
        if violating_bound is not None and not meets(violating_bound):
            b = format_value(metric, violating_bound)
            return Judgement(
                "FAIL", violating_bound, f"{violating_name} bound {b} {word(violating_bound)}"
            )
        return Judgement("PASS", violating_bound, "violation not proven at this confidence")
    # guarded acceptance
    if proving_bound is not None and meets(proving_bound):
        b = format_value(metric, proving_bound)
        return Judgement("PASS", proving_bound, f"{proving_name} bound {b} {word(proving_bound)}")
    if violating_bound is not None and not meets(violating_bound):
        b = format_value(metric, violating_bound)
        return Judgement(
            "FAIL", violating_bound, f"{violating_name} bound {b} {word(violating_bound)}"
        )
    if proving_bound is None:
        return Judgement("INCONCLUSIVE", None, "too few measurements for a confidence bound")
    b = format_value(metric, proving_bound)
    return Judgement(
        "INCONCLUSIVE",
        proving_bound,
        f"value {format_value(metric, point)} but {proving_name} bound {b} does not prove {op} {t}",
    )


def effective_statistics(criterion: Criterion, defaults: Statistics) -> Statistics:
    """The rubric's default statistics with the criterion's override applied."""
    override = criterion.requirement.statistics if criterion.requirement else None
    if override is None:
        return defaults
    changes = {k: v for k, v in override.model_dump().items() if v is not None}
    return Statistics.model_validate({**defaults.model_dump(), **changes})


def _resolve_threshold(
    criterion: Criterion, card: ModelCard | None, params: dict[str, float]
) -> tuple[float | None, str]:
    req = criterion.requirement
    assert req is not None
    if req.threshold is not None:
        return req.threshold, ""
    assert req.threshold_ref is not None
    source, _, name = req.threshold_ref.partition(".")
    if source == "declared":
        value = getattr(card.declared, name, None) if card else None
        if value is None:
            return None, f"the model card declares no {name!r} ({req.threshold_ref})"
        if not isinstance(value, (int, float)):
            return None, f"the model card's {name!r} is not a number ({req.threshold_ref})"
        return float(value), ""
    if name not in params:
        return None, f"site parameter {name!r} not given (use --param {name}=VALUE)"
    return params[name], ""


def threshold_provenance(criterion: Criterion, loaded: LoadedRubric) -> str | None:
    """Where the criterion's threshold comes from: stated, ``declared_ifu`` for a card claim,
    else the rubric's default."""
    req = criterion.requirement
    if req is None:
        return None
    if req.threshold_provenance:
        return req.threshold_provenance
    if req.threshold_ref and req.threshold_ref.startswith("declared."):
        return "declared_ifu"
    return loaded.rubric.threshold_policy.provenance_default


def slice_label(s: dict[str, Any]) -> str:
    if "by" in s:
        return "between " + " × ".join(s["by"])
    return ", ".join(f"{k}={v}" for k, v in s.items()) or "overall"


# --------------------------------------------------------------------------- metric lookup


def _subgroup(entry: dict[str, Any]) -> dict[str, str]:
    # latency and throughput entries name their scenario as a slice; it is not a subgroup
    return {k: v for k, v in entry["slice"].items() if k != "scenario"}


def _entries(
    metrics: dict[str, Any], name: str, cols: list[str], spec: MetricSpec | None = None
) -> list[dict[str, Any]]:
    """Entries of ``name`` sliced by exactly ``cols`` (no columns: the overall entry), kept
    by ``spec.filter``."""
    wanted = set(cols)
    found = []
    for entry in metrics.get("metrics", []):
        if entry.get("name") != name:
            continue
        sub = _subgroup(entry)
        if "by" in sub or set(sub) != wanted:
            continue
        if spec and any(str(sub.get(c)) not in set(map(str, v)) for c, v in spec.filter.items()):
            continue
        found.append(entry)
    return found


@dataclass(frozen=True)
class _Ctx:
    """What judging one criterion needs."""

    criterion: Criterion
    stats: Statistics
    threshold: float
    on_insufficient: Outcome

    @property
    def metric(self) -> str:
        assert self.criterion.metric is not None
        return self.criterion.metric.name

    @property
    def op(self) -> str:
        assert self.criterion.requirement is not None
        return self.criterion.requirement.op

    @property
    def statistic(self) -> str:
        return self.criterion.statistic or "point"

    @property
    def min_n(self) -> int:
        return self.criterion.sample.min_n


def _insufficient(ctx: _Ctx, row: dict[str, Any], why: str) -> dict[str, Any]:
    row.update(outcome=ctx.on_insufficient, bound=None, reason=why, insufficient=True)
    return row


def _interval(ctx: _Ctx, entry: dict[str, Any]) -> tuple[float | None, float | None, str]:
    """Bounds of an entry at the criterion's statistics; a non-empty third value says why
    there are none."""
    k, n = entry.get("k"), entry.get("n")
    s = ctx.stats
    if METRICS[ctx.metric] == "rate" and k is not None and n:
        low, high = binomial_interval(
            int(k), int(n), level=s.confidence_level, method=s.interval, sided=s.sided
        )
        return low, high, ""
    interval = entry.get("interval") or {}
    if not interval:
        return None, None, ""
    if (interval.get("level"), interval.get("sided")) != (s.confidence_level, s.sided):
        return (
            None,
            None,
            f"metrics.json bounds {ctx.metric} at {interval.get('level')} "
            f"{interval.get('sided')}-sided, not at {s.confidence_level} {s.sided}-sided",
        )
    return interval.get("low"), interval.get("high"), ""


def _judge_value(ctx: _Ctx, point: float, low: float | None, high: float | None) -> Judgement:
    # a requirement on the point value is decided on it, whatever the rule; bounds are shown
    rule = "simple_acceptance" if ctx.statistic == "point" else ctx.stats.decision_rule
    return decide(rule, ctx.op, ctx.threshold, point, low, high, ctx.metric)


def _judge_entry(ctx: _Ctx, entry: dict[str, Any], check_n: bool = True) -> dict[str, Any]:
    n = entry.get("n")
    value = entry.get("value")
    row: dict[str, Any] = {
        "slice": _subgroup(entry),
        "unit": entry.get("unit"),
        "value": value,
        "k": entry.get("k"),
        "n": n,
        "low": None,
        "high": None,
    }
    if value is None:
        return _insufficient(ctx, row, f"no value: n={n or 0} (zero denominator)")
    low, high, why = _interval(ctx, entry)
    row.update(low=low, high=high)
    if check_n and n is not None and n < ctx.min_n:
        _insufficient(ctx, row, f"insufficient sample: n={n} < min_n={ctx.min_n}")
        row["bound"] = high if ctx.op == "<=" else low  # how far the evidence is from deciding
        return row
    if why and ctx.statistic != "point":
        return _insufficient(ctx, row, why)
    j = _judge_value(ctx, float(value), low, high)
    row.update(outcome=j.outcome, bound=j.bound, reason=j.reason, insufficient=False)
    return row


def _exact_p_values(k: np.ndarray, n: np.ndarray, op: str, t: float) -> tuple[Any, Any]:
    """One-sided exact binomial p-values at the threshold: (conformity, violation).

    For ``<=``: conformity ``P(Bin(n, T) <= k)`` (small when the rate is proven below T; the
    Clopper–Pearson upper bound at ``1 - a`` is ``<= T`` exactly when it is ``<= a``);
    violation ``P(Bin(n, T) >= k)``. ``>=`` swaps the tails.
    """
    below = _st.binom.cdf(k, n, t)
    above = _st.binom.sf(k - 1, n, t)
    return (below, above) if op == "<=" else (above, below)


def _holm(ctx: _Ctx, rows: list[dict[str, Any]]) -> None:
    """Re-judge the sufficient slices of an ``each`` criterion as one Holm family."""
    judged = [r for r in rows if not r["insufficient"]]
    if not judged:
        return
    k = np.array([r["k"] for r in judged], dtype=np.int64)
    n = np.array([r["n"] for r in judged], dtype=np.int64)
    alpha = tail_probability(ctx.stats.confidence_level, ctx.stats.sided)
    family = 1.0 - alpha
    p_conform, p_violate = _exact_p_values(k, n, ctx.op, ctx.threshold)
    adj_conform = holm_adjust(p_conform)
    adj_violate = holm_adjust(p_violate)
    lv_conform = holm_levels(p_conform, family)
    lv_violate = holm_levels(p_violate, family)
    rule = ctx.stats.decision_rule
    t = format_value(ctx.metric, ctx.threshold)
    for i, r in enumerate(judged):
        lo_c, hi_c = binomial_interval(int(k[i]), int(n[i]), level=float(lv_conform[i]))
        lo_v, hi_v = binomial_interval(int(k[i]), int(n[i]), level=float(lv_violate[i]))
        proving = hi_c if ctx.op == "<=" else lo_c
        violating = lo_v if ctx.op == "<=" else hi_v
        conform = adj_conform[i] <= alpha
        violate = adj_violate[i] <= alpha
        r.update(
            p_conformity=float(p_conform[i]),
            holm_p_conformity=float(adj_conform[i]),
            holm_level=float(lv_conform[i]),
            p_violation=float(p_violate[i]),
            holm_p_violation=float(adj_violate[i]),
        )
        side = "upper" if ctx.op == "<=" else "lower"
        other = "lower" if ctx.op == "<=" else "upper"
        if violate:
            r.update(
                outcome="FAIL",
                bound=violating,
                reason=f"{other} bound {format_value(ctx.metric, violating)} at Holm level "
                f"{lv_violate[i]:.4f} violates {ctx.op} {t}",
            )
        elif rule == "guarded_rejection" or conform:
            r.update(
                outcome="PASS",
                bound=proving if conform else violating,
                reason=(
                    f"{side} bound {format_value(ctx.metric, proving)} at Holm level "
                    f"{lv_conform[i]:.4f} {ctx.op} {t}"
                    if conform
                    else "violation not proven at this family-wise confidence (Holm)"
                ),
            )
        else:
            r.update(
                outcome="INCONCLUSIVE",
                bound=proving,
                reason=f"value {format_value(ctx.metric, r['value'])} but {side} bound "
                f"{format_value(ctx.metric, proving)} at Holm level {lv_conform[i]:.4f} "
                f"does not prove {ctx.op} {t}",
            )


def _counts_frame(metric: str, entries: list[dict[str, Any]], cols: list[str]) -> pd.DataFrame:
    """A :func:`auditkit.metrics.groups.slice_counts`-shaped table holding each slice's
    ``(k, n)`` of ``metric`` (enough for every function that reads one rate)."""
    num, den = RATE_DEFINITIONS[metric]
    rest = next(c for c in den if c not in num)
    data = {c: np.zeros(len(entries), dtype=np.int64) for c in COUNT_COLUMNS}
    data[num[0]] = np.array([int(e["k"]) for e in entries], dtype=np.int64)
    data[rest] = np.array([int(e["n"]) - int(e["k"]) for e in entries], dtype=np.int64)
    keys = [tuple(str(e["slice"][c]) for c in cols) for e in entries]
    index = (
        pd.MultiIndex.from_tuples(keys, names=cols)
        if len(cols) > 1
        else pd.Index([k[0] for k in keys], name=cols[0], dtype=object)
    )
    return pd.DataFrame(data, index=index)


def _spread_row(ctx: _Ctx, cols: list[str], entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Judge the difference, ratio or homogeneity across the sufficient slices of one
    slicing."""
    aggregate = ctx.criterion.metric.resolved_aggregate  # type: ignore[union-attr]
    row: dict[str, Any] = {
        "slice": {"by": cols},
        "unit": entries[0].get("unit") if entries else None,
    }
    row.update(value=None, k=None, n=sum(int(e["n"] or 0) for e in entries), low=None, high=None)
    if len(entries) < 2:
        return _insufficient(
            ctx, row, f"fewer than 2 slices with n >= min_n={ctx.min_n} to compare"
        )
    counts = _counts_frame(ctx.metric, entries, cols)
    s = ctx.stats
    if aggregate == "homogeneity":
        method = ctx.criterion.metric.params.get("method", "auto")  # type: ignore[union-attr]
        if method == "fisher" and len(entries) != 2:
            return _insufficient(ctx, row, "Fisher's exact test needs exactly 2 slices")
        test = homogeneity_test(counts, ctx.metric, method=method)
        row.update(value=test.p_value, statistic=test.statistic, dof=test.dof, method=test.method)
        ok = test.p_value >= ctx.threshold
        row.update(
            outcome="PASS" if ok else "FAIL",
            bound=None,
            reason=f"homogeneity p = {test.p_value:.4g} ({test.method}) "
            f"{'>=' if ok else '<'} {ctx.threshold:g}",
            insufficient=False,
        )
        return row
    if aggregate == "ratio":
        spread = rate_ratio(counts, ctx.metric)
    else:
        spread = rate_difference(counts, ctx.metric, level=s.confidence_level, sided=s.sided)
    row.update(
        value=spread.value,
        low=spread.low,
        high=spread.high,
        largest=spread.largest,
        smallest=spread.smallest,
    )
    if spread.value is None:
        return _insufficient(ctx, row, "no slice has a value")
    j = _judge_value(ctx, spread.value, spread.low, spread.high)
    row.update(outcome=j.outcome, bound=j.bound, reason=j.reason, insufficient=False)
    return row


def _worst_value(ctx: _Ctx, rows: list[dict[str, Any]]) -> dict[str, Any]:
    # the worst measured value: highest for "<=", lowest for ">="; ties: the larger n
    sign = 1.0 if ctx.op == "<=" else -1.0
    return max(rows, key=lambda r: (sign * float(r["value"]), r["n"] or 0))


def _judge_metric(ctx: _Ctx, metrics: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """Rows (one per slice, slicing, or the overall entry) and, when the run has no such
    measurement at all, the reason."""
    spec = ctx.criterion.metric
    assert spec is not None
    aggregate = spec.resolved_aggregate
    if aggregate == "overall":
        entries = _entries(metrics, ctx.metric, [])
        if not entries:
            return [], f"no measurement of {ctx.metric} in this run"
        return [_judge_entry(ctx, entries[0])], ""

    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    for cols in spec.slicings():
        entries = _entries(metrics, ctx.metric, cols, spec)
        if not entries:
            missing.append(" × ".join(cols))
            continue
        per_slice = ctx.criterion.sample.per_slice
        total = sum(int(e.get("n") or 0) for e in entries)
        if aggregate in ("each", "worst"):
            judged = [_judge_entry(ctx, e, check_n=per_slice) for e in entries]
            if not per_slice and total < ctx.min_n:
                for r in judged:
                    _insufficient(ctx, r, f"insufficient sample: n={total} < min_n={ctx.min_n}")
            if aggregate == "worst":
                decided = [r for r in judged if not r["insufficient"]]
                thin = [r for r in judged if r["insufficient"]]
                judged = ([_worst_value(ctx, decided)] if decided else []) + thin
            rows.extend(judged)
        else:
            thin_rows = []
            keep = []
            for e in entries:
                n = int(e.get("n") or 0)
                if n == 0 or (per_slice and n < ctx.min_n):
                    r = {"slice": _subgroup(e), "unit": e.get("unit"), "value": e.get("value")}
                    r.update(k=e.get("k"), n=n, low=None, high=None)
                    thin_rows.append(
                        _insufficient(ctx, r, f"insufficient sample: n={n} < min_n={ctx.min_n}")
                    )
                else:
                    keep.append(e)
            if not per_slice and total < ctx.min_n:
                row = {"slice": {"by": cols}, "value": None, "k": None, "n": total}
                row.update(low=None, high=None)
                rows.append(
                    _insufficient(ctx, row, f"insufficient sample: n={total} < min_n={ctx.min_n}")
                )
                continue
            rows.append(_spread_row(ctx, cols, keep))
            rows.extend(thin_rows)
    if (
        aggregate == "each"
        and ctx.stats.multiplicity == "holm"
        and METRICS[ctx.metric] == "rate"
        and ctx.stats.decision_rule != "simple_acceptance"
        and ctx.statistic != "point"
    ):
        _holm(ctx, rows)
    if not rows:
        return [], f"no measurement of {ctx.metric} by {', '.join(missing)} in this run"
    for name in missing:
        absent: dict[str, Any] = {"slice": {"by": name.split(" × ")}, "value": None}
        absent.update(k=None, n=None, low=None, high=None)
        rows.append(
            _insufficient(ctx, absent, f"no measurement of {ctx.metric} by {name} in this run")
        )
    return rows, ""


def _judge_paired(ctx: _Ctx, baseline: dict[str, Any] | None) -> tuple[list[dict[str, Any]], str]:
    """Non-inferiority on the same parts: candidate minus baseline rate, Tango's paired
    interval at the criterion's statistics; the exact McNemar p-value is shown."""
    if baseline is None:
        return [], "skip"
    rate = ctx.metric.removesuffix("_change")
    pair = baseline[rate]
    b, c, n = int(pair["b"]), int(pair["c"]), int(pair["n"])
    row: dict[str, Any] = {"slice": {}, "unit": "part", "k": None, "n": n, "b": b, "c": c}
    row.update(value=(b - c) / n if n else None, low=None, high=None)
    row["p_value_mcnemar"] = mcnemar_exact(b, c)
    if not n:
        return [_insufficient(ctx, row, "no parts of this kind in both runs")], ""
    s = ctx.stats
    low, high = paired_difference_interval(b, c, n, level=s.confidence_level, sided=s.sided)
    row.update(low=low, high=high)
    if n < ctx.min_n:
        _insufficient(ctx, row, f"insufficient sample: n={n} < min_n={ctx.min_n}")
        row["bound"] = high if ctx.op == "<=" else low
        return [row], ""
    j = _judge_value(ctx, row["value"], low, high)
    reason = f"{j.reason} ({b} new, {c} fixed of {n}; McNemar p = {row['p_value_mcnemar']:.3g})"
    row.update(outcome=j.outcome, bound=j.bound, reason=reason, insufficient=False)
    return [row], ""


def _worst(rows: list[dict[str, Any]], op: str | None) -> dict[str, Any]:
    """The row that decides a sliced criterion: the worst outcome, and among equal outcomes
    the worst measured value."""
    sign = -1.0 if op == "<=" else 1.0

    def key(r: dict[str, Any]) -> tuple[int, float]:
        value = r.get("value")
        return (
            _WORST_FIRST.index(r["outcome"]),
            sign * float(value) if isinstance(value, (int, float)) else 0.0,
        )

    return min(rows, key=key)


def _base(criterion: Criterion, loaded: LoadedRubric, stats: Statistics) -> dict[str, Any]:
    req = criterion.requirement
    spec = criterion.metric
    return {
        "id": criterion.id,
        "title": criterion.title,
        "kind": criterion.kind,
        "severity": criterion.severity,
        "maps_to": [m.model_dump() for m in criterion.maps_to],
        "metric": spec.name if spec else None,
        "params": dict(spec.params) if spec else {},
        "filter": dict(spec.filter) if spec else {},
        "slice_by": spec.slice_by if spec else None,
        "intersect": spec.intersect if spec else False,
        "aggregate": spec.resolved_aggregate if spec else None,
        "statistic": criterion.statistic,
        "decision_rule": stats.decision_rule,
        "confidence_level": stats.confidence_level,
        "interval": stats.interval,
        "sided": stats.sided,
        "multiplicity": stats.multiplicity,
        "op": req.op if req else None,
        "threshold": req.threshold if req else None,
        "threshold_ref": req.threshold_ref if req else None,
        "threshold_provenance": threshold_provenance(criterion, loaded),
        "min_n": criterion.sample.min_n,
        "counts": criterion.sample.counts
        or (METRIC_INFO[spec.name].counts if spec and spec.name in METRIC_INFO else None),
        "per_slice": criterion.sample.per_slice,
        "rationale": criterion.rationale,
    }


def _outcome_of(word: str) -> Outcome:
    return "FAIL" if word == "fail" else "INCONCLUSIVE"


def _judge_criterion(
    criterion: Criterion,
    loaded: LoadedRubric,
    metrics: dict[str, Any],
    *,
    card: ModelCard | None,
    params: dict[str, float],
    run: dict[str, Any] | None,
    baseline: dict[str, Any] | None,
    gaps: list[str],
) -> dict[str, Any]:
    rubric = loaded.rubric
    stats = effective_statistics(criterion, rubric.defaults.statistics)
    base = _base(criterion, loaded, stats)
    on_insufficient = _outcome_of(
        criterion.sample.on_insufficient or rubric.defaults.on_insufficient_sample
    )
    empty: dict[str, Any] = {"value": None, "bound": None, "k": None, "n": None, "slices": []}
    if criterion.kind == "attestation":
        base.update(empty, outcome="ATTESTED", reason=ATTESTED_REASON)
        return base
    threshold: float | None = None
    if criterion.requirement is not None:
        threshold, problem = _resolve_threshold(criterion, card, params)
        base["threshold"] = threshold
        if threshold is None:
            base.update(empty, outcome="ERROR", reason=problem)
            gaps.append(f"{criterion.id}: {problem}")
            return base
    if criterion.kind == "evidence":
        assert criterion.metric is not None
        result = check_evidence(
            criterion.metric.name,
            criterion.metric.params,
            op=criterion.requirement.op if criterion.requirement else None,
            threshold=threshold,
            metrics=metrics,
            run=run,
            card=card,
            approval=rubric.approval,
        )
        outcome = on_insufficient if result.outcome == "INSUFFICIENT" else result.outcome
        # `value` stays a number (the report formats it as one); facts go in `evidence`
        numeric = isinstance(result.value, (int, float)) and not isinstance(result.value, bool)
        base.update(empty, outcome=outcome, value=result.value if numeric else None)
        base.update(reason=result.reason, evidence={**result.detail, "value": result.value})
        if result.outcome in ("INSUFFICIENT", "ERROR"):
            gaps.append(f"{criterion.id}: {result.reason}")
        return base

    assert threshold is not None
    ctx = _Ctx(criterion, stats, threshold, on_insufficient)
    if METRICS[ctx.metric] == "paired":
        rows, problem = _judge_paired(ctx, baseline)
        if problem == "skip":
            base.update(empty, outcome="SKIPPED", reason="needs --baseline RUN: not evaluated")
            return base
    else:
        rows, problem = _judge_metric(ctx, metrics)
    if problem:
        base.update(empty, outcome=on_insufficient, reason=problem)
        gaps.append(f"{criterion.id}: {problem}")
        return base
    for r in rows:
        if r.pop("insufficient"):
            gaps.append(f"{criterion.id} [{slice_label(r['slice'])}]: {r['reason']}")
    worst = _worst(rows, ctx.op)
    sliced = bool(criterion.metric and criterion.metric.slice_by)
    base.update(
        outcome=worst["outcome"],
        value=worst["value"],
        bound=worst["bound"],
        k=worst["k"],
        n=worst["n"],
        reason=f"worst {'' if 'by' in worst['slice'] else 'slice '}"
        f"{slice_label(worst['slice'])}: {worst['reason']}"
        if sliced
        else worst["reason"],
        slices=rows if sliced else [],
    )
    if not sliced and METRICS[ctx.metric] == "paired":
        base["paired"] = rows[0]
    return base


def _applicability_gaps(loaded: LoadedRubric, metrics: dict[str, Any]) -> list[str]:
    app = loaded.rubric.applicability
    gaps = []
    unit = metrics.get("unit")
    if unit and unit != app.unit_of_analysis:
        gaps.append(f"the rubric counts {app.unit_of_analysis}s but the metrics count {unit}s")
    present = {k for e in metrics.get("metrics", []) for k in _subgroup(e) if k != "by"}
    absent = [k for k in app.slice_keys if k not in present]
    if absent and metrics.get("metrics"):
        gaps.append(
            "expected slice key(s) absent from the data: " + ", ".join(absent) + " (not judged)"
        )
    return gaps


def _run_gaps(metrics: dict[str, Any]) -> list[str]:
    gaps = []
    counts = metrics.get("counts", {})
    if counts.get("images_unreadable"):
        gaps.append(f"{counts['images_unreadable']} image(s) unreadable: not scored")
    if counts.get("images_error"):
        gaps.append(f"{counts['images_error']} image(s) failed in inference: not scored")
    if counts.get("parts_unscored"):
        gaps.append(
            f"{counts['parts_unscored']} part(s) with an unscored image: "
            "left out of part-level rates"
        )
    return gaps


def evaluate(
    metrics: dict[str, Any],
    loaded: LoadedRubric,
    *,
    card: ModelCard | None = None,
    params: dict[str, float] | None = None,
    run: dict[str, Any] | None = None,
    baseline: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``verdicts.json`` document (without ``run_id``) for measured ``metrics``.

    ``card``: the model card (``threshold_ref: declared.X``, declared SHA-256); ``params``:
    site parameters (``threshold_ref: site.X``); ``run``: the run's ``run.json`` content,
    read by evidence criteria (model SHA-256, start time, runtime parity, energy); without it
    those criteria are data gaps. ``baseline``: :func:`auditkit.rubric.baseline.compare_runs`
    output, for ``escape_rate_change`` / ``overkill_rate_change`` criteria (SKIPPED without).

    To recompute a ``verdicts.json`` exactly: ``evaluate(metrics, loaded, card=card,
    params=verdicts["params"], run=run_json, baseline=verdicts.get("baseline"))``.
    """
    rubric = loaded.rubric
    defaults = rubric.defaults.statistics
    params = params or {}
    gaps = _run_gaps(metrics) + _applicability_gaps(loaded, metrics)
    criteria_out = [
        _judge_criterion(
            c,
            loaded,
            metrics,
            card=card,
            params=params,
            run=run,
            baseline=baseline,
            gaps=gaps,
        )
        for c in rubric.criteria
    ]
    verdict = roll_up(criteria_out, rubric.verdict_policy)
    out = {
        "rubric": {
            "id": rubric.id,
            "version": rubric.version,
            "title": rubric.title,
            "status": rubric.status,
            "sha256": loaded.sha256,
            "references": [r.model_dump() for r in rubric.references],
            "applicability_note": rubric.applicability.note,
            "approval": rubric.approval.model_dump(mode="json") if rubric.approval else None,
        },
        "decision_rule": defaults.decision_rule,
        "decision_rule_meaning": RULE_MEANING[defaults.decision_rule],
        "confidence_level": defaults.confidence_level,
        "interval": defaults.interval,
        "sided": defaults.sided,
        "multiplicity": defaults.multiplicity,
        "verdict_policy": rubric.verdict_policy.model_dump(),
        # what a recomputation needs besides metrics.json, run.json and the rubric
        "params": dict(sorted(params.items())),
        "verdict": verdict,
        "exit_code": VERDICT_EXIT[verdict],
        "criteria": criteria_out,
        "data_gaps": gaps,
    }
    if baseline is not None:
        out["baseline"] = baseline
    return out


def _matches(rule: str) -> Callable[[dict[str, Any]], bool]:
    words = rule.split()
    severity = words[1]
    outcomes = set(words[2::2])
    return lambda c: c["severity"] == severity and c["outcome"] in outcomes


def roll_up(criteria: list[dict[str, Any]], policy: VerdictPolicy | None = None) -> str:
    """The verdict. Default policy (DOMAIN.md §3): REJECT if a blocker FAILs; HOLD if a blocker
    is INCONCLUSIVE or ERROR; CONDITIONAL if a major FAILs; otherwise ACCEPT. ATTESTED and
    SKIPPED criteria never match a rule."""
    policy = policy or VerdictPolicy()
    for verdict, rules in (
        ("REJECT", policy.reject_if),
        ("HOLD", policy.hold_if),
        ("CONDITIONAL", policy.conditional_if),
    ):
        if any(_matches(rule)(c) for rule in rules for c in criteria):
            return verdict
    return "ACCEPT"


#: ``--fail-on`` levels, least severe last: the gate fails on this verdict and every worse one
FAIL_ON = ("reject", "hold", "conditional")
_SEVERITY = ("ACCEPT", "CONDITIONAL", "HOLD", "REJECT")


def gate_exit_code(verdict: str, fail_on: str = "conditional") -> int:
    """The exit code of a CI gate: the verdict's own code (REJECT 1, HOLD 3, CONDITIONAL 4)
    when the verdict is ``fail_on`` or worse (REJECT > HOLD > CONDITIONAL), else 0.

    ``conditional`` (default): every verdict but ACCEPT fails; ``hold``: CONDITIONAL passes;
    ``reject``: only REJECT fails.
    """
    if fail_on not in FAIL_ON:
        raise ValueError(f"fail_on must be one of {FAIL_ON}, got {fail_on!r}")
    if _SEVERITY.index(verdict) >= _SEVERITY.index(fail_on.upper()):
        return VERDICT_EXIT[verdict]
    return ExitCode.ACCEPT
