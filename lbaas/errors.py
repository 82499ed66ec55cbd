"""Errors a client can cause, each with the HTTP status it answers.

Shared by every layer (the database lifecycle raises them too); the API
renders them in Octavia's fault format (``lbaas.api.errors``).
"""

from __future__ import annotations


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
