"""Who is calling (a ``Context``: project, user, roles) and what the policy lets it do.

Three ways to authenticate, one policy (``lbaas.api.policy``) whatever the way:

- ``token``: the local token file (``lbaas.api.tokens``: salted hashes, looked
  up by the token's id, re-read when the file changes);
- ``keystone``: Keystone tokens through keystonemiddleware
  (``lbaas.api.keystone``);
- ``noauth``: every caller is an administrator of X-Project-Id (development only).

A refused action raises ``Forbidden`` (403, ``policy.REFUSED``); what a
caller may not see is ``NotFound``, by scoping lookups with ``visible_project``.
No token is ever logged.
"""

from __future__ import annotations

import dataclasses
import os
import threading

from lbaas import constants as c
from lbaas.api import policy, tokens
from lbaas.errors import Forbidden, Unauthorized

TOKEN_HEADER = "X-Auth-Token"


@dataclasses.dataclass(frozen=True)
class Context:
    project_id: str
    roles: frozenset[str]
    user_id: str = ""
    noauth: bool = False  # oslo.policy's is_admin:True
    policy: policy.Policy = dataclasses.field(default_factory=policy.default, compare=False, repr=False)

    def allowed(self, rule: str, project_id: str | None = None) -> bool:
        """Whether ``rule`` lets this caller act on ``project_id``'s objects (default: its own)."""
        return self.policy.allowed(rule, self.project_id if project_id is None else project_id, self)

    def authorize(self, rule: str, project_id: str | None = None) -> None:
        if not self.allowed(rule, project_id):
            raise Forbidden(policy.REFUSED)

    @property
    def is_admin(self) -> bool:
        return self.allowed("context_is_admin")

    def visible_project(self, kind: str) -> str | None:
        """The project a lookup of ``kind`` is confined to; None (every project) with its get_all-global."""
        return None if self.allowed(f"{kind}:get_all-global") else self.project_id

    def writable_project(self) -> str | None:
        """The project a change is confined to: another project's object is NotFound, unless admin."""
        return None if self.is_admin else self.project_id


class TokenStore:
    """Tokens from the local token file; see ``lbaas.api.tokens``."""

    def __init__(self, path: str, rules: policy.Policy | None = None) -> None:
        self.path = path
        self.policy = rules or policy.default()
        self._lock = threading.Lock()
        self._mtime: int | None = None
        # id -> (entry, its caller), replaced whole so a reader never sees half a reload
        self._tokens: dict[str, tuple[tokens.Entry, Context]] = {}
        self._reload(strict=True)

    def authenticate(self, token: str | None) -> Context:
        if not token:
            raise Unauthorized("Authentication required: send a token in X-Auth-Token.")
        self._reload()
        parts = tokens.split(token)
        found = self._tokens.get(parts[0]) if parts else None
        if parts is None or found is None or not found[0].matches(parts[1]):
            raise Unauthorized("The token is not valid.")
        if found[0].expired(tokens.now()):
            raise Unauthorized("The token has expired.")
        return found[1]

    def reload(self) -> None:
        """Read the token file again now (SIGHUP), even when its mtime did not change."""
        self._mtime = None
        self._reload()

    def _reload(self, strict: bool = False) -> None:
        try:
            mtime: int | None = os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime == self._mtime:
            return
        with self._lock:
            try:
                entries = tokens.read(self.path)
            except tokens.TokenFileError:
                if strict:
                    raise
                # A bad edit of a running server's file keeps the tokens it had.
                tokens.LOG.warning("token file %s cannot be used; keeping the previous tokens",
                                   os.path.abspath(self.path))
                self._mtime = mtime
                return
            self._tokens = {ident: (entry, Context(entry.project_id, frozenset(entry.roles), f"token-{ident}",
                                                   policy=self.policy)) for ident, entry in entries.items()}
            self._mtime = mtime


class NoAuth:
    """Every caller is an admin; the project comes from X-Project-Id."""

    def __init__(self, rules: policy.Policy | None = None) -> None:
        self.policy = rules or policy.default()

    def authenticate(self, token: str | None, project_id: str | None = None) -> Context:
        return Context(project_id or "admin", frozenset({c.ROLE_ADMIN}), "noauth", noauth=True, policy=self.policy)


def create_token(path: str, project_id: str, role: str, expires_in: float | None = None) -> str:
    """Add a new random token for ``project_id`` with ``role`` to the token file; return it."""
    return tokens.create(path, project_id, role, expires_in)
