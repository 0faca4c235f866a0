"""What the supervisor sees (issue 15): the fleet, one deployment over time, one audit; typed
view models, the queries that fill them, and their CSV and JSON exports.

Every query takes a :class:`~auditkit.registry.scope.Scope` and reads only the organisations
it allows: a deployment or audit outside it is ``None``, exactly as one that does not exist.

**Latest audit** of a deployment: the one with the greatest
(``signed_at``, ``finished_at``, ``id``), missing times counting as earliest — the order the
reports were signed, then run, then submitted (:func:`latest_order`, one SQL window function
that SQLite and PostgreSQL both run).

**Re-audit due date**: the calendar day (UTC) of the latest audit's ``signed_at`` (its
``finished_at`` when unsigned) plus the re-audit period of its rubric: the
:class:`~auditkit.registry.models.Policy` row of that ``rubric_id``, else the row with
``rubric_id`` null (the registry's default), else :data:`DEFAULT_REAUDIT_DAYS`
(:func:`reaudit_days`). **Status** on ``today`` (:func:`status_of`): ``never_audited``
(no audit), ``overdue`` (today is after the due date), ``due_soon`` (due within
:data:`DUE_SOON_DAYS` days, the due date included), else ``current``. The fleet computes both
in SQL (:func:`day_number`), so it can sort and paginate there; :func:`status_of` is the
definition, and the tests hold the SQL to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from auditkit.registry.models import (
    Audit,
    Criterion,
    Deployment,
    ModelVersion,
    Organisation,
    Policy,
    ReportFile,
    Signature,
    Site,
    Station,
)
from auditkit.registry.regression import RATES, Regression, consecutive, overall_rates
from auditkit.registry.scope import Scope

#: re-audit period when the registry has no policy at all (a year)
DEFAULT_REAUDIT_DAYS = 365
#: a deployment is "due soon" this many days before its due date
DUE_SOON_DAYS = 30
#: fleet statuses, in the order the fleet lists them
STATUSES = ("never_audited", "overdue", "due_soon", "current")
#: the task of an audit recorded without one (before revision 0002 only classification existed)
DEFAULT_TASK = "classification"
#: the verdicts a report can carry (auditkit.rubric's roll-up)
VERDICTS = ("ACCEPT", "CONDITIONAL", "HOLD", "REJECT")
#: the metrics a deployment page always shows first (then every other overall metric)
KEY_METRICS = tuple(RATES)
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
_EPOCH = date(1970, 1, 1)


# --------------------------------------------------------------------------- dates, status


def reaudit_days(policies: Mapping[str | None, int], rubric_id: str | None) -> int:
    """The re-audit period of an audit judged by ``rubric_id``: ``policies[rubric_id]`` (a
    Policy row for that rubric), else ``policies[None]`` (the registry default), else
    :data:`DEFAULT_REAUDIT_DAYS`. ``policies``: rubric id (or None) → days."""
    if rubric_id is not None and rubric_id in policies:
        return policies[rubric_id]
    return policies.get(None, DEFAULT_REAUDIT_DAYS)


def load_policies(s: Session) -> dict[str | None, int]:
    """Every Policy row: rubric id (None: the default) → re-audit days."""
    return {
        rubric: days for rubric, days in s.execute(select(Policy.rubric_id, Policy.reaudit_days))
    }


def audit_day(stamp: str | None) -> date | None:
    """The UTC calendar day of an ISO 8601 stamp as the registry stores it (``2026-11-26T…Z``)."""
    if not stamp:
        return None
    return date.fromisoformat(stamp[:10])


def due_date(stamp: str | None, days: int) -> date | None:
    """The day a re-audit is due: :func:`audit_day` of ``stamp`` plus ``days``."""
    day = audit_day(stamp)
    return None if day is None else day + timedelta(days=days)


def status_of(due: date | None, today: date) -> str:
    """One of :data:`STATUSES` for a deployment whose re-audit is due on ``due`` (None: never
    audited): overdue when ``today > due``; due soon when ``due - today`` ≤ DUE_SOON_DAYS."""
    if due is None:
        return "never_audited"
    if today > due:
        return "overdue"
    if (due - today).days <= DUE_SOON_DAYS:
        return "due_soon"
    return "current"


class day_number(FunctionElement[int]):
    """SQL: the whole days from 1970-01-01 to the day (first 10 characters) of an ISO 8601
    text stamp; NULL for NULL. SQLite via ``julianday``, PostgreSQL via ``date``
    subtraction — the same integer on both."""

    type = Integer()
    inherit_cache = True
    name = "day_number"


@compiles(day_number, "sqlite")
def _day_number_sqlite(element: day_number, compiler: Any, **kw: Any) -> str:
    (arg,) = list(element.clauses)
    text = compiler.process(arg, **kw)
    return f"CAST(julianday(substr({text}, 1, 10)) - 2440587.5 AS INTEGER)"


@compiles(day_number, "postgresql")
def _day_number_postgresql(element: day_number, compiler: Any, **kw: Any) -> str:
    (arg,) = list(element.clauses)
    text = compiler.process(arg, **kw)
    return f"(CAST(substr({text}, 1, 10) AS DATE) - DATE '1970-01-01')"


def _days_since_epoch(day: date) -> int:
    return (day - _EPOCH).days


def latest_order() -> list[ColumnElement[Any]]:
    """ORDER BY terms putting a deployment's latest audit first (see the module doc); missing
    times are '' so both databases order them the same (their NULL orders differ)."""
    return [
        func.coalesce(Audit.signed_at, "").desc(),
        func.coalesce(Audit.finished_at, "").desc(),
        Audit.id.desc(),
    ]


def in_scope(scope: Scope, column: Any) -> ColumnElement[bool]:
    """SQL: ``column`` (an organisation id) is in ``scope``."""
    if scope.organisations is None:
        return true()
    return column.in_(sorted(scope.organisations))


def ranked_audits(scope: Scope) -> Any:
    """Subquery: one row per audit in scope with its rank in its deployment (1: latest) and
    the deployment's number of audits."""
    return (
        select(
            Audit.id.label("audit_id"),
            Audit.deployment_id.label("deployment_id"),
            func.row_number()
            .over(partition_by=Audit.deployment_id, order_by=latest_order())
            .label("rank"),
            func.count().over(partition_by=Audit.deployment_id).label("audits"),
        )
        .join(Deployment, Deployment.id == Audit.deployment_id)
        .where(in_scope(scope, Deployment.organisation_id))
        .subquery("ranked")
    )


# --------------------------------------------------------------------------- fleet


@dataclass(frozen=True)
class FleetFilters:
    """What the fleet shows. Each filter None (or empty) shows all: ``organisation``,
    ``site`` (names), ``task`` (of the latest audit; an audit without one is classification),
    ``verdict``, ``rubric`` (rubric id of the latest audit), ``q`` (case-insensitive text in
    the organisation, site, station or model name); ``page`` from 1, ``page_size`` rows."""

    organisation: str | None = None
    site: str | None = None
    task: str | None = None
    verdict: str | None = None
    rubric: str | None = None
    q: str | None = None
    page: int = 1
    page_size: int = PAGE_SIZE

    def query(self, **override: Any) -> dict[str, str]:
        """The set filters as URL query parameters (page 1 and the default size omitted)."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = override.get(f.name, getattr(self, f.name))
            if value in (None, ""):
                continue
            if (f.name, value) in (("page", 1), ("page_size", PAGE_SIZE)):
                continue
            out[f.name] = str(value)
        return out


@dataclass(frozen=True)
class FleetRow:
    """One deployment and its latest audit (the audit fields None when never audited).
    ``audited_at``: the latest audit's ``signed_at`` (``finished_at`` when unsigned)."""

    deployment_id: int
    organisation: str
    site: str
    station: str
    model: str
    status: str
    audits: int
    audit_id: int | None
    report_id: str | None
    verdict: str | None
    audited_at: str | None
    task: str | None
    rubric_id: str | None
    rubric_version: str | None
    reaudit_days: int | None
    due: date | None


@dataclass(frozen=True)
class FleetOptions:
    """The values each filter can take within the scope (sorted)."""

    organisations: list[str]
    sites: list[str]
    tasks: list[str]
    verdicts: list[str]
    rubrics: list[str]


@dataclass(frozen=True)
class FleetView:
    """One page of the fleet: ``rows``; ``total`` deployments match the filters (of which
    ``by_status`` per status); ``pages`` pages of ``filters.page_size``."""

    rows: list[FleetRow]
    total: int
    by_status: dict[str, int]
    filters: FleetFilters
    options: FleetOptions
    today: date

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.filters.page_size))


def _clean(filters: FleetFilters) -> FleetFilters:
    def text(value: str | None) -> str | None:
        value = (value or "").strip()
        return value or None

    return FleetFilters(
        organisation=text(filters.organisation),
        site=text(filters.site),
        task=text(filters.task),
        verdict=text(filters.verdict),
        rubric=text(filters.rubric),
        q=text(filters.q),
        page=max(1, int(filters.page)),
        page_size=min(MAX_PAGE_SIZE, max(1, int(filters.page_size))),
    )


def _fleet_select(scope: Scope, filters: FleetFilters, policies: Mapping[str | None, int]) -> Any:
    """The filtered fleet as a subquery: deployment, names, latest audit, due day number."""
    ranked = ranked_audits(scope)
    latest = Audit
    default_days = policies.get(None, DEFAULT_REAUDIT_DAYS)
    specific = {r: d for r, d in policies.items() if r is not None}
    days: ColumnElement[Any]
    if specific:
        days = case(
            *((latest.rubric_id == rubric, literal(d)) for rubric, d in sorted(specific.items())),
            else_=literal(default_days),
        )
    else:
        days = literal(default_days)
    stamp = func.coalesce(latest.signed_at, latest.finished_at)
    task = func.coalesce(latest.task, DEFAULT_TASK)
    query: Select[Any] = (
        select(
            Deployment.id.label("deployment_id"),
            Organisation.name.label("organisation"),
            Site.name.label("site"),
            Station.name.label("station"),
            Deployment.model_name.label("model"),
            func.coalesce(ranked.c.audits, 0).label("audits"),
            latest.id.label("audit_id"),
            latest.report_id.label("report_id"),
            latest.verdict.label("verdict"),
            stamp.label("audited_at"),
            case((latest.id.is_(None), None), else_=task).label("task"),
            latest.rubric_id.label("rubric_id"),
            latest.rubric_version.label("rubric_version"),
            case((latest.id.is_(None), None), else_=days).label("reaudit_days"),
            (day_number(stamp) + days).label("due_day"),
        )
        .join(Organisation, Organisation.id == Deployment.organisation_id)
        .join(Site, Site.id == Deployment.site_id)
        .join(Station, Station.id == Deployment.station_id)
        .outerjoin(ranked, and_(ranked.c.deployment_id == Deployment.id, ranked.c.rank == 1))
        .outerjoin(latest, latest.id == ranked.c.audit_id)
        .where(in_scope(scope, Deployment.organisation_id))
    )
    if filters.organisation:
        query = query.where(Organisation.name == filters.organisation)
    if filters.site:
        query = query.where(Site.name == filters.site)
    if filters.task:
        query = query.where(latest.id.is_not(None), task == filters.task)
    if filters.verdict:
        query = query.where(latest.verdict == filters.verdict)
    if filters.rubric:
        query = query.where(latest.rubric_id == filters.rubric)
    if filters.q:
        needle = filters.q.lower()
        query = query.where(
            or_(
                *(
                    func.lower(column).contains(needle, autoescape=True)
                    for column in (
                        Organisation.name,
                        Site.name,
                        Station.name,
                        Deployment.model_name,
                    )
                )
            )
        )
    return query.subquery("fleet")


def _status_expression(fleet: Any, today: date) -> ColumnElement[Any]:
    """SQL rank of :func:`status_of` (0 never audited … 3 current)."""
    now = _days_since_epoch(today)
    return case(
        (fleet.c.due_day.is_(None), 0),
        (fleet.c.due_day < now, 1),
        (fleet.c.due_day <= now + DUE_SOON_DAYS, 2),
        else_=3,
    )


def _options(s: Session, scope: Scope) -> FleetOptions:
    ranked = ranked_audits(scope)
    orgs = s.scalars(
        select(Organisation.name)
        .where(in_scope(scope, Organisation.id))
        .where(
            Organisation.id.in_(
                select(Deployment.organisation_id).where(
                    in_scope(scope, Deployment.organisation_id)
                )
            )
        )
        .order_by(Organisation.name)
    ).all()
    sites = s.scalars(
        select(Site.name)
        .join(Deployment, Deployment.site_id == Site.id)
        .where(in_scope(scope, Deployment.organisation_id))
        .distinct()
        .order_by(Site.name)
    ).all()
    latest = (
        select(
            func.coalesce(Audit.task, DEFAULT_TASK).label("task"),
            Audit.verdict.label("verdict"),
            Audit.rubric_id.label("rubric"),
        )
        .join(ranked, and_(ranked.c.audit_id == Audit.id, ranked.c.rank == 1))
        .distinct()
    )
    tasks, verdicts, rubrics = set(), set(), set()
    for task, verdict, rubric in s.execute(latest):
        tasks.add(task)
        verdicts.add(verdict)
        if rubric:
            rubrics.add(rubric)
    known = [v for v in VERDICTS if v in verdicts] + sorted(verdicts - set(VERDICTS))
    return FleetOptions(list(orgs), list(sites), sorted(tasks), known, sorted(rubrics))


def fleet(s: Session, scope: Scope, filters: FleetFilters, *, today: date) -> FleetView:
    """The deployments in ``scope`` matching ``filters``, never-audited first, then overdue,
    due soon and current; within a status by due date, then organisation, site, station and
    model names. Four queries whatever the registry's size: policies, the status counts, the
    page, the filter options."""
    filters = _clean(filters)
    policies = load_policies(s)
    fleet_q = _fleet_select(scope, filters, policies)
    rank = _status_expression(fleet_q, today)
    grouped = select(rank.label("status"), func.count()).group_by(rank)
    counts: dict[int, int] = {int(k): int(n) for k, n in s.execute(grouped)}
    by_status = {status: int(counts.get(i, 0)) for i, status in enumerate(STATUSES)}
    total = sum(by_status.values())
    page = (
        select(fleet_q)
        .order_by(
            rank,
            fleet_q.c.due_day,
            fleet_q.c.organisation,
            fleet_q.c.site,
            fleet_q.c.station,
            fleet_q.c.model,
            fleet_q.c.deployment_id,
        )
        .limit(filters.page_size)
        .offset((filters.page - 1) * filters.page_size)
    )
    rows = []
    for r in s.execute(page).mappings():
        due = None if r["due_day"] is None else _EPOCH + timedelta(days=int(r["due_day"]))
        rows.append(
            FleetRow(
                deployment_id=r["deployment_id"],
                organisation=r["organisation"],
                site=r["site"],
                station=r["station"],
                model=r["model"],
                status=status_of(due, today),
                audits=int(r["audits"]),
                audit_id=r["audit_id"],
                report_id=r["report_id"],
                verdict=r["verdict"],
                audited_at=r["audited_at"],
                task=r["task"],
                rubric_id=r["rubric_id"],
                rubric_version=r["rubric_version"],
                reaudit_days=None if r["reaudit_days"] is None else int(r["reaudit_days"]),
                due=due,
            )
        )
    return FleetView(rows, total, by_status, filters, _options(s, scope), today)


# --------------------------------------------------------------------------- deployment


@dataclass(frozen=True)
class TimelineEntry:
    """One audit of a deployment, oldest first, with its comparison to the one before it
    (:func:`auditkit.registry.regression.consecutive`; None for the first).
    ``audited_at``: ``signed_at``, or ``finished_at`` when unsigned."""

    audit_id: int
    report_id: str
    run_id: str
    audited_at: str | None
    verdict: str
    model_version: str | None
    model_sha256: str
    rubric_id: str | None
    rubric_version: str | None
    task: str
    countersignatures: int
    regression: Regression | None


@dataclass(frozen=True)
class MetricPoint:
    """One audit's overall figure of a metric: its first criteria row of that metric with no
    parent and no slice (the row the regression test reads too)."""

    audit_id: int
    report_id: str
    audited_at: str | None
    model_version: str | None
    model_sha256: str
    criterion_id: str
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


@dataclass(frozen=True)
class MetricSeries:
    """A metric across the deployment's audits (oldest first), those that measured it."""

    metric: str
    points: list[MetricPoint]


@dataclass(frozen=True)
class DeploymentView:
    """A deployment, its audits over time and its metrics across them; ``status``, ``due``
    and ``reaudit_days`` from its latest audit, as in the fleet."""

    deployment_id: int
    organisation: str
    organisation_kind: str
    site: str
    station: str
    model: str
    today: date
    status: str
    due: date | None
    reaudit_days: int | None
    audits: list[TimelineEntry]
    metrics: list[MetricSeries]

    @property
    def latest(self) -> TimelineEntry | None:
        return self.audits[-1] if self.audits else None


def oldest_first() -> list[ColumnElement[Any]]:
    """ORDER BY terms listing a deployment's audits oldest first (the reverse of
    :func:`latest_order`)."""
    return [
        func.coalesce(Audit.signed_at, "").asc(),
        func.coalesce(Audit.finished_at, "").asc(),
        Audit.id.asc(),
    ]


def _is_overall(slc: Any) -> bool:
    return slc is None or slc == {}


def deployment(
    s: Session, scope: Scope, deployment_id: int, *, today: date
) -> DeploymentView | None:
    """The deployment ``deployment_id`` when it exists and ``scope`` allows its organisation,
    else None. Five queries whatever its number of audits: the deployment, its audits, their
    overall criteria rows, their countersignature counts, the policies."""
    head = s.execute(
        select(Deployment, Organisation, Site, Station)
        .join(Organisation, Organisation.id == Deployment.organisation_id)
        .join(Site, Site.id == Deployment.site_id)
        .join(Station, Station.id == Deployment.station_id)
        .where(Deployment.id == deployment_id, in_scope(scope, Deployment.organisation_id))
    ).first()
    if head is None:
        return None
    dep, org, site, station = head
    audits = s.execute(
        select(Audit, ModelVersion)
        .join(ModelVersion, ModelVersion.id == Audit.model_version_id)
        .where(Audit.deployment_id == dep.id)
        .order_by(*oldest_first())
    ).all()
    ids = select(Audit.id).where(Audit.deployment_id == dep.id).scalar_subquery()
    rows: dict[int, list[Criterion]] = {}
    for crit in s.scalars(
        select(Criterion)
        .where(Criterion.audit_id.in_(ids), Criterion.parent.is_(None))
        .order_by(Criterion.audit_id, Criterion.position)
    ):
        if _is_overall(crit.slice):
            rows.setdefault(crit.audit_id, []).append(crit)
    counter = dict(
        s.execute(
            select(Signature.audit_id, func.count())
            .where(Signature.audit_id.in_(ids), Signature.role == "countersignature")
            .group_by(Signature.audit_id)
        ).all()
    )
    criteria = [
        [
            {"metric": c.metric, "parent": c.parent, "slice": c.slice, "k": c.k, "n": c.n}
            for c in rows.get(audit.id, [])
        ]
        for audit, _version in audits
    ]
    flags = consecutive(
        [audit.verdict for audit, _v in audits], [overall_rates(c) for c in criteria]
    )
    timeline: list[TimelineEntry] = []
    series: dict[str, list[MetricPoint]] = {}
    for (audit, version), regression in zip(audits, flags, strict=True):
        stamp = audit.signed_at or audit.finished_at
        timeline.append(
            TimelineEntry(
                audit_id=audit.id,
                report_id=audit.report_id,
                run_id=audit.run_id,
                audited_at=stamp,
                verdict=audit.verdict,
                model_version=version.version,
                model_sha256=version.model_sha256,
                rubric_id=audit.rubric_id,
                rubric_version=audit.rubric_version,
                task=audit.task or DEFAULT_TASK,
                countersignatures=int(counter.get(audit.id, 0)),
                regression=regression,
            )
        )
        seen: set[str] = set()
        for c in rows.get(audit.id, []):
            if c.metric is None or c.metric in seen:
                continue
            seen.add(c.metric)
            series.setdefault(c.metric, []).append(
                MetricPoint(
                    audit_id=audit.id,
                    report_id=audit.report_id,
                    audited_at=stamp,
                    model_version=version.version,
                    model_sha256=version.model_sha256,
                    criterion_id=c.criterion_id,
                    statistic=c.statistic,
                    op=c.op,
                    threshold=c.threshold,
                    outcome=c.outcome,
                    value=c.value,
                    bound=c.bound,
                    low=c.low,
                    high=c.high,
                    k=c.k,
                    n=c.n,
                )
            )
    order = [m for m in KEY_METRICS if m in series] + [m for m in series if m not in KEY_METRICS]
    due = days = None
    if timeline:
        last = audits[-1][0]
        days = reaudit_days(load_policies(s), last.rubric_id)
        due = due_date(last.signed_at or last.finished_at, days)
    return DeploymentView(
        deployment_id=dep.id,
        organisation=org.name,
        organisation_kind=org.kind,
        site=site.name,
        station=station.name,
        model=dep.model_name,
        today=today,
        status=status_of(due, today),
        due=due,
        reaudit_days=days,
        audits=timeline,
        metrics=[MetricSeries(m, series[m]) for m in order],
    )


# --------------------------------------------------------------------------- audit


@dataclass(frozen=True)
class CriterionLine:
    """One row of the audit's criteria table, as recorded (see
    :class:`~auditkit.registry.models.Criterion`)."""

    position: int
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
class SignatureLine:
    """A signature of the report: the author's or a countersignature. The registry records a
    signature only after it verified (intact, chaining to a trust root of the submitting
    organisation or the registry, evidence re-derived): ``trust`` is "verified" and
    ``verified_at`` when the PDF that carried it first was submitted."""

    position: int
    role: str
    field: str
    signer: str | None
    signing_time: str | None
    timestamp: str | None
    development_key: bool
    pdf_sha256: str
    trust: str
    verified_at: str | None


@dataclass(frozen=True)
class ReportFileLine:
    """A PDF of the audit in the blob store: the original (``original``) or a countersigned
    copy; ``signatures``: how many it carries."""

    id: int
    pdf_sha256: str
    size: int
    signatures: int
    submitted_at: str
    original: bool


@dataclass(frozen=True)
class EvidenceFile:
    """An evidence file embedded in the signed PDF and its SHA-256 there."""

    name: str
    sha256: str


@dataclass(frozen=True)
class AuditView:
    """One audit: what it judged, with what, the verdict, every criteria row, the signatures,
    the PDFs and the evidence."""

    audit_id: int
    report_id: str
    run_id: str
    deployment_id: int
    organisation: str
    site: str
    station: str
    model: str
    model_version: str | None
    model_sha256: str
    started_at: str | None
    finished_at: str | None
    signed_at: str | None
    submitted_at: str
    rubric_id: str | None
    rubric_version: str | None
    rubric_sha256: str | None
    decision_rule: str | None
    verdict: str
    task: str
    energy_wh_per_1000: float | None
    energy_method: str | None
    pdf_sha256: str
    criteria: list[CriterionLine]
    signatures: list[SignatureLine]
    report_files: list[ReportFileLine]
    evidence: list[EvidenceFile]

    @property
    def countersignatures(self) -> list[SignatureLine]:
        return [sig for sig in self.signatures if sig.role != "author"]


def _audit_in_scope(s: Session, scope: Scope, audit_id: int) -> Any:
    return s.execute(
        select(Audit, Deployment, Organisation, Site, Station, ModelVersion)
        .join(Deployment, Deployment.id == Audit.deployment_id)
        .join(Organisation, Organisation.id == Deployment.organisation_id)
        .join(Site, Site.id == Deployment.site_id)
        .join(Station, Station.id == Deployment.station_id)
        .join(ModelVersion, ModelVersion.id == Audit.model_version_id)
        .where(Audit.id == audit_id, in_scope(scope, Deployment.organisation_id))
    ).first()


def audit(s: Session, scope: Scope, audit_id: int) -> AuditView | None:
    """The audit ``audit_id`` when it exists and ``scope`` allows its deployment's
    organisation, else None. Four queries."""
    found = _audit_in_scope(s, scope, audit_id)
    if found is None:
        return None
    a, dep, org, site, station, version = found
    criteria = [
        CriterionLine(
            position=c.position,
            criterion_id=c.criterion_id,
            parent=c.parent,
            severity=c.severity,
            metric=c.metric,
            statistic=c.statistic,
            op=c.op,
            threshold=c.threshold,
            outcome=c.outcome,
            value=c.value,
            bound=c.bound,
            low=c.low,
            high=c.high,
            k=c.k,
            n=c.n,
            slice=c.slice,
        )
        for c in s.scalars(
            select(Criterion).where(Criterion.audit_id == a.id).order_by(Criterion.position)
        )
    ]
    files = list(
        s.scalars(
            select(ReportFile)
            .where(ReportFile.audit_id == a.id)
            .order_by(ReportFile.submitted_at, ReportFile.id)
        )
    )
    submitted = {f.pdf_sha256: f.submitted_at for f in files}
    signatures = [
        SignatureLine(
            position=sig.position,
            role=sig.role,
            field=sig.field,
            signer=sig.signer,
            signing_time=sig.signing_time,
            timestamp=sig.timestamp,
            development_key=bool(sig.development_key),
            pdf_sha256=sig.pdf_sha256,
            trust="verified",
            verified_at=submitted.get(sig.pdf_sha256),
        )
        for sig in s.scalars(
            select(Signature).where(Signature.audit_id == a.id).order_by(Signature.position)
        )
    ]
    return AuditView(
        audit_id=a.id,
        report_id=a.report_id,
        run_id=a.run_id,
        deployment_id=dep.id,
        organisation=org.name,
        site=site.name,
        station=station.name,
        model=dep.model_name,
        model_version=version.version,
        model_sha256=version.model_sha256,
        started_at=a.started_at,
        finished_at=a.finished_at,
        signed_at=a.signed_at,
        submitted_at=a.submitted_at,
        rubric_id=a.rubric_id,
        rubric_version=a.rubric_version,
        rubric_sha256=a.rubric_sha256,
        decision_rule=a.decision_rule,
        verdict=a.verdict,
        task=a.task or DEFAULT_TASK,
        energy_wh_per_1000=a.energy_wh_per_1000,
        energy_method=a.energy_method,
        pdf_sha256=a.pdf_sha256,
        criteria=criteria,
        signatures=signatures,
        report_files=[
            ReportFileLine(
                id=f.id,
                pdf_sha256=f.pdf_sha256,
                size=f.size,
                signatures=f.signatures,
                submitted_at=f.submitted_at,
                original=f.pdf_sha256 == a.pdf_sha256,
            )
            for f in files
        ],
        evidence=[EvidenceFile(name, sha) for name, sha in sorted((a.evidence or {}).items())],
    )


def report_file(s: Session, scope: Scope, audit_id: int) -> ReportFileLine | None:
    """The audit's original signed PDF (its bytes: ``blobs.blob_path(location.blobs,
    line.pdf_sha256)``) when the audit exists and is in ``scope``, else None. A frozen copy
    of the :class:`~auditkit.registry.models.ReportFile` row (same field names), usable after
    the session closed."""
    row = s.execute(
        select(ReportFile, Audit.pdf_sha256)
        .join(Audit, Audit.id == ReportFile.audit_id)
        .join(Deployment, Deployment.id == Audit.deployment_id)
        .where(
            Audit.id == audit_id,
            ReportFile.pdf_sha256 == Audit.pdf_sha256,
            in_scope(scope, Deployment.organisation_id),
        )
    ).first()
    if row is None:
        return None
    f = row[0]
    return ReportFileLine(f.id, f.pdf_sha256, f.size, f.signatures, f.submitted_at, True)


# --------------------------------------------------------------------------- exports


def _plain(value: Any) -> Any:
    """A JSON value: dates as ISO text, dataclasses as objects, tuples as lists."""
    if isinstance(value, date):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def cell(value: Any) -> str:
    """A CSV cell: empty for None, ``true``/``false``, ``repr`` of a float (every digit
    stored, so the CSV holds the database's figure), ISO dates, JSON-like text otherwise."""
    import json

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(_plain(value), ensure_ascii=False, sort_keys=True)
    return str(value)


#: the figures of each metric a deployment's CSV row carries, as ``METRIC_FIGURE`` columns
METRIC_FIGURES = ("value", "low", "high", "k", "n", "outcome")
_TIMELINE_COLUMNS = [
    "audit_id",
    "report_id",
    "run_id",
    "audited_at",
    "verdict",
    "model_version",
    "model_sha256",
    "rubric_id",
    "rubric_version",
    "task",
    "countersignatures",
    "regression",
    "regression_reasons",
]


def _timeline_record(view: DeploymentView, entry: TimelineEntry) -> dict[str, Any]:
    record: dict[str, Any] = {c: getattr(entry, c) for c in _TIMELINE_COLUMNS[:11]}
    record["regression"] = None if entry.regression is None else entry.regression.flagged
    record["regression_reasons"] = (
        None if entry.regression is None else "; ".join(entry.regression.reasons)
    )
    for series in view.metrics:
        point = next((p for p in series.points if p.audit_id == entry.audit_id), None)
        for figure in METRIC_FIGURES:
            record[f"{series.metric}_{figure}"] = None if point is None else getattr(point, figure)
    return record


def _records(view: Any) -> list[dict[str, Any]]:
    """The flat records a view exports, one per CSV row (its JSON carries the same): the
    fleet page's deployments, a deployment's audits (with each metric's figures), an
    audit's criteria rows."""
    if isinstance(view, FleetView):
        return [_plain(r) for r in view.rows]
    if isinstance(view, DeploymentView):
        return [_timeline_record(view, e) for e in view.audits]
    if isinstance(view, AuditView):
        return [_plain(c) for c in view.criteria]
    raise TypeError(f"no export for {type(view).__name__}")


def _columns(view: Any) -> list[str]:
    if isinstance(view, FleetView):
        return [f.name for f in fields(FleetRow)]
    if isinstance(view, DeploymentView):
        return _TIMELINE_COLUMNS + [
            f"{series.metric}_{figure}" for series in view.metrics for figure in METRIC_FIGURES
        ]
    if isinstance(view, AuditView):
        return [f.name for f in fields(CriterionLine)]
    raise TypeError(f"no export for {type(view).__name__}")


def as_rows(view: Any) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the view's CSV export: the fleet's deployments (this page), a
    deployment's audits, an audit's criteria rows. Cells by :func:`cell`."""
    columns = _columns(view)
    return columns, [[cell(record[c]) for c in columns] for record in _records(view)]


def as_json(view: Any) -> dict[str, Any]:
    """The view as JSON (``?format=json`` and the API): a ``format`` tag, the view's own
    fields, and the same records as its CSV (:func:`as_rows`) under ``deployments`` (fleet),
    ``audits`` (deployment) or ``criteria`` (audit)."""
    if isinstance(view, FleetView):
        return {
            "format": "auditkit.registry.fleet/1",
            "today": view.today.isoformat(),
            "total": view.total,
            "page": view.filters.page,
            "page_size": view.filters.page_size,
            "pages": view.pages,
            "by_status": dict(view.by_status),
            "filters": _plain(view.filters),
            "options": _plain(view.options),
            "deployments": _records(view),
        }
    if isinstance(view, DeploymentView):
        head = {
            f.name: _plain(getattr(view, f.name))
            for f in fields(DeploymentView)
            if f.name not in ("audits", "metrics")
        }
        return {
            "format": "auditkit.registry.deployment/1",
            **head,
            "audits": _records(view),
            "regressions": {
                str(e.audit_id): None
                if e.regression is None
                else {"flagged": e.regression.flagged, **_plain(e.regression)}
                for e in view.audits
            },
            "metrics": _plain(view.metrics),
        }
    if isinstance(view, AuditView):
        head = {
            f.name: _plain(getattr(view, f.name)) for f in fields(AuditView) if f.name != "criteria"
        }
        return {"format": "auditkit.registry.audit/1", **head, "criteria": _records(view)}
    raise TypeError(f"no export for {type(view).__name__}")
