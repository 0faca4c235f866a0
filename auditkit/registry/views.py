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
    Deployment,
    Organisation,
    Policy,
    Site,
    Station,
)
from auditkit.registry.regression import RATES
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


def _ranked_audits(scope: Scope) -> Any:
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
    ranked = _ranked_audits(scope)
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
    ranked = _ranked_audits(scope)
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


def _records(view: Any) -> list[dict[str, Any]]:
    """The flat records a view exports, one per CSV row (JSON carries them too)."""
    if isinstance(view, FleetView):
        return [_plain(r) for r in view.rows]
    raise TypeError(f"no export for {type(view).__name__}")


def _columns(view: Any) -> list[str]:
    if isinstance(view, FleetView):
        return [f.name for f in fields(FleetRow)]
    raise TypeError(f"no export for {type(view).__name__}")


def as_rows(view: Any) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the view's CSV export: the fleet's deployments (this page), a
    deployment's audits, an audit's criteria rows. Cells by :func:`cell`."""
    columns = _columns(view)
    return columns, [[cell(record[c]) for c in columns] for record in _records(view)]


def as_json(view: Any) -> dict[str, Any]:
    """The view as JSON (``?format=json`` and the API): a ``format`` tag, the view's own
    fields, and the same records as the CSV under the view's list key."""
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
    raise TypeError(f"no export for {type(view).__name__}")
