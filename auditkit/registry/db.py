"""Engines, sessions and the schema's version (Alembic, programmatically).

SQLite: foreign keys on, and every transaction starts with ``BEGIN IMMEDIATE`` so two writers
queue instead of interleaving (the event log is a chain: one append at a time). PostgreSQL:
the append takes a row lock on the current head event (:mod:`auditkit.registry.ingest`), and
``event.seq`` is a primary key, so a fork of the chain cannot be committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DatabaseError, SQLAlchemyError
from sqlalchemy.orm import Session

from auditkit.errors import InputError, first_line
from auditkit.registry.location import Location

MIGRATIONS = Path(__file__).parent / "migrations"


def engine_for(location: Location) -> Engine:
    """A SQLAlchemy engine for the registry (SQLite tuned as the module doc says)."""
    if location.url.startswith("sqlite"):
        engine = create_engine(location.url)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            dbapi_conn.execute("PRAGMA foreign_keys = ON")

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    try:
        return create_engine(location.url)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise InputError(f"--registry {location.display}: {first_line(exc, 200)}") from None


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration shipped with this auditkit."""
    from alembic.script import ScriptDirectory

    config = _alembic_config(None)
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(location: Location) -> tuple[str | None, str]:
    """Create the registry or bring it to the newest schema (Alembic ``upgrade head``); the
    SQLite file's folder and the blob folder are created. Returns (revision before, after)."""
    from alembic import command

    if location.url.startswith("sqlite"):
        Path(location.url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    location.blobs.mkdir(parents=True, exist_ok=True)
    engine = engine_for(location)
    try:
        before = current_revision(engine)
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "head")
        return before, head_revision()
    except DatabaseError as exc:  # unreachable server, not a database file, ...
        raise InputError(
            f"registry {location.display} cannot be opened: {first_line(exc.orig or exc, 200)}"
        ) from None
    finally:
        engine.dispose()


def open_registry(location: Location) -> Engine:
    """An engine on an existing registry at the newest schema; :class:`InputError` (exit 5)
    when it does not exist, cannot be reached or needs ``registry init``."""
    if location.url.startswith("sqlite"):
        path = Path(location.url.split(":///", 1)[1])
        if not path.exists():
            raise InputError(
                f"registry {location.display} does not exist: create it with "
                f"`auditkit registry init --registry {location.display}`"
            )
    engine = engine_for(location)
    try:
        revision = current_revision(engine)
    except DatabaseError as exc:  # unreachable server, not a database file, ...
        engine.dispose()
        raise InputError(
            f"registry {location.display} cannot be opened: {first_line(exc.orig or exc, 200)}"
        ) from None
    head = head_revision()
    if revision != head:
        engine.dispose()
        now = f"at schema {revision}" if revision else "not initialised"
        raise InputError(
            f"registry {location.display} is {now}, this auditkit needs {head}: run "
            f"`auditkit registry init --registry {location.display}`"
        )
    return engine


@contextmanager
def session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on any error."""
    with Session(engine) as s, s.begin():
        yield s
