"""Prometheus metrics of the server and the agent, scraped over real HTTP from a whole
control plane in one process (SQLite, the in-memory broker, noop devices), and from an
agent process of a cluster (PostgreSQL, RabbitMQ) through its own listener."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from lbaas import config as cfg
from lbaas import metrics, service
from lbaas.api.app import create_app
from lbaas.db.session import Database
from lbaas.metrics import Listener
from lbaas.testing.cluster import Cluster, wait_lb
from lbaas.testing.polling import free_port, wait_for
from tests.test_agents_api import Plane

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
ROUTE = "/lbaas/loadbalancers/{lb_id}"  # as its router declares it, under /v2 and /v2.0 alike


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels``; 0 when absent (a counter not yet touched)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over every sample whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls)


def scrape(client: httpx.Client, url: str = "/metrics") -> Samples:
    response = client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


@pytest.fixture
def plane(tmp_path: Any, request: pytest.FixtureRequest) -> Iterator[Plane]:
    plane = Plane(str(tmp_path), f"metrics-{request.node.name[-12:]}")
    yield plane
    plane.stop()


def test_requests_are_counted_by_route_template_never_by_id(plane: Plane) -> None:
    lb_id = plane.create("p1")
    before = scrape(plane.client)
    assert plane.client.get(f"/v2/lbaas/loadbalancers/{lb_id}").status_code == 200
    assert plane.client.get("/v2/lbaas/loadbalancers/not-an-id-at-all").status_code == 404
    assert plane.client.get("/no/such/route").status_code == 404
    text = plane.client.get("/metrics").text
    after = parse(text)
    ok = {"route": ROUTE, "method": "GET", "status": "200"}
    assert value(after, "lbaas_api_requests_total", **ok) == value(before, "lbaas_api_requests_total", **ok) + 1
    missing = {"route": ROUTE, "method": "GET", "status": "404"}
    assert value(after, "lbaas_api_requests_total", **missing) >= 1
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert value(after, "lbaas_api_requests_total", **unmatched) >= 1
    latency = {"route": ROUTE, "method": "GET"}
    assert value(after, "lbaas_api_request_duration_seconds_count", **latency) >= 2
    assert lb_id not in text and "not-an-id-at-all" not in text and "/no/such/route" not in text


def test_hostile_methods_do_not_make_new_series(plane: Plane) -> None:
    plane.client.request("PROPFIND", "/v2/lbaas/loadbalancers")
    samples = scrape(plane.client)
    methods = {dict(labels)["method"] for name, labels in samples if name == "lbaas_api_requests_total"}
    assert "PROPFIND" not in methods and "other" in methods


def test_pending_loadbalancer_then_converged_by_an_agent(plane: Plane) -> None:
    environment = plane.controller.environments[0]
    before = scrape(plane.client)
    lb_id = plane.create("p1")  # no agent yet: it waits, pending
    # Its age grows from 0 (the server's clock may stand a few ms behind the stamp it wrote).
    pending = wait_for(lambda: (s := scrape(plane.client)) and value(
        s, "lbaas_oldest_pending_change_age_seconds", environment=environment) > 0 and s, what="a pending age")
    assert value(pending, "lbaas_loadbalancers", environment=environment, provisioning_status="PENDING_CREATE",
                 operating_status="OFFLINE") == 1

    plane.start_agent("a1")
    plane.wait(lb_id)  # the sweep dispatches it again once the agent is alive
    after = wait_for(lambda: (s := scrape(plane.client)) and total(
        s, "lbaas_loadbalancers", environment=environment, provisioning_status="ACTIVE") == 1 and s)
    assert ("lbaas_oldest_pending_change_age_seconds", frozenset({("environment", environment)})) not in after
    assert value(after, "lbaas_agents", environment=environment, group="1", state="alive") == 1
    assert value(after, "lbaas_agents", environment=environment, group="1", state="dead") == 0
    assert value(after, "lbaas_agent_loadbalancers", environment=environment, group="1", host="a1") == 1
    assert ("lbaas_agent_capacity_score", frozenset({("environment", environment), ("group", "1"),
                                                      ("host", "a1")})) in after
    # The agent runs in this process: its converge shows on the server's /metrics too.
    converged = {"driver": "noop", "outcome": "converged"}
    assert (value(after, "lbaas_agent_converge_duration_seconds_count", **converged)
            > value(before, "lbaas_agent_converge_duration_seconds_count", **converged))
    assert value(after, "lbaas_redispatches_total") > value(before, "lbaas_redispatches_total")
    assert total(after, "lbaas_dispatches_total", environment=environment) >= 1
    assert value(after, "lbaas_status_updates_total", outcome="active") > value(
        before, "lbaas_status_updates_total", outcome="active")


def test_stale_status_reports_are_counted(plane: Plane) -> None:
    plane.start_agent("a1")
    lb_id = plane.create("p1")
    plane.wait(lb_id)
    before = scrape(plane.client)
    handlers = plane.controller.handlers
    assert handlers.update_status(lb_id, revision=0) == "stale"
    after = scrape(plane.client)
    assert value(after, "lbaas_status_updates_total", outcome="stale") == value(
        before, "lbaas_status_updates_total", outcome="stale") + 1


def test_metrics_can_be_turned_off(tmp_path: Any) -> None:
    config = cfg.load(overrides={"database": {"connection": f"sqlite:///{tmp_path}/db.sqlite"},
                                 "api": {"metrics_enabled": "false", "auth_strategy": "noauth"}})
    db = Database(config.database.connection)
    db.upgrade()
    with TestClient(create_app(service.api_state(config, db))) as client:
        assert client.get("/metrics").status_code == 404
        assert client.get("/").status_code == 200
    db.dispose()


def test_agent_listener_serves_the_process_registry_and_refuses_a_taken_port() -> None:
    port = free_port()
    listener = Listener("127.0.0.1", port)
    listener.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            names = {name for name, _ in scrape(client)}
        assert "lbaas_agent_device_errors_total" in names or "lbaas_dispatches_total" in names
        with pytest.raises(cfg.ConfigError, match=f"127.0.0.1:{port}"):
            Listener("127.0.0.1", port).start()
    finally:
        listener.stop()


def test_agent_process_serves_metrics_on_its_port(temp_database: Any, tmp_path: Any) -> None:
    db = temp_database("postgresql")
    cluster = Cluster(str(tmp_path), db.url)
    try:
        cluster.start_all(["s1"], [])
        port = free_port()
        cluster.start_agent("a1", metrics_port=port)
        cluster.wait_agents(["a1"])
        client = cluster.client()
        response = client.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {
            "vip_subnet_id": "cluster", "project_id": "p1"}})
        assert response.status_code == 201, response.text
        wait_lb(client, response.json()["loadbalancer"]["id"])
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as agent:
            samples = wait_for(lambda: (s := scrape(agent)) and value(
                s, "lbaas_agent_converge_duration_seconds_count", driver="noop", outcome="converged") >= 1 and s)
        assert not any(name.startswith("lbaas_api_") and value > 0 for (name, _), value in samples.items())
        server = scrape(client)
        assert value(server, "lbaas_agents", environment=cluster.environment, group="1", state="alive") == 1
    finally:
        cluster.stop()


def test_prometheus_listener_has_no_child_objects(plane: Plane) -> None:
    plane.start_agent("a1")
    lb_id = plane.create("p1")
    plane.wait(lb_id)

    def post(kind: str, body: dict) -> httpx.Response:
        collection = "l7policies" if kind == "l7policy" else f"{kind}s"
        response = plane.client.post(f"/v2/lbaas/{collection}", json={kind: body})
        if response.status_code == 201:
            plane.wait(lb_id)
        return response

    listener = post("listener", {"loadbalancer_id": lb_id, "protocol": "PROMETHEUS", "protocol_port": 9100})
    assert listener.status_code == 201, listener.text
    listener_id = listener.json()["listener"]["id"]
    refused = post("pool", {"listener_id": listener_id, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"})
    assert refused.status_code == 400 and "PROMETHEUS" in refused.json()["faultstring"], refused.text
    pool = post("pool", {"loadbalancer_id": lb_id, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"})
    assert pool.status_code == 201, pool.text
    refused = plane.client.put(f"/v2/lbaas/listeners/{listener_id}", json={"listener": {
        "default_pool_id": pool.json()["pool"]["id"]}})
    assert refused.status_code == 400, refused.text
    refused = post("l7policy", {"listener_id": listener_id, "action": "REJECT"})
    assert refused.status_code == 400, refused.text
    refused = post("listener", {"loadbalancer_id": lb_id, "protocol": "PROMETHEUS", "protocol_port": 9101,
                                "insert_headers": {"X-Forwarded-For": "true"}})
    assert refused.status_code == 400, refused.text


def test_database_connections_lost_are_counted(temp_database: Any) -> None:
    db = Database(temp_database("postgresql").url)
    try:
        metrics.watch_database(db)
        metrics.watch_database(db)   # twice: still counted once
        with db.reading() as session:
            pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        before = metrics.REGISTRY.get_sample_value("lbaas_database_reconnects_total")
        killer = Database(db.url)
        try:
            with killer.transaction() as session:   # the server drops our pooled connection
                session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            killer.dispose()
        with db.reading() as session:   # the pool's ping finds it broken and opens another
            assert session.execute(text("SELECT 1")).scalar_one() == 1
        assert metrics.REGISTRY.get_sample_value("lbaas_database_reconnects_total") == (before or 0) + 1
    finally:
        db.dispose()
