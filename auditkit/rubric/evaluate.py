"""Judge measured metrics against a rubric: one outcome per criterion, one verdict per audit.

Decision rules (DOMAIN.md §3; ISO/IEC 17025 7.8.6, ILAC G8). For ``op: "<="`` with threshold T and
bounds L ≤ point ≤ U at the stated level:

* guarded_acceptance: PASS if U ≤ T, FAIL if L > T, otherwise INCONCLUSIVE (prove conformity);
* simple_acceptance:  PASS if point ≤ T, FAIL otherwise (shared risk);
* guarded_rejection:  FAIL if L > T, otherwise PASS (prove violation).

``>=`` mirrors. Too little evidence (n below ``min_n``, a zero denominator, or a bound that cannot
exist at this n) gives the criterion's ``on_insufficient`` outcome and a data-gap line; slices are
never pooled to make up the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auditkit.errors import ExitCode
from auditkit.models.card import ModelCard
from auditkit.rubric.schema import METRICS, Criterion, LoadedRubric, Outcome

_WORST_FIRST: tuple[Outcome, ...] = ("FAIL", "ERROR", "INCONCLUSIVE", "PASS")
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


@dataclass(frozen=True)
class Judgement:
    outcome: Outcome
    bound: float | None
    reason: str


def _fmt(metric: str, x: float) -> str:
    if METRICS.get(metric) == "rate":
        return f"{100 * x:.2f}%"
    if metric.endswith("_ms"):
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
    t = _fmt(metric, threshold)

    def meets(x: float) -> bool:
        return x <= threshold if le else x >= threshold

    def word(x: float) -> str:
        return f"{'<=' if meets(x) else ('>' if le else '<')} {t}"

    if rule == "simple_acceptance":
        outcome: Outcome = "PASS" if meets(point) else "FAIL"
        return Judgement(outcome, proving_bound, f"value {_fmt(metric, point)} {word(point)}")
    if rule == "guarded_rejection":
        if violating_bound is not None and not meets(violating_bound):
            b = _fmt(metric, violating_bound)
            return Judgement(
                "FAIL", violating_bound, f"{violating_name} bound {b} {word(violating_bound)}"
            )
        return Judgement("PASS", violating_bound, "violation not proven at this confidence")
    # guarded acceptance
    if proving_bound is not None and meets(proving_bound):
        b = _fmt(metric, proving_bound)
        return Judgement("PASS", proving_bound, f"{proving_name} bound {b} {word(proving_bound)}")
    if violating_bound is not None and not meets(violating_bound):
        b = _fmt(metric, violating_bound)
        return Judgement(
            "FAIL", violating_bound, f"{violating_name} bound {b} {word(violating_bound)}"
        )
    if proving_bound is None:
        return Judgement("INCONCLUSIVE", None, "too few measurements for a confidence bound")
    b = _fmt(metric, proving_bound)
    return Judgement(
        "INCONCLUSIVE",
        proving_bound,
        f"value {_fmt(metric, point)} but {proving_name} bound {b} does not prove {op} {t}",
    )


def _resolve_threshold(
    criterion: Criterion, card: ModelCard | None, params: dict[str, float]
) -> tuple[float | None, str]:
    req = criterion.requirement
    if req.threshold is not None:
        return req.threshold, ""
    assert req.threshold_ref is not None
    source, _, name = req.threshold_ref.partition(".")
    if source == "declared":
        value = getattr(card.declared, name, None) if card else None
        if value is None and card is not None and card.declared.model_extra:
            value = card.declared.model_extra.get(name)
        if value is None:
            return None, f"the model card declares no {name!r} ({req.threshold_ref})"
        return float(value), ""
    if name not in params:
        return None, f"site parameter {name!r} not given (use --param {name}=VALUE)"
    return params[name], ""


def _provenance(criterion: Criterion, loaded: LoadedRubric) -> str:
    req = criterion.requirement
    if req.threshold_provenance:
        return req.threshold_provenance
    if req.threshold_ref and req.threshold_ref.startswith("declared."):
        return "declared_ifu"
    return loaded.rubric.threshold_policy.provenance_default


def _entries(metrics: dict[str, Any], criterion: Criterion) -> list[dict[str, Any]]:
    wanted = set(criterion.metric.slice_by or [])

    def matches(entry: dict[str, Any]) -> bool:
        # latency and throughput entries name their scenario as a slice; it is not a subgroup
        keys = set(entry["slice"]) - {"scenario"}
        return bool(entry["name"] == criterion.metric.name and keys == wanted)

    return [m for m in metrics["metrics"] if matches(m)]


def _judge_entry(
    entry: dict[str, Any],
    criterion: Criterion,
    rule: str,
    threshold: float,
    on_insufficient: str,
) -> dict[str, Any]:
    n = entry.get("n")
    value = entry.get("value")
    interval = entry.get("interval") or {}
    low, high = interval.get("low"), interval.get("high")
    result: dict[str, Any] = {
        "slice": entry["slice"],
        "unit": entry.get("unit"),
        "value": value,
        "k": entry.get("k"),
        "n": n,
        "low": low,
        "high": high,
    }
    min_n = criterion.sample.min_n
    if value is None or not n or n < min_n:
        outcome: Outcome = "FAIL" if on_insufficient == "fail" else "INCONCLUSIVE"
        # the bound is still shown: it tells how far the evidence is from deciding
        shown = high if criterion.requirement.op == "<=" else low
        result.update(
            outcome=outcome,
            bound=shown if value is not None else None,
            reason=f"insufficient sample: n={n or 0} < min_n={min_n}",
            insufficient=True,
        )
        return result
    judgement = decide(
        rule, criterion.requirement.op, threshold, value, low, high, criterion.metric.name
    )
    result.update(
        outcome=judgement.outcome,
        bound=judgement.bound,
        reason=judgement.reason,
        insufficient=False,
    )
    return result


def _slice_label(s: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in s.items()) or "overall"


def evaluate(
    metrics: dict[str, Any],
    loaded: LoadedRubric,
    *,
    card: ModelCard | None = None,
    params: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The ``verdicts.json`` document (without ``run_id``) for measured ``metrics``."""
    rubric = loaded.rubric
    defaults = rubric.defaults.statistics
    params = params or {}
    criteria_out: list[dict[str, Any]] = []
    gaps: list[str] = []
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

    for criterion in rubric.criteria:
        req = criterion.requirement
        rule = (req.statistics.decision_rule if req.statistics else None) or defaults.decision_rule
        on_insufficient = criterion.sample.on_insufficient or rubric.defaults.on_insufficient_sample
        threshold, problem = _resolve_threshold(criterion, card, params)
        base: dict[str, Any] = {
            "id": criterion.id,
            "title": criterion.title,
            "severity": criterion.severity,
            "maps_to": [m.model_dump() for m in criterion.maps_to],
            "metric": criterion.metric.name,
            "slice_by": criterion.metric.slice_by,
            "statistic": req.statistic,
            "decision_rule": rule,
            "op": req.op,
            "threshold": threshold,
            "threshold_ref": req.threshold_ref,
            "threshold_provenance": _provenance(criterion, loaded),
            "min_n": criterion.sample.min_n,
            "rationale": criterion.rationale,
        }
        entries = _entries(metrics, criterion)
        if threshold is None or not entries:
            reason = problem or (
                f"no measurement of {criterion.metric.name}"
                + (
                    f" by {', '.join(criterion.metric.slice_by)}"
                    if criterion.metric.slice_by
                    else ""
                )
                + " in this run"
            )
            base.update(
                outcome="ERROR", value=None, bound=None, k=None, n=None, reason=reason, slices=[]
            )
            gaps.append(f"{criterion.id}: {reason}")
            criteria_out.append(base)
            continue
        judged = [_judge_entry(e, criterion, rule, threshold, on_insufficient) for e in entries]
        for j in judged:
            if j.pop("insufficient"):
                gaps.append(f"{criterion.id} [{_slice_label(j['slice'])}]: {j['reason']}")
        worst = min(judged, key=lambda j: _WORST_FIRST.index(j["outcome"]))
        base.update(
            outcome=worst["outcome"],
            value=worst["value"],
            bound=worst["bound"],
            k=worst["k"],
            n=worst["n"],
            reason=worst["reason"]
            if not criterion.metric.slice_by
            else f"worst slice {_slice_label(worst['slice'])}: {worst['reason']}",
            slices=judged if criterion.metric.slice_by else [],
        )
        criteria_out.append(base)

    verdict = roll_up(criteria_out)
    return {
        "rubric": {
            "id": rubric.id,
            "version": rubric.version,
            "title": rubric.title,
            "status": rubric.status,
            "sha256": loaded.sha256,
            "references": [r.model_dump() for r in rubric.references],
        },
        "decision_rule": defaults.decision_rule,
        "decision_rule_meaning": RULE_MEANING[defaults.decision_rule],
        "confidence_level": defaults.confidence_level,
        "interval": defaults.interval,
        "sided": defaults.sided,
        "verdict_policy": rubric.verdict_policy.model_dump(),
        "verdict": verdict,
        "exit_code": VERDICT_EXIT[verdict],
        "criteria": criteria_out,
        "data_gaps": gaps,
    }


def roll_up(criteria: list[dict[str, Any]]) -> str:
    """REJECT if a blocker FAILs; HOLD if a blocker is INCONCLUSIVE or ERROR; CONDITIONAL if a
    major FAILs; otherwise ACCEPT (DOMAIN.md §3)."""
    blockers = {c["outcome"] for c in criteria if c["severity"] == "blocker"}
    majors = {c["outcome"] for c in criteria if c["severity"] == "major"}
    if "FAIL" in blockers:
        return "REJECT"
    if blockers & {"INCONCLUSIVE", "ERROR"}:
        return "HOLD"
    if "FAIL" in majors:
        return "CONDITIONAL"
    return "ACCEPT"
