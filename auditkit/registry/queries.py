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
