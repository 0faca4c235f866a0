"""The registry's tables (SQLAlchemy 2 declarative). The first Alembic revision
(``migrations/versions/0001_initial.py``) creates exactly these; a change here needs a new
revision.

Times are ISO 8601 UTC text (``2026-11-26T23:00:04Z``), as the evidence writes them, so a row
reads back the same from SQLite and PostgreSQL and its digest (:mod:`auditkit.registry.chain`)
does not depend on a driver's time zone handling.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: organisation kinds: who the organisation is to the registry
ORGANISATION_KINDS = ("enterprise", "test_laboratory", "regulator")
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
