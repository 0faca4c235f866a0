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
from auditkit.registry.models import Organisation, TrustRoot


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
