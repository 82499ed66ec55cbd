"""The ASGI application: every route under both /v2 and /v2.0, and with
``[certificates] backend = local`` the key store's Barbican subset under
/key-manager (``routes.secrets``, an application of its own); ``/healthcheck``
(``health``) and ``/dashboard`` (``routes.dashboard``) at the root.

From the outside in: ``access.RequestLog`` (request id, access log),
``limits.RequestGuard`` (body size, request target),
``retry.RetryDeadlocks`` (replays writes that lost a deadlock), then the
routes, whose caller is authenticated and write-limited in ``deps.context``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from lbaas import __version__, metrics
from lbaas.api import access, errors, health, limits, openapi, retry
from lbaas.api.deps import State
from lbaas.api.routes import (agents, dashboard, healthmonitors, l7policies, l7rules, listeners, loadbalancers,
                              members, misc, pools, quotas, secrets)
from lbaas.api.routes import catalogue
from lbaas.scheduler import Scheduler

ROUTERS = (loadbalancers.router, catalogue.router, listeners.router, pools.router, members.router,
           healthmonitors.router, l7policies.router, l7rules.router, quotas.router, misc.router,
           agents.router, dashboard.router)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    messages = {404: "The resource could not be found.", 405: "The method is not allowed for this resource."}
    return errors.fault(exc.status_code, messages.get(exc.status_code, str(exc.detail)))


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    if retry.is_retryable(exc):
        response = errors.fault(503, "The request lost a deadlock in the database; nothing was changed.")
        response.headers[retry.RETRY_HEADER.decode()] = "1"
        return response
    errors.LOG.warning("database unavailable on %s %s: %s", request.method, request.url.path,
                       str(exc).splitlines()[0])
    response = errors.fault(503, "The database is unavailable; nothing was changed. Try again shortly.")
    response.headers["Retry-After"] = "2"  # about a standby's promotion: clients should not hammer
    return response


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return errors.fault(400, f"Invalid input for {where}: {first.get('msg')}")


async def _too_many_writes(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, limits.TooManyWrites)
    response = errors.fault(429, "Too many writes from this project; retry after the time in Retry-After.")
    response.headers["Retry-After"] = limits.retry_after_header(exc.retry_after)
    return response


def _thread_pool(size: int) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan that sizes the pool of threads running the (synchronous) routes: each
    holds a database connection while it works, so the pool is sized to match
    ([database] pool_size); more threads would only queue on the GIL and the pool."""
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = size
        yield
    return lifespan


def create_app(state: State, scheduler: Scheduler | None = None) -> FastAPI:
    app = FastAPI(title="lbaas", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json",
                  lifespan=_thread_pool(state.services.config.api.threads))
    app.state.lbaas = state
    # The agents API judges liveness as the scheduler does.
    app.state.scheduler = scheduler or Scheduler(state.services.config.controller.agent_down_time)
    app.add_exception_handler(errors.APIError, errors.handle_api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for db_error in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(db_error, _database_unavailable)
    app.add_exception_handler(limits.TooManyWrites, _too_many_writes)
    app.add_exception_handler(Exception, errors.handle_unexpected)
    api = state.services.config.api
    app.state.write_limiter = limits.WriteLimiter(api.write_rate_limit, api.write_rate_burst)
    app.add_middleware(retry.RetryDeadlocks)
    # Added last, so outermost: no body is read or buffered before the guard.
    app.add_middleware(limits.RequestGuard, max_body=api.max_request_body_size)
    # Outside the guard, so that its refusals carry a request id and are logged too.
    app.add_middleware(access.RequestLog)
    app.include_router(misc.root)
    app.include_router(health.router)
    app.include_router(dashboard.page)
    for prefix in ("/v2", "/v2.0"):
        for router in ROUTERS:
            app.include_router(router, prefix=prefix, include_in_schema=prefix == "/v2")
    if state.services.config.certificates.backend == "local":
        secrets.mount(app)  # the local key store's Barbican subset, under /key-manager
    if api.metrics_enabled:  # outermost: it counts every answer, the guard's refusals too
        metrics.install(app, state.services.db, app.state.scheduler)
    openapi.install(app)
    return app
