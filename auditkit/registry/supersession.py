"""When an audit is superseded (docs/registry.md, "Superseded audits").

Within one deployment, with audits ordered by :func:`order_key` (signing time, then
submission time, then database id — "later" below means later in this order), audit X is
superseded by the first later audit Y such that

1. **re-issued**: Y reports on the same run (same ``run_id``) under a new report ID — the run
   was judged again (a corrected rubric edition, a re-render) and the new report replaces the
   old one; or
2. **re-audited**: Y audits the same model version (same model SHA-256) against the same
   rubric id (any version of it) — a later audit of the same thing.

Rule 1 is checked first (its reason is the more specific). Superseded is computed, never
stored: no recorded row is edited, so ``registry check`` keeps holding; each submission that
makes a new pair logs an event ``superseded`` (:func:`auditkit.registry.ingest.submit`).
A superseded audit stays in the registry and in the history; views mark it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from auditkit.registry.models import Audit


@dataclass(frozen=True)
class AuditKey:
    """What supersession looks at in an audit."""

    id: int
    report_id: str
    run_id: str
    model_version_id: int
    rubric_id: str | None
    signed_at: str | None
    submitted_at: str


@dataclass(frozen=True)
class Supersession:
    """``by``: the id of the audit that supersedes; ``reason``: one line for people."""

    by: int
    by_report_id: str
    reason: str


def order_key(a: AuditKey) -> tuple[str, str, int]:
    """Signing time (the submission time when unsigned), then submission time, then id; the
    times are ISO 8601 UTC text of one format, so text order is time order."""
    return (a.signed_at or a.submitted_at, a.submitted_at, a.id)


def supersessions(audits: list[AuditKey]) -> dict[int, Supersession]:
    """For the audits of one deployment, each superseded audit's id → what supersedes it
    (rules: module doc). Pure."""
    ordered = sorted(audits, key=order_key)
    out: dict[int, Supersession] = {}
    for i, old in enumerate(ordered):
        later = ordered[i + 1 :]
        reissue = next(
            (y for y in later if y.run_id == old.run_id and y.report_id != old.report_id), None
        )
        if reissue is not None:
            out[old.id] = Supersession(
                reissue.id,
                reissue.report_id,
                f"re-issued as report {reissue.report_id} for the same run {old.run_id}",
            )
            continue
        again = next(
            (
                y
                for y in later
                if y.model_version_id == old.model_version_id and y.rubric_id == old.rubric_id
            ),
            None,
        )
        if again is not None:
            out[old.id] = Supersession(
                again.id,
                again.report_id,
                f"superseded by report {again.report_id}: the same model version audited "
                f"against the same rubric ({old.rubric_id}), signed later",
            )
    return out


def keys(s: Session, deployment_id: int) -> list[AuditKey]:
    """The :class:`AuditKey` of every audit of the deployment."""
    return [
        AuditKey(
            a.id,
            a.report_id,
            a.run_id,
            a.model_version_id,
            a.rubric_id,
            a.signed_at,
            a.submitted_at,
        )
        for a in s.scalars(select(Audit).filter_by(deployment_id=deployment_id))
    ]


def superseded(s: Session, deployment_id: int) -> dict[int, str]:
    """Every superseded audit of the deployment: audit id → the reason (one line naming the
    report that supersedes it). An audit absent from the result is current."""
    return {k: v.reason for k, v in supersessions(keys(s, deployment_id)).items()}
