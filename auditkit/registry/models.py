"""The registry's tables (SQLAlchemy 2 declarative). The Alembic revisions
(``migrations/versions/``) create exactly these; a change here needs a new revision.

Revision 0001: the record (organisation … event). Revision 0002: who may do what (account,
API token, web session, login failure, laboratory authorisation, trust root, re-audit policy)
and the audit's ``task``. A column added to a recorded table after 0001 carries
``info={"added": REVISION}``: it counts in the row's digest only when set, so rows recorded
before it keep their digests (:func:`auditkit.registry.rows.values`).

Times are ISO 8601 UTC text (``2026-11-26T23:00:04Z``), as the evidence writes them, so a row
reads back the same from SQLite and PostgreSQL and its digest (:mod:`auditkit.registry.chain`)
does not depend on a driver's time zone handling.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: organisation kinds: who the organisation is to the registry
ORGANISATION_KINDS = ("enterprise", "test_laboratory", "regulator")
#: account roles (issue 15): a regulator reads everything and countersigns; an organisation
#: account submits and reads its own organisation's audits; a test laboratory submits for the
#: organisations that authorised it (and reads those audits)
ROLES = ("regulator", "organisation", "test_laboratory")
SHA = String(64)


class Base(DeclarativeBase):
    pass


class Organisation(Base):
    """An enterprise that runs deployments, a test laboratory that audits them, or a regulator."""

    __tablename__ = "organisation"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))


class Site(Base):
    """A factory of an organisation."""

    __tablename__ = "site"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    name: Mapped[str] = mapped_column(String(200))


class Station(Base):
    """A line or inspection station of a site."""

    __tablename__ = "station"
    __table_args__ = (UniqueConstraint("site_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    name: Mapped[str] = mapped_column(String(200))


class Deployment(Base):
    """A model (by its card's name) in use at one station of one site of one organisation."""

    __tablename__ = "deployment"
    __table_args__ = (UniqueConstraint("station_id", "model_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("site.id"))
    station_id: Mapped[int] = mapped_column(ForeignKey("station.id"))
    model_name: Mapped[str] = mapped_column(String(200))


class ModelVersion(Base):
    """One model file of a deployment, known by its SHA-256, with the card it was audited with."""

    __tablename__ = "model_version"
    __table_args__ = (UniqueConstraint("deployment_id", "model_sha256"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id"))
    model_sha256: Mapped[str] = mapped_column(SHA)
    version: Mapped[str | None] = mapped_column(String(100))
    card: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Audit(Base):
    """One signed report: what it judged, with what, the verdict, and the PDF first submitted.

    ``energy_wh_per_1000``: ``run.json`` → ``energy.wh_per_1000_inspections`` (null when not
    measured or modelled); ``evidence``: attachment name → SHA-256 in the signed revision."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployment.id"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id"))
    report_id: Mapped[str] = mapped_column(String(100), unique=True)
    run_id: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[str | None] = mapped_column(String(40))
    finished_at: Mapped[str | None] = mapped_column(String(40))
    signed_at: Mapped[str | None] = mapped_column(String(40))
    rubric_id: Mapped[str | None] = mapped_column(String(200))
    rubric_version: Mapped[str | None] = mapped_column(String(100))
    rubric_sha256: Mapped[str | None] = mapped_column(SHA)
    decision_rule: Mapped[str | None] = mapped_column(String(100))
    verdict: Mapped[str] = mapped_column(String(20))
    energy_wh_per_1000: Mapped[float | None] = mapped_column(Float)
    energy_method: Mapped[str | None] = mapped_column(String(100))
    pdf_sha256: Mapped[str] = mapped_column(SHA, unique=True)
    evidence: Mapped[dict[str, str]] = mapped_column(JSON)
    submitted_at: Mapped[str] = mapped_column(String(40))
    #: metrics.json ``task`` (classification, detection, anomaly, segmentation); null in
    #: audits recorded before revision 0002
    task: Mapped[str | None] = mapped_column(String(30), info={"added": "0002"})
    criteria: Mapped[list[Criterion]] = relationship(order_by="Criterion.position")


class Criterion(Base):
    """One row of the audit's criteria table: a criterion (``parent`` null; with ``slice_by``
    its figures are those of its deciding slice) or one slice of a criterion (``parent`` =
    the criterion's id). ``low``/``high``: the bounds of its interval; ``slice``: the slice."""

    __tablename__ = "criterion"
    __table_args__ = (UniqueConstraint("audit_id", "position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audit.id"))
    position: Mapped[int] = mapped_column(Integer)
    criterion_id: Mapped[str] = mapped_column(String(200))
    parent: Mapped[str | None] = mapped_column(String(200))
    severity: Mapped[str | None] = mapped_column(String(20))
    metric: Mapped[str | None] = mapped_column(String(200))
    statistic: Mapped[str | None] = mapped_column(String(50))
    op: Mapped[str | None] = mapped_column(String(4))
    threshold: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(20))
    value: Mapped[float | None] = mapped_column(Float)
    bound: Mapped[float | None] = mapped_column(Float)
    low: Mapped[float | None] = mapped_column(Float)
    high: Mapped[float | None] = mapped_column(Float)
    k: Mapped[int | None] = mapped_column(Integer)
    n: Mapped[int | None] = mapped_column(Integer)
    slice: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ReportFile(Base):
    """A PDF the registry accepted for an audit: the original, or a countersigned copy. The
    bytes are in the blob folder under their SHA-256."""

    __tablename__ = "report_file"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audit.id"))
    pdf_sha256: Mapped[str] = mapped_column(SHA, unique=True)
    size: Mapped[int] = mapped_column(Integer)
    signatures: Mapped[int] = mapped_column(Integer)
    submitted_at: Mapped[str] = mapped_column(String(40))


class Signature(Base):
    """A signature of an audit's report: the author's (``role`` "author", position 0) or a
    countersignature, as verification found it, and the PDF it was first seen in."""

    __tablename__ = "signature"
    __table_args__ = (UniqueConstraint("audit_id", "position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[int] = mapped_column(ForeignKey("audit.id"))
    position: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(20))
    field: Mapped[str] = mapped_column(String(200))
    signer: Mapped[str | None] = mapped_column(String(500))
    signing_time: Mapped[str | None] = mapped_column(String(40))
    timestamp: Mapped[str | None] = mapped_column(String(40))
    development_key: Mapped[bool] = mapped_column(Boolean)
    pdf_sha256: Mapped[str] = mapped_column(SHA)


class Event(Base):
    """One entry of the append-only event log (:mod:`auditkit.registry.chain`): ``seq`` counts
    from 1 without gaps; ``sha256`` = SHA-256 of ``prev_sha256`` and the canonical content."""

    __tablename__ = "event"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(30))
    subject: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_sha256: Mapped[str] = mapped_column(SHA)
    sha256: Mapped[str] = mapped_column(SHA, unique=True)


class Account(Base):
    """Someone who logs in or calls the API. ``role``: one of :data:`ROLES`; an organisation or
    test-laboratory account belongs to ``organisation_id``; a regulator's may too (its
    regulator organisation) or not. ``password_hash``: Argon2id (:mod:`auditkit.registry.
    credentials`), null for an account that only uses API tokens."""

    __tablename__ = "account"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    created_at: Mapped[str] = mapped_column(String(40))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiToken(Base):
    """An API token of an account, stored as the SHA-256 of the secret (never the secret);
    ``prefix``: the secret's first characters, shown so a user can tell tokens apart."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(SHA, unique=True)
    created_at: Mapped[str] = mapped_column(String(40))
    expires_at: Mapped[str | None] = mapped_column(String(40))
    revoked_at: Mapped[str | None] = mapped_column(String(40))
    last_used_at: Mapped[str | None] = mapped_column(String(40))


class WebSession(Base):
    """A browser session, kept in the database so several server processes share it and a
    logout ends it everywhere. ``id_sha256``: SHA-256 of the cookie's secret; ``csrf_token``:
    the token every form of this session must send back."""

    __tablename__ = "web_session"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    id_sha256: Mapped[str] = mapped_column(SHA, unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    csrf_token: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[str] = mapped_column(String(40))
    expires_at: Mapped[str] = mapped_column(String(40))


class LoginFailure(Base):
    """One failed login, for rate limiting across server processes (``client``: the
    address the request came from)."""

    __tablename__ = "login_failure"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100))
    client: Mapped[str] = mapped_column(String(100))
    at: Mapped[str] = mapped_column(String(40))


class Authorisation(Base):
    """An organisation lets a test laboratory submit (and read) audits of its deployments."""

    __tablename__ = "authorisation"
    __table_args__ = (UniqueConstraint("laboratory_id", "organisation_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    laboratory_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisation.id"))
    created_at: Mapped[str] = mapped_column(String(40))
    revoked_at: Mapped[str | None] = mapped_column(String(40))


class TrustRoot(Base):
    """A CA certificate the signatures of an organisation's reports are checked against
    (``organisation_id`` null: trusted for every organisation). ``sha256``: of the DER."""

    __tablename__ = "trust_root"
    __table_args__ = (UniqueConstraint("organisation_id", "sha256"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisation.id"))
    sha256: Mapped[str] = mapped_column(SHA)
    subject: Mapped[str] = mapped_column(String(500))
    pem: Mapped[str] = mapped_column(Text)
    added_at: Mapped[str] = mapped_column(String(40))
    removed_at: Mapped[str | None] = mapped_column(String(40))


class Policy(Base):
    """How long an audit stays current: a deployment is due for re-audit ``reaudit_days``
    after its latest audit was signed. ``rubric_id`` null: the registry's default."""

    __tablename__ = "policy"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rubric_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    reaudit_days: Mapped[int] = mapped_column(Integer)


#: the tables whose rows events vouch for, by the name events use
RECORDED: dict[str, type[Base]] = {
    "organisation": Organisation,
    "site": Site,
    "station": Station,
    "deployment": Deployment,
    "model_version": ModelVersion,
    "audit": Audit,
    "report_file": ReportFile,
    "signature": Signature,
}
