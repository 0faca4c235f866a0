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
line; slices are never pooled to make up the numbers. ``min_n`` guards acceptance only: when the
violating bound already proves non-conformity the outcome is FAIL whatever n, and the reason
says n was below the rubric's minimum (ISO/IEC 17025 7.8.6, ILAC G8: the decision rule is about
the risk of a false accept). A blocker that was not evaluated (SKIPPED) makes the verdict at
best HOLD unless the rubric made it conditional on the missing input (``requires``); a modelled
energy figure is never judged (INCONCLUSIVE).

A rubric judges the models of its ``applicability.task`` only: :func:`evaluate` refuses
metrics of another task (``metrics.json`` ``task``; :class:`~auditkit.errors.RubricError`,
exit 5) before judging anything. A criterion's
``params`` choose among the entries of its metric: ``class`` the entry of that class (``ap``,
``iou``, ``dice``), ``iou`` and ``target`` the entry recorded with that value (``recall_at_iou``,
``overkill_at_escape_target``). Estimates (bootstrap intervals) are judged on the interval
``metrics.json`` gives them, which must be at the criterion's level and sidedness.

Every criterion carries the figures of the one row that decides it (``slice``, ``value``,
``bound``, ``k``, ``n``, ``low``, ``high`` and the level of each bound), and every reason is a
code with arguments (:mod:`auditkit.rubric.reasons`) beside its English text.

Rates are re-bounded here from their ``k`` and ``n`` with the criterion's own statistics
(:func:`auditkit.metrics.stats.binomial_interval`, the function ``metrics.json`` uses), so a
per-criterion ``statistics`` override needs no second pass over the run. With ``multiplicity:
holm`` the slices of an ``each`` criterion are one family: each slice's conformity (and, under
the guarded rules, violation) is an exact one-sided binomial test at the threshold, the p-values
are Holm-adjusted (:func:`auditkit.metrics.stats.holm_adjust`) and compared with the tail
probability of the stated level; the bound shown is the Clopper–Pearson bound at that slice's
Holm level (:func:`auditkit.metrics.stats.holm_levels`), and the row's ``low`` / ``high`` are
the bounds the decision used, each at its own Holm level.
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
from auditkit.rubric.reasons import english, note, with_text
from auditkit.rubric.schema import (
    METRIC_INFO,
    METRICS,
    RATE_ALIAS,
    Criterion,
    LoadedRubric,
    MetricSpec,
    Outcome,
    Statistics,
    VerdictPolicy,
    check_task,
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
    code: str
    args: dict[str, Any]
    metric: str = ""

    @property
    def reason(self) -> str:
        """The English text (``verdicts.json`` ``reason``)."""
        return english(self.code, self.args, metric=self.metric or None)


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
    proving_side, violating_side = ("upper", "lower") if le else ("lower", "upper")

    def meets(x: float) -> bool:
        return x <= threshold if le else x >= threshold

    def relation(x: float) -> str:
        return op if meets(x) else (">" if le else "<")

    def judged(outcome: Outcome, decided_on: float | None, code: str, **args: Any) -> Judgement:
        return Judgement(outcome, decided_on, code, args, metric)

    if rule == "simple_acceptance":
        return judged(
            "PASS" if meets(point) else "FAIL",
            proving_bound,
            "value_compared",
            value=point,
            relation=relation(point),
            threshold=threshold,
        )
    if violating_bound is not None and not meets(violating_bound):
        return judged(
            "FAIL",
            violating_bound,
            "bound_compared",
            side=violating_side,
            bound=violating_bound,
            relation=relation(violating_bound),
            threshold=threshold,
        )
    if rule == "guarded_rejection":
        return judged("PASS", violating_bound, "violation_not_proven")
    # guarded acceptance
    if proving_bound is not None and meets(proving_bound):
        return judged(
            "PASS",
            proving_bound,
            "bound_compared",
            side=proving_side,
            bound=proving_bound,
            relation=op,
            threshold=threshold,
        )
    if proving_bound is None:
        return judged("INCONCLUSIVE", None, "no_bound")
    return judged(
        "INCONCLUSIVE",
        proving_bound,
        "bound_not_proving",
        value=point,
        side=proving_side,
        bound=proving_bound,
        op=op,
        threshold=threshold,
    )


def proves_violation(op: str, threshold: float, low: float | None, high: float | None) -> bool:
    """Whether the violating bound (lower for ``<=``, upper for ``>=``) already shows the
    requirement is not met: a FAIL that no further sample could turn into a PASS at this
    confidence, so ``min_n`` (which guards acceptance) does not hold it back."""
    bound = low if op == "<=" else high
    if bound is None:
        return False
    return bound > threshold if op == "<=" else bound < threshold


def effective_statistics(criterion: Criterion, defaults: Statistics) -> Statistics:
    """The rubric's default statistics with the criterion's override applied."""
    override = criterion.requirement.statistics if criterion.requirement else None
    if override is None:
        return defaults
    changes = {k: v for k, v in override.model_dump().items() if v is not None}
    return Statistics.model_validate({**defaults.model_dump(), **changes})


def _resolve_threshold(
    criterion: Criterion, card: ModelCard | None, params: dict[str, float]
) -> tuple[float | None, dict[str, Any]]:
    """The threshold, or None and the reason (``code`` and its arguments) why there is none."""
    req = criterion.requirement
    assert req is not None
    if req.threshold is not None:
        return req.threshold, {}
    assert req.threshold_ref is not None
    source, _, name = req.threshold_ref.partition(".")
    if source == "declared":
        value = getattr(card.declared, name, None) if card else None
        if value is None:
            return None, {"code": "card_declares_no", "name": name, "ref": req.threshold_ref}
        if not isinstance(value, (int, float)):
            return None, {"code": "card_not_number", "name": name, "ref": req.threshold_ref}
        return float(value), {}
    if name not in params:
        return None, {"code": "site_param_missing", "name": name}
    return params[name], {}


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
    params = dict(spec.params) if spec else {}
    chosen_class = params.pop("class", None)
    params.pop("method", None)
    wanted = set(cols) | ({"class"} if chosen_class is not None else set())
    found = []
    for entry in metrics.get("metrics", []):
        if entry.get("name") != name:
            continue
        sub = _subgroup(entry)
        if "by" in sub or set(sub) != wanted:
            continue
        if spec and any(str(sub.get(c)) not in set(map(str, v)) for c, v in spec.filter.items()):
            continue
        if chosen_class is not None and str(sub.get("class")) != str(chosen_class):
            continue
        if not all(_same_param(entry.get(k), v) for k, v in params.items()):
            continue
        found.append(entry)
    return found


def _same_param(recorded: Any, wanted: Any) -> bool:
    """An entry's parameter (``iou``, ``target``) equals the criterion's: numbers to 1e-9."""
    if isinstance(recorded, (int, float)) and isinstance(wanted, (int, float)):
        return abs(float(recorded) - float(wanted)) <= 1e-9
    return recorded == wanted


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


#: metrics written by the energy meter: a criterion on them is judged on a measured figure only
ENERGY_METRICS = frozenset(
    {
        "energy_wh_per_1000_inspections",
        "energy_j_per_image",
        "gco2e_per_1000_inspections",
        "idle_power_w",
        "mean_power_w",
    }
)


def _say(ctx: _Ctx, row: dict[str, Any], code: str, notes: Any = (), /, **args: Any) -> None:
    # a spread row's numbers are a difference (percentage points) or a ratio, not a rate
    aggregate = ctx.criterion.metric.resolved_aggregate  # type: ignore[union-attr]
    spread = aggregate in ("difference", "ratio") and "by" in (row.get("slice") or {})
    with_text(row, f"{ctx.metric}_{aggregate}" if spread else ctx.metric, code, notes, **args)


def _insufficient(
    ctx: _Ctx, row: dict[str, Any], code: str, notes: Any = (), /, **args: Any
) -> dict[str, Any]:
    row.update(outcome=ctx.on_insufficient, bound=None, insufficient=True)
    _say(ctx, row, code, notes, **args)
    return row


def _below_min_n(ctx: _Ctx, row: dict[str, Any], n: int) -> dict[str, Any]:
    """A row whose n is below ``min_n``: FAIL when its violating bound already proves the
    requirement is not met (``min_n`` guards acceptance only: ISO/IEC 17025 7.8.6, ILAC G8),
    else the criterion's ``on_insufficient`` outcome, with the bound that would prove
    conformity shown (how far the evidence is from deciding)."""
    low, high = row.get("low"), row.get("high")
    if ctx.statistic != "p_value" and proves_violation(ctx.op, ctx.threshold, low, high):
        bound = low if ctx.op == "<=" else high
        assert bound is not None
        row.update(outcome="FAIL", bound=bound, insufficient=False, below_min_n=True)
        side = "lower" if ctx.op == "<=" else "upper"
        relation = ">" if ctx.op == "<=" else "<"
        stands = note("below_min_n_fail_stands", n=n, min_n=ctx.min_n)
        _say(
            ctx,
            row,
            "bound_compared",
            [stands],
            side=side,
            bound=bound,
            relation=relation,
            threshold=ctx.threshold,
        )
        return row
    _insufficient(ctx, row, "below_min_n", n=n, min_n=ctx.min_n)
    row["bound"] = high if ctx.op == "<=" else low
    row["below_min_n"] = True
    return row


def _set_levels(ctx: _Ctx, row: dict[str, Any], level: float | None, sided: str | None) -> None:
    """The confidence level of each bound in ``low`` / ``high`` and whether they are two
    one-sided bounds (``one``) or the ends of a two-sided interval (``two``)."""
    has = row.get("low") is not None or row.get("high") is not None
    row["low_level"] = level if has else None
    row["high_level"] = level if has else None
    row["bounds_sided"] = sided if has else None


def _interval(
    ctx: _Ctx, entry: dict[str, Any]
) -> tuple[float | None, float | None, float | None, str | None, dict[str, Any]]:
    """Bounds of an entry at the criterion's statistics, their level and sidedness; a
    non-empty last value is the reason (code and arguments) why there are none."""
    k, n = entry.get("k"), entry.get("n")
    s = ctx.stats
    if METRICS[ctx.metric] == "rate" and k is not None and n:
        low, high = binomial_interval(
            int(k), int(n), level=s.confidence_level, method=s.interval, sided=s.sided
        )
        return low, high, s.confidence_level, s.sided, {}
    interval = entry.get("interval") or {}
    if not interval:
        return None, None, None, None, {}
    if (interval.get("level"), interval.get("sided")) != (s.confidence_level, s.sided):
        why = {
            "code": "interval_level_mismatch",
            "metric": ctx.metric,
            "level": interval.get("level"),
            "sided": interval.get("sided"),
            "want_level": s.confidence_level,
            "want_sided": s.sided,
        }
        return None, None, None, None, why
    return interval.get("low"), interval.get("high"), s.confidence_level, s.sided, {}


def _judge_value(ctx: _Ctx, point: float, low: float | None, high: float | None) -> Judgement:
    # a requirement on the point value is decided on it, whatever the rule; bounds are shown
    rule = "simple_acceptance" if ctx.statistic == "point" else ctx.stats.decision_rule
    return decide(rule, ctx.op, ctx.threshold, point, low, high, ctx.metric)


def _apply(ctx: _Ctx, row: dict[str, Any], j: Judgement, notes: Any = ()) -> dict[str, Any]:
    row.update(outcome=j.outcome, bound=j.bound, insufficient=False)
    _say(ctx, row, j.code, notes, **j.args)
    return row


def _new_row(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "slice": _subgroup(entry),
        "unit": entry.get("unit"),
        "value": entry.get("value"),
        "k": entry.get("k"),
        "n": entry.get("n"),
        "low": None,
        "high": None,
        "low_level": None,
        "high_level": None,
        "bounds_sided": None,
    }


def _judge_entry(ctx: _Ctx, entry: dict[str, Any], check_n: bool = True) -> dict[str, Any]:
    n = entry.get("n")
    value = entry.get("value")
    row = _new_row(entry)
    if value is None and entry.get("no_threshold"):
        # no threshold proves the escape target with the defective parts tested
        target = entry.get("target")
        return _insufficient(
            ctx, row, "no_certified_threshold", target=target, n=entry.get("n_defective") or 0
        )
    if value is None:
        return _insufficient(ctx, row, "no_value", n=n or 0)
    if ctx.metric in ENERGY_METRICS and entry.get("method") != "measured":
        # a modelled figure is not a measurement: never PASS or FAIL on it (docs/metrics.md)
        row.update(method=entry.get("method"))
        row.update(outcome="INCONCLUSIVE", bound=None, insufficient=True)
        _say(ctx, row, "modelled_energy", value=value)
        return row
    low, high, level, sided, why = _interval(ctx, entry)
    row.update(low=low, high=high)
    _set_levels(ctx, row, level, sided)
    if check_n and n is not None and n < ctx.min_n:
        return _below_min_n(ctx, row, int(n))
    if why and ctx.statistic != "point":
        code = why.pop("code")
        return _insufficient(ctx, row, code, **why)
    return _apply(ctx, row, _judge_value(ctx, float(value), low, high))


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
    """Re-judge the slices of an ``each`` criterion as one Holm family.

    Two families: violation (every slice with parts: a proven failure stands whatever n) and
    conformity (the slices with n >= min_n: only they may PASS). Each row's ``low`` and
    ``high`` become the bounds the decision used, each at its own Holm level (``low_level``,
    ``high_level``; one-sided exact bounds), so the table and the forest chart show them.
    """
    family = [r for r in rows if r.get("n") and r.get("k") is not None]
    if not family:
        return
    sufficient = [i for i, r in enumerate(family) if not r.get("below_min_n")]
    k = np.array([r["k"] for r in family], dtype=np.int64)
    n = np.array([r["n"] for r in family], dtype=np.int64)
    alpha = tail_probability(ctx.stats.confidence_level, ctx.stats.sided)
    level = 1.0 - alpha
    p_conform, p_violate = _exact_p_values(k, n, ctx.op, ctx.threshold)
    adj_violate = holm_adjust(p_violate)
    lv_violate = holm_levels(p_violate, level)
    adj_conform = np.ones(len(family))
    lv_conform = np.full(len(family), np.nan)
    if sufficient:
        idx = np.array(sufficient)
        adj_conform[idx] = holm_adjust(p_conform[idx])
        lv_conform[idx] = holm_levels(p_conform[idx], level)
    le = ctx.op == "<="
    side, other = ("upper", "lower") if le else ("lower", "upper")
    for i, r in enumerate(family):
        thin = bool(r.get("below_min_n"))
        lo_v, hi_v = binomial_interval(int(k[i]), int(n[i]), level=float(lv_violate[i]))
        violating = lo_v if le else hi_v
        proving = None
        if not thin:
            lo_c, hi_c = binomial_interval(int(k[i]), int(n[i]), level=float(lv_conform[i]))
            proving = hi_c if le else lo_c
        # the bounds the decision used: violating side at the violation level, proving side
        # at the conformity level (a thin slice has no proving bound: it cannot PASS)
        low, high = (violating, proving) if le else (proving, violating)
        r.update(low=low, high=high, bounds_sided="one", holm=True)
        r["low_level"] = float(lv_violate[i]) if le else (None if thin else float(lv_conform[i]))
        r["high_level"] = (None if thin else float(lv_conform[i])) if le else float(lv_violate[i])
        r.update(p_violation=float(p_violate[i]), holm_p_violation=float(adj_violate[i]))
        if not thin:
            r.update(
                p_conformity=float(p_conform[i]),
                holm_p_conformity=float(adj_conform[i]),
                holm_level=float(lv_conform[i]),
            )
        violate = adj_violate[i] <= alpha
        conform = (not thin) and adj_conform[i] <= alpha
        notes = [note("below_min_n_fail_stands", n=int(n[i]), min_n=ctx.min_n)] if thin else []
        if violate:
            r.update(outcome="FAIL", bound=violating, insufficient=False)
            _say(
                ctx,
                r,
                "holm_bound_compared",
                notes,
                side=other,
                bound=violating,
                level=float(lv_violate[i]),
                relation=">" if le else "<",
                threshold=ctx.threshold,
            )
        elif thin:
            _insufficient(ctx, r, "below_min_n", n=int(n[i]), min_n=ctx.min_n)
            r["bound"] = proving
        elif conform:
            r.update(outcome="PASS", bound=proving, insufficient=False)
            _say(
                ctx,
                r,
                "holm_bound_compared",
                side=side,
                bound=proving,
                level=float(lv_conform[i]),
                relation=ctx.op,
                threshold=ctx.threshold,
            )
        elif ctx.stats.decision_rule == "guarded_rejection":
            r.update(outcome="PASS", bound=violating, insufficient=False)
            _say(ctx, r, "holm_violation_not_proven")
        else:
            r.update(outcome="INCONCLUSIVE", bound=proving, insufficient=False)
            _say(
                ctx,
                r,
                "holm_bound_not_proving",
                value=r["value"],
                side=side,
                bound=proving,
                level=float(lv_conform[i]),
                op=ctx.op,
                threshold=ctx.threshold,
            )


def _counts_frame(metric: str, entries: list[dict[str, Any]], cols: list[str]) -> pd.DataFrame:
    """A :func:`auditkit.metrics.groups.slice_counts`-shaped table holding each slice's
    ``(k, n)`` of ``metric`` (enough for every function that reads one rate)."""
    num, den = RATE_DEFINITIONS[RATE_ALIAS.get(metric, metric)]
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
    _set_levels(ctx, row, None, None)
    if len(entries) < 2:
        return _insufficient(ctx, row, "too_few_slices", min_n=ctx.min_n)
    counts = _counts_frame(ctx.metric, entries, cols)
    s = ctx.stats
    if aggregate == "homogeneity":
        method = ctx.criterion.metric.params.get("method", "auto")  # type: ignore[union-attr]
        if method == "fisher" and len(entries) != 2:
            return _insufficient(ctx, row, "fisher_needs_two")
        test = homogeneity_test(counts, ctx.metric, method=method)
        row.update(value=test.p_value, statistic=test.statistic, dof=test.dof, method=test.method)
        ok = test.p_value >= ctx.threshold
        row.update(outcome="PASS" if ok else "FAIL", bound=None, insufficient=False)
        _say(
            ctx,
            row,
            "homogeneity_compared",
            p=test.p_value,
            method=test.method,
            relation=">=" if ok else "<",
            alpha=ctx.threshold,
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
    _set_levels(ctx, row, s.confidence_level, s.sided)
    if spread.value is None:
        return _insufficient(ctx, row, "no_slice_value")
    return _apply(ctx, row, _judge_value(ctx, spread.value, spread.low, spread.high))


def _worst_value(ctx: _Ctx, rows: list[dict[str, Any]]) -> dict[str, Any]:
    # the worst measured value: highest for "<=", lowest for ">="; ties: the larger n
    sign = 1.0 if ctx.op == "<=" else -1.0
    return max(rows, key=lambda r: (sign * float(r["value"]), r["n"] or 0))


def _thin_total(ctx: _Ctx, rows: list[dict[str, Any]], total: int) -> None:
    """``per_slice: false`` with fewer than ``min_n`` units over all slices: no slice may
    PASS; a slice whose bound proves a failure still FAILs."""
    for r in rows:
        if r.get("outcome") == "FAIL" and proves_violation(
            ctx.op, ctx.threshold, r.get("low"), r.get("high")
        ):
            bound = r["low"] if ctx.op == "<=" else r["high"]
            r.update(bound=bound, below_min_n=True)
            stands = note("below_min_n_fail_stands", n=total, min_n=ctx.min_n)
            side = "lower" if ctx.op == "<=" else "upper"
            _say(
                ctx,
                r,
                "bound_compared",
                [stands],
                side=side,
                bound=bound,
                relation=">" if ctx.op == "<=" else "<",
                threshold=ctx.threshold,
            )
            continue
        high, low = r.get("high"), r.get("low")
        _insufficient(ctx, r, "below_min_n", n=total, min_n=ctx.min_n)
        r["below_min_n"] = True
        r["bound"] = high if ctx.op == "<=" else low


def _judge_slicing(
    ctx: _Ctx, cols: list[str], entries: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows of one slicing (one column, or one intersection)."""
    aggregate = ctx.criterion.metric.resolved_aggregate  # type: ignore[union-attr]
    per_slice = ctx.criterion.sample.per_slice
    total = sum(int(e.get("n") or 0) for e in entries)
    if aggregate in ("each", "worst"):
        judged = [_judge_entry(ctx, e, check_n=per_slice) for e in entries]
        if not per_slice and total < ctx.min_n:
            _thin_total(ctx, judged, total)
        if aggregate == "worst":
            decided = [r for r in judged if not r["insufficient"]]
            thin = [r for r in judged if r["insufficient"]]
            judged = ([_worst_value(ctx, decided)] if decided else []) + thin
        return judged
    thin_rows = []
    keep = []
    for e in entries:
        n = int(e.get("n") or 0)
        if n == 0 or (per_slice and n < ctx.min_n):
            # a slice too thin to compare is left out of the spread (never pooled)
            r = _new_row(e)
            r["n"] = n
            thin_rows.append(_insufficient(ctx, r, "below_min_n", n=n, min_n=ctx.min_n))
        else:
            keep.append(e)
    row = _spread_row(ctx, cols, keep)
    if not per_slice and total < ctx.min_n:
        proven = (
            row["outcome"] == "FAIL"
            and ctx.statistic != "point"
            and (
                aggregate == "homogeneity"
                or proves_violation(ctx.op, ctx.threshold, row.get("low"), row.get("high"))
            )
        )
        if proven:  # a proven difference stands whatever n
            row["below_min_n"] = True
            stands = note("below_min_n_fail_stands", n=total, min_n=ctx.min_n)
            _say(ctx, row, row["reason_code"], [stands], **row["reason_args"])
        else:
            row = {"slice": {"by": cols}, "value": None, "k": None, "n": total}
            row.update(low=None, high=None)
            _set_levels(ctx, row, None, None)
            _insufficient(ctx, row, "below_min_n", n=total, min_n=ctx.min_n)
            row["below_min_n"] = True
    return [row, *thin_rows]


def _judge_metric(
    ctx: _Ctx, metrics: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows (one per slice, slicing, or the overall entry) and, when the run has no such
    measurement at all, the reason (code and arguments)."""
    spec = ctx.criterion.metric
    assert spec is not None
    aggregate = spec.resolved_aggregate
    if aggregate == "overall":
        entries = _entries(metrics, ctx.metric, [], spec)
        if not entries:
            return [], {"code": "no_measurement", "metric": ctx.metric}
        return [_judge_entry(ctx, entries[0])], {}

    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    for cols in spec.slicings():
        entries = _entries(metrics, ctx.metric, cols, spec)
        if not entries:
            missing.append(" × ".join(cols))
            continue
        rows.extend(_judge_slicing(ctx, cols, entries))
    if (
        aggregate == "each"
        and ctx.stats.multiplicity == "holm"
        and METRICS[ctx.metric] == "rate"
        and ctx.stats.decision_rule != "simple_acceptance"
        and ctx.statistic != "point"
    ):
        _holm(ctx, rows)
    if not rows:
        return [], {"code": "no_measurement_by", "metric": ctx.metric, "by": ", ".join(missing)}
    for name in missing:
        absent: dict[str, Any] = {"slice": {"by": name.split(" × ")}, "value": None}
        absent.update(k=None, n=None, low=None, high=None)
        _set_levels(ctx, absent, None, None)
        rows.append(_insufficient(ctx, absent, "no_measurement_by", metric=ctx.metric, by=name))
    return rows, {}


def _judge_paired(
    ctx: _Ctx, baseline: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Non-inferiority on the same parts: candidate minus baseline rate, Tango's paired
    interval at the criterion's statistics; the exact McNemar p-value is shown."""
    if baseline is None:
        return [], {"code": "skip"}
    rate = ctx.metric.removesuffix("_change")
    pair = baseline[rate]
    b, c, n = int(pair["b"]), int(pair["c"]), int(pair["n"])
    row: dict[str, Any] = {"slice": {}, "unit": "part", "k": None, "n": n, "b": b, "c": c}
    row.update(value=(b - c) / n if n else None, low=None, high=None)
    _set_levels(ctx, row, None, None)
    row["p_value_mcnemar"] = mcnemar_exact(b, c)
    if not n:
        return [_insufficient(ctx, row, "no_common_parts")], {}
    s = ctx.stats
    low, high = paired_difference_interval(b, c, n, level=s.confidence_level, sided=s.sided)
    row.update(low=low, high=high)
    _set_levels(ctx, row, s.confidence_level, s.sided)
    if n < ctx.min_n:
        return [_below_min_n(ctx, row, n)], {}
    j = _judge_value(ctx, row["value"], low, high)
    counts = note("paired_counts", b=b, c=c, n=n, p=row["p_value_mcnemar"])
    return [_apply(ctx, row, j, [counts])], {}


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
        "requires": list(criterion.requires),
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
    gaps: list[dict[str, Any]],
) -> dict[str, Any]:
    rubric = loaded.rubric
    stats = effective_statistics(criterion, rubric.defaults.statistics)
    base = _base(criterion, loaded, stats)
    on_insufficient = _outcome_of(
        criterion.sample.on_insufficient or rubric.defaults.on_insufficient_sample
    )
    metric = criterion.metric.name if criterion.metric else None
    empty: dict[str, Any] = {
        "value": None,
        "bound": None,
        "k": None,
        "n": None,
        "slices": [],
        "slice": None,
        "low": None,
        "high": None,
        "low_level": None,
        "high_level": None,
        "bounds_sided": None,
    }

    def settle(outcome: Outcome, code: str, gap: bool = True, /, **args: Any) -> dict[str, Any]:
        base.update(empty, outcome=outcome)
        with_text(base, metric, code, **args)
        if gap:
            gaps.append(_gap(criterion.id, None, base, metric))
        return base

    if criterion.kind == "attestation":
        return settle("ATTESTED", "attested", False)
    if "baseline" in criterion.requires and baseline is None:
        # conditional on an input that was not given: not evaluated, and it does not hold
        # the verdict (the rubric says so); listed among the criteria not decided
        return settle("SKIPPED", "conditional_on_baseline")
    threshold: float | None = None
    if criterion.requirement is not None:
        threshold, problem = _resolve_threshold(criterion, card, params)
        base["threshold"] = threshold
        if threshold is None:
            code = problem.pop("code")
            return settle("ERROR", code, **problem)
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
        base.update(
            reason=result.reason,
            reason_code=result.code,
            reason_args=dict(result.args),
            evidence={**result.detail, "value": result.value},
        )
        if result.notes:
            base["reason_notes"] = [dict(n) for n in result.notes]
        if result.outcome in ("INSUFFICIENT", "ERROR"):
            gaps.append(_gap(criterion.id, None, base, metric))
        return base

    assert threshold is not None
    ctx = _Ctx(criterion, stats, threshold, on_insufficient)
    if METRICS[ctx.metric] == "paired":
        rows, problem = _judge_paired(ctx, baseline)
        if problem.get("code") == "skip":
            # not evaluated, and the rubric does not make it conditional: it holds a verdict
            return settle("SKIPPED", "needs_baseline")
    else:
        rows, problem = _judge_metric(ctx, metrics)
    if problem:
        code = problem.pop("code")
        return settle(on_insufficient, code, **problem)
    for r in rows:
        if r.pop("insufficient"):
            gaps.append(_gap(criterion.id, r["slice"], r, metric))
    worst = _worst(rows, ctx.op)
    sliced = bool(criterion.metric and criterion.metric.slice_by)
    # every figure of the criterion comes from the one row that decides it (one slice)
    base.update({key: worst.get(key) for key in _ROW_FIGURES})
    base.update(
        outcome=worst["outcome"],
        reason=f"worst {'' if 'by' in worst['slice'] else 'slice '}"
        f"{slice_label(worst['slice'])}: {worst['reason']}"
        if sliced
        else worst["reason"],
        slices=rows if sliced else [],
    )
    if worst.get("reason_notes"):
        base["reason_notes"] = worst["reason_notes"]
    if worst.get("below_min_n"):
        base["below_min_n"] = True
    if not sliced and METRICS[ctx.metric] == "paired":
        base["paired"] = rows[0]
    return base


#: the figures a criterion takes from its deciding row
_ROW_FIGURES = (
    "slice",
    "value",
    "bound",
    "k",
    "n",
    "low",
    "high",
    "low_level",
    "high_level",
    "bounds_sided",
    "reason_code",
    "reason_args",
    "holm",
)


def _gap(
    criterion_id: str | None,
    slc: dict[str, Any] | None,
    row: dict[str, Any],
    metric: str | None = None,
) -> dict[str, Any]:
    """A data gap: the English line of ``data_gaps`` and its coded form (``data_gap_reasons``)."""
    where = (
        ""
        if criterion_id is None
        else (f"{criterion_id}: " if slc is None else f"{criterion_id} [{slice_label(slc)}]: ")
    )
    coded: dict[str, Any] = {
        "criterion": criterion_id,
        "metric": metric,
        "slice": slc,
        "reason_code": row.get("reason_code"),
        "reason_args": row.get("reason_args") or {},
    }
    if row.get("reason_notes"):
        coded["reason_notes"] = row["reason_notes"]
    return {"text": where + str(row.get("reason", "")), "coded": coded}


def _run_gap(code: str, **args: Any) -> dict[str, Any]:
    return _gap(None, None, with_text({}, None, code, (), **args))


def _applicability_gaps(loaded: LoadedRubric, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    app = loaded.rubric.applicability
    gaps = []
    unit = metrics.get("unit")
    if unit and unit != app.unit_of_analysis:
        gaps.append(_run_gap("unit_mismatch", rubric_unit=app.unit_of_analysis, metrics_unit=unit))
    present = {k for e in metrics.get("metrics", []) for k in _subgroup(e) if k != "by"}
    absent = [k for k in app.slice_keys if k not in present]
    if absent and metrics.get("metrics"):
        gaps.append(_run_gap("slice_keys_absent", keys=absent))
    return gaps


def _run_gaps(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    gaps = []
    counts = metrics.get("counts", {})
    if counts.get("images_unreadable"):
        gaps.append(_run_gap("images_unreadable", count=int(counts["images_unreadable"])))
    if counts.get("images_error"):
        gaps.append(_run_gap("images_failed", count=int(counts["images_error"])))
    if counts.get("parts_unscored"):
        gaps.append(_run_gap("parts_unscored", count=int(counts["parts_unscored"])))
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
    if metrics.get("task"):
        # a metrics.json written before the task was recorded is judged as it was then, so a
        # report signed earlier still recomputes; `evaluate` and `audit` check the card's task
        # before they compute a new one
        check_task(loaded, str(metrics["task"]))
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
        "undecided": undecided(criteria_out),
        "data_gaps": [g["text"] for g in gaps],
        # the same gaps as codes with arguments, for a report in another language
        "data_gap_reasons": [g["coded"] for g in gaps],
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
    SKIPPED criteria never match a rule, but whatever the policy a blocker that was not
    evaluated (SKIPPED) makes the verdict at best HOLD, unless the rubric made it conditional
    on the input that was missing (``requires``): nothing unexamined is accepted."""
    policy = policy or VerdictPolicy()
    for verdict, rules in (
        ("REJECT", policy.reject_if),
        ("HOLD", policy.hold_if),
    ):
        if any(_matches(rule)(c) for rule in rules for c in criteria):
            return verdict
    if any(_holds_unevaluated(c) for c in criteria):
        return "HOLD"
    if any(_matches(rule)(c) for rule in policy.conditional_if for c in criteria):
        return "CONDITIONAL"
    return "ACCEPT"


def _holds_unevaluated(criterion: dict[str, Any]) -> bool:
    return (
        criterion.get("severity") == "blocker"
        and criterion.get("outcome") == "SKIPPED"
        and not criterion.get("requires")
    )


#: outcomes that leave a criterion undecided
UNDECIDED = ("INCONCLUSIVE", "SKIPPED", "ERROR")


def undecided(criteria: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``verdicts.json`` ``undecided``: every criterion not decided (INCONCLUSIVE, SKIPPED,
    ERROR), in rubric order, with its severity, outcome, reason and whether it holds the
    verdict (``holds``: a blocker that is not conditional on an absent input)."""
    out = []
    for c in criteria:
        if c.get("outcome") not in UNDECIDED:
            continue
        conditional = c.get("outcome") == "SKIPPED" and bool(c.get("requires"))
        out.append(
            {
                "id": c["id"],
                "severity": c.get("severity"),
                "outcome": c.get("outcome"),
                "slice": c.get("slice"),
                "conditional": conditional,
                "holds": c.get("severity") == "blocker" and not conditional,
                "reason": c.get("reason"),
                "metric": c.get("metric"),
                "reason_code": c.get("reason_code"),
                "reason_args": c.get("reason_args") or {},
                **({"reason_notes": c["reason_notes"]} if c.get("reason_notes") else {}),
            }
        )
    return out


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
