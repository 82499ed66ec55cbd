"""Errors rendered in Octavia's fault format.

Every error a client can cause is an ``APIError`` with a 4xx status and a
message that names the problem; anything else is a bug and answers 500
without leaking internals.  ``debuginfo`` holds the request's id
(``req-<uuid4>``, also in the ``x-openstack-request-id`` header) so that a
client's report can be matched with the log.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import JSONResponse

from lbaas.api import request_id
from lbaas.errors import APIError

LOG = logging.getLogger(__name__)


def fault(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={
        "faultcode": "Client" if status < 500 else "Server",
        "faultstring": message,
        "debuginfo": request_id.current(),
    })


async def handle_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return fault(exc.status, exc.message)


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    LOG.exception("unexpected error on %s %s", request.method, request.url.path)
    return fault(500, "An unexpected error occurred; the operator's log has the details.")
