"""What every route needs: the process state, the caller (whose writes
spend its project's tokens, see ``limits.WriteLimiter``), the body."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import Request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lbaas.api import limits, schemas
from lbaas.api.auth import TOKEN_HEADER, Context, NoAuth, TokenStore
from lbaas.errors import BadRequest, Conflict
from lbaas.config import Config, default_provider
from lbaas.controller.provider import Provider, Unsupported
from lbaas.db.session import Database
from lbaas.vip import Subnets

LOG = logging.getLogger(__name__)

# Unique constraints, as a client should read them.  Matched on the
# constraint's name (PostgreSQL, MariaDB) or its columns (SQLite).
CONSTRAINT_MESSAGES = {
    ("uq_listener_vip_port", "listener.vip_address, listener.protocol_port"):
        "Another listener already uses this VIP address and protocol port.",
    ("uq_member_address_port", "member.pool_id, member.address, member.protocol_port"):
        "Another member of this pool already uses this address and protocol port.",
    ("health_monitor_pool_id", "health_monitor.pool_id"): "This pool already has a health monitor.",
}


# The width of every project_id column.
MAX_PROJECT_ID = 255
RATE_COUNTED = "lbaas.write_counted"


@dataclasses.dataclass
class State:
    config: Config
    db: Database
    providers: dict[str, Provider]
    auth: TokenStore | NoAuth
    subnets: Subnets

    def provider(self, name: str | None) -> Provider:
        name = name or default_provider(self.config)
        provider = self.providers.get(name)
        if provider is None:
            raise BadRequest(f"Provider '{name}' is not enabled; enabled: {', '.join(sorted(self.providers))}.")
        return provider

    def validate(self, provider: Provider, kind: str, fields: dict[str, Any]) -> None:
        try:
            provider.validate(kind, fields)
        except Unsupported as exc:
            raise BadRequest(f"Provider '{provider.name}' does not support this: {exc}") from None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction whose unique-constraint failures answer 409."""
        try:
            with self.db.transaction() as session:
                yield session
        except IntegrityError as exc:
            raise Conflict(_integrity_message(exc)) from None

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self.db.reading() as session:
            yield session


def _integrity_message(exc: IntegrityError) -> str:
    text = str(exc.orig)
    for names, message in CONSTRAINT_MESSAGES.items():
        if any(name in text for name in names):
            return message
    if "UNIQUE" in text.upper() or "Duplicate" in text:
        return "The request conflicts with an existing object."
    LOG.warning("integrity error: %s", text)
    return "The request conflicts with the current state of related objects."


def state(request: Request) -> State:
    return request.app.state.lbaas


def context(request: Request) -> Context:
    """The caller; a write of a non-admin also spends one of its project's tokens."""
    auth = state(request).auth
    if isinstance(auth, NoAuth):
        ctx = auth.authenticate(None, _project_header(request))
    else:
        ctx = auth.authenticate(request.headers.get(TOKEN_HEADER))
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
    public = state(request).config.api.public_url
    return public.rstrip("/") if public else str(request.base_url).rstrip("/")


def page_url(request: Request) -> str:
    return base_url(request) + request.url.path
