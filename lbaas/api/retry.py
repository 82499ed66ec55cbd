"""Writes that lose a deadlock are run again, a few times, before the client
hears of it.

MariaDB and PostgreSQL break a deadlock by rolling one transaction back.
Every write here happens in one transaction and hands its change on only
after the commit, so a rolled-back attempt left nothing behind and running
the request again is safe.  The request body is kept to replay it; the
response of a failed attempt is held back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy.exc import DBAPIError

LOG = logging.getLogger(__name__)

ATTEMPTS = 3
RETRY_HEADER = b"x-lbaas-retryable"
# MySQL/MariaDB: deadlock, lock wait timeout.  PostgreSQL: deadlock, serialization failure.
MYSQL_CODES = {1213, 1205}
PG_STATES = {"40P01", "40001"}


def is_retryable(exc: BaseException) -> bool:
    """True for a transaction the database rolled back to break a deadlock."""
    if not isinstance(exc, DBAPIError) or exc.orig is None:
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in PG_STATES:
        return True
    return bool(orig.args) and orig.args[0] in MYSQL_CODES


class RetryDeadlocks:
    """ASGI middleware: replay a write whose response carries RETRY_HEADER."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        for attempt in range(1, ATTEMPTS + 1):
            messages = await _attempt(self.app, scope, body)
            start = messages[0] if messages else {}
            retryable = any(name == RETRY_HEADER for name, _ in start.get("headers", []))
            if not retryable or attempt == ATTEMPTS:
                break
            LOG.info("%s %s lost a deadlock; running it again (attempt %d)", scope["method"],
                     scope["path"], attempt + 1)
        if start:
            start["headers"] = [(n, v) for n, v in start["headers"] if n != RETRY_HEADER]
        for message in messages:
            await send(message)


async def _read_body(receive: Any) -> bytes:
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _attempt(app: Any, scope: dict, body: bytes) -> list[dict]:
    sent: list[dict] = []
    delivered = False

    async def replay() -> dict:
        nonlocal delivered
        if delivered:  # only a listener for disconnects asks again: it is cancelled when done
            await asyncio.Event().wait()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def capture(message: dict) -> None:
        sent.append(message)

    await app(scope, replay, capture)
    return sent
