"""Temporary databases: one of its own per test run or benchmark, dropped afterwards.

PostgreSQL and MariaDB are reached as administrators at ``LBAAS_TEST_PG`` and
``LBAAS_TEST_MYSQL`` (``scripts/ensure-services.sh`` starts them).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

PG_ADMIN = os.environ.get("LBAAS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
MYSQL_ADMIN = os.environ.get("LBAAS_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306")
BACKENDS = ("sqlite", "postgresql", "mariadb")


class TempDatabase:
    """A database of its own for one test run, dropped afterwards (a SQLite one's
    files removed: a benchmark's may be over 100 MB)."""

    def __init__(self, backend: str, tmp_dir: str) -> None:
        self.backend = backend
        self.tmp_dir = tmp_dir
        self.name = f"lbaas_test_{uuid.uuid4().hex[:10]}"
        if backend == "sqlite":
            self.url = f"sqlite:///{tmp_dir}/{self.name}.sqlite"
        elif backend == "postgresql":
            self._admin("postgres", f'CREATE DATABASE "{self.name}"')
            self.url = f"{PG_ADMIN}/{self.name}"
        else:
            self._admin("mysql", f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4")
            self.url = f"{MYSQL_ADMIN}/{self.name}"

    def _admin(self, database: str, statement: str) -> None:
        from sqlalchemy import create_engine, text
        base = PG_ADMIN if self.backend == "postgresql" else MYSQL_ADMIN
        engine = create_engine(f"{base}/{database}", isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(statement))
        engine.dispose()

    def drop(self) -> None:
        if self.backend == "postgresql":
            self._admin("postgres", f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        elif self.backend == "mariadb":
            self._admin("mysql", f"DROP DATABASE IF EXISTS `{self.name}`")
        else:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(self.tmp_dir, f"{self.name}.sqlite{suffix}").unlink(missing_ok=True)
