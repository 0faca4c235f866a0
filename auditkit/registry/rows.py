"""A recorded row's reference (``table:id``) and digest: SHA-256 of its canonical column
values (:func:`auditkit.registry.chain.row_digest`); an audit's digest also covers its
criteria rows, in position order, so an edited, added or deleted criterion changes it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from auditkit.registry.chain import row_digest
from auditkit.registry.models import Audit, Base, Criterion


def values(row: Base) -> dict[str, Any]:
    """Column name → value of one row. A column added after the first revision
    (``info["added"]``) is left out while it is null, so the digests of rows recorded before
    it existed do not change."""
    out = {}
    for c in row.__table__.columns:
        value = getattr(row, c.key)
        if value is None and c.info.get("added"):
            continue
        out[c.name] = value
    return out


def ref(row: Base) -> str:
    return f"{row.__tablename__}:{row.id}"  # type: ignore[attr-defined]


def digest_of(s: Session, row: Base) -> str:
    content = values(row)
    if isinstance(row, Audit):
        criteria = s.scalars(
            select(Criterion)
            .filter_by(audit_id=row.id)
            .order_by(Criterion.position)
            .execution_options(populate_existing=True)  # as stored, not as added
        )
        content["criteria"] = [values(c) for c in criteria]
    return row_digest(content)
