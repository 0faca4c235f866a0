"""Read-only views of the registry: ``registry list`` (every deployment and its latest audit)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import and_, select

from auditkit.registry.location import Location
from auditkit.registry.models import Audit, Deployment, Organisation, Site, Station


@dataclass(frozen=True)
class DeploymentRow:
    """One deployment with its latest audit (:func:`auditkit.registry.views.latest_order`: the
    one signed last, then run last, then submitted last); the audit fields are None for a
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
    from auditkit.registry.scope import EVERYTHING
    from auditkit.registry.views import ranked_audits

    engine = open_registry(location)
    try:
        with session(engine) as s:
            ranked = ranked_audits(EVERYTHING)
            query = (
                select(Deployment, Organisation, Site, Station, Audit, ranked.c.audits)
                .join(Organisation, Organisation.id == Deployment.organisation_id)
                .join(Site, Site.id == Deployment.site_id)
                .join(Station, Station.id == Deployment.station_id)
                .outerjoin(
                    ranked, and_(ranked.c.deployment_id == Deployment.id, ranked.c.rank == 1)
                )
                .outerjoin(Audit, Audit.id == ranked.c.audit_id)
                .order_by(Organisation.name, Site.name, Station.name, Deployment.model_name)
            )
            rows = []
            for dep, org, site, station, last, audits in s.execute(query):
                rows.append(
                    DeploymentRow(
                        organisation=org.name,
                        kind=org.kind,
                        site=site.name,
                        station=station.name,
                        model=dep.model_name,
                        audits=int(audits or 0),
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


def history(location: Location, deployment: str) -> list[HistoryRow]:
    """Every audit of ``deployment`` (``ORG/SITE/STATION/MODEL``), oldest first, compared
    with the one before (:func:`auditkit.registry.views.deployment`, the deployment page's
    timeline); an unknown deployment is an :class:`~auditkit.errors.InputError` (exit 5)."""
    from datetime import UTC, datetime

    from auditkit.errors import InputError
    from auditkit.registry.db import open_registry, session
    from auditkit.registry.ingest import DeploymentName
    from auditkit.registry.scope import EVERYTHING
    from auditkit.registry.views import deployment as deployment_view

    name = DeploymentName.parse(deployment)
    engine = open_registry(location)
    try:
        with session(engine) as s:
            dep_id = s.scalar(
                select(Deployment.id)
                .join(Organisation, Organisation.id == Deployment.organisation_id)
                .join(Site, Site.id == Deployment.site_id)
                .join(Station, Station.id == Deployment.station_id)
                .where(
                    Organisation.name == name.organisation,
                    Site.name == name.site,
                    Station.name == name.station,
                    Deployment.model_name == name.model,
                )
            )
            view = (
                None
                if dep_id is None
                else deployment_view(s, EVERYTHING, dep_id, today=datetime.now(UTC).date())
            )
            if view is None:
                raise InputError(f"no deployment {name} in registry {location.display}")
            return [
                HistoryRow(
                    report_id=entry.report_id,
                    audited_at=entry.audited_at,
                    verdict=entry.verdict,
                    model_sha256=entry.model_sha256,
                    model_version=entry.model_version,
                    rubric=f"{entry.rubric_id} {entry.rubric_version}",
                    countersignatures=entry.countersignatures,
                    regression=entry.regression,
                )
                for entry in view.audits
            ]
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
