"""Who is calling: tokens, projects and roles.

``token`` strategy: a JSON file maps each token to a project and roles
(``lbaas token create`` writes it; the file is re-read when it changes).
Only a SHA-256 of each token is kept in memory and none is ever logged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import threading

from lbaas import constants as c
from lbaas.errors import Forbidden, Unauthorized

TOKEN_HEADER = "X-Auth-Token"


@dataclasses.dataclass(frozen=True)
class Context:
    project_id: str
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return c.ROLE_ADMIN in self.roles

    @property
    def can_write(self) -> bool:
        return bool(self.roles & {c.ROLE_ADMIN, c.ROLE_MEMBER})

    def require_write(self) -> None:
        if not self.can_write:
            raise Forbidden("Policy does not allow this request to be performed.")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("Policy does not allow this request to be performed.")

    def scope(self, project_id: str | None) -> str | None:
        """The project a query must be limited to (None: all, for admins)."""
        return None if self.is_admin else self.project_id


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Tokens from a JSON file: ``{token: {"project_id": .., "roles": [..]}}``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._contexts: dict[str, Context] = {}

    def authenticate(self, token: str | None) -> Context:
        if not token:
            raise Unauthorized("Authentication required: send a token in X-Auth-Token.")
        self._reload()
        context = self._contexts.get(_digest(token))
        if context is None:
            raise Unauthorized("The token is not valid.")
        return context

    def _reload(self) -> None:
        try:
            mtime = os.stat(self.path).st_mtime
        except FileNotFoundError:
            mtime = None
        if mtime == self._mtime:
            return
        with self._lock:
            entries = _read(self.path)
            self._contexts = {
                _digest(token): Context(str(entry["project_id"]), frozenset(entry.get("roles", [])))
                for token, entry in entries.items()
            }
            self._mtime = mtime


def _read(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {}


def create_token(path: str, project_id: str, role: str) -> str:
    """Add a new random token for ``project_id`` with ``role``; return it."""
    if role not in c.ROLES:
        raise ValueError(f"role must be one of {', '.join(c.ROLES)}")
    token = secrets.token_urlsafe(32)
    entries = _read(path)
    entries[token] = {"project_id": project_id, "roles": [role]}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        json.dump(entries, handle, indent=1)
    os.replace(tmp, path)
    return token


class NoAuth:
    """Every caller is an admin; the project comes from X-Project-Id."""

    def authenticate(self, token: str | None, project_id: str | None = None) -> Context:
        return Context(project_id or "admin", frozenset({c.ROLE_ADMIN}))
