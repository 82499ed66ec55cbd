"""Keystone tokens, validated by keystonemiddleware's auth_token.

Why not wrap the app in the middleware: auth_token is WSGI and the API is
ASGI.  Running it as middleware would mean ASGI -> WSGI -> ASGI adapters
around every request (a thread hop and a copy of each body both ways).
Instead one ``AuthProtocol`` is built at start and only its request check
(``process_request``) runs, on a small request that carries nothing but the
token headers, from ``deps.context``, a synchronous dependency that
FastAPI already runs in its thread pool, so a validation that has to ask
Keystone never blocks the event loop.  A token auth_token has cached
(in-process, or memcached with ``memcached_servers``) costs a dictionary
lookup and the header copy, well under a millisecond (bench/bench_auth.py).

Contract of ``KeystoneAuth.authenticate``:

- a valid token -> ``Context`` from the headers auth_token sets
  (X-Project-Id, X-User-Id, X-Roles); the policy decides the rest;
- no, bad, expired or revoked token -> ``Unauthorized`` (401);
- Keystone unreachable while a token must be validated -> ``ServiceUnavailable``
  (503); tokens in the cache keep working until ``token_cache_time``;
- a token is never logged (auth_token logs only hashes of it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import webob.exc
from keystonemiddleware import auth_token
from keystonemiddleware.auth_token import _exceptions as ksm_exceptions
from keystonemiddleware.auth_token import _request

from lbaas.api import policy
from lbaas.api.auth import TOKEN_HEADER, Context
from lbaas.errors import APIError, Unauthorized

SERVICE_TOKEN_HEADER = "X-Service-Token"


class ServiceUnavailable(APIError):
    status = 503


def _never_called(_environ: Any, _start_response: Any) -> Any:
    raise AssertionError("only AuthProtocol.process_request is used")


def middleware_conf(options: Mapping[str, Any]) -> dict[str, str]:
    """``[keystone_authtoken]`` as auth_token's paste-style conf dict (empty options left out)."""
    conf = {key: str(value) for key, value in options.items() if value not in ("", None)}
    # A refusal is ours to answer, in the API's fault format.
    conf["delay_auth_decision"] = "False"
    conf["include_service_catalog"] = "False"
    return conf


class KeystoneAuth:
    """Validates X-Auth-Token (and X-Service-Token) against Keystone."""

    def __init__(self, options: Mapping[str, Any], rules: policy.Policy | None = None) -> None:
        self.policy = rules or policy.default()
        # auth_token warns that the service user's options (auth_url, username, ...)
        # are "not known" to it: its password plugin reads them, as in any paste setup.
        checker = logging.getLogger("keystonemiddleware._common.config")
        level = checker.level
        checker.setLevel(logging.ERROR)
        try:
            self._protocol = auth_token.AuthProtocol(_never_called, middleware_conf(options))
        finally:
            checker.setLevel(level)

    def authenticate(self, headers: Mapping[str, str]) -> Context:
        token = headers.get(TOKEN_HEADER)
        if not token:
            raise Unauthorized("Authentication required: send a token in X-Auth-Token.")
        sent = {TOKEN_HEADER: token}
        if headers.get(SERVICE_TOKEN_HEADER):
            sent[SERVICE_TOKEN_HEADER] = headers[SERVICE_TOKEN_HEADER]
        request = _request._AuthTokenRequest.blank("/", headers=sent)
        try:
            self._protocol.process_request(request)
        except webob.exc.HTTPUnauthorized:
            raise Unauthorized("The token is not valid or has expired.") from None
        except (webob.exc.HTTPException, ksm_exceptions.ServiceError):
            raise ServiceUnavailable("The identity service is unavailable; try again shortly.") from None
        return _context(request.headers, self.policy)


def _context(headers: Mapping[str, str], rules: policy.Policy) -> Context:
    project = headers.get("X-Project-Id")
    if not project:  # a domain- or system-scoped token names no project
        raise Unauthorized("The token is not scoped to a project.")
    roles = frozenset(role.strip() for role in headers.get("X-Roles", "").split(",") if role.strip())
    return Context(project, roles, headers.get("X-User-Id", ""), policy=rules)
