"""Evidence criteria: facts about the run itself, checked rather than measured.

Each check reads ``run.json`` (the content, as a dict) or ``metrics.json`` and returns an
:class:`EvidenceResult`. ``INSUFFICIENT`` means the run holds no such evidence: the criterion
then takes its ``on_insufficient`` outcome and the report lists a data gap.

============================  ===============================================================
check                         PASS when
============================  ===============================================================
``model_sha256``              the replayed file's SHA-256 (``run.json`` ``model.sha256``)
                              equals ``params.expected``, else the card's
                              ``declared.model_sha256`` (ERROR when neither is given)
``unreadable_share``          images not scored (unreadable or failed in inference) / all
                              images ``op threshold`` (``metrics.json`` ``counts``)
``runtime_parity``            ``run.json`` ``replay.runtime_parity`` (``--reference-outputs``):
                              the largest |score difference| ``op threshold`` and every
                              compared decision agrees; at least ``params.min_compared``
                              (default 1) images compared
``rubric_approved_before_run`` the rubric's ``approval.approved_at`` is before ``run.json``
                              ``started_at`` (FAIL without an approval record)
``energy_measured``           ``run.json`` ``energy.measured`` is true (FAIL when false: the
                              energy was modelled; INSUFFICIENT when absent or method off)
``metrics_reported``          every metric in ``params.names`` has an overall entry with a
                              value in ``metrics.json`` (with ``params.with_interval``: rates
                              and quantiles also with k or n and an interval)
============================  ===============================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from auditkit.models.card import ModelCard

EvidenceOutcome = Literal["PASS", "FAIL", "ERROR", "INSUFFICIENT"]


@dataclass(frozen=True)
class EvidenceResult:
    outcome: EvidenceOutcome
    value: Any
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


def _meets(value: float, op: str | None, threshold: float | None) -> bool:
    assert op is not None and threshold is not None
    return value <= threshold if op == "<=" else value >= threshold


def _no_run() -> EvidenceResult:
    return EvidenceResult("INSUFFICIENT", None, "run.json not available to check this evidence")


def _model_sha256(
    params: Mapping[str, Any], run: Mapping[str, Any] | None, card: ModelCard | None
) -> EvidenceResult:
    expected = params.get("expected")
    source = "rubric"
    if not expected and card is not None:
        expected = getattr(card.declared, "model_sha256", None)
        source = "model card"
    if not expected:
        return EvidenceResult(
            "ERROR",
            None,
            "no declared SHA-256 to compare with (metric.params.expected or the card's "
            "declared.model_sha256)",
        )
    if run is None:
        return _no_run()
    actual = str((run.get("model") or {}).get("sha256") or "")
    detail = {"expected": str(expected).lower(), "actual": actual, "declared_in": source}
    if actual.lower() == str(expected).lower():
        return EvidenceResult("PASS", actual, f"model SHA-256 equals the {source}'s", detail)
    return EvidenceResult(
        "FAIL",
        actual,
        f"model SHA-256 {actual[:12]}… differs from the {source}'s {str(expected)[:12]}…",
        detail,
    )


def _unreadable_share(
    metrics: Mapping[str, Any], op: str | None, threshold: float | None
) -> EvidenceResult:
    counts = metrics.get("counts") or {}
    images = int(counts.get("images") or 0)
    if not images:
        return EvidenceResult("INSUFFICIENT", None, "no images counted in metrics.json")
    bad = int(counts.get("images_unreadable") or 0) + int(counts.get("images_error") or 0)
    share = bad / images
    detail = {"images": images, "not_scored": bad}
    word = "within" if _meets(share, op, threshold) else "outside"
    reason = f"{bad} of {images} images not scored ({100 * share:.2f}%), {word} {op} " + (
        f"{100 * (threshold or 0):.2f}%"
    )
    return EvidenceResult("PASS" if word == "within" else "FAIL", share, reason, detail)


def _runtime_parity(
    params: Mapping[str, Any],
    run: Mapping[str, Any] | None,
    op: str | None,
    threshold: float | None,
) -> EvidenceResult:
    if run is None:
        return _no_run()
    parity = (run.get("replay") or {}).get("runtime_parity")
    if not parity:
        return EvidenceResult(
            "INSUFFICIENT",
            None,
            "no runtime parity recorded (replay with --reference-outputs)",
        )
    compared = int(parity.get("n_compared") or 0)
    needed = int(params.get("min_compared", 1))
    if compared < needed:
        return EvidenceResult(
            "INSUFFICIENT",
            None,
            f"runtime parity compared {compared} images, fewer than {needed}",
            dict(parity),
        )
    diffs = [v for v in (parity.get("max_abs_difference") or {}).values() if v is not None]
    largest = max(diffs) if diffs else None
    agree = parity.get("decisions_agree")
    problems = []
    if largest is None:
        problems.append("no score difference recorded")
    elif not _meets(largest, op, threshold):
        problems.append(f"max |score difference| {largest:.3g} not {op} {threshold:g}")
    if agree is not None and agree != compared:
        problems.append(f"{compared - agree} of {compared} decisions differ")
    if problems:
        return EvidenceResult("FAIL", largest, "; ".join(problems), dict(parity))
    agree_text = f", decisions agree {agree}/{compared}" if agree is not None else ""
    return EvidenceResult(
        "PASS",
        largest,
        f"max |score difference| {largest:.3g} {op} {threshold:g} on {compared} images"
        + agree_text,
        dict(parity),
    )


def _parse_time(stamp: str) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None


def _approval(approval: Any, run: Mapping[str, Any] | None) -> EvidenceResult:
    if approval is None:
        return EvidenceResult(
            "FAIL", None, "the rubric has no approval record (approval.approved_by, approved_at)"
        )
    if run is None:
        return _no_run()
    started = _parse_time(str(run.get("started_at") or ""))
    if started is None:
        return EvidenceResult("INSUFFICIENT", None, "run.json has no readable started_at")
    approved: datetime = approval.approved_at
    detail = {
        "approved_by": approval.approved_by,
        "approved_at": approved.isoformat(),
        "run_started_at": run.get("started_at"),
    }
    if approved < started:
        return EvidenceResult(
            "PASS",
            approved.isoformat(),
            f"approved by {approval.approved_by} at {approved.isoformat()}, "
            f"before the run started ({run.get('started_at')})",
            detail,
        )
    return EvidenceResult(
        "FAIL",
        approved.isoformat(),
        f"approved at {approved.isoformat()}, not before the run started ({run.get('started_at')})",
        detail,
    )


def _energy(run: Mapping[str, Any] | None) -> EvidenceResult:
    if run is None:
        return _no_run()
    energy = run.get("energy") or {}
    method = energy.get("method")
    if not energy or method in (None, "off") or "measured" not in energy:
        return EvidenceResult(
            "INSUFFICIENT", None, "energy not recorded in this run (replay with energy on)"
        )
    detail = {k: energy.get(k) for k in ("method", "label", "boundary", "measured")}
    if energy.get("measured") is True:
        return EvidenceResult(
            "PASS",
            True,
            f"energy measured ({method}, {energy.get('boundary')} boundary)",
            detail,
        )
    return EvidenceResult("FAIL", False, f"energy modelled ({method}), not measured", detail)


def _reported(params: Mapping[str, Any], metrics: Mapping[str, Any]) -> EvidenceResult:
    from auditkit.rubric.schema import METRICS

    overall = {
        e["name"]: e
        for e in metrics.get("metrics", [])
        if not {k for k in e.get("slice", {}) if k != "scenario"}
    }
    with_interval = bool(params.get("with_interval", False))
    missing = []
    for name in params["names"]:
        entry = overall.get(name)
        if entry is None or entry.get("value") is None:
            missing.append(name)
        elif (
            with_interval
            and METRICS[name] in ("rate", "quantile")
            and (not entry.get("interval") or entry.get("n") is None)
        ):
            missing.append(f"{name} (no interval)")
    names = ", ".join(params["names"])
    detail = {"names": list(params["names"]), "missing": missing}
    if missing:
        return EvidenceResult("FAIL", len(missing), f"not reported: {', '.join(missing)}", detail)
    extra = " with counts and intervals" if with_interval else ""
    return EvidenceResult("PASS", 0, f"reported{extra}: {names}", detail)


def check_evidence(
    name: str,
    params: Mapping[str, Any],
    *,
    op: str | None,
    threshold: float | None,
    metrics: Mapping[str, Any],
    run: Mapping[str, Any] | None,
    card: ModelCard | None,
    approval: Any,
) -> EvidenceResult:
    """Run the evidence check ``name`` (see the module docstring)."""
    if name == "model_sha256":
        return _model_sha256(params, run, card)
    if name == "unreadable_share":
        return _unreadable_share(metrics, op, threshold)
    if name == "runtime_parity":
        return _runtime_parity(params, run, op, threshold)
    if name == "rubric_approved_before_run":
        return _approval(approval, run)
    if name == "energy_measured":
        return _energy(run)
    if name == "metrics_reported":
        return _reported(params, metrics)
    raise ValueError(f"unknown evidence check {name!r}")
