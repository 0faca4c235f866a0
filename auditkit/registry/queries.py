"""Read-only views of the registry: ``registry list`` (every deployment and its latest audit)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select

from auditkit.registry.location import Location
from auditkit.registry.models import Audit, Deployment, Organisation, Site, Station


@dataclass(frozen=True)
class DeploymentRow:
    """One deployment with its latest audit: the one signed last (``signed_at``, then the
    run's ``finished_at``, then the order of submission); the audit fields are None for a
    deployment never audited."""

    organisation: str
    kind: str
    site: str
    station: str
    model: str
    audits: int
    verdict: str | None
    audited_at: str | None
    report_id: str | None
    rubric: str | None


def deployments(location: Location) -> list[DeploymentRow]:
    """Every deployment, sorted by organisation, site, station and model."""
    from auditkit.registry.db import open_registry, session

    engine = open_registry(location)
    try:
        with session(engine) as s:
            counted = select(Audit.deployment_id, func.count()).group_by(Audit.deployment_id)
            counts: dict[int, int] = {dep_id: n for dep_id, n in s.execute(counted)}
            latest: dict[int, Audit] = {}
            for audit in s.scalars(select(Audit).order_by(Audit.id)):
                key = (audit.signed_at or audit.finished_at or "", audit.id)
                best = latest.get(audit.deployment_id)
                if best is None or key >= (best.signed_at or best.finished_at or "", best.id):
                    latest[audit.deployment_id] = audit
            query = (
                select(Deployment, Organisation, Site, Station)
                .join(Organisation, Organisation.id == Deployment.organisation_id)
                .join(Site, Site.id == Deployment.site_id)
                .join(Station, Station.id == Deployment.station_id)
                .order_by(Organisation.name, Site.name, Station.name, Deployment.model_name)
            )
            rows = []
            for dep, org, site, station in s.execute(query):
                last: Audit | None = latest.get(dep.id)
                rows.append(
                    DeploymentRow(
                        organisation=org.name,
                        kind=org.kind,
                        site=site.name,
                        station=station.name,
                        model=dep.model_name,
                        audits=counts.get(dep.id, 0),
                        verdict=last.verdict if last else None,
                        audited_at=(last.signed_at or last.finished_at) if last else None,
                        report_id=last.report_id if last else None,
                        rubric=f"{last.rubric_id} {last.rubric_version}" if last else None,
                    )
                )
            return rows
    finally:
        engine.dispose()


def as_json(rows: list[DeploymentRow]) -> dict[str, Any]:
    """``registry list --json``."""
    return {"format": "auditkit.registry.list/1", "deployments": [asdict(r) for r in rows]}


COLUMNS = ("organisation", "site", "station", "model", "audits", "verdict", "audited", "report")


def as_table(rows: list[DeploymentRow]) -> str:
    """A plain text table, one deployment a line, columns padded to their widest cell."""
    cells = [list(COLUMNS)] + [
        [
            r.organisation,
            r.site,
            r.station,
            r.model,
            str(r.audits),
            r.verdict or "never audited",
            r.audited_at or "-",
            r.report_id or "-",
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


@dataclass(frozen=True)
class HistoryRow:
    """One audit of a deployment, oldest first, with its comparison to the one before it
    (:mod:`auditkit.registry.regression`; None for the first)."""

    report_id: str
    audited_at: str | None
    verdict: str
    model_sha256: str
    model_version: str | None
    rubric: str
    countersignatures: int
    regression: Any  # Regression | None


def _order(audit: Audit) -> tuple[str, str, int]:
    """Audits in the order they were signed (then run, then submitted)."""
    return (audit.signed_at or "", audit.finished_at or "", audit.id)


def history(location: Location, deployment: str) -> list[HistoryRow]:
    """Every audit of ``deployment`` (``ORG/SITE/STATION/MODEL``), oldest first; an unknown
    deployment is an :class:`~auditkit.errors.InputError` (exit 5)."""
    from auditkit.errors import InputError
    from auditkit.registry.db import open_registry, session
    from auditkit.registry.ingest import DeploymentName
    from auditkit.registry.models import Criterion, ModelVersion, Signature
    from auditkit.registry.regression import compare, overall_rates
    from auditkit.registry.rows import values

    name = DeploymentName.parse(deployment)
    engine = open_registry(location)
    try:
        with session(engine) as s:
            dep = s.scalars(
                select(Deployment)
                .join(Organisation, Organisation.id == Deployment.organisation_id)
                .join(Site, Site.id == Deployment.site_id)
                .join(Station, Station.id == Deployment.station_id)
                .where(
                    Organisation.name == name.organisation,
                    Site.name == name.site,
                    Station.name == name.station,
                    Deployment.model_name == name.model,
                )
            ).first()
            if dep is None:
                raise InputError(f"no deployment {name} in registry {location.display}")
            audits = sorted(s.scalars(select(Audit).filter_by(deployment_id=dep.id)), key=_order)
            out: list[HistoryRow] = []
            before: tuple[str, dict[str, tuple[int, int]]] | None = None
            for audit in audits:
                criteria = s.scalars(
                    select(Criterion).filter_by(audit_id=audit.id).order_by(Criterion.position)
                )
                rates = overall_rates(values(c) for c in criteria)
                version = s.get(ModelVersion, audit.model_version_id)
                counter = s.scalar(
                    select(func.count())
                    .select_from(Signature)
                    .where(Signature.audit_id == audit.id, Signature.role == "countersignature")
                )
                out.append(
                    HistoryRow(
                        report_id=audit.report_id,
                        audited_at=audit.signed_at or audit.finished_at,
                        verdict=audit.verdict,
                        model_sha256=version.model_sha256 if version else "",
                        model_version=version.version if version else None,
                        rubric=f"{audit.rubric_id} {audit.rubric_version}",
                        countersignatures=int(counter or 0),
                        regression=compare(before[0], before[1], audit.verdict, rates)
                        if before is not None
                        else None,
                    )
                )
                before = (audit.verdict, rates)
            return out
    finally:
        engine.dispose()


def history_json(rows: list[HistoryRow]) -> dict[str, Any]:
    """``registry history --json``."""
    return {
        "format": "auditkit.registry.history/1",
        "audits": [
            {
                **{k: v for k, v in asdict(r).items() if k != "regression"},
                "regression": None
                if r.regression is None
                else {"flagged": r.regression.flagged, **asdict(r.regression)},
            }
            for r in rows
        ],
    }


def history_lines(rows: list[HistoryRow]) -> list[str]:
    """One line per audit, oldest first, and the regression reasons under it."""
    lines = []
    for r in rows:
        flag = ""
        if r.regression is not None:
            flag = "  REGRESSION" if r.regression.flagged else "  no significant change"
        version = f" {r.model_version}" if r.model_version else ""
        counter = f", {r.countersignatures} countersignature(s)" if r.countersignatures else ""
        lines.append(
            f"{r.audited_at or '-'}  {r.verdict:<11} {r.report_id}  model{version} "
            f"{r.model_sha256[:12]}…  {r.rubric}{counter}{flag}"
        )
        if r.regression is not None:
            lines += [f"    {reason}" for reason in r.regression.reasons]
    return lines
