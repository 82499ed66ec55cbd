"""The database's clock.

Liveness (an agent's heartbeat against ``agent_down_time``) is judged by the
database's time, never a host's: hosts drift, the database is one.
``db_now_expression`` is that time as SQL (written into rows), and
``DatabaseClock`` reads it once a minute and extrapolates locally (compared
with rows in Python).  Both answer naive UTC.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session


def db_now_expression(dialect: str) -> ColumnElement[dt.datetime]:
    """The database's current UTC time, as SQL."""
    if dialect == "postgresql":
        return func.timezone("UTC", func.now())
    if dialect in ("mysql", "mariadb"):
        return func.utc_timestamp()
    return func.datetime("now")


class DatabaseClock:
    """The database's UTC clock, read once a minute and extrapolated
    locally, so that liveness never depends on a host's clock."""

    REFRESH = 60.0

    def __init__(self) -> None:
        self._offset: dt.timedelta | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def now(self, session: Session) -> dt.datetime:
        local = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        with self._lock:
            if self._offset is None or time.monotonic() - self._read_at > self.REFRESH:
                self._offset = self._read(session) - local
                self._read_at = time.monotonic()
            return local + self._offset

    @staticmethod
    def _read(session: Session) -> dt.datetime:
        remote = session.scalar(select(db_now_expression(session.get_bind().dialect.name)))
        if isinstance(remote, str):  # SQLite answers text
            remote = dt.datetime.fromisoformat(remote)
        assert remote is not None
        return remote.replace(tzinfo=None)


def naive_utc(moment: dt.datetime | str) -> dt.datetime:
    """A stored time as naive UTC: stored times carry no zone, and SQLite may hand an
    aggregate (``min(...)``) back as text."""
    return dt.datetime.fromisoformat(moment) if isinstance(moment, str) else moment.replace(tzinfo=None)
