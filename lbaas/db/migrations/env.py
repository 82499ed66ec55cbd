"""Alembic environment: runs on the connection lbaas hands it."""

from alembic import context
from sqlalchemy import Connection, create_engine

from lbaas.db.models import Base

config = context.config
connection = config.attributes.get("connection")


def _run(conn: Connection) -> None:
    context.configure(connection=conn, target_metadata=Base.metadata,
                      render_as_batch=conn.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None  # lbaas.db.session's Alembic configuration always names one
    with create_engine(url).connect() as conn:
        _run(conn)
        conn.commit()
