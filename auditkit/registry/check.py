"""``registry check``: is the registry what its event log says it recorded?

1. The chain: events numbered 1, 2, … without a gap; each event's ``prev_sha256`` is the hash
   of the one before (the first's is 64 zeros) and its ``sha256`` is
   :func:`~auditkit.registry.chain.event_hash` of its content — a changed, deleted or inserted
   event breaks it at that event.
2. The rows: every row an event created (``payload.rows``: ``table:id`` → digest) is still
   there with that digest (an audit's digest covers its criteria), and every row of the
   recorded tables was created by an event — a row edited, deleted or added by hand is named.
3. The files: every accepted PDF is in the blob folder with its SHA-256.

Removing the newest events leaves a shorter chain that is consistent in itself: compare the
head hash ``check`` prints with one kept elsewhere (``--head``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from auditkit.registry import blobs as blob_store
from auditkit.registry.chain import GENESIS, event_content, event_hash
from auditkit.registry.location import Location
from auditkit.registry.models import RECORDED, Base, Event, ReportFile
from auditkit.registry.rows import digest_of, ref


@dataclass(frozen=True)
class CheckResult:
    """``problems`` in the order found (the first names the first broken event or row);
    ``head``: the last event's hash (None for an empty log)."""

    events: int
    rows: int
    head: str | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _chain(events: list[Event]) -> list[str]:
    problems = []
    prev = GENESIS
    for expected, ev in enumerate(events, start=1):
        if ev.seq != expected:
            problems.append(
                f"event {expected} is missing (the log jumps to event {ev.seq}): "
                "an event was deleted"
            )
            break
        if ev.prev_sha256 != prev:
            problems.append(
                f"event {ev.seq} ({ev.kind}) does not follow event {ev.seq - 1}: "
                "an event before it was changed, deleted or inserted"
            )
            break
        content = event_content(ev.seq, ev.at, ev.kind, ev.subject, ev.payload)
        if event_hash(prev, content) != ev.sha256:
            problems.append(f"event {ev.seq} ({ev.kind}) was edited after it was recorded")
            break
        prev = ev.sha256
    return problems


def _rows(s: Session, events: list[Event]) -> tuple[int, list[str]]:
    present: dict[str, Base] = {}
    for model in RECORDED.values():
        for stored in s.scalars(select(model)):
            present[ref(stored)] = stored
    problems: list[str] = []
    vouched: set[str] = set()
    for ev in events:
        rows = ev.payload.get("rows") if isinstance(ev.payload, dict) else None
        for key, digest in (rows or {}).items():
            vouched.add(key)
            row = present.get(key)
            table, _, rid = key.partition(":")
            if row is None:
                problems.append(
                    f"{table} row {rid} (recorded by event {ev.seq}, {ev.kind}) was deleted"
                )
            elif digest_of(s, row) != digest:
                what = "or its criteria were" if table == "audit" else "was"
                problems.append(
                    f"{table} row {rid} (recorded by event {ev.seq}, {ev.kind}) {what} "
                    "edited after it was recorded"
                )
    for key in sorted(set(present) - vouched):
        table, _, rid = key.partition(":")
        problems.append(f"{table} row {rid} was not recorded by any event: added by hand")
    return len(present), problems


def _files(s: Session, location: Location) -> list[str]:
    problems = []
    for report in s.scalars(select(ReportFile).order_by(ReportFile.id)):
        path = blob_store.blob_path(location.blobs, report.pdf_sha256)
        found = blob_store.file_sha256(path)
        if found is None:
            problems.append(f"the PDF of report_file row {report.id} is missing: {path}")
        elif found != report.pdf_sha256:
            problems.append(f"the PDF of report_file row {report.id} was changed: {path}")
    return problems


def check(location: Location, head: str | None = None) -> CheckResult:
    """Check the registry at ``location`` (see module doc); ``head``: the head hash expected
    (from an earlier ``check``), whose event must still be in the log."""
    from auditkit.registry.db import open_registry, session

    engine = open_registry(location)
    try:
        with session(engine) as s:
            events = list(s.scalars(select(Event).order_by(Event.seq)))
            problems = _chain(events)
            if head is not None and head not in {ev.sha256 for ev in events}:
                problems.append(
                    f"the head {head[:16]}… given is not in the log: it, or events before "
                    "it, were removed or changed"
                )
            count, row_problems = _rows(s, events)
            problems += row_problems + _files(s, location)
            return CheckResult(
                events=len(events),
                rows=count,
                head=events[-1].sha256 if events else None,
                problems=problems,
            )
    finally:
        engine.dispose()
