"""API errors, rendered in Octavia's fault format.

Every error a client can cause is an ``APIError`` with a 4xx status and a
message that names the problem; anything else is a bug and answers 500
without leaking internals.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import JSONResponse

LOG = logging.getLogger(__name__)


class APIError(Exception):
    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(APIError):
    status = 400


class Unauthorized(APIError):
    status = 401


class Forbidden(APIError):
    status = 403


class NotFound(APIError):
    status = 404

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident} not found.")


class Conflict(APIError):
    status = 409


class Immutable(Conflict):
    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident} is immutable and cannot be updated.")


class QuotaExceeded(Forbidden):
    def __init__(self, kind: str) -> None:
        super().__init__(f"Quota has been met for resources: {kind}")


def fault(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={
        "faultcode": "Client" if status < 500 else "Server",
        "faultstring": message,
        "debuginfo": None,
    })


async def handle_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return fault(exc.status, exc.message)


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    LOG.exception("unexpected error on %s %s", request.method, request.url.path)
    return fault(500, "An unexpected error occurred; the operator's log has the details.")
