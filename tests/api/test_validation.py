"""Bad input: a clear 4xx in Octavia's fault format, and nothing written."""

from __future__ import annotations

import pytest

from tests.conftest import Api, dump


def _fault(response, status: int, *words: str) -> None:
    assert response.status_code == status, dump(response)
    body = response.json()
    assert set(body) == {"faultcode", "faultstring", "debuginfo"}
    assert body["faultcode"] == "Client"
    for word in words:
        assert word in body["faultstring"], body["faultstring"]


@pytest.fixture(scope="module")
def lb(api: Api) -> dict:
    lb = api.post("/lbaas/loadbalancers", {"loadbalancer": {"name": "validation", "vip_subnet_id": "test-subnet",
        "listeners": [{"protocol": "HTTP", "protocol_port": 80,
                       "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                        "members": [{"address": "127.0.0.1", "protocol_port": 80}]}}]}}).json()
    return api.wait_lb(lb["loadbalancer"]["id"])


def _count(api: Api, path: str, key: str) -> int:
    return len(api.get(path).json()[key])


def _rows(api: Api) -> dict[str, int]:
    """Row counts straight from the database."""
    from sqlalchemy import func, select
    from lbaas.db import models as m
    with api.db.reading() as session:
        return {model.__tablename__: session.scalar(select(func.count()).select_from(model))
                for model in (m.LoadBalancer, m.Listener, m.Pool, m.Member, m.HealthMonitor, m.Tag)}


def test_malformed_json(api: Api) -> None:
    response = api.request("POST", "/lbaas/loadbalancers", content=b'{"loadbalancer": {',
                           headers={"Content-Type": "application/json"})
    _fault(response, 400, "not valid JSON")
    _fault(api.request("POST", "/lbaas/loadbalancers", content=b""), 400, "empty")
    _fault(api.post("/lbaas/loadbalancers", ["not", "an", "object"]), 400, "loadbalancer")
    _fault(api.post("/lbaas/loadbalancers", {"lb": {}}), 400, "loadbalancer")


@pytest.mark.parametrize("body, words", [
    ({"vip_subnet_id": "test-subnet", "colour": "red"}, ["Unknown attribute", "colour"]),
    ({"vip_subnet_id": "test-subnet", "admin_state_up": "yes"}, ["admin_state_up"]),
    ({"vip_subnet_id": "test-subnet", "name": 5}, ["name"]),
    ({"vip_address": "300.1.1.1"}, ["vip_address", "not an IP address"]),
    ({"name": "no vip"}, ["VIP is required"]),
    ({"vip_subnet_id": "no-such-subnet"}, ["Subnet no-such-subnet not found"]),
    ({"vip_subnet_id": "tiny", "vip_address": "10.0.0.1"}, ["not in subnet"]),
    ({"vip_subnet_id": "test-subnet", "listeners": [{"protocol": "HTTP", "protocol_port": 70000}]},
     ["protocol_port", "65535"]),
    ({"vip_subnet_id": "test-subnet", "listeners": [{"protocol": "GOPHER", "protocol_port": 70}]},
     ["protocol", "GOPHER"]),
    ({"vip_subnet_id": "test-subnet", "listeners": [{"protocol": "HTTP", "protocol_port": 80, "default_pool": {
        "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN"}}]}, ["pool protocol 'TCP' is invalid"]),
    ({"vip_subnet_id": "test-subnet", "listeners": [{"protocol": "HTTP", "protocol_port": 80, "default_pool": {
        "protocol": "HTTP", "lb_algorithm": "FASTEST"}}]}, ["lb_algorithm"]),
    ({"vip_subnet_id": "test-subnet", "listeners": [{"protocol": "TCP", "protocol_port": 80, "default_pool": {
        "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN",
        "members": [{"address": "127.0.0.1", "protocol_port": 80, "weight": 1000}]}}]}, ["weight"]),
    ({"vip_subnet_id": "test-subnet", "listeners": [{"protocol": "TCP", "protocol_port": 80, "default_pool": {
        "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN",
        "healthmonitor": {"type": "SMOKE", "delay": 1, "timeout": 1, "max_retries": 1}}}]}, ["type"]),
    ({"vip_subnet_id": "test-subnet", "listeners": [{"protocol": "TERMINATED_HTTPS", "protocol_port": 443}]},
     ["TERMINATED_HTTPS"]),
])
def test_bad_loadbalancer_bodies_write_nothing(api: Api, body: dict, words: list[str]) -> None:
    before = _count(api, "/lbaas/loadbalancers", "loadbalancers")
    _fault(api.post("/lbaas/loadbalancers", {"loadbalancer": body}), 400, *words)
    assert _count(api, "/lbaas/loadbalancers", "loadbalancers") == before


def test_duplicate_listener_port_in_one_graph_is_409(api: Api) -> None:
    before = _count(api, "/lbaas/loadbalancers", "loadbalancers")
    body = {"vip_subnet_id": "test-subnet", "listeners": [{"protocol": "HTTP", "protocol_port": 80},
                                                          {"protocol": "TCP", "protocol_port": 80}]}
    _fault(api.post("/lbaas/loadbalancers", {"loadbalancer": body}), 409, "port 80")
    assert _count(api, "/lbaas/loadbalancers", "loadbalancers") == before


def test_graph_failing_late_writes_nothing(api: Api, lb: dict) -> None:
    """Two equal members are found after rows were built: still nothing is written."""
    before = _rows(api)
    member = {"address": "127.0.0.1", "protocol_port": 1}
    body = {"vip_subnet_id": "test-subnet", "listeners": [
        {"protocol": "TCP", "protocol_port": 1234, "default_pool": {"protocol": "TCP", "lb_algorithm": "ROUND_ROBIN",
                                                                    "members": [member, member]}},
        {"protocol": "HTTP", "protocol_port": 80}]}
    _fault(api.post("/lbaas/loadbalancers", {"loadbalancer": body}), 409, "port 1")
    assert before == _rows(api)


@pytest.mark.parametrize("body, status, words", [
    ({"protocol": "HTTP", "protocol_port": 80}, 409, ["port 80"]),
    ({"protocol": "HTTP", "protocol_port": 0}, 400, ["protocol_port"]),
    ({"protocol": "HTTP", "protocol_port": "81"}, 400, ["protocol_port"]),
    ({"protocol": "HTTP", "protocol_port": 81, "connection_limit": -5}, 400, ["connection_limit"]),
    ({"protocol": "HTTP", "protocol_port": 81, "timeout_client_data": -1}, 400, ["timeout_client_data"]),
    ({"protocol": "HTTP", "protocol_port": 81, "default_pool_id": "nope"}, 400, ["Pool nope not found"]),
    ({"protocol": "HTTP"}, 400, ["Mandatory", "protocol_port"]),
])
def test_bad_listeners(api: Api, lb: dict, body: dict, status: int, words: list[str]) -> None:
    _fault(api.post("/lbaas/listeners", {"listener": {"loadbalancer_id": lb["id"], **body}}), status, *words)
    assert api.wait_lb(lb["id"])["provisioning_status"] == "ACTIVE"


@pytest.mark.parametrize("body, words", [
    ({"address": "127.0.0.1", "protocol_port": 80}, ["already uses"]),
    ({"address": "localhost", "protocol_port": 80}, ["address", "not an IP address"]),
    ({"address": "127.0.0.1", "protocol_port": 65536}, ["protocol_port"]),
    ({"address": "127.0.0.1", "protocol_port": 81, "weight": -1}, ["weight"]),
    ({"address": "127.0.0.1", "protocol_port": 81, "monitor_port": 0}, ["monitor_port"]),
    ({"address": "127.0.0.1", "protocol_port": 81, "backup": "no"}, ["backup"]),
])
def test_bad_members(api: Api, lb: dict, body: dict, words: list[str]) -> None:
    pool_id = lb["pools"][0]["id"]
    before = _count(api, f"/lbaas/pools/{pool_id}/members", "members")
    response = api.post(f"/lbaas/pools/{pool_id}/members", {"member": body})
    assert response.status_code in (400, 409)
    _fault(response, response.status_code, *words)
    api.wait_lb(lb["id"])
    assert _count(api, f"/lbaas/pools/{pool_id}/members", "members") == before


@pytest.mark.parametrize("body, words", [
    ({"type": "HTTP", "delay": 1, "timeout": 5, "max_retries": 3}, ["timeout must be less"]),
    ({"type": "HTTP", "delay": 5, "timeout": 1, "max_retries": 11}, ["max_retries"]),
    ({"type": "HTTP", "delay": 5, "timeout": 1, "max_retries": 3, "expected_codes": "2xx"}, ["expected_codes"]),
    ({"type": "HTTP", "delay": 5, "timeout": 1, "max_retries": 3, "url_path": "health"}, ["url_path"]),
    ({"type": "HTTP", "delay": 5, "timeout": 1, "max_retries": 3, "http_method": "FETCH"}, ["http_method"]),
    ({"type": "TCP", "delay": 5, "timeout": 1, "max_retries": 3, "url_path": "/"}, ["only apply to HTTP"]),
    ({"type": "HTTP", "delay": 5, "timeout": 1}, ["Mandatory", "max_retries"]),
])
def test_bad_healthmonitors(api: Api, lb: dict, body: dict, words: list[str]) -> None:
    _fault(api.post("/lbaas/healthmonitors", {"healthmonitor": {"pool_id": lb["pools"][0]["id"], **body}}),
           400, *words)


def test_bad_pools(api: Api, lb: dict) -> None:
    listener_id = lb["listeners"][0]["id"]
    _fault(api.post("/lbaas/pools", {"pool": {"listener_id": listener_id, "protocol": "HTTP",
                                              "lb_algorithm": "ROUND_ROBIN"}}), 409, "already has default pool")
    _fault(api.post("/lbaas/pools", {"pool": {"loadbalancer_id": lb["id"], "protocol": "HTTP",
                                              "lb_algorithm": "ROUND_ROBIN",
                                              "session_persistence": {"type": "APP_COOKIE"}}}), 400, "cookie_name")
    _fault(api.post("/lbaas/pools", {"pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}), 400,
           "listener_id")


def test_unknown_objects_and_paths(api: Api) -> None:
    _fault(api.get("/lbaas/loadbalancers/does-not-exist"), 404, "does-not-exist")
    _fault(api.put("/lbaas/pools/nope", {"pool": {"name": "x"}}), 404, "nope")
    _fault(api.delete("/lbaas/listeners/nope"), 404)
    _fault(api.get("/lbaas/nothing-here"), 404)


def test_bad_list_parameters(api: Api) -> None:
    _fault(api.get("/lbaas/loadbalancers?limit=abc"), 400, "limit")
    _fault(api.get("/lbaas/loadbalancers?sort=name:sideways"), 400, "sort direction")
    _fault(api.get("/lbaas/loadbalancers?sort_key=colour"), 400, "colour")
    _fault(api.get("/lbaas/loadbalancers?admin_state_up=maybe"), 400, "boolean")
    _fault(api.get("/lbaas/loadbalancers?marker=nope"), 400, "Marker")


@pytest.mark.parametrize("extra, words", [
    ({"insert_headers": {"X-Evil": "true"}}, ["insert_headers", "unsupported header"]),
    ({"insert_headers": {"X-Forwarded-For": "maybe"}}, ["insert_headers", "true or false"]),
    ({"protocol": "TCP", "insert_headers": {"X-Forwarded-For": "true"}}, ["insert_headers", "HTTP"]),
    ({"allowed_cidrs": ["fd00::/8"]}, ["allowed_cidrs", "IP version"]),
    ({"allowed_cidrs": ["10.0.0.0/8\nx"]}, ["allowed_cidrs", "CIDR"]),
    ({"allowed_cidrs": ["10.1.2.3/8"]}, ["allowed_cidrs", "host bits"]),
    ({"allowed_cidrs": ["10.0.0.0/8"] * 101}, ["allowed_cidrs"]),
])
def test_listener_extras_are_checked(api: Api, lb: dict, extra: dict, words: list[str]) -> None:
    before = _rows(api)
    body = {"loadbalancer_id": lb["id"], "protocol": "HTTP", "protocol_port": 8111, **extra}
    _fault(api.post("/lbaas/listeners", {"listener": body}), 400, *words)
    assert before == _rows(api)


def test_listener_extras_are_stored_canonical(api: Api, lb: dict) -> None:
    body = {"loadbalancer_id": lb["id"], "protocol": "HTTP", "protocol_port": 8112,
            "insert_headers": {"X-Forwarded-For": "True", "X-Forwarded-Port": "false"},
            "allowed_cidrs": ["10.0.0.0/8", "127.0.0.1/32"]}
    created = api.post("/lbaas/listeners", {"listener": body})
    assert created.status_code == 201, dump(created)
    listener = created.json()["listener"]
    assert listener["insert_headers"] == {"X-Forwarded-For": "true", "X-Forwarded-Port": "false"}
    assert listener["allowed_cidrs"] == ["10.0.0.0/8", "127.0.0.1/32"]
    api.wait_lb(lb["id"])
    changed = api.put(f"/lbaas/listeners/{listener['id']}", {"listener": {"insert_headers": {"X-Nope": "1"}}})
    _fault(changed, 400, "insert_headers")
    api.delete(f"/lbaas/listeners/{listener['id']}")
    api.wait_lb(lb["id"])


@pytest.mark.parametrize("address", ["::1%eth0", "::1%\nprogram x", "0.0.0.0", "::", "224.0.0.1",
                                     " 127.0.0.1", "127.0.0.1\n"])
def test_member_addresses_are_closed(api: Api, lb: dict, address: str) -> None:
    pool_id = lb["pools"][0]["id"]
    body = {"address": address, "protocol_port": 80}
    _fault(api.post(f"/lbaas/pools/{pool_id}/members", {"member": body}), 400, "address")
