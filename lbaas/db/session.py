"""Engines, sessions and the schema check.

One engine per process and URL.  Every unit of work runs in
``transaction()``: commit on success, rollback on any exception, so a
failed request never leaves a partial write behind.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any, cast
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, CursorResult, Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext, Result, make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


class SchemaError(Exception):
    """The database schema is not at the newest migration."""


# SQLSTATE of a write on a server that is (again) a read-only standby.
READ_ONLY_TRANSACTION = "25006"


def make_engine(url: str, pool_size: int = 10, max_overflow: int = 20) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    if parsed.get_backend_name() == "postgresql":
        return _postgresql_engine(parsed, pool_size, max_overflow)
    # MariaDB/MySQL default to REPEATABLE READ, whose snapshot is taken at a
    # transaction's first read: reads after a lock (the scheduler's per-project
    # lock) would miss what the lock's previous holder committed.  READ
    # COMMITTED, PostgreSQL's default, gives both the same semantics.
    isolation = {"isolation_level": "READ COMMITTED"} if parsed.get_backend_name() in ("mysql", "mariadb") else {}
    return create_engine(url, pool_size=pool_size, max_overflow=max_overflow,
                         pool_pre_ping=True, pool_recycle=3600, **isolation)


def _postgresql_engine(url: URL, pool_size: int, max_overflow: int) -> Engine:
    """Several hosts (``?host=a:5432&host=b:5432``) are a primary and its standbys: libpq
    connects to the one that takes writes, and a connection that finds itself on a
    standby (a demoted primary) is treated as lost, so the whole pool is refreshed
    and the next checkout finds the new primary."""
    hosts = url.query.get("host", ())
    if not isinstance(hosts, str) and len(hosts) > 1 and "target_session_attrs" not in url.query:
        url = url.update_query_dict({"target_session_attrs": "read-write"})
    engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow,
                           pool_pre_ping=True, pool_recycle=3600)

    @event.listens_for(engine, "handle_error")
    def _on_standby(context: ExceptionContext) -> None:
        if getattr(context.original_exception, "sqlstate", None) == READ_ONLY_TRANSACTION:
            context.is_disconnect = True

    return engine


def affected(result: Result[Any]) -> int:
    """The number of rows an UPDATE or DELETE matched (its test-and-set outcome)."""
    # Session.execute is typed as returning a Result; for DML it is a CursorResult.
    return cast(CursorResult[Any], result).rowcount


def _sqlite_reader(writer: Engine) -> Engine:
    engine = create_engine(writer.url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def _sqlite_engine(url: str, path: str | None) -> Engine:
    if path and path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # WAL lets readers run beside the one writer; foreign keys make
        # ON DELETE CASCADE real.  isolation_level=None hands BEGIN to us.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Take the write lock up front: SQLite's row-lock stand-in, so that
        # test-and-set transactions serialise instead of failing late.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """A process's handle on the shared database."""

    def __init__(self, url: str, pool_size: int = 10, max_overflow: int = 20) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size, max_overflow)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite writers take the write lock at BEGIN; readers must not.
        self.read_engine = (_sqlite_reader(self.engine) if self.engine.dialect.name == "sqlite"
                            else self.engine)
        self.read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)
        # SQLite has one writer at a time.  This process's writers queue on a
        # lock rather than in SQLite's busy handler, which sleeps 1 to 100 ms
        # between tries and so halves the write rate under contention.
        self._write_lock = threading.RLock() if self.engine.dialect.name == "sqlite" else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed when the block ends, rolled back if it raises."""
        with self._write_lock or contextlib.nullcontext():
            session = self.sessions()
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only unit of work (never takes SQLite's write lock)."""
        session = self.read_sessions()
        try:
            yield session
        finally:
            session.close()  # ends the transaction; loaded objects stay readable

    def upgrade(self, revision: str = "head") -> None:
        with self.engine.begin() as conn:
            cfg = _alembic_config(self.url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def check_schema(self) -> None:
        """Raise SchemaError unless the schema is at the newest migration."""
        head = ScriptDirectory.from_config(_alembic_config(self.url)).get_current_head()
        current = self.current_revision()
        if current != head:
            raise SchemaError(
                f"database schema is at {current or 'nothing (empty database)'}, "
                f"this version needs {head}: run 'lbaas db upgrade --config-file ...' first")

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()


def _alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg
