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
                              energy was modelled, or the meter could not see the work on a
                              Dask cluster; INSUFFICIENT when absent or method off)
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
from auditkit.rubric.reasons import english, note, reason

EvidenceOutcome = Literal["PASS", "FAIL", "ERROR", "INSUFFICIENT"]


@dataclass(frozen=True)
class EvidenceResult:
    """A check's outcome, value and reason: ``code`` of :data:`auditkit.rubric.reasons.
    TEMPLATES` with ``args`` (and ``notes``); ``reason`` is its English text."""

    outcome: EvidenceOutcome
    value: Any
    code: str
    args: dict[str, Any] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    notes: tuple[dict[str, Any], ...] = ()

    @property
    def reason(self) -> str:
        return english(self.code, self.args, self.notes, metric=None)


def _result(
    outcome: EvidenceOutcome,
    value: Any,
    code: str,
    detail: dict[str, Any] | None = None,
    notes: tuple[dict[str, Any], ...] = (),
    /,
    **args: Any,
) -> EvidenceResult:
    reason(code, **args)  # an unknown code is a programming error, found here
    return EvidenceResult(outcome, value, code, args, detail or {}, notes)


def _meets(value: float, op: str | None, threshold: float | None) -> bool:
    assert op is not None and threshold is not None
    return value <= threshold if op == "<=" else value >= threshold


def _no_run() -> EvidenceResult:
    return _result("INSUFFICIENT", None, "no_run")


def _model_sha256(
    params: Mapping[str, Any], run: Mapping[str, Any] | None, card: ModelCard | None
) -> EvidenceResult:
    expected = params.get("expected")
    source = "rubric"
    if not expected and card is not None:
        expected = getattr(card.declared, "model_sha256", None)
        source = "model card"
    if not expected:
        return _result("ERROR", None, "no_declared_sha256")
    if run is None:
        return _no_run()
    actual = str((run.get("model") or {}).get("sha256") or "")
    detail = {"expected": str(expected).lower(), "actual": actual, "declared_in": source}
    if actual.lower() == str(expected).lower():
        return _result("PASS", actual, "sha256_equal", detail, source=source)
    return _result(
        "FAIL",
        actual,
        "sha256_differs",
        detail,
        actual=actual[:12],
        expected=str(expected)[:12],
        source=source,
    )


def _unreadable_share(
    metrics: Mapping[str, Any], op: str | None, threshold: float | None
) -> EvidenceResult:
    counts = metrics.get("counts") or {}
    images = int(counts.get("images") or 0)
    if not images:
        return _result("INSUFFICIENT", None, "no_images_counted")
    bad = int(counts.get("images_unreadable") or 0) + int(counts.get("images_error") or 0)
    share = bad / images
    detail = {"images": images, "not_scored": bad}
    within = _meets(share, op, threshold)
    return _result(
        "PASS" if within else "FAIL",
        share,
        "not_scored_within" if within else "not_scored_outside",
        detail,
        bad=bad,
        images=images,
        share=share,
        op=op,
        share_limit=threshold or 0.0,
    )


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
        return _result("INSUFFICIENT", None, "no_parity")
    compared = int(parity.get("n_compared") or 0)
    needed = int(params.get("min_compared", 1))
    if compared < needed:
        return _result(
            "INSUFFICIENT", None, "parity_too_few", dict(parity), compared=compared, needed=needed
        )
    diffs = [v for v in (parity.get("max_abs_difference") or {}).values() if v is not None]
    largest = max(diffs) if diffs else None
    agree = parity.get("decisions_agree")
    problems = []
    if largest is None:
        problems.append(note("parity_no_difference"))
    elif not _meets(largest, op, threshold):
        problems.append(
            note("parity_difference_exceeds", difference=float(largest), op=op, limit=threshold)
        )
    if agree is not None and agree != compared:
        problems.append(note("parity_decisions_differ", differ=compared - agree, compared=compared))
    if problems:
        first, *rest = problems
        return _result("FAIL", largest, first["code"], dict(parity), tuple(rest), **first["args"])
    notes = (
        (note("parity_decisions_agree", agree=agree, compared=compared),)
        if agree is not None
        else ()
    )
    return _result(
        "PASS",
        largest,
        "parity_ok",
        dict(parity),
        notes,
        difference=float(largest),  # type: ignore[arg-type]
        op=op,
        limit=threshold,
        compared=compared,
    )


def _parse_time(stamp: str) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None


def _approval(approval: Any, run: Mapping[str, Any] | None) -> EvidenceResult:
    if approval is None:
        return _result("FAIL", None, "no_approval")
    if run is None:
        return _no_run()
    started = _parse_time(str(run.get("started_at") or ""))
    if started is None:
        return _result("INSUFFICIENT", None, "no_started_at")
    approved: datetime = approval.approved_at
    detail = {
        "approved_by": approval.approved_by,
        "approved_at": approved.isoformat(),
        "run_started_at": run.get("started_at"),
    }
    stamp, began = approved.isoformat(), str(run.get("started_at"))
    if approved < started:
        return _result(
            "PASS",
            stamp,
            "approved_before_run",
            detail,
            approver=approval.approved_by,
            at=stamp,
            started=began,
        )
    return _result("FAIL", stamp, "approved_not_before_run", detail, at=stamp, started=began)


def _energy(run: Mapping[str, Any] | None) -> EvidenceResult:
    if run is None:
        return _no_run()
    energy = run.get("energy") or {}
    method = energy.get("method")
    if not energy or method in (None, "off") or "measured" not in energy:
        return _result("INSUFFICIENT", None, "energy_not_recorded")
    detail = {k: energy.get(k) for k in ("method", "label", "boundary", "measured")}
    if energy.get("measured") is True:
        return _result(
            "PASS",
            True,
            "energy_measured",
            detail,
            method=method,
            boundary=energy.get("boundary"),
        )
    if energy.get("not_measured_reason"):
        # the meter could not see the work (an external Dask cluster): neither measured nor
        # modelled, simply not known
        return _result("FAIL", False, "energy_not_seen", detail, method=method)
    return _result("FAIL", False, "energy_modelled", detail, method=method)


def _reported(params: Mapping[str, Any], metrics: Mapping[str, Any]) -> EvidenceResult:
    from auditkit.rubric.schema import METRICS

    overall = {
        e["name"]: e
        for e in metrics.get("metrics", [])
        if not {k for k in e.get("slice", {}) if k != "scenario"}
    }
    with_interval = bool(params.get("with_interval", False))
    missing: list[str] = []
    without: list[str] = []
    for name in params["names"]:
        entry = overall.get(name)
        if entry is None or entry.get("value") is None:
            missing.append(name)
        elif (
            with_interval
            and METRICS[name] in ("rate", "quantile")
            and (not entry.get("interval") or entry.get("n") is None)
        ):
            without.append(name)
    names = [str(n) for n in params["names"]]
    detail = {"names": names, "missing": missing + [f"{n} (no interval)" for n in without]}
    if missing:
        notes = (note("reported_without_interval", names=without),) if without else ()
        return _result(
            "FAIL", len(missing) + len(without), "not_reported", detail, notes, missing=missing
        )
    if without:
        return _result("FAIL", len(without), "reported_without_interval", detail, names=without)
    code = "reported_with_intervals" if with_interval else "reported"
    return _result("PASS", 0, code, detail, names=names)


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
