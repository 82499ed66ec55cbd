"""``GET /healthcheck``: whether this server can serve, for load balancers and monitors.

Contract:

- unauthenticated, at the root (not under /v2), never cached, never a 500;
- 200 ``OK`` when the database answers a trivial SELECT and the message
  broker accepts a connection, each within ``constants.HEALTHCHECK_TIMEOUT``
  seconds (the in-memory broker of the all-in-one always does);
- 503 ``Unavailable`` otherwise;
- only a caller whose X-Auth-Token the policy judges an administrator
  (``context_is_admin``) is told which check failed and why, one line per
  check; everybody else gets the bare word.  No line holds a password.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy import text
from sqlalchemy.engine import make_url
from starlette.concurrency import run_in_threadpool

from lbaas import constants as c
from lbaas.api import deps
from lbaas.db.session import Database

router = APIRouter()  # mounted at /


@router.api_route("/healthcheck", methods=["GET", "HEAD"], include_in_schema=False)
async def healthcheck(request: Request) -> PlainTextResponse:
    services = deps.services(request)
    database, broker = await asyncio.gather(
        _probe(lambda: _select_one(services.db), services.db.url),
        _probe(lambda: _connect_broker(services.config.default.transport_url), None))
    healthy = database is None and broker is None
    lines = ["OK" if healthy else "Unavailable"]
    if await run_in_threadpool(_is_admin, request):
        lines += [f"database: {database or 'OK'}", f"broker: {broker or 'OK'}"]
    return PlainTextResponse("\n".join(lines) + "\n", status_code=200 if healthy else 503,
                             headers={"Cache-Control": "no-store"})


async def _probe(check: Callable[[], None], url: str | None) -> str | None:
    """None when ``check`` returns in time, else why not (one line, the URL's password hidden)."""
    try:
        await asyncio.wait_for(asyncio.to_thread(check), c.HEALTHCHECK_TIMEOUT)
    except asyncio.TimeoutError:
        return f"no answer within {c.HEALTHCHECK_TIMEOUT} s"
    except Exception as exc:  # whatever the driver raises, the answer is 503, never 500
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__]
        password = make_url(url).password if url else None
        return reason[0].replace(str(password), "***") if password else reason[0]
    return None


def _select_one(db: Database) -> None:
    with db.read_engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _connect_broker(transport_url: str) -> None:
    # The start-up check is the cheap one wanted here: open a connection, close it.
    from lbaas.service import check_broker  # lbaas.service builds this app: imported late
    check_broker(transport_url)


def _is_admin(request: Request) -> bool:
    """Whether the caller authenticates as an administrator; any failure means no."""
    try:
        return deps.context(request).is_admin
    except Exception:  # no token, a bad one, an identity service away: no details
        return False
