"""Limits every caller meets before any work is done for it.

``RequestGuard`` is pure ASGI middleware and the outermost layer of the
application, ahead of authentication and of anything that buffers a body:

- a ``Content-Length`` above ``max_body`` answers 413 at once, without a
  byte of the body read, and closes the connection (a client that claims
  2 GiB costs nothing, token or no token);
- a body without a length (chunked) is counted as it streams and cut off
  with 413 as soon as it passes ``max_body``;
- a path or query string with a control character, or a query string that
  is not UTF-8 once percent-decoded, answers 400 (databases refuse NUL and
  lone surrogates with errors that would otherwise surface as 500s).

``WriteLimiter`` is a token bucket per project for writes (POST, PUT,
DELETE): ``rate`` requests per second, ``burst`` at once.  The buckets live
in this server process; several servers each allow the rate.  Admins and
reads are never limited.  A refused write answers 429 with Retry-After.

Every refusal is in Octavia's fault format and writes nothing.
"""

from __future__ import annotations

import math
import re
import threading
import time
from typing import Any
from urllib.parse import parse_qsl

from lbaas.api import errors

WRITE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
# C0, DEL and C1 controls: never part of a name, an id or a filter value.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Idle buckets are forgotten once this many projects have one.
MAX_BUCKETS = 10_000


class BodyTooLarge(Exception):
    """Raised from ``receive`` when a streamed body passes the limit."""


class RequestGuard:
    """ASGI middleware: refuse oversized bodies and malformed request targets."""

    def __init__(self, app: Any, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = bad_target(scope["path"], scope.get("query_string", b""))
        if problem:
            await _refuse(scope, receive, send, 400, problem)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await _refuse(scope, receive, send, 413, self._too_large())
            return
        await self._guarded(scope, receive, send)

    async def _guarded(self, scope: dict, receive: Any, send: Any) -> None:
        received = 0
        started = False

        async def counted() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise BodyTooLarge()
            return message

        async def tracked(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if started:  # nothing reads a body after answering; never expected
                raise
            await _refuse(scope, receive, send, 413, self._too_large())

    def _too_large(self) -> str:
        return f"The request body is larger than the limit of {self.max_body} bytes."


def bad_target(path: str, query: bytes) -> str | None:
    """Why a request's path or query string is refused, or None."""
    if CONTROL.search(path):
        return "The request path contains a control character."
    try:
        pairs = parse_qsl(query.decode("utf-8"), keep_blank_values=True, encoding="utf-8",
                          errors="strict")
    except UnicodeDecodeError:
        return "The query string is not valid UTF-8."
    for key, value in pairs:
        if CONTROL.search(key) or CONTROL.search(value):
            name = CONTROL.sub("?", key)
            return f"Invalid value for query parameter {name!r}: control characters are not allowed."
    return None


def _content_length(scope: dict) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP server itself refuses such a request
    return None


async def _refuse(scope: dict, receive: Any, send: Any, status: int, message: str) -> None:
    response = errors.fault(status, message)
    if status == 413:
        # The unread body is still on the wire: the connection cannot carry another request.
        response.headers["Connection"] = "close"
    await response(scope, receive, send)


class TooManyWrites(Exception):
    """A project's bucket is empty; ``retry_after`` is when the next token comes."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class WriteLimiter:
    """A token bucket per project: ``rate`` tokens a second, ``burst`` at most.

    ``rate`` <= 0 disables the limiter.  Thread-safe: routes run in a pool.
    """

    def __init__(self, rate: float, burst: int, clock: Any = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # project -> (tokens, when)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, project_id: str) -> None:
        """Spend one token of ``project_id``; TooManyWrites when there is none."""
        if not self.enabled:
            return
        with self._lock:
            now = self._clock()
            tokens, when = self._buckets.get(project_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - when) * self.rate)
            if tokens < 1.0:
                self._buckets[project_id] = (tokens, now)
                raise TooManyWrites((1.0 - tokens) / self.rate)
            self._buckets[project_id] = (tokens - 1.0, now)
            if len(self._buckets) > MAX_BUCKETS:
                self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket.
        full_after = self.burst / self.rate
        for project, (_, when) in list(self._buckets.items()):
            if now - when >= full_after:
                del self._buckets[project]


def retry_after_header(seconds: float) -> str:
    """Retry-After is whole seconds; round up so that a retry then succeeds."""
    return str(max(1, math.ceil(seconds)))
