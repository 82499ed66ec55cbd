"""What every route needs: the services, the caller (whose writes spend
its project's tokens, see ``limits.WriteLimiter``), the body, the query."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import Request

from lbaas.api import access, limits, schemas
from lbaas.api.auth import TOKEN_HEADER, Context, NoAuth, TokenStore
from lbaas.api.keystone import KeystoneAuth
from lbaas.errors import BadRequest
from lbaas.services import Services

# The width of every project_id column.
MAX_PROJECT_ID = 255
RATE_COUNTED = "lbaas.write_counted"


@dataclasses.dataclass
class State:
    """The API's process state: the services behind it and who may call it."""

    services: Services
    auth: TokenStore | KeystoneAuth | NoAuth


def state(request: Request) -> State:
    return request.app.state.lbaas


def services(request: Request) -> Services:
    return state(request).services


def context(request: Request) -> Context:
    """The caller; a write of a non-admin also spends one of its project's tokens."""
    auth = state(request).auth
    if isinstance(auth, NoAuth):
        ctx = auth.authenticate(None, _project_header(request))
    elif isinstance(auth, KeystoneAuth):
        ctx = auth.authenticate(request.headers)
    else:
        ctx = auth.authenticate(request.headers.get(TOKEN_HEADER))
    request.scope[access.PROJECT_KEY] = ctx.project_id  # for the access log
    _limit_writes(request, ctx)
    return ctx


def _project_header(request: Request) -> str | None:
    project = request.headers.get("X-Project-Id")
    if project is not None and len(project) > MAX_PROJECT_ID:
        raise BadRequest(f"X-Project-Id is longer than {MAX_PROJECT_ID} characters.")
    return project


def _limit_writes(request: Request, ctx: Context) -> None:
    if request.method not in limits.WRITE_METHODS or ctx.is_admin:
        return
    # A write replayed after a lost deadlock (retry.RetryDeadlocks) shares
    # the scope of its first attempt and was counted then.
    if request.scope.get(RATE_COUNTED):
        return
    request.scope[RATE_COUNTED] = True
    limiter: limits.WriteLimiter = request.app.state.write_limiter
    limiter.take(ctx.project_id)


async def body(request: Request) -> Any:
    return schemas.decode(await request.body())


def params(request: Request) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        grouped.setdefault(key, []).append(value)
    return grouped


def base_url(request: Request) -> str:
    public = services(request).config.api.public_url
    return public.rstrip("/") if public else str(request.base_url).rstrip("/")


def page_url(request: Request) -> str:
    return base_url(request) + request.url.path
