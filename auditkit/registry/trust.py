"""Trust roots kept in the registry: the CA certificates a submitted report's signatures must
chain to (``registry trust add|list|remove``; docs/registry.md, "Trust roots").

A root belongs to one organisation (it checks only that organisation's reports) or to the whole
registry (``organisation_id`` null: it checks every organisation's reports, e.g. a regulator's
CA for its countersignatures). A removed root keeps its row with ``removed_at`` set: the
registry records what it trusted when. Every change is an event (``trust_added``,
``trust_removed``) carrying the certificate's SHA-256 and subject, never key material.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from auditkit.errors import InputError
from auditkit.registry.models import Base, Organisation, TrustRoot
from auditkit.registry.scope import LOCAL_OPERATOR, Principal


@dataclass(frozen=True)
class TrustRootRow:
    """A trust root as ``trust list`` shows it: ``organisation`` None for a registry-wide one."""

    id: int
    organisation: str | None
    sha256: str
    subject: str
    added_at: str
    removed_at: str | None


def certificate_sha256(cert: x509.Certificate) -> str:
    """SHA-256 (hex) of the certificate's DER encoding: the usual certificate fingerprint."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def active_roots(s: Session, organisation_id: int | None) -> list[TrustRoot]:
    """The roots not removed that check reports of ``organisation_id``: its own and the
    registry-wide ones (only the registry-wide ones for None: an organisation not yet known),
    oldest first."""
    scope: ColumnElement[bool] = TrustRoot.organisation_id.is_(None)
    if organisation_id is not None:
        scope = or_(scope, TrustRoot.organisation_id == organisation_id)
    return list(
        s.scalars(
            select(TrustRoot).where(scope, TrustRoot.removed_at.is_(None)).order_by(TrustRoot.id)
        )
    )


def write_pem_files(roots: list[TrustRoot], folder: Path) -> list[Path]:
    """One PEM file per root in ``folder`` (what :func:`auditkit.report.verify.verify_pdf`
    reads), named by the certificate's SHA-256."""
    paths = []
    for root in roots:
        path = folder / f"{root.sha256}.pem"
        path.write_text(root.pem, encoding="ascii")
        paths.append(path)
    return paths


def organisation_named(s: Session, name: str) -> Organisation:
    """The organisation called ``name``; :class:`InputError` (exit 5) when there is none."""
    org = s.scalars(select(Organisation).filter_by(name=name)).first()
    if org is None:
        raise InputError(
            f"no organisation {name!r} in the registry (organisations are created by their "
            "first submission or account)"
        )
    return org


def list_roots(s: Session, *, include_removed: bool = False) -> list[TrustRootRow]:
    """Every trust root (without the removed ones unless asked), registry-wide first."""
    names = {o.id: o.name for o in s.scalars(select(Organisation))}
    query = select(TrustRoot).order_by(TrustRoot.id)
    if not include_removed:
        query = query.where(TrustRoot.removed_at.is_(None))
    rows = [
        TrustRootRow(
            r.id,
            names.get(r.organisation_id) if r.organisation_id is not None else None,
            r.sha256,
            r.subject,
            r.added_at,
            r.removed_at,
        )
        for r in s.scalars(query)
    ]
    return sorted(rows, key=lambda r: (r.organisation is not None, r.organisation or "", r.id))


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_roots(
    s: Session,
    pem: Path,
    *,
    organisation: str | None = None,
    by: Principal = LOCAL_OPERATOR,
) -> list[TrustRoot]:
    """Trust every certificate in the file ``pem`` for ``organisation``'s reports (None: for
    every organisation's). The organisation is created (an enterprise) when new, so roots can
    be set up before its first submission. A certificate already trusted there is refused; one
    removed earlier is trusted again (its row's ``removed_at`` cleared). One event
    ``trust_added`` per certificate."""
    from auditkit.registry.accounts import actor, organisation_for
    from auditkit.registry.ingest import append_event, digests_of
    from auditkit.report.keys import load_certificates

    certs = load_certificates(Path(pem), what="trust certificate file")
    created: list[Base] = []
    org = organisation_for(s, organisation, "enterprise", created) if organisation else None
    org_id = org.id if org is not None else None
    added = []
    for cert in certs:
        sha = certificate_sha256(cert)
        row = s.scalars(
            select(TrustRoot).where(
                TrustRoot.sha256 == sha,
                TrustRoot.organisation_id.is_(None)
                if org_id is None
                else TrustRoot.organisation_id == org_id,
            )
        ).first()
        where = f"organisation {organisation!r}" if organisation else "the whole registry"
        if row is not None and row.removed_at is None:
            raise InputError(f"{pem}: certificate {sha[:16]}… is already trusted for {where}")
        if row is None:
            row = TrustRoot(
                organisation_id=org_id,
                sha256=sha,
                subject=cert.subject.rfc4514_string()[:500],
                pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
                added_at=_now(),
            )
            s.add(row)
        else:
            row.added_at, row.removed_at = _now(), None
        s.flush()
        payload: dict[str, object] = {
            "trust_root": row.id,
            "sha256": sha,
            "subject": row.subject,
            "organisation": organisation,
            "by": actor(by),
        }
        if created:
            payload["rows"] = digests_of(s, created)
            created = []
        append_event(s, "trust_added", sha, payload)
        added.append(row)
    return added


def remove_root(s: Session, root_id: int, *, by: Principal = LOCAL_OPERATOR) -> TrustRoot:
    """Stop trusting root ``root_id`` (from ``trust list``): ``removed_at`` set, the row kept.
    Reports already accepted stay accepted; later submissions no longer chain to it. Event
    ``trust_removed``."""
    from auditkit.registry.accounts import actor
    from auditkit.registry.ingest import append_event

    row = s.get(TrustRoot, root_id)
    if row is None:
        raise InputError(f"no trust root {root_id} (see `auditkit registry trust list`)")
    if row.removed_at is not None:
        raise InputError(f"trust root {root_id} was already removed at {row.removed_at}")
    row.removed_at = _now()
    org = s.get(Organisation, row.organisation_id) if row.organisation_id is not None else None
    append_event(
        s,
        "trust_removed",
        row.sha256,
        {
            "trust_root": row.id,
            "sha256": row.sha256,
            "subject": row.subject,
            "organisation": org.name if org is not None else None,
            "by": actor(by),
        },
    )
    return row
