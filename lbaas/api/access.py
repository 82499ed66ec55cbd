"""Request IDs and the access log.

``RequestLog`` is pure ASGI middleware and the outermost layer of the API:

- every request gets an id ``req-<uuid4>``, kept in the request scope
  (``SCOPE_KEY``) and bound in ``request_id`` for the request's whole run,
  so log lines about it (``request_id.RequestIdFilter``) and its fault body
  (``errors.fault``'s ``debuginfo``) carry it;
- every response carries it in ``x-openstack-request-id``, the header
  OpenStack clients show as "Request-ID";
- when the response is sent, one line at INFO on the ``lbaas.access``
  logger: method, path (never the query string, never a header, so never a
  token), status, duration in ms, the caller's project when it was
  authenticated, and the request id;
- an exception no handler rendered still answers a 500 fault with the id,
  and is logged once.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.requests import Request

from lbaas.api import errors, limits, request_id as request_ids

ACCESS_LOG = logging.getLogger("lbaas.access")
HEADER = b"x-openstack-request-id"
SCOPE_KEY = "lbaas.request_id"
PROJECT_KEY = "lbaas.project_id"  # set by deps.context once the caller is known
MAX_LOGGED_PATH = 1024


class RequestLog:
    """ASGI middleware: a request id for every request, on its response and in one access-log line."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_ids.new()
        scope[SCOPE_KEY] = request_id
        token = request_ids.bind(request_id)
        started = time.monotonic()
        status = 500

        async def stamped(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (HEADER, request_id.encode())]
            await send(message)

        try:
            await self._serve(scope, receive, stamped)
        finally:
            _log_access(scope, status, (time.monotonic() - started) * 1000.0, request_id)
            request_ids.unbind(token)

    async def _serve(self, scope: dict, receive: Any, send: Any) -> None:
        responded = False

        async def tracked(message: dict) -> None:
            nonlocal responded
            responded = responded or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if responded:
                raise
            # Starlette renders unhandled errors outside every middleware, where the
            # response would lose its id: render the same fault here instead.
            response = await errors.handle_unexpected(Request(scope), exc)
            await response(scope, receive, send)


def _log_access(scope: dict, status: int, duration_ms: float, request_id: str) -> None:
    # The path is the client's: control characters would forge log lines.
    path = limits.CONTROL.sub("?", scope.get("path", ""))[:MAX_LOGGED_PATH]
    project = scope.get(PROJECT_KEY) or "-"
    ACCESS_LOG.info("%s %s %d %.1f ms project=%s %s", scope.get("method", "-"), path, status,
                    duration_ms, project, request_id)
