"""The wire contract end to end: the desired state a server builds from a real database
passes the appliance's validation unchanged and renders to the expected haproxy.cfg; every
message's handler takes exactly the message's fields."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

from lbaas import constants as c
from lbaas import wire
from lbaas.agent.drivers.haproxy import device_report
from lbaas.agent.service import Agent
from lbaas.appliance.render import render
from lbaas.appliance.schema import validate
from lbaas.appliance.status import status_document
from lbaas.controller.desired import desired_state
from lbaas.controller.handlers import ControllerHandlers
from lbaas.db import models as m
from lbaas.db.session import Database
from lbaas.keys.local import LocalKeyManager, LocalStore
from tests.conftest import BACKENDS

VIP = "10.1.2.3"


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, temp_database: Any) -> Iterator[Database]:
    handle = Database(temp_database(request.param).url)
    yield handle
    handle.dispose()


# What the graph of _rows must render to (among other lines).
RENDERED = {
    f"bind {VIP}:80",
    "maxconn 1000",
    "acl allowed_cidr src 10.0.0.0/8 192.168.1.0/24",
    "tcp-request connection reject if !allowed_cidr",
    "option forwardfor",
    "http-request set-header X-Forwarded-Port %[dst_port]",
    "http-request set-header X-Forwarded-Proto http",
    "timeout client 40000ms",
    "tcp-request inspect-delay 100ms",
    "default_backend pool_pool-1",
    "balance leastconn",
    "timeout connect 4000ms",
    "timeout server 45000ms",
    "stick store-response res.cook(JSESSIONID)",
    "stick match req.cook(JSESSIONID)",
    "http-check send meth HEAD uri /health ver HTTP/1.1 hdr Host example.com",
    "http-check expect rstatus ^(20[01234])$",
    "timeout check 3s",
    "server member_member-1 10.0.0.11:8080 weight 5 check inter 5s fall 4 rise 2 addr 10.0.1.11 port 9090",
    "server member_member-2 10.0.0.12:8080 weight 1 backup disabled check inter 5s fall 4 rise 2",
}


def _rows(lb_id: str) -> list[Any]:
    """A load balancer that uses every field of the desired state, and a member on its way out."""
    common = {"project_id": "p1", "provisioning_status": c.ACTIVE, "operating_status": c.ONLINE}
    lb = m.LoadBalancer(id=lb_id, name="web", provider="env1", vip_address=VIP, revision=3, **common)
    pool = m.Pool(id="pool-1", name="app", load_balancer_id=lb_id, protocol="HTTP",
                  lb_algorithm="LEAST_CONNECTIONS",
                  session_persistence={"type": "APP_COOKIE", "cookie_name": "JSESSIONID"}, **common)
    listener = m.Listener(
        id="listener-1", name="http", load_balancer_id=lb_id, protocol="HTTP", protocol_port=80,
        vip_address=VIP, connection_limit=1000, default_pool_id=pool.id, timeout_client_data=40000,
        timeout_member_connect=4000, timeout_member_data=45000, timeout_tcp_inspect=100,
        insert_headers={"X-Forwarded-For": "true", "X-Forwarded-Port": "true", "X-Forwarded-Proto": "true"},
        allowed_cidrs=["10.0.0.0/8", "192.168.1.0/24"], **common)
    members = [
        m.Member(id="member-1", name="a", pool_id=pool.id, address="10.0.0.11", protocol_port=8080, weight=5,
                 backup=False, monitor_address="10.0.1.11", monitor_port=9090, **common),
        m.Member(id="member-2", name="b", pool_id=pool.id, address="10.0.0.12", protocol_port=8080, weight=1,
                 backup=True, **{**common, "admin_state_up": False}),
        m.Member(id="member-3", name="gone", pool_id=pool.id, address="10.0.0.13", protocol_port=8080,
                 **{**common, "provisioning_status": c.PENDING_DELETE}),
    ]
    monitor = m.HealthMonitor(
        id="monitor-1", name="hm", pool_id=pool.id, type="HTTP", delay=5, timeout=3, max_retries=2,
        max_retries_down=4, http_method="HEAD", url_path="/health", expected_codes="200-204",
        http_version=1.1, domain_name="example.com", **common)
    return [lb, pool, listener, *members, monitor]


def test_desired_state_round_trips_through_the_appliance(db: Database) -> None:
    with db.transaction() as session:
        for row in _rows("lb-1"):   # parents first: the models declare no relationships to order by
            session.add(row)
            session.flush()
    with db.reading() as session:
        desired = desired_state(session, "lb-1", LocalKeyManager(LocalStore(db, None)))

    assert not desired["deleted"]
    validated = validate(desired)

    # Every field the server sends is already in the appliance's normal form: nothing is lost.
    assert validated == {k: v for k, v in desired.items() if k not in ("provider", "deleted")}
    assert set(validated) == set(wire.LoadBalancer.__required_keys__)
    listener, pool = validated["listeners"][0], validated["pools"][0]
    assert set(listener) == set(wire.Listener.__required_keys__)
    assert set(pool) == set(wire.Pool.__required_keys__)
    assert [x["id"] for x in pool["members"]] == ["member-1", "member-2"]   # the member on its way out is left
    assert all(set(x) == set(wire.Member.__required_keys__) for x in pool["members"])
    assert set(pool["healthmonitor"] or {}) == set(wire.HealthMonitor.__required_keys__)
    assert set(pool["session_persistence"] or {}) == set(wire.SessionPersistence.__required_keys__)

    text = render(validated, "/run/lbaas/lb-1.sock", "/run/lbaas/lb-1.state")
    lines = {line.strip() for line in text.splitlines()}
    assert RENDERED <= lines, text


def test_a_deleted_load_balancer_is_a_deletion(db: Database) -> None:
    assert desired_state_of(db, "nothing-here") == wire.Deletion(id="nothing-here", revision=None, deleted=True)
    with db.transaction() as session:
        session.add(m.LoadBalancer(id="lb-2", provider="env1", vip_address=VIP, revision=7, project_id="p1",
                                   provisioning_status=c.PENDING_DELETE, operating_status=c.ONLINE))
    assert desired_state_of(db, "lb-2") == wire.Deletion(id="lb-2", revision=7, deleted=True)


def desired_state_of(db: Database, lb_id: str) -> wire.DesiredState:
    with db.reading() as session:
        return desired_state(session, lb_id, LocalKeyManager(LocalStore(db, None)))


def test_the_status_document_becomes_one_device_report() -> None:
    desired = validate({"id": "lb", "revision": 1, "vip_address": VIP,
                        "listeners": [{"id": "l1", "protocol": "HTTP", "protocol_port": 80,
                                       "default_pool_id": "p1"}],
                        "pools": [{"id": "p1", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                   "members": [{"id": "m1", "address": "10.0.0.1", "protocol_port": 80}]}]})
    rows = [{"pxname": "listener_l1", "svname": "FRONTEND", "status": "OPEN", "stot": "7"},
            {"pxname": "pool_p1", "svname": "member_m1", "status": "no check"}]

    report = device_report(status_document(desired, rows))

    assert report == wire.DeviceReport(
        operating=wire.OperatingReport(loadbalancer=c.ONLINE, listeners={"l1": c.ONLINE}, pools={"p1": c.ONLINE},
                                       members={"m1": c.NO_MONITOR}, healthmonitors={}),
        stats={**wire.zero_counters(), "total_connections": 7},
        listener_stats={"l1": {**wire.zero_counters(), "total_connections": 7}})


@pytest.mark.parametrize("message", [*wire.CONTROLLER_MESSAGES, wire.Converge], ids=lambda x: x.method)
def test_every_handler_takes_exactly_its_message_fields(message: type[wire.Message]) -> None:
    if message is wire.Converge:
        handler: Any = Agent.converge
    else:
        handler = ControllerHandlers.__new__(ControllerHandlers).handlers()[message.method]
    parameters = [p for p in inspect.signature(handler).parameters if p != "self"]
    assert parameters == [f.name for f in dataclasses.fields(message)]
