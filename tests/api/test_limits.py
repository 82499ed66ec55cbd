"""Limits: values beyond what a column holds, field lengths against column
sizes, default quotas, and the per-project write rate.

Values are sent to all three databases: what SQLite takes, PostgreSQL or
MariaDB may refuse, and a refusal there must be a 400 here, not a 500.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import Integer, String

from lbaas.api import schemas as s
from lbaas.api.auth import create_token
from lbaas.db import models as m
from tests.conftest import Api, dump, start_api

INT_MAX = 2**31 - 1


def _fault(response, status: int, *words: str) -> None:
    assert response.status_code == status, dump(response)
    body = response.json()
    assert set(body) == {"faultcode", "faultstring", "debuginfo"}, body
    assert body["faultcode"] == "Client"
    for word in words:
        assert word in body["faultstring"], body["faultstring"]


# --- filters, paging and quotas beyond the columns' range --------------------

@pytest.mark.parametrize("path, query, words", [
    ("/lbaas/listeners", "protocol_port=99999999999999999999", ["protocol_port", "out of range"]),
    ("/lbaas/listeners", "protocol_port=-2147483649", ["out of range"]),
    ("/lbaas/listeners", "connection_limit=" + "9" * 5000, ["connection_limit", "not an integer"]),
    ("/lbaas/listeners", "timeout_client_data=1.5", ["not an integer"]),
    ("/lbaas/pools/{pool}/members", "weight=-99999999999999999999", ["weight", "out of range"]),
    ("/lbaas/pools/{pool}/members", "monitor_port=abc", ["monitor_port"]),
    ("/lbaas/healthmonitors", "http_version=nan", ["http_version", "finite"]),
    ("/lbaas/healthmonitors", "http_version=1e400", ["finite"]),
    ("/lbaas/healthmonitors", "delay=1e3", ["delay"]),
    ("/lbaas/loadbalancers", "created_at=abc", ["created_at", "ISO 8601"]),
    ("/lbaas/loadbalancers", "updated_at=2024-13-01", ["updated_at"]),
    ("/lbaas/pools", "created_at=0001-01-01T00:00:00%2B23:59", ["created_at"]),
    ("/lbaas/loadbalancers", "admin_state_up=maybe", ["admin_state_up", "boolean"]),
    ("/lbaas/pools", "tls_enabled=2", ["tls_enabled", "boolean"]),
    ("/lbaas/loadbalancers", "limit=1e3", ["limit"]),
    ("/lbaas/loadbalancers", "limit=-1", ["limit"]),
    ("/lbaas/loadbalancers", "limit=" + "9" * 5000, ["limit"]),
    ("/lbaas/loadbalancers", "marker=" + "m" * 3000, ["Marker"]),
    ("/lbaas/loadbalancers", "page_reverse=sideways", ["page_reverse"]),
    ("/lbaas/loadbalancers", "sort=created_at:up", ["sort direction"]),
    ("/lbaas/loadbalancers", "sort=,", ["sort key"]),
    ("/lbaas/loadbalancers", "stats=1", ["stats"]),
    ("/lbaas/listeners", "insert_headers=x", ["insert_headers"]),
])
def test_filter_values_no_column_holds_are_400(api: Api, lb: dict, path: str, query: str,
                                               words: list[str]) -> None:
    _fault(api.get(path.format(pool=lb["pools"][0]["id"]) + "?" + query), 400, *words)


@pytest.mark.parametrize("path, query", [
    ("/lbaas/listeners", f"protocol_port={INT_MAX}"),
    ("/lbaas/listeners", f"connection_limit={-INT_MAX - 1}"),
    ("/lbaas/pools/{pool}/members", "weight=+1"),
    ("/lbaas/healthmonitors", "http_version=1.1"),
    ("/lbaas/loadbalancers", "created_at=2024-01-01"),
    ("/lbaas/loadbalancers", "created_at=2024-01-01T00:00:00Z"),
    ("/lbaas/loadbalancers", "updated_at=1000-01-01T00:00:00%2B05:00"),
    ("/lbaas/loadbalancers", "updated_at=9999-12-31T23:59:59"),
    ("/lbaas/loadbalancers", "limit=99999999999999999999"),
    ("/lbaas/loadbalancers", "name=" + "n" * 300),
    ("/lbaas/loadbalancers", "admin_state_up=False&sort=name:desc"),
])
def test_filter_values_at_the_edges_are_answered(api: Api, lb: dict, path: str, query: str) -> None:
    response = api.get(path.format(pool=lb["pools"][0]["id"]) + "?" + query)
    assert response.status_code == 200, dump(response)


@pytest.mark.parametrize("quota, words", [
    ({"load_balancer": 99999999999999999999}, ["quota.load_balancer"]),
    ({"member": INT_MAX + 1}, ["quota.member", str(INT_MAX)]),
    ({"healthmonitor": -2}, ["quota.healthmonitor"]),
    ({"pool": 1.5}, ["quota.pool"]),
    ({"listener": "5"}, ["quota.listener"]),
])
def test_quota_values_beyond_the_column_are_400(api: Api, quota: dict, words: list[str]) -> None:
    _fault(api.put("/lbaas/quotas/limits-project", {"quota": quota}), 400, *words)
    assert api.get("/lbaas/quotas/limits-project").json()["quota"]["pool"] == 500


def test_the_largest_quota_is_stored(api: Api) -> None:
    response = api.put("/lbaas/quotas/largest-project", {"quota": {"member": INT_MAX, "loadbalancer": -1}})
    assert response.status_code == 202, dump(response)
    quota = api.get("/lbaas/quotas/largest-project").json()["quota"]
    assert (quota["member"], quota["load_balancer"], quota["loadbalancer"]) == (INT_MAX, -1, -1)
    assert api.delete("/lbaas/quotas/largest-project").status_code == 204


@pytest.fixture(scope="module")
def lb(api: Api) -> dict:
    body = {"name": "limits", "vip_subnet_id": "test-subnet", "listeners": [
        {"protocol": "HTTP", "protocol_port": 80, "default_pool": {
            "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
            "members": [{"address": "127.0.0.1", "protocol_port": 80}],
            "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 2, "max_retries": 3}}}]}
    response = api.post("/lbaas/loadbalancers", {"loadbalancer": body})
    assert response.status_code == 201, dump(response)
    return api.wait_lb(response.json()["loadbalancer"]["id"])


# --- field lengths against column sizes ---------------------------------------

TABLES: dict[type[BaseModel], Any] = {
    s.LoadBalancerCreate: m.LoadBalancer, s.LoadBalancerUpdate: m.LoadBalancer,
    s.ListenerCreate: m.Listener, s.ListenerUpdate: m.Listener,
    s.PoolCreate: m.Pool, s.PoolUpdate: m.Pool,
    s.MemberCreate: m.Member, s.MemberFields: m.Member, s.MemberUpdate: m.Member,
    s.HealthMonitorCreate: m.HealthMonitor, s.HealthMonitorUpdate: m.HealthMonitor,
    s.L7PolicyCreate: m.L7Policy, s.L7PolicyUpdate: m.L7Policy,
    s.L7RuleCreate: m.L7Rule, s.L7RuleUpdate: m.L7Rule,
    s.QuotaUpdate: m.Quota,
    s.FlavorProfileCreate: m.FlavorProfile, s.FlavorProfileUpdate: m.FlavorProfile,
    s.FlavorCreate: m.Flavor, s.FlavorUpdate: m.Flavor,
    s.AvailabilityZoneProfileCreate: m.AvailabilityZoneProfile,
    s.AvailabilityZoneProfileUpdate: m.AvailabilityZoneProfile,
    s.AvailabilityZoneCreate: m.AvailabilityZone, s.AvailabilityZoneUpdate: m.AvailabilityZone,
}
# Body fields stored in a column of another name.
COLUMN_OF = {"tenant_id": "project_id", "loadbalancer_id": "load_balancer_id", "healthmonitor": "health_monitor",
             "loadbalancer": "load_balancer"}
# String fields that are never stored as given: ids of objects looked up first (an unknown one
# is a 4xx), values kept in JSON columns, values the API ignores.
NOT_STORED = {"listener_id", "loadbalancer_id", "pool_id", "default_pool_id", "vip_qos_policy_id", "redirect_pool_id",
              "insert_headers", "allowed_cidrs", "session_persistence", "flavor_profile_id",
              "availability_zone_profile_id"}
# Fields a validator bounds rather than max_length: a value one past the column must fail.
TOO_LONG = {
    "vip_address": "::ffff:" + "1" * 60, "address": "1" * 65, "monitor_address": "1" * 65,
    "url_path": "/" + "a" * 2048, "expected_codes": ",".join(["200"] * 17), "domain_name": "a." * 128,
}


def _max_length(schema: dict[str, Any]) -> int | None:
    """The longest string a property's JSON schema allows, None when only a validator knows."""
    for option in schema.get("anyOf", [schema]):
        if "enum" in option:
            return max(len(value) for value in option["enum"])
        if option.get("type") == "string" and "maxLength" in option:
            return option["maxLength"]
    return None


def _string_columns(model: type[BaseModel]) -> list[tuple[str, Any]]:
    table = TABLES[model].__table__
    found = []
    for name in model.model_fields:
        column = table.columns.get(COLUMN_OF.get(name, name))
        if name not in NOT_STORED and column is not None and isinstance(column.type, String) \
                and column.type.length:
            found.append((name, column))
    return found


def test_every_body_model_is_mapped_to_its_table() -> None:
    bodies = {v for v in vars(s).values() if isinstance(v, type) and issubclass(v, s.Body)
              and v.__name__.endswith(("Create", "Update", "Fields"))}
    assert bodies - {s.HealthMonitorFields} == set(TABLES)


@pytest.mark.parametrize("model", list(TABLES), ids=lambda model: model.__name__)
def test_string_fields_fit_their_columns(model: type[BaseModel]) -> None:
    properties = model.model_json_schema()["properties"]
    table = TABLES[model].__table__
    for name, column in _string_columns(model):
        limit = _max_length(properties[name])
        if limit is None:
            assert name in TOO_LONG, f"{model.__name__}.{name} has no max_length (column: {column.type.length})"
            assert len(TOO_LONG[name]) > column.type.length
            with pytest.raises(s.ValidationError) as refused:
                model.model_validate({name: TOO_LONG[name]})
            assert any(error["loc"][:1] == (name,) for error in refused.value.errors()), refused.value
        else:
            assert limit <= column.type.length, f"{model.__name__}.{name}: {limit} > {column.type.length}"
    for name, field in model.model_fields.items():
        stored = table.columns.get(COLUMN_OF.get(name, name)) is not None or name == "tags"
        assert stored or name in NOT_STORED or "str" not in str(field.annotation), f"{model.__name__}.{name}"


@pytest.mark.parametrize("model", list(TABLES), ids=lambda model: model.__name__)
def test_integer_fields_fit_their_columns(model: type[BaseModel]) -> None:
    properties = model.model_json_schema()["properties"]
    table = TABLES[model].__table__
    for name in model.model_fields:
        column = table.columns.get(COLUMN_OF.get(name, name))
        if column is None or not isinstance(column.type, Integer):
            continue
        options = [o for o in properties[name].get("anyOf", [properties[name]]) if o.get("type") == "integer"]
        assert options, f"{model.__name__}.{name}"
        for option in options:
            low, high = (min(option["enum"]), max(option["enum"])) if "enum" in option else \
                (option.get("minimum", -2**63), option.get("maximum", 2**63))
            assert -INT_MAX - 1 <= low and high <= INT_MAX, \
                f"{model.__name__}.{name} is not bounded to the column's 32 bits: {option}"


def test_tags_fit_their_column() -> None:
    for model in TABLES:
        tags = model.model_json_schema()["properties"].get("tags")
        if tags:
            items = next(o["items"] for o in tags.get("anyOf", [tags]) if o.get("type") == "array")
            assert items["maxLength"] <= m.Tag.__table__.columns["tag"].type.length


def test_names_and_descriptions_at_their_column_size(api: Api, lb: dict) -> None:
    """255 characters of 4-byte UTF-8 are stored on every database; 256 are a 400."""
    longest, too_long = "\U0001F600" * 255, "\U0001F600" * 256
    created = api.create_lb(name=longest, description=longest, tags=["t" * 255])
    assert (created["name"], created["description"], created["tags"]) == (longest, longest, ["t" * 255])
    for field in ("name", "description"):
        _fault(api.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "test-subnet",
                                                                  field: too_long}}), 400, f"loadbalancer.{field}")
        _fault(api.put(f"/lbaas/loadbalancers/{created['id']}", {"loadbalancer": {field: too_long}}), 400, field)
        _fault(api.put(f"/lbaas/listeners/{lb['listeners'][0]['id']}", {"listener": {field: too_long}}), 400, field)
    _fault(api.put(f"/lbaas/loadbalancers/{created['id']}", {"loadbalancer": {"tags": ["t" * 256]}}), 400, "tags")
    response = api.put(f"/lbaas/pools/{lb['pools'][0]['id']}", {"pool": {"name": longest, "description": longest}})
    assert response.status_code == 200, dump(response)
    assert api.wait_lb(lb["id"])["provisioning_status"] == "ACTIVE"
    assert api.get(f"/lbaas/loadbalancers/{created['id']}").json()["loadbalancer"]["name"] == longest


def test_validated_fields_one_past_their_column_are_400(api: Api, lb: dict) -> None:
    pool_id = lb["pools"][0]["id"]
    monitor_id = api.get(f"/lbaas/pools/{pool_id}").json()["pool"]["healthmonitor_id"]
    monitor = {"type": "HTTP", "delay": 5, "timeout": 2, "max_retries": 3}
    for field in ("url_path", "expected_codes", "domain_name"):
        extra = {"http_version": 1.1} if field == "domain_name" else {}
        _fault(api.put(f"/lbaas/healthmonitors/{monitor_id}",
                       {"healthmonitor": {field: TOO_LONG[field], **extra}}), 400, field)
        _fault(api.post("/lbaas/healthmonitors", {"healthmonitor": {"pool_id": pool_id, **monitor, **extra,
                                                                     field: TOO_LONG[field]}}), 400, field)
    _fault(api.post(f"/lbaas/pools/{pool_id}/members", {"member": {"address": TOO_LONG["address"],
                                                                   "protocol_port": 81}}), 400, "address")
    assert api.wait_lb(lb["id"])["provisioning_status"] == "ACTIVE"


# --- default quotas and the write rate ------------------------------------------

def test_default_quotas_bound_a_project(api: Api) -> None:
    defaults = api.get("/lbaas/quotas/defaults").json()["quota"]
    assert {k: defaults[k] for k in ("load_balancer", "listener", "pool", "member", "health_monitor")} == \
        {"load_balancer": 100, "listener": 500, "pool": 500, "member": 5000, "health_monitor": 500}


@pytest.fixture(scope="module")
def limited(temp_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A server of its own: two load balancers per project, three writes at once, two a second."""
    db = temp_database("sqlite")
    folder = str(tmp_path_factory.mktemp("limited"))
    server, stop = start_api(db.url, folder, "sqlite", extra={
        "api": {"write_rate_limit": 2, "write_rate_burst": 3},
        "quotas": {"default_load_balancer_quota": 2}})
    server.tokens["carol"] = create_token(os.path.join(folder, "tokens.json"), "project-c", "member")
    yield server
    stop()


def test_the_configured_default_quota_is_enforced(limited: Api) -> None:
    assert limited.get("/lbaas/quotas/defaults").json()["quota"]["load_balancer"] == 2
    for _ in range(2):
        limited.create_lb(token="bob")
    over = limited.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "test-subnet"}}, token="bob")
    _fault(over, 403, "Quota has been met", "load_balancer")
    assert len(limited.get("/lbaas/loadbalancers", token="bob").json()["loadbalancers"]) == 2


def test_writes_beyond_the_rate_are_429_until_the_bucket_refills(limited: Api) -> None:
    bad = {"loadbalancer": {"vip_subnet_id": "test-subnet", "colour": "red"}}
    assert [limited.post("/lbaas/loadbalancers", bad, token="alice").status_code for _ in range(3)] == [400] * 3
    refused = limited.post("/lbaas/loadbalancers", bad, token="alice")
    _fault(refused, 429, "Too many writes")
    assert refused.headers["Retry-After"] == "1"
    # The bucket is the project's (reader is in alice's project); reads, other
    # projects and admins are not held back.
    _fault(limited.request("DELETE", "/lbaas/loadbalancers/x", token="reader"), 429)
    assert limited.get("/lbaas/loadbalancers", token="alice").status_code == 200
    assert limited.post("/lbaas/loadbalancers", bad, token="carol").status_code == 400
    assert limited.post("/lbaas/loadbalancers", bad, token="admin").status_code == 400
    time.sleep(float(refused.headers["Retry-After"]))
    lb = limited.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "test-subnet"}}, token="alice")
    assert lb.status_code == 201, dump(lb)
    limited.wait_lb(lb.json()["loadbalancer"]["id"], token="alice")


def test_admins_are_never_rate_limited(limited: Api) -> None:
    assert all(limited.delete("/lbaas/quotas/nobody").status_code == 204 for _ in range(10))


def test_a_project_header_longer_than_the_column_is_400(temp_database: Any,
                                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    """noauth takes the project from X-Project-Id: it is bounded like the project_id columns."""
    db = temp_database("sqlite")
    server, stop = start_api(db.url, str(tmp_path_factory.mktemp("noauth")), "sqlite",
                             extra={"api": {"auth_strategy": "noauth"}})
    try:
        body = {"loadbalancer": {"vip_subnet_id": "test-subnet"}}
        _fault(server.post("/lbaas/loadbalancers", body, token="", headers={"X-Project-Id": "p" * 256}),
               400, "X-Project-Id")
        made = server.post("/lbaas/loadbalancers", body, token="", headers={"X-Project-Id": "p" * 255})
        assert made.status_code == 201 and made.json()["loadbalancer"]["project_id"] == "p" * 255, dump(made)
    finally:
        stop()
