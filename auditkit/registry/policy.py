"""Re-audit policies: how long an audit stays current (``registry policy set|list``;
docs/registry.md, "Re-audit policies").

A deployment is due for re-audit :func:`due_date` = the UTC date its latest audit was signed
plus ``reaudit_days``, where ``reaudit_days`` is :func:`reaudit_days_for` the audit's rubric:
the policy row of that rubric id, else the registry's default row (rubric null), else
:data:`DEFAULT_REAUDIT_DAYS` (365: the yearly surveillance audit of ISO/IEC 17021-1
certification). Every ``policy set`` is an event ``policy_set``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from auditkit.errors import InputError
from auditkit.registry.models import Policy
from auditkit.registry.scope import LOCAL_OPERATOR, Principal

#: re-audit period when the registry has no policy at all
DEFAULT_REAUDIT_DAYS = 365
#: the longest period accepted (ten years): a longer one is a typing mistake
MAX_REAUDIT_DAYS = 3650


def signed_date(signed_at: str | date | datetime) -> date:
    """The UTC calendar date of a signing time: ISO 8601 text as the registry stores it
    (``2026-11-26T23:00:04Z``; an offset is converted to UTC), a datetime (naive: taken as
    UTC) or a date."""
    if isinstance(signed_at, datetime):
        moment = signed_at
    elif isinstance(signed_at, date):
        return signed_at
    else:
        try:
            moment = datetime.fromisoformat(signed_at.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"signing time {signed_at!r} is not an ISO 8601 time") from None
    if moment.tzinfo is not None:
        from datetime import UTC

        moment = moment.astimezone(UTC)
    return moment.date()


def due_date(signed_at: str | date | datetime, reaudit_days: int) -> date:
    """The date a re-audit is due: :func:`signed_date` of ``signed_at`` + ``reaudit_days``
    days. Overdue means ``today > due_date`` (the due day itself is still in time)."""
    return signed_date(signed_at) + timedelta(days=reaudit_days)


def reaudit_days_for(s: Session, rubric_id: str | None) -> int:
    """The re-audit period for audits judged by ``rubric_id``: its rubric's policy row, else
    the default row (rubric null), else :data:`DEFAULT_REAUDIT_DAYS`."""
    rows = {p.rubric_id: p.reaudit_days for p in s.scalars(select(Policy))}
    return periods(rows)(rubric_id)


def periods(rows: dict[str | None, int]) -> _Lookup:
    """A pure lookup over ``{rubric_id or None: days}`` (for a view that reads the policy
    table once and asks for many audits)."""
    return _Lookup(rows)


@dataclass(frozen=True)
class _Lookup:
    rows: dict[str | None, int]

    def __call__(self, rubric_id: str | None) -> int:
        if rubric_id is not None and rubric_id in self.rows:
            return self.rows[rubric_id]
        return self.rows.get(None, DEFAULT_REAUDIT_DAYS)


@dataclass(frozen=True)
class PolicyRow:
    rubric_id: str | None
    reaudit_days: int


def set_policy(
    s: Session, rubric_id: str | None, days: int, *, by: Principal = LOCAL_OPERATOR
) -> Policy:
    """Set the re-audit period of ``rubric_id`` (None: the registry's default) to ``days``
    (1 to :data:`MAX_REAUDIT_DAYS`). Event ``policy_set`` with the period before and after."""
    from auditkit.registry.accounts import actor
    from auditkit.registry.ingest import append_event

    if not 1 <= days <= MAX_REAUDIT_DAYS:
        raise InputError(f"--days {days}: between 1 and {MAX_REAUDIT_DAYS}")
    if rubric_id is not None and not rubric_id.strip():
        raise InputError("--rubric: give the rubric's id (e.g. industrial-aoi-acceptance)")
    query = select(Policy).where(
        Policy.rubric_id.is_(None) if rubric_id is None else Policy.rubric_id == rubric_id
    )
    row = s.scalars(query).first()
    before = row.reaudit_days if row is not None else None
    if row is None:
        row = Policy(rubric_id=rubric_id, reaudit_days=days)
        s.add(row)
    else:
        row.reaudit_days = days
    s.flush()
    append_event(
        s,
        "policy_set",
        rubric_id or "(default)",
        {"rubric_id": rubric_id, "reaudit_days": days, "before": before, "by": actor(by)},
    )
    return row


def list_policies(s: Session) -> list[PolicyRow]:
    """Every policy row, the default (rubric null) first, then by rubric id."""
    rows = [PolicyRow(p.rubric_id, p.reaudit_days) for p in s.scalars(select(Policy))]
    return sorted(rows, key=lambda r: (r.rubric_id is not None, r.rubric_id or ""))
