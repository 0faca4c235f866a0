"""The audit's fields, read from the evidence embedded in the signed revision of a report that
:func:`auditkit.report.verify.verify_pdf` accepted (typed by :mod:`auditkit.evidence`).

Nothing is read from the PDF's pages or from its latest revision: ``verdicts.json``,
``metrics.json`` and ``run.json`` are the bytes the author signed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from auditkit.errors import InputError
from auditkit.evidence import (
    CriterionResult,
    MetricsDocument,
    RunRecord,
    SliceResult,
    VerdictsDocument,
    load_evidence_file,
)

_NEEDED = ("verdicts.json", "metrics.json", "run.json")


def signed_evidence(pdf: bytes) -> dict[str, bytes]:
    """Attachment name → bytes, as embedded in the revision the first (author's) signature
    signed; the verify module's own reader of embedded files."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    from auditkit.report.verify import embedded_files

    reader = PdfFileReader(io.BytesIO(pdf))
    author = sorted(reader.embedded_signatures, key=lambda s: s.signed_revision)[0]
    contents: dict[str, bytes] = {}
    embedded_files(reader.get_historical_root(author.signed_revision), contents)
    return contents


@dataclass(frozen=True)
class CriterionRow:
    """One row of the criteria table (see :class:`auditkit.registry.models.Criterion`)."""

    criterion_id: str
    parent: str | None
    severity: str | None
    metric: str | None
    statistic: str | None
    op: str | None
    threshold: float | None
    outcome: str
    value: float | None
    bound: float | None
    low: float | None
    high: float | None
    k: int | None
    n: int | None
    slice: dict[str, Any] | None


@dataclass(frozen=True)
class SignatureRow:
    position: int
    role: str  # "author" or "countersignature"
    field: str
    signer: str | None
    signing_time: str | None
    timestamp: str | None
    development_key: bool


@dataclass(frozen=True)
class AuditFields:
    """What the registry records of one signed report."""

    report_id: str
    run_id: str
    started_at: str | None
    finished_at: str | None
    signed_at: str | None
    model_name: str | None
    model_version: str | None
    model_sha256: str
    card: dict[str, Any] | None
    rubric_id: str | None
    rubric_version: str | None
    rubric_sha256: str | None
    decision_rule: str | None
    verdict: str
    energy_wh_per_1000: float | None
    energy_method: str | None
    evidence: dict[str, str]
    task: str | None = None
    criteria: list[CriterionRow] = field(default_factory=list)
    signatures: list[SignatureRow] = field(default_factory=list)


def _utc(when: datetime | None) -> str | None:
    """ISO 8601 UTC text, seconds precision, ``Z`` suffix."""
    if when is None:
        return None
    from datetime import UTC

    stamp = when.astimezone(UTC) if when.tzinfo is not None else when
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _real(value: float | None) -> float | None:
    """A float column's value: an int figure (a threshold of 50) stored as 50.0, as both
    databases give it back, so a row's digest is the same before and after storing."""
    return None if value is None else float(value)


def _metric_interval(
    metrics: MetricsDocument, name: str | None, where: dict[str, Any] | None
) -> tuple[float | None, float | None]:
    """The interval of ``metrics.json``'s entry for that metric and slice ((None, None) if none)."""
    for entry in metrics.metrics:
        if entry.name == name and entry.slice == (where or {}) and entry.interval is not None:
            return entry.interval.low, entry.interval.high
    return None, None


def _row(
    judged: CriterionResult | SliceResult,
    crit: CriterionResult,
    metrics: MetricsDocument,
    parent: str | None,
) -> CriterionRow:
    low, high = judged.low, judged.high
    if low is None and high is None:
        low, high = _metric_interval(metrics, crit.metric, judged.slice)
    return CriterionRow(
        criterion_id=crit.id,
        parent=parent,
        severity=str(crit.severity),
        metric=crit.metric,
        statistic=crit.statistic,
        op=crit.op,
        threshold=_real(crit.threshold),
        outcome=str(judged.outcome),
        value=_real(judged.value),
        bound=_real(judged.bound),
        low=_real(low),
        high=_real(high),
        k=judged.k,
        n=judged.n,
        slice=judged.slice,
    )


def criteria_rows(verdicts: VerdictsDocument, metrics: MetricsDocument) -> list[CriterionRow]:
    """Every criterion of ``verdicts.json`` in order, each followed by its slices' rows."""
    rows: list[CriterionRow] = []
    for crit in verdicts.criteria:
        rows.append(_row(crit, crit, metrics, None))
        rows.extend(_row(s, crit, metrics, crit.id) for s in crit.slices or [])
    return rows


def audit_fields(contents: dict[str, bytes], result: Any) -> AuditFields:
    """The fields of the report whose signed evidence is ``contents`` and whose verification
    result is ``result`` (a :class:`~auditkit.report.verify.VerifyResult`). Raises
    :class:`InputError` when an evidence file is missing or not valid evidence."""
    missing = [name for name in _NEEDED if name not in contents]
    if missing:
        raise InputError(f"the signed report embeds no {', '.join(missing)}")
    verdicts = load_evidence_file(contents["verdicts.json"], VerdictsDocument, "verdicts.json")
    metrics = load_evidence_file(contents["metrics.json"], MetricsDocument, "metrics.json")
    run = load_evidence_file(contents["run.json"], RunRecord, "run.json")
    card = run.model.get("card") if isinstance(run.model.get("card"), dict) else None
    sha = run.model.get("sha256")
    if not isinstance(sha, str) or not sha:
        raise InputError("run.json records no model SHA-256: the report cannot be registered")
    energy = run.energy
    wh = energy.get("wh_per_1000_inspections")
    signatures = [
        SignatureRow(
            position=i,
            role="author" if i == 0 else "countersignature",
            field=info.field,
            signer=info.signer,
            signing_time=_utc(info.signing_time),
            timestamp=_utc(info.timestamp),
            development_key=info.signer_is_development_key,
        )
        for i, info in enumerate(result.signatures)
    ]
    return AuditFields(
        report_id=str(result.report_id),
        run_id=run.run_id,
        started_at=run.started_at,
        finished_at=run.finished_at,
        signed_at=signatures[0].signing_time if signatures else None,
        model_name=card.get("name") if card else None,
        model_version=_text(card.get("version")) if card else None,
        model_sha256=sha,
        card=card,
        rubric_id=_text(verdicts.rubric.get("id")),
        rubric_version=_text(verdicts.rubric.get("version")),
        rubric_sha256=_text(verdicts.rubric.get("sha256")),
        decision_rule=verdicts.decision_rule,
        verdict=verdicts.verdict,
        energy_wh_per_1000=float(wh) if isinstance(wh, int | float) else None,
        energy_method=energy.get("method"),
        evidence=dict(result.evidence),
        task=metrics.task or "classification",
        criteria=criteria_rows(verdicts, metrics),
        signatures=signatures,
    )
