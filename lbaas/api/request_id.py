"""The id of the API request being served: ``req-<uuid4>``.

``access.RequestLog`` makes one per request and binds it here for the
request's whole run (threads of the route included: they run in a copy of
its context).  Messages about the change carry it on (``wire.Converge``,
``wire.UpdateStatus``): their handlers bind it with ``bound``.  Fault bodies (``errors.fault``) and log lines
(``RequestIdFilter``) read it from here; outside a request there is none.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

_CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("lbaas_request_id", default=None)


def new() -> str:
    return f"req-{uuid.uuid4()}"


def current() -> str | None:
    """The id of the request being served here, or None outside one."""
    return _CURRENT.get()


def bind(request_id: str) -> contextvars.Token[str | None]:
    """Make ``request_id`` current; hand the token to ``unbind`` when the request ends."""
    return _CURRENT.set(request_id)


def unbind(token: contextvars.Token[str | None]) -> None:
    _CURRENT.reset(token)


@contextmanager
def bound(request_id: str | None) -> Iterator[None]:
    """``request_id`` current for the block: a handler of a message that carries the id of
    the request it is about (``wire.Converge``, ``wire.UpdateStatus``); None binds nothing."""
    if request_id is None:
        yield
        return
    token = bind(request_id)
    try:
        yield
    finally:
        unbind(token)


class RequestIdFilter(logging.Filter):
    """Gives every record a ``request_id`` attribute ("-" outside a request) for formats."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current() or "-"
        return True
