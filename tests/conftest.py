"""Shared fixtures: real databases (one fresh database per run and backend),
an API server over real HTTP, and tokens for several projects.

PostgreSQL and MariaDB are started by ``scripts/ensure-services.sh`` (run by
``make test``); a fixture that cannot reach them fails, it never skips.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
import pytest

from lbaas import config as cfg
from lbaas import wire
from lbaas.controller.desired import desired_state
from lbaas.controller.provider import NoopProvider, Provider
from lbaas.keys import KeyManager
from lbaas.api.tokens import create as create_token
from lbaas.db.session import Database
from lbaas.service import api_server, api_state
from lbaas.testing.cluster import wait_lb
from lbaas.testing.databases import BACKENDS, TempDatabase
from lbaas.testing.polling import free_port

# The local key store's key in every test server (Fernet: urlsafe base64 of 32 bytes).
TEST_ENCRYPTION_KEY = "bGJhYXMtdGVzdHMtbG9jYWwta2V5LXN0b3JlLWtleSE="

__all__ = ["BACKENDS", "Api", "dump", "free_port", "start_api"]  # what test modules import from here


@pytest.fixture(scope="session")
def temp_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Factory: ``temp_database(backend)`` -> migrated TempDatabase."""
    made: list[TempDatabase] = []

    def make(backend: str, migrate: bool = True) -> TempDatabase:
        db = TempDatabase(backend, str(tmp_path_factory.mktemp("db")))
        made.append(db)
        if migrate:
            handle = Database(db.url)
            handle.upgrade()
            handle.dispose()
        return db

    yield make
    for db in made:
        db.drop()


class Api:
    """A running API server and an HTTP client with per-project tokens."""

    def __init__(self, url: str, tokens: dict[str, str], db: Database, backend: str,
                 key_manager: KeyManager | None = None, providers: Mapping[str, Provider] | None = None) -> None:
        self.url = url
        self.tokens = tokens
        self.db = db
        self.backend = backend
        self.keys = key_manager
        self.providers = providers or {}
        self.client = httpx.Client(base_url=url, timeout=30)

    def request(self, method: str, path: str, *, token: str = "admin", **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if token:
            headers.setdefault("X-Auth-Token", self.tokens.get(token, token))
        unversioned = path.startswith(("/v2", "/key-manager"))   # the Octavia API is under /v2
        return self.client.request(method, path if unversioned else "/v2" + path,
                                   headers=headers, **kwargs)

    def desired(self, lb_id: str) -> wire.DesiredState:
        """The desired state of ``lb_id`` as a server sends it to an agent."""
        assert self.keys is not None
        with self.db.reading() as session:
            return desired_state(session, lb_id, self.keys)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> httpx.Response:
        return self.request("POST", path, json=body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, json=body, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def wait_lb(self, lb_id: str, status: str = "ACTIVE", token: str = "admin", timeout: float = 20) -> dict:
        """Poll until the load balancer reaches ``status`` (DELETED: 404)."""
        return wait_lb(self.client, lb_id, status, timeout, headers={"X-Auth-Token": self.tokens[token]})

    @contextlib.contextmanager
    def changes_held(self, seconds: float = 2.0) -> Iterator[None]:
        """Changes dispatched in the block stay PENDING about ``seconds`` (the noop provider's
        delay): a test that needs a change still pending does not race its completion."""
        noop = self.providers["noop"]
        assert isinstance(noop, NoopProvider)
        before, noop.delay = noop.delay, seconds
        try:
            yield
        finally:
            noop.delay = before

    def create_lb(self, token: str = "admin", wait: bool = True, **fields: Any) -> dict:
        body = {"vip_subnet_id": "test-subnet", **fields}
        response = self.post("/lbaas/loadbalancers", {"loadbalancer": body}, token=token)
        assert response.status_code == 201, response.text
        lb = response.json()["loadbalancer"]
        return self.wait_lb(lb["id"], token=token) if wait else lb


def start_api(db_url: str, tmp_dir: str, backend: str, extra: dict | None = None,
              providers: Callable[[Database], dict[str, Provider]] | None = None) -> tuple[Api, Any]:
    """A server on ``db_url``; ``providers`` (given the server's database) replaces the noop one."""
    token_file = os.path.join(tmp_dir, "tokens.json")
    tokens = {"admin": create_token(token_file, "admin-project", "admin"),
              "alice": create_token(token_file, "project-a", "member"),
              "bob": create_token(token_file, "project-b", "member"),
              "reader": create_token(token_file, "project-a", "reader")}
    port = free_port()
    overrides = {"api": {"bind_port": port, "token_file": token_file},
                 "database": {"connection": db_url},
                 "controller": {"noop_delay": 0.02},
                 "certificates": {"encryption_key": TEST_ENCRYPTION_KEY},
                 "vip_subnets": {"test-subnet": "127.0.64.0/18", "tiny": "127.0.200.0/30",
                                 "test-subnet6": "fd00::/64"}}
    for section, values in (extra or {}).items():
        overrides.setdefault(section, {}).update(values)
    config = cfg.load(overrides=overrides)
    db = Database(db_url)
    state = api_state(config, db, providers(db) if providers else None)
    server = api_server(state)
    server.start()
    api = Api(f"http://127.0.0.1:{port}", tokens, state.services.db, backend, state.services.keys,
              state.services.providers)

    def stop() -> None:
        server.stop()
        for provider in state.services.providers.values():
            provider.stop()
        state.services.db.dispose()

    return api, stop


@pytest.fixture(scope="session", params=BACKENDS)
def api(request: pytest.FixtureRequest, temp_database: Any,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API over real HTTP, on SQLite, PostgreSQL and MariaDB in turn."""
    db = temp_database(request.param)
    server, stop = start_api(db.url, str(tmp_path_factory.mktemp("api")), request.param)
    yield server
    stop()


def dump(response: httpx.Response) -> str:
    try:
        return json.dumps(response.json(), indent=1)
    except ValueError:
        return response.text
