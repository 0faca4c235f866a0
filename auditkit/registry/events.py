"""Writing the event log: append one event after the chain's head, and the digests of the rows
an event vouches for (:mod:`auditkit.registry.chain` defines the hashes). Every module that
changes the registry (ingest, accounts, trust roots, policies) logs through here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from auditkit.registry.chain import GENESIS, event_content, event_hash
from auditkit.registry.models import Base, Event
from auditkit.registry.rows import digest_of, ref


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def append_event(s: Session, kind: str, subject: str | None, payload: dict[str, Any]) -> Event:
    """Append one event to the chain, after the current head (locked against a concurrent
    append on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serialises writers)."""
    head = s.scalars(select(Event).order_by(Event.seq.desc()).limit(1).with_for_update()).first()
    seq = head.seq + 1 if head is not None else 1
    prev = head.sha256 if head is not None else GENESIS
    at = now_utc()
    content = event_content(seq, at, kind, subject, payload)
    ev = Event(
        seq=seq,
        at=at,
        kind=kind,
        subject=subject,
        payload=payload,
        prev_sha256=prev,
        sha256=event_hash(prev, content),
    )
    s.add(ev)
    s.flush()
    return ev


def digests_of(s: Session, rows: list[Base]) -> dict[str, str]:
    """``table:id`` → digest of each row as the database gives it back."""
    s.flush()
    for row in rows:
        s.refresh(row)
    return {ref(row): digest_of(s, row) for row in rows}
