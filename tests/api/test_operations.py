"""What an operator runs the API with: /healthcheck, request ids, the access log.

Real servers over HTTP; the failed database is a PostgreSQL database of the
test's own that is dropped under the running server, the failed broker a
port nothing listens on.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lbaas.api.request_id import RequestIdFilter
from tests.conftest import Api, free_port, start_api

REQUEST_ID = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
RABBIT = "rabbit://guest:guest@127.0.0.1:5672/"


@pytest.fixture(scope="module")
def api(temp_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """A server on SQLite whose broker is the shared RabbitMQ."""
    db = temp_database("sqlite")
    server, stop = start_api(db.url, str(tmp_path_factory.mktemp("ops")), "sqlite",
                             {"DEFAULT": {"transport_url": RABBIT}})
    yield server
    stop()


def _health(api: Api, token: str | None = None) -> httpx.Response:
    headers = {"X-Auth-Token": api.tokens[token]} if token else {}
    return api.client.get("/healthcheck", headers=headers)


def _request_id(response: httpx.Response) -> str:
    request_id = response.headers.get("x-openstack-request-id", "")
    assert REQUEST_ID.match(request_id), response.headers
    return request_id


def test_healthcheck_answers_ok_and_only_admins_see_the_checks(api: Api) -> None:
    anonymous = _health(api)
    assert (anonymous.status_code, anonymous.text) == (200, "OK\n")
    assert anonymous.headers["cache-control"] == "no-store"
    assert _health(api, "alice").text == "OK\n"
    assert _health(api, "admin").text == "OK\ndatabase: OK\nbroker: OK\n"
    assert api.client.head("/healthcheck").status_code == 200
    # Not part of the versioned API.
    assert api.client.get("/v2/healthcheck", headers={"X-Auth-Token": api.tokens["admin"]}).status_code == 404


def test_healthcheck_names_a_dead_broker_to_admins_only(temp_database: Any, tmp_path: Any) -> None:
    db = temp_database("sqlite")
    dead = f"rabbit://guest:broker-secret@127.0.0.1:{free_port()}/"
    api, stop = start_api(db.url, str(tmp_path), "sqlite", {"DEFAULT": {"transport_url": dead}})
    try:
        for token in (None, "alice", "reader"):
            refused = _health(api, token)
            assert (refused.status_code, refused.text) == (503, "Unavailable\n")
        admin = _health(api, "admin")
        assert admin.status_code == 503
        lines = admin.text.splitlines()
        assert lines[:2] == ["Unavailable", "database: OK"]
        assert lines[2].startswith("broker: cannot connect to the message broker"), lines
        assert "broker-secret" not in admin.text
    finally:
        stop()


def test_healthcheck_reports_a_dropped_database(temp_database: Any, tmp_path: Any,
                                                caplog: pytest.LogCaptureFixture) -> None:
    db = temp_database("postgresql")
    api, stop = start_api(db.url, str(tmp_path), "postgresql")   # the in-memory broker
    try:
        assert _health(api).status_code == 200
        db.drop()
        assert (_health(api).status_code, _health(api).text) == (503, "Unavailable\n")
        assert _health(api, "bob").text == "Unavailable\n"
        admin = _health(api, "admin").text.splitlines()
        assert admin[0] == "Unavailable" and admin[2] == "broker: OK", admin
        assert admin[1].startswith("database: ") and db.name in admin[1], admin
        # A request that fails on the database: its log line and its fault carry its id.
        caplog.handler.addFilter(RequestIdFilter())
        with caplog.at_level(logging.WARNING, logger="lbaas.api.errors"):
            listing = api.get("/lbaas/loadbalancers", token="alice")
        assert listing.status_code == 503
        request_id = _request_id(listing)
        assert listing.json()["debuginfo"] == request_id
        warnings = [r for r in caplog.records if r.name == "lbaas.api.errors"]
        assert warnings and all(getattr(r, "request_id") == request_id for r in warnings)
    finally:
        stop()


@pytest.mark.parametrize("method, path, token, status", [
    ("GET", "/v2/lbaas/loadbalancers", "alice", 200),
    ("GET", f"/v2/lbaas/loadbalancers/{uuid.uuid4()}", "alice", 404),
    ("GET", "/no/such/thing", "alice", 404),
    ("GET", "/v2/lbaas/loadbalancers?limit=many", "alice", 400),
    ("POST", "/v2/lbaas/loadbalancers", "alice", 400),
    ("GET", "/v2/lbaas/loadbalancers%01", "alice", 400),       # refused by the outermost guard
    ("GET", "/v2/lbaas/loadbalancers", None, 401),
    ("GET", "/v2/lbaas/loadbalancers", "not-a-token", 401),
])
def test_every_response_carries_a_request_id(api: Api, method: str, path: str, token: str | None,
                                             status: int) -> None:
    headers = {"X-Auth-Token": api.tokens.get(token, token)} if token else {}
    response = api.client.request(method, path, headers=headers, content=b"{}" if method == "POST" else None)
    assert response.status_code == status, response.text
    request_id = _request_id(response)
    if status >= 400:
        body = response.json()
        assert set(body) == {"faultcode", "faultstring", "debuginfo"} and body["debuginfo"] == request_id


def test_request_ids_are_unique(api: Api) -> None:
    ids = {_request_id(api.get("/lbaas/loadbalancers", token="alice")) for _ in range(5)}
    assert len(ids) == 5


def test_one_access_log_line_per_request_without_the_token(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    token = api.tokens["alice"]
    with caplog.at_level(logging.DEBUG):
        listed = api.get(f"/lbaas/loadbalancers?name={token}", token="alice")
        missing = api.get("/lbaas/loadbalancers", token="")
        forged = api.client.get("/v2/lbaas/x%0aINFO%20forged", headers={"X-Auth-Token": token})
    access = [r for r in caplog.records if r.name == "lbaas.access"]
    assert [r.levelno for r in access] == [logging.INFO] * 3
    first, second, third = (r.getMessage() for r in access)
    assert first.startswith("GET /v2/lbaas/loadbalancers 200 ") and " ms project=project-a " in first
    assert first.endswith(_request_id(listed))
    assert second.startswith("GET /v2/lbaas/loadbalancers 401 ") and "project=-" in second
    assert second.endswith(_request_id(missing))
    assert forged.status_code == 400 and "\n" not in third and "x?INFO forged" in third
    # What the server logged (the test's own HTTP client logs the URL it asked for).
    served = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("lbaas", "uvicorn")))
    assert token.split(".")[-1] not in served   # the token's secret part


def test_the_openstack_cli_shows_the_request_id_of_a_refusal(api: Api, tmp_path: Any) -> None:
    from tests.api.test_clients import Cli
    refused = Cli(tmp_path, api.url, api.tokens["reader"]).run("create", "--vip-subnet-id", "test-subnet")
    assert refused.returncode != 0
    assert re.search(r"\(HTTP 403\) \(Request-ID: req-[0-9a-f-]{36}\)", refused.stderr), refused.stderr


def test_an_unexpected_error_still_answers_a_fault_with_the_id(api: Api, tmp_path: Any,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    from lbaas.api.app import create_app
    from lbaas.config import load
    from lbaas.runtime import HttpServer
    from lbaas.service import api_state

    state = api_state(load(overrides={"database": {"connection": api.db.url}}), api.db)
    app = create_app(state)

    def broken() -> None:
        raise RuntimeError("internal detail")

    app.add_api_route("/broken", broken)
    server = HttpServer("API", app, "127.0.0.1", free_port(), log_level="warning", access_log=False)
    server.start()
    try:
        with caplog.at_level(logging.INFO):
            response = httpx.get(f"http://127.0.0.1:{server.port}/broken", timeout=10)
    finally:
        server.stop()
    assert response.status_code == 500
    request_id = _request_id(response)
    body = response.json()
    assert body["debuginfo"] == request_id and "internal detail" not in response.text
    logged = [r for r in caplog.records if r.name == "lbaas.api.errors"]
    assert len(logged) == 1 and logged[0].exc_info is not None   # once, with the traceback
    assert not [r for r in caplog.records if r.name.startswith("uvicorn") and r.levelno >= logging.ERROR]
    access = [r.getMessage() for r in caplog.records if r.name == "lbaas.access"]
    assert access == [f"GET /broken 500 {access[0].split()[3]} ms project=- {request_id}"]
