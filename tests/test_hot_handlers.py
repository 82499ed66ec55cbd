"""The controller's hot handlers on every backend: the desired state read as Core rows is
the document the ORM graph gives, on a graph that uses TLS, L7 and several listeners and
pools with objects on their way out; and the statements each handler spends on the
common cases (a member add's status, a duplicate status, an unchanged statistics report,
a heartbeat), with what they write."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, select, update

from lbaas import constants as c
from lbaas import wire
from lbaas.controller.desired import desired_state, present
from lbaas.controller.handlers import ControllerHandlers
from lbaas.db import graph, lifecycle
from lbaas.db import models as m
from lbaas.scheduler import Scheduler
from lbaas.testing import certs
from tests.api.test_tls import CA, OTHER, SERVER, container, store
from tests.conftest import Api, dump

POOL = {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}


@contextmanager
def statements(api: Api) -> Iterator[list[str]]:
    """The verb (and tables) of each statement this thread sends while the block runs
    (the noop provider's threads are left out)."""
    sent: list[str] = []
    me = threading.get_ident()

    def count(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if threading.get_ident() == me and not sql.startswith("BEGIN"):   # SQLite's explicit BEGIN
            sent.append(sql.split(None, 1)[0].upper() + (" key store" if " key_" in sql else ""))

    engines = {api.db.engine, api.db.read_engine}   # two on SQLite (readers take no write lock)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)


def handlers(api: Api) -> ControllerHandlers:
    assert api.keys is not None
    return ControllerHandlers(api.db, Scheduler(30.0), api.keys)


def rich_graph(api: Api) -> str:
    """An ACTIVE load balancer using every part of the desired state: HTTP with L7 policies,
    TERMINATED_HTTPS with SNI and client authentication to a re-encrypting pool, TCP."""
    ca_ref = store(api, certs.bundle(CA))
    client = container(api, certs.make_cert(CA, ["lb.example.com"], client=True))
    member = {"address": "127.0.0.21", "protocol_port": 8080}
    body = {"vip_subnet_id": "test-subnet", "name": "rich", "listeners": [
        {"name": "web", "protocol": "HTTP", "protocol_port": 80, "connection_limit": 500,
         "insert_headers": {"X-Forwarded-For": "true"}, "allowed_cidrs": ["10.0.0.0/8"],
         "default_pool": {"name": "web", "protocol": "HTTP", "lb_algorithm": "LEAST_CONNECTIONS",
                          "session_persistence": {"type": "APP_COOKIE", "cookie_name": "SID"},
                          "members": [{"address": "127.0.0.11", "protocol_port": 8080, "weight": 5,
                                       "monitor_address": "127.0.0.12", "monitor_port": 9090},
                                      {"address": "127.0.0.13", "protocol_port": 8080, "backup": True,
                                       "admin_state_up": False},
                                      {"address": "127.0.0.14", "protocol_port": 8080, "name": "leaving"}],
                          "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2,
                                            "http_method": "HEAD", "url_path": "/health",
                                            "expected_codes": "200-204", "http_version": 1.1,
                                            "domain_name": "example.com"}},
         "l7policies": [
             {"name": "api", "action": "REDIRECT_TO_POOL", "position": 1,
              "redirect_pool": {"name": "api", **POOL, "members": [member]},
              "rules": [{"type": "PATH", "compare_type": "STARTS_WITH", "value": "/api"},
                        {"type": "COOKIE", "compare_type": "EQUAL_TO", "key": "beta", "value": "1",
                         "invert": True},
                        {"type": "HOST_NAME", "compare_type": "EQUAL_TO", "value": "leaving.example.com"}]},
             {"name": "leaving", "action": "REJECT", "position": 2,
              "rules": [{"type": "PATH", "compare_type": "STARTS_WITH", "value": "/admin"}]},
             {"name": "moved", "action": "REDIRECT_TO_URL", "redirect_url": "https://example.com/"}]},
        {"name": "tls", "protocol": "TERMINATED_HTTPS", "protocol_port": 443,
         "default_tls_container_ref": container(api, SERVER), "sni_container_refs": [container(api, OTHER)],
         "client_authentication": "OPTIONAL", "client_ca_tls_container_ref": ca_ref, "hsts_max_age": 300,
         "default_pool": {"name": "reencrypt", **POOL, "tls_enabled": True, "ca_tls_container_ref": ca_ref,
                          "tls_container_ref": client, "members": [member]}},
        {"name": "tcp", "protocol": "TCP", "protocol_port": 25,
         "default_pool": {"name": "leaving", "protocol": "TCP", "lb_algorithm": "SOURCE_IP",
                          "members": [member]}}]}
    response = api.post("/lbaas/loadbalancers", {"loadbalancer": body})
    assert response.status_code == 201, dump(response)
    return str(api.wait_lb(response.json()["loadbalancer"]["id"])["id"])


def leaving(api: Api, lb_id: str) -> list[str]:
    """Put the objects named ``leaving`` (and the HOST_NAME rule) on their way out, as a
    change in flight would; their ids."""
    tables = {model: lifecycle.table(model) for model in (m.Member, m.Pool, m.L7Policy, m.L7Rule)}
    with api.db.transaction() as session:
        ids = [ident for model, t in tables.items() for ident in session.scalars(select(t.c.id).where(
            t.c.value == "leaving.example.com" if model is m.L7Rule else t.c.name == "leaving"))]
        for t in tables.values():
            session.execute(update(t).where(t.c.id.in_(ids)).values(provisioning_status=c.PENDING_DELETE))
    assert len(ids) == 4
    return ids


def orm_document(api: Api, lb_id: str) -> wire.Present:
    """The document built from the ORM graph reader (the reader the desired state used before)."""
    assert api.keys is not None
    with api.db.reading() as session:
        lb = session.get_one(m.LoadBalancer, lb_id)
        g = graph.read(session, lb_id, live_only=True)
        return present(graph.LiveGraph(loadbalancer=lb, listeners=g.listeners, pools=g.pools, members=g.members,
                                       monitors=g.monitors, l7policies=g.l7policies, l7rules=g.l7rules), api.keys)


def test_the_desired_state_is_the_orm_graphs_document(api: Api) -> None:
    lb_id = rich_graph(api)
    gone = leaving(api, lb_id)
    assert api.keys is not None
    with statements(api) as sent:
        with api.db.reading() as session:
            document = desired_state(session, lb_id, api.keys)
    # The load balancer, its listeners, pools, members, monitors, policies and rules: one
    # statement each, whatever their number; the key store is read for the certificates.
    assert [s for s in sent if s != "SELECT key store"] == ["SELECT"] * 7

    assert json.dumps(document) == json.dumps(orm_document(api, lb_id))
    assert not any(ident in json.dumps(document) for ident in gone)
    assert isinstance(document, dict) and not document["deleted"]
    # Made in one request, so in one second: their order is by id (as the ORM reader's).
    tcp, web, tls = sorted(document["listeners"], key=lambda x: x["protocol_port"])
    assert sorted(p["name"] for p in document["pools"]) == ["api", "reencrypt", "web"]
    assert [(p["action"], len(p["rules"])) for p in web["l7policies"]] == [("REDIRECT_TO_POOL", 2),
                                                                           ("REDIRECT_TO_URL", 0)]
    assert (web["name"], tls["name"], tcp["name"]) == ("web", "tls", "tcp")
    assert tls["tls"] is not None and len(tls["tls"]["sni_certificates"]) == 1 and tls["tls"]["client_ca"]
    assert tcp["default_pool_id"] is None and "l7policies" not in tcp   # its pool is on its way out


def test_a_plain_graph_skips_the_levels_it_cannot_have(api: Api) -> None:
    response = api.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "test-subnet", "listeners": [
        {"protocol": "TCP", "protocol_port": 26}]}})
    assert response.status_code == 201, dump(response)
    lb_id = api.wait_lb(response.json()["loadbalancer"]["id"])["id"]
    with statements(api) as sent:
        document = api.desired(lb_id)
    assert sent == ["SELECT"] * 3   # the load balancer, listeners, pools: no pools, no L7-capable listener
    assert json.dumps(document) == json.dumps(orm_document(api, lb_id))


def member_added(api: Api) -> tuple[str, str, int]:
    """A load balancer whose new member awaits its status: (lb, member, revision)."""
    response = api.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "test-subnet", "listeners": [
        {"protocol": "HTTP", "protocol_port": 27, "default_pool": {**POOL, "members": [
            {"address": "127.0.0.31", "protocol_port": 80}]}}]}})
    assert response.status_code == 201, dump(response)
    lb = api.wait_lb(response.json()["loadbalancer"]["id"])
    with api.db.transaction() as session:
        row = lifecycle.begin_change(session, lb["id"], None)
        member = m.Member(project_id=row.project_id, pool_id=lb["pools"][0]["id"], address="127.0.0.32",
                          protocol_port=80, provisioning_status=c.PENDING_CREATE, operating_status=c.OFFLINE)
        session.add(member)
        session.flush()
        return row.id, member.id, row.revision


def test_a_member_adds_status_writes_the_member_and_the_load_balancer(api: Api) -> None:
    lb_id, member_id, revision = member_added(api)
    with statements(api) as sent:
        assert handlers(api).update_status(lb_id, revision) == "active"
    # Lock and read the load balancer, read its children, then one UPDATE each.
    assert sent == ["SELECT", "SELECT", "UPDATE", "UPDATE"]
    with api.db.reading() as session:
        member = session.get_one(m.Member, member_id)
        lb = session.get_one(m.LoadBalancer, lb_id)
        assert (member.provisioning_status, member.operating_status) == (c.ACTIVE, c.NO_MONITOR)
        assert (lb.provisioning_status, lb.operating_status, lb.pending_since) == (c.ACTIVE, c.ONLINE, None)

    with statements(api) as sent:   # the same report again, and an older one: nothing is written
        assert handlers(api).update_status(lb_id, revision) == "operating"
        assert handlers(api).update_status(lb_id, revision - 1) == "stale"
    assert sent == ["SELECT", "SELECT"]


def test_a_reported_status_is_written_once(api: Api) -> None:
    lb_id, member_id, revision = member_added(api)
    report = wire.OperatingReport(loadbalancer=c.DEGRADED, listeners={}, pools={}, healthmonitors={},
                                  members={member_id: c.ERROR, "another-lbs-member": c.ONLINE})
    assert handlers(api).update_status(lb_id, revision, operating=report) == "active"
    with statements(api) as sent:
        handlers(api).update_stats(lb_id, wire.zero_counters(), operating=report)
    assert sent == ["SELECT", "SELECT", "UPDATE"]   # the counters were never stored: only they change
    with api.db.reading() as session:
        assert session.get_one(m.Member, member_id).operating_status == c.ERROR
        assert session.get_one(m.LoadBalancer, lb_id).operating_status == c.DEGRADED


def test_statistics_that_change_nothing_write_nothing(api: Api) -> None:
    lb_id, member_id, revision = member_added(api)
    handlers(api).update_status(lb_id, revision)
    with api.db.reading() as session:
        listener = session.scalars(select(m.Listener.id).where(m.Listener.load_balancer_id == lb_id)).one()
        foreign = session.scalars(select(m.Listener.id).where(m.Listener.load_balancer_id != lb_id)).first()
    assert foreign is not None
    counters = wire.Counters(**{**wire.zero_counters(), "bytes_in": 10})
    report = wire.OperatingReport(loadbalancer=c.ONLINE, listeners={listener: c.ONLINE}, pools={},
                                  members={member_id: c.ONLINE}, healthmonitors={})
    with statements(api) as sent:
        handlers(api).update_stats(lb_id, counters,
                                   listener_stats={listener: counters, foreign: counters}, operating=report)
    assert sent == ["SELECT", "SELECT", "UPDATE", "UPDATE", "UPDATE"]   # counters, listener, member
    with statements(api) as sent:
        handlers(api).update_stats(lb_id, counters,
                                   listener_stats={listener: counters, foreign: counters}, operating=report)
    assert sent == ["SELECT", "SELECT"]
    with api.db.reading() as session:
        assert session.get_one(m.Listener, listener).stats == counters
        assert session.get_one(m.Listener, foreign).stats != counters   # another load balancer's: ignored
        assert session.get_one(m.LoadBalancer, lb_id).stats == counters


def test_a_heartbeat_is_one_statement_and_still_refuses_a_displaced_instance(api: Api) -> None:
    server = handlers(api)
    assert server.report_state("hot-host", "hot-env", start_flag=True, instance_id="first")["accepted"]
    with statements(api) as sent:
        assert server.report_state("hot-host", "hot-env", instance_id="first")["accepted"]
    assert sent == ["UPDATE"]
    with statements(api) as sent:   # its device went down: read under the lock, logged, written
        assert server.report_state("hot-host", "hot-env", instance_id="first",
                                   configurations={"device_state": c.DEVICE_STATE_DOWN})["accepted"]
    assert sent == ["UPDATE", "SELECT", "UPDATE"]
    refused = server.report_state("hot-host", "hot-env", instance_id="second")
    assert not refused["accepted"] and "first" in (refused.get("reason") or "")
    with api.db.reading() as session:
        agent = session.scalars(select(m.Agent).where(m.Agent.host == "hot-host")).one()
        assert (agent.instance_id, agent.device_up) == ("first", False)
