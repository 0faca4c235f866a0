"""``registry submit``: accept a signed report only after verifying it, and log the decision.

In order, each step refusing with one line (and an event ``refused`` carrying the reason):

1. the file is read; a PDF already accepted (same SHA-256) is a duplicate (exit 5);
2. :func:`auditkit.report.verify.verify_pdf` with the given trust roots and ``recompute``:
   every signature intact and chaining to a trust root, the evidence unchanged since signing,
   the verdicts re-derived from it and equal, the printed words those of the verdicts; any
   problem refuses the report (exit 1) naming the first;
3. the fields are read from the signed evidence (:mod:`auditkit.registry.extract`); the
   deployment's model name must be the model card's name (exit 5);
4. a report whose report ID is already registered is either the same audit with more
   signatures — the earlier signatures unchanged, in order — recorded as countersignatures
   (event ``countersigned``), or a duplicate (exit 5);
5. otherwise the PDF is stored by SHA-256 (:mod:`auditkit.registry.blobs`), the organisation,
   site, station, deployment and model version are created where new, the audit and its
   criteria rows written, and an event ``accepted`` carries the digest of every row created;
   each audit the new one supersedes (or that supersedes it, :mod:`auditkit.registry.
   supersession`) gets an event ``superseded``.

Before all of it the submitter's right to submit for the organisation is checked
(:func:`auditkit.registry.accounts.submission_refusal`; exit 77) and, without ``trust``, the
trust roots are the registry's (:mod:`auditkit.registry.trust`).

Steps 2 and 3 run outside any transaction (they take seconds; SQLite's write lock is not held
meanwhile); steps 4 and 5 are one transaction, retried when a concurrent submission committed
the same event number or report first (the retry then sees it, and refuses a duplicate).
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DatabaseError, IntegrityError
from sqlalchemy.orm import Session

from auditkit.errors import (
    AuditkitError,
    InputError,
    OutputError,
    PermissionDenied,
    VerificationError,
    first_line,
)
from auditkit.registry import blobs as blob_store
from auditkit.registry import trust as trust_roots
from auditkit.registry.accounts import submission_refusal
from auditkit.registry.chain import GENESIS, event_content, event_hash
from auditkit.registry.db import open_registry, session
from auditkit.registry.extract import AuditFields, audit_fields, signed_evidence
from auditkit.registry.location import Location
from auditkit.registry.models import (
    ORGANISATION_KINDS,
    Audit,
    Base,
    Criterion,
    Deployment,
    Event,
    ModelVersion,
    Organisation,
    ReportFile,
    Signature,
    Site,
    Station,
)
from auditkit.registry.rows import digest_of, ref
from auditkit.registry.scope import EVERYTHING, LOCAL_OPERATOR, Principal, Scope


@dataclass(frozen=True)
class DeploymentName:
    """``ORG/SITE/STATION/MODEL`` of ``--deployment``."""

    organisation: str
    site: str
    station: str
    model: str

    @classmethod
    def parse(cls, text: str) -> DeploymentName:
        parts = text.split("/")
        if len(parts) != 4 or not all(p.strip() for p in parts):
            raise InputError(
                f"--deployment {text!r}: write ORGANISATION/SITE/STATION/MODEL "
                "(four non-empty names separated by /)"
            )
        org, site, station, model = (p.strip() for p in parts)
        return cls(org, site, station, model)

    def __str__(self) -> str:
        return f"{self.organisation}/{self.site}/{self.station}/{self.model}"


@dataclass(frozen=True)
class Submission:
    """What ``submit`` did: ``kind`` "accepted" or "countersigned", the audit's report ID and
    database id, the PDF's SHA-256, the verdict and the event's sequence number."""

    kind: str
    report_id: str
    audit_id: int
    pdf_sha256: str
    verdict: str
    event_seq: int


_ATTEMPTS = 5


class _Refused(Exception):
    def __init__(self, error: AuditkitError) -> None:
        super().__init__(str(error))
        self.error = error


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def append_event(s: Session, kind: str, subject: str | None, payload: dict[str, Any]) -> Event:
    """Append one event to the chain, after the current head (locked against a concurrent
    append on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises writers)."""
    head = s.scalars(select(Event).order_by(Event.seq.desc()).limit(1).with_for_update()).first()
    seq = head.seq + 1 if head is not None else 1
    prev = head.sha256 if head is not None else GENESIS
    at = now_utc()
    content = event_content(seq, at, kind, subject, payload)
    ev = Event(
        seq=seq,
        at=at,
        kind=kind,
        subject=subject,
        payload=payload,
        prev_sha256=prev,
        sha256=event_hash(prev, content),
    )
    s.add(ev)
    s.flush()
    return ev


def deployment_name(s: Session, dep: Deployment) -> DeploymentName:
    """The ``ORG/SITE/STATION/MODEL`` of a stored deployment."""
    org, site, station = (
        s.get(Organisation, dep.organisation_id),
        s.get(Site, dep.site_id),
        s.get(Station, dep.station_id),
    )
    assert org is not None and site is not None and station is not None  # foreign keys
    return DeploymentName(org.name, site.name, station.name, dep.model_name)


def _get_or_create(s: Session, created: list[Base], model: type[Any], **keys: Any) -> Any:
    row = s.scalars(select(model).filter_by(**keys)).first()
    if row is None:
        row = model(**keys)
        s.add(row)
        s.flush()
        created.append(row)
    return row


def _deployment(
    s: Session, name: DeploymentName, kind: str, created: list[Base]
) -> tuple[Deployment, Organisation]:
    org = s.scalars(select(Organisation).filter_by(name=name.organisation)).first()
    if org is None:
        org = _get_or_create(s, created, Organisation, name=name.organisation, kind=kind)
    site = _get_or_create(s, created, Site, organisation_id=org.id, name=name.site)
    station = _get_or_create(s, created, Station, site_id=site.id, name=name.station)
    dep = _get_or_create(
        s,
        created,
        Deployment,
        organisation_id=org.id,
        site_id=site.id,
        station_id=station.id,
        model_name=name.model,
    )
    return dep, org


def _signature_rows(audit_id: int, fields: AuditFields, sha: str, start: int) -> list[Signature]:
    return [
        Signature(
            audit_id=audit_id,
            position=sig.position,
            role=sig.role,
            field=sig.field,
            signer=sig.signer,
            signing_time=sig.signing_time,
            timestamp=sig.timestamp,
            development_key=sig.development_key,
            pdf_sha256=sha,
        )
        for sig in fields.signatures[start:]
    ]


def digests_of(s: Session, rows: list[Base]) -> dict[str, str]:
    """``table:id`` → digest of each row as the database gives it back."""
    s.flush()
    for row in rows:
        s.refresh(row)
    return {ref(row): digest_of(s, row) for row in rows}


def _new_audit(
    s: Session, name: DeploymentName, kind: str, fields: AuditFields, data: bytes, pdf_sha: str
) -> tuple[Audit, list[Base]]:
    created: list[Base] = []
    dep, _org = _deployment(s, name, kind, created)
    version = s.scalars(
        select(ModelVersion).filter_by(deployment_id=dep.id, model_sha256=fields.model_sha256)
    ).first()
    if version is None:
        version = ModelVersion(
            deployment_id=dep.id,
            model_sha256=fields.model_sha256,
            version=fields.model_version,
            card=fields.card,
        )
        s.add(version)
        s.flush()
        created.append(version)
    stamp = now_utc()
    audit = Audit(
        deployment_id=dep.id,
        model_version_id=version.id,
        report_id=fields.report_id,
        run_id=fields.run_id,
        started_at=fields.started_at,
        finished_at=fields.finished_at,
        signed_at=fields.signed_at,
        rubric_id=fields.rubric_id,
        rubric_version=fields.rubric_version,
        rubric_sha256=fields.rubric_sha256,
        decision_rule=fields.decision_rule,
        verdict=fields.verdict,
        energy_wh_per_1000=fields.energy_wh_per_1000,
        energy_method=fields.energy_method,
        pdf_sha256=pdf_sha,
        evidence=fields.evidence,
        submitted_at=stamp,
        task=fields.task,
    )
    s.add(audit)
    s.flush()
    for position, row in enumerate(fields.criteria):
        s.add(Criterion(audit_id=audit.id, position=position, **row.__dict__))
    report = ReportFile(
        audit_id=audit.id,
        pdf_sha256=pdf_sha,
        size=len(data),
        signatures=len(fields.signatures),
        submitted_at=stamp,
    )
    sigs = _signature_rows(audit.id, fields, pdf_sha, 0)
    s.add_all([report, *sigs])
    created += [audit, report, *sigs]
    return audit, created


def _same_signatures(recorded: list[Signature], fields: AuditFields) -> bool:
    """The recorded signatures are the first ones of the new file, unchanged and in order."""
    if len(fields.signatures) <= len(recorded):
        return False
    return all(
        (r.position, r.field, r.signer, r.signing_time)
        == (n.position, n.field, n.signer, n.signing_time)
        for r, n in zip(recorded, fields.signatures, strict=False)
    )


def _refuse(error: AuditkitError) -> _Refused:
    return _Refused(error)


def _check_pdf(data: bytes, path: Path) -> None:
    if b"%PDF-" not in data[:1024]:
        raise _refuse(InputError(f"{path} is not a PDF"))


def _verified(path: Path, trust: list[Path]) -> Any:
    from auditkit.report.verify import verify_pdf

    result = verify_pdf(path, trust=trust, recompute=True)
    if not result.ok:
        more = len(result.problems) - 1
        reason = result.problems[0] if result.problems else "verification failed"
        raise _refuse(
            VerificationError(
                f"{path} failed verification: {reason}"
                + (f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else "")
            )
        )
    return result


def _in_scope(s: Session, audit: Audit | None, scope: Scope) -> bool:
    """Whether ``scope`` may read the audit's deployment (what a refusal may name of it)."""
    dep = s.get(Deployment, audit.deployment_id) if audit is not None else None
    return dep is not None and scope.allows(dep.organisation_id)


def _refuse_known_pdf(s: Session, pdf_sha: str, scope: Scope = EVERYTHING) -> None:
    known = s.scalars(select(ReportFile).filter_by(pdf_sha256=pdf_sha)).first()
    if known is not None:
        audit = s.get(Audit, known.audit_id)
        if not _in_scope(s, audit, scope):  # its report ID and date are not the submitter's
            raise _refuse(InputError("duplicate: this PDF is already registered"))
        rid = audit.report_id if audit is not None else "?"
        raise _refuse(
            InputError(
                f"duplicate: this PDF (SHA-256 {pdf_sha[:16]}…) is already registered "
                f"as report {rid}, submitted {known.submitted_at}"
            )
        )


def _checked_fields(name: DeploymentName, path: Path, data: bytes, trust: list[Path]) -> Any:
    """Verification and the fields, outside any transaction (seconds of work that must not
    hold the database's write lock)."""
    result = _verified(path, trust)
    try:
        fields = audit_fields(signed_evidence(data), result)
    except AuditkitError as exc:
        raise _refuse(exc) from None
    if fields.model_name != name.model:
        raise _refuse(
            InputError(
                f"--deployment {name}: the report audits model {fields.model_name!r} "
                f"(its card's name), not {name.model!r}"
            )
        )
    return fields


def _record(
    s: Session,
    name: DeploymentName,
    kind: str,
    fields: AuditFields,
    data: bytes,
    pdf_sha: str,
    blobs: Path,
    submitter: Principal,
) -> Submission:
    _refuse_known_pdf(s, pdf_sha, submitter.scope)  # again: a concurrent one may have stored it
    existing = s.scalars(select(Audit).filter_by(report_id=fields.report_id)).first()
    if existing is not None:
        return _countersigned(s, existing, name, fields, data, pdf_sha, blobs, submitter)
    audit, created = _new_audit(s, name, kind, fields, data, pdf_sha)
    blob_store.store(blobs, data)  # before the commit: an accepted row always has its file
    payload = {
        "pdf_sha256": pdf_sha,
        "report_id": fields.report_id,
        "deployment": str(name),
        "verdict": fields.verdict,
        "rows": digests_of(s, created),
        "submitter": submitter_of(submitter),
    }
    ev = append_event(s, "accepted", fields.report_id, payload)
    _log_supersessions(s, audit)
    return Submission("accepted", fields.report_id, audit.id, pdf_sha, fields.verdict, ev.seq)


def _log_supersessions(s: Session, audit: Audit) -> None:
    """An event ``superseded`` for every audit of the deployment whose superseding audit the
    new one changed (the new one superseding older ones, or itself arriving superseded)."""
    from auditkit.registry.supersession import keys, supersessions

    everything = keys(s, audit.deployment_id)
    before = supersessions([k for k in everything if k.id != audit.id])
    after = supersessions(everything)
    names = {k.id: k.report_id for k in everything}
    for audit_id, now in sorted(after.items()):
        if before.get(audit_id) != now:
            append_event(
                s,
                "superseded",
                names[audit_id],
                {
                    "report_id": names[audit_id],
                    "superseded_by": now.by_report_id,
                    "reason": now.reason,
                },
            )


def _countersigned(
    s: Session,
    audit: Audit,
    name: DeploymentName,
    fields: AuditFields,
    data: bytes,
    pdf_sha: str,
    blobs: Path,
    submitter: Principal,
) -> Submission:
    recorded = list(
        s.scalars(select(Signature).filter_by(audit_id=audit.id).order_by(Signature.position))
    )
    dep = s.get(Deployment, audit.deployment_id)
    if not _in_scope(s, audit, submitter.scope):
        raise _refuse(
            PermissionDenied(
                f"report {fields.report_id} is registered for a deployment of another "
                f"organisation: account {submitter.username!r} may not add to it"
            )
        )
    if not _same_signatures(recorded, fields):
        raise _refuse(
            InputError(
                f"duplicate: report {fields.report_id} is already registered (submitted "
                f"{audit.submitted_at}) and this file adds no countersignature"
            )
        )
    registered = deployment_name(s, dep) if dep is not None else None
    if registered != name:
        raise _refuse(
            InputError(
                f"report {fields.report_id} is registered for deployment {registered}; "
                "submit its countersigned copy with that --deployment"
            )
        )
    report = ReportFile(
        audit_id=audit.id,
        pdf_sha256=pdf_sha,
        size=len(data),
        signatures=len(fields.signatures),
        submitted_at=now_utc(),
    )
    sigs = _signature_rows(audit.id, fields, pdf_sha, len(recorded))
    s.add_all([report, *sigs])
    blob_store.store(blobs, data)
    payload = {
        "pdf_sha256": pdf_sha,
        "report_id": fields.report_id,
        "countersigners": [sig.signer for sig in sigs],
        "rows": digests_of(s, [report, *sigs]),
        "submitter": submitter_of(submitter),
    }
    ev = append_event(s, "countersigned", fields.report_id, payload)
    return Submission("countersigned", audit.report_id, audit.id, pdf_sha, audit.verdict, ev.seq)


def _registry_trust(s: Session, name: DeploymentName, folder: Path) -> list[Path]:
    """The registry's trust roots for the deployment's organisation (its own and the
    registry-wide ones, not removed) written as PEM files into ``folder``; a refusal
    (exit 5) when there are none."""
    org = s.scalars(select(Organisation).filter_by(name=name.organisation)).first()
    roots = trust_roots.active_roots(s, org.id if org is not None else None)
    if not roots:
        raise _refuse(
            InputError(
                f"no trust roots configured for organisation {name.organisation!r} nor for "
                "the whole registry: add one with `auditkit registry trust add CA.pem "
                "[--organisation ORG]`, or give --trust CA.pem"
            )
        )
    return trust_roots.write_pem_files(roots, folder)


def submitter_of(principal: Principal) -> dict[str, str]:
    """What events record of who submitted: username and role (never a secret)."""
    return {"username": principal.username, "role": principal.role}


def submit(
    location: Location,
    pdf: Path,
    deployment: str,
    *,
    trust: list[Path] | None = None,
    kind: str = "enterprise",
    submitter: Principal = LOCAL_OPERATOR,
) -> Submission:
    """Verify and register the report at ``pdf`` for ``deployment`` (``ORG/SITE/STATION/MODEL``;
    ``kind``: the organisation's kind when it is new) on behalf of ``submitter``.

    ``trust``: the CA certificates the signatures must chain to; None: the registry's trust
    roots for the deployment's organisation plus the registry-wide ones (not removed), and a
    refusal when there are none. The submitter must be allowed to submit for the deployment's
    organisation (:func:`auditkit.registry.accounts.submission_refusal`), else
    :class:`PermissionDenied` (exit 77), checked before anything about the file is disclosed.

    See the module doc; every refusal is an :class:`AuditkitError` of one line (exit 1 for a
    report that fails verification, 77 for a submitter not allowed, 5 for everything else)
    and an event ``refused``; a database that fails while writing is an
    :class:`OutputError` (exit 74), nothing committed."""
    name = DeploymentName.parse(deployment)
    if kind not in ORGANISATION_KINDS:
        raise InputError(f"--kind {kind!r}: one of {', '.join(ORGANISATION_KINDS)}")
    if trust is not None and not trust:
        raise InputError("give the trust roots to check the signatures against: --trust CA.pem")
    from auditkit.report.keys import load_certificates

    for path in trust or []:  # a bad --trust is the caller's mistake, not a refusal of the report
        load_certificates(Path(path), what="trust certificate file")
    engine = open_registry(location)
    pdf = Path(pdf)
    pdf_sha: str | None = None
    try:
        try:
            data = pdf.read_bytes()
        except OSError as exc:
            raise _refuse(InputError(f"cannot read {pdf}: {exc.strerror or exc}")) from None
        pdf_sha = hashlib.sha256(data).hexdigest()
        with tempfile.TemporaryDirectory(prefix="auditkit-trust-") as folder:
            with session(engine) as s:
                refusal = submission_refusal(s, submitter, name.organisation)
                if refusal is not None:
                    raise _refuse(PermissionDenied(refusal))
                _check_pdf(data, pdf)
                # a known file is refused before seconds of checks
                _refuse_known_pdf(s, pdf_sha, submitter.scope)
                roots = list(trust) if trust is not None else _registry_trust(s, name, Path(folder))
            fields = _checked_fields(name, pdf, data, roots)
        for attempt in range(_ATTEMPTS):
            try:
                with session(engine) as s:
                    refusal = submission_refusal(s, submitter, name.organisation)
                    if refusal is not None:  # revoked while the report was being verified
                        raise _refuse(PermissionDenied(refusal))
                    return _record(s, name, kind, fields, data, pdf_sha, location.blobs, submitter)
            except IntegrityError:
                # a concurrent submission took the same event number or the same report
                # first; the next attempt sees it (and refuses a duplicate)
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")
    except _Refused as refused:
        with session(engine) as s:
            append_event(
                s,
                "refused",
                pdf.name,
                {
                    "file": pdf.name,
                    "pdf_sha256": pdf_sha,
                    "deployment": str(name),
                    "reason": first_line(refused.error, 500),
                    "exit_code": refused.error.exit_code,
                    "submitter": submitter_of(submitter),
                },
            )
        raise refused.error from None
    except DatabaseError as exc:  # the server went away, the disk is full, ...
        raise OutputError(
            f"registry {location.display} cannot be written: {first_line(exc.orig or exc, 200)}"
        ) from None
    finally:
        engine.dispose()
