"""Hostile tenant strings through the real API: refused cleanly, or inert.

For every string and address field of every object, each hostile value of
``tests.security.hostile`` is sent on create (POST) and, where the field is
updatable, on update (PUT). The contract checked:

* never a 5xx; a refusal is a 4xx in Octavia's fault format and writes nothing
  (row counts, the object and its load balancer, the rendered haproxy.cfg unchanged);
* a field that reaches haproxy.cfg refuses every value with a control, non-ASCII,
  quote, backslash, space, '#', '$' or '%' character, and every forbidden or
  non-canonical address, with a 400 whose faultstring names the field;
* identifiers (subnet, provider, flavor, availability zone) and enums are refused;
* free text (name, description, tags) may be accepted, but then it round-trips
  exactly and the haproxy.cfg rendered from the desired state is byte-for-byte
  the one rendered with every name blanked (no tenant text shapes it);
* hostile numbers are refused with a 400 naming the field unless they are in range,
  and an accepted number renders a configuration ``haproxy -c`` accepts;
* a member (non-admin) cannot take the unspecified, loopback, multicast, an
  unconfigured or another load balancer's VIP, and the refusal does not name the
  other load balancer or its project.

The full string matrix runs on SQLite; ``hostile.SUBSET`` runs on PostgreSQL and
MariaDB too. The case count is the number of collected tests (the ids say
backend, object.field, POST/PUT and the hostile case).
"""

from __future__ import annotations

import itertools
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from lbaas.db import models as m
from lbaas.appliance import render, schema
from tests.conftest import BACKENDS, Api, dump
from tests.appliance.helpers import HAPROXY
from tests.security import hostile
from tests.security.hostile import Hostile

FULL_BACKEND = "sqlite"
PLAIN, TAG, CIDR, HEADER_KEY, HEADER_VALUE, SP_TYPE, COOKIE, DOMAIN = (
    "plain", "tag", "cidr", "header-key", "header-value", "sp-type", "cookie", "domain")
REDIRECT_URL, REDIRECT_PREFIX, RULE_VALUE, RULE_KEY, RULE_REGEX = (
    "redirect-url", "redirect-prefix", "rule-value", "rule-key", "rule-regex")
# The L7 rule forms: the rule each value is sent in.
_RULES = {RULE_VALUE: {"type": "PATH", "compare_type": "STARTS_WITH"},
          RULE_KEY: {"type": "HEADER", "compare_type": "EQUAL_TO", "value": "x"},
          RULE_REGEX: {"type": "PATH", "compare_type": "REGEX"}}
FREE, CONFIG, IDENT = "free", "config", "ident"
_ports = itertools.count(20000)


@dataclass(frozen=True)
class Target:
    """One field under attack: where its value goes and what is required of it."""

    kind: str      # loadbalancer, listener, pool, member, healthmonitor
    field: str     # the name a refusal's faultstring must contain (CONFIG)
    role: str      # FREE: may be accepted if inert; CONFIG: 400 naming it; IDENT: 4xx
    update: bool   # also sent on PUT
    base: str = "hostile"
    form: str = PLAIN
    values: str = "strings"  # or "addresses", "cidrs"

    @property
    def id(self) -> str:
        suffix = {HEADER_KEY: "[key]", HEADER_VALUE: "[value]", RULE_REGEX: "[regex]"}.get(self.form, "")
        return f"{self.kind}.{self.field}{suffix}"


def _free(kind: str) -> list[Target]:
    fields = [Target(kind, "name", FREE, True), Target(kind, "tags", FREE, True, form=TAG)]
    if kind not in ("member", "healthmonitor"):  # Octavia gives these two no description
        fields.append(Target(kind, "description", FREE, True))
    return fields


ZONE_BASE = "fe80::1%eth0"  # Python accepts it: every string form is then a zone id
TARGETS: list[Target] = [
    *_free("loadbalancer"),
    Target("loadbalancer", "vip_address", CONFIG, False, ZONE_BASE, values="addresses"),
    Target("loadbalancer", "vip_subnet_id", IDENT, False, "test-subnet"),
    Target("loadbalancer", "provider", IDENT, False, "noop"),
    Target("loadbalancer", "flavor_id", IDENT, False, "flavor"),
    Target("loadbalancer", "availability_zone", IDENT, False, "zone"),
    *_free("listener"),
    Target("listener", "protocol", IDENT, False, "HTTP"),
    Target("listener", "insert_headers", CONFIG, True, "X-Forwarded-For", HEADER_KEY),
    Target("listener", "insert_headers", CONFIG, True, "true", HEADER_VALUE),
    Target("listener", "allowed_cidrs", CONFIG, True, "10.0.0.0/8", CIDR, "cidrs"),
    *_free("pool"),
    Target("pool", "protocol", IDENT, False, "HTTP"),
    Target("pool", "lb_algorithm", IDENT, True, "ROUND_ROBIN"),
    Target("pool", "session_persistence", IDENT, True, "APP_COOKIE", SP_TYPE),
    Target("pool", "cookie_name", CONFIG, True, "SESSIONID", COOKIE),
    *_free("member"),
    Target("member", "address", CONFIG, False, ZONE_BASE, values="addresses"),
    Target("member", "monitor_address", CONFIG, True, ZONE_BASE, values="addresses"),
    Target("member", "subnet_id", IDENT, False, "test-subnet"),
    *_free("healthmonitor"),
    Target("healthmonitor", "type", IDENT, False, "HTTP"),
    Target("healthmonitor", "http_method", CONFIG, True, "GET"),
    Target("healthmonitor", "url_path", CONFIG, True, "/healthz"),
    Target("healthmonitor", "expected_codes", CONFIG, True, "200"),
    Target("healthmonitor", "domain_name", CONFIG, True, "example.com", DOMAIN),
    Target("l7policy", "name", FREE, True),
    Target("l7policy", "action", IDENT, True, "REJECT"),
    Target("l7policy", "redirect_url", CONFIG, True, "https://example.com/moved", REDIRECT_URL),
    Target("l7policy", "redirect_prefix", CONFIG, True, "https://example.com", REDIRECT_PREFIX),
    Target("rule", "type", IDENT, False, "PATH"),
    Target("rule", "compare_type", IDENT, False, "STARTS_WITH"),
    Target("rule", "value", CONFIG, True, "/api", RULE_VALUE),
    Target("rule", "key", CONFIG, True, "X-Env", RULE_KEY),
    Target("rule", "value", CONFIG, True, "^/api", RULE_REGEX),
]


def _values(target: Target) -> list[Hostile]:
    extra = {"addresses": hostile.addresses(), "cidrs": hostile.cidrs()}.get(target.values, [])
    return extra + hostile.strings(target.base)


def _cases(update: bool, full: bool) -> list[Any]:
    """(target, case) params: every hostile value (``full``) or the subset."""
    cases = []
    for target in TARGETS:
        if update and not target.update:
            continue
        values = _values(target)
        for case in values if full else hostile.subset(values):
            op = "PUT" if update else "POST"
            cases.append(pytest.param(target, case, id=f"{target.id}-{op}-{case.id}"))
    return cases


# The backend is its own parametrization (not one tuple with the case), so pytest keeps one
# API server per backend instead of starting one per case.
ON_FULL = pytest.mark.parametrize("api", [FULL_BACKEND], indirect=True)
ON_OTHERS = pytest.mark.parametrize("api", [b for b in BACKENDS if b != FULL_BACKEND],
                                    indirect=True)


# --- the objects under attack -----------------------------------------------------------

@dataclass
class Graph:
    lb: str
    listener: str
    pool: str
    spare_pool: str
    member: str
    healthmonitor: str
    l7policy: str
    rule: str

    def path(self, kind: str) -> str:
        return {"loadbalancer": f"/lbaas/loadbalancers/{self.lb}",
                "listener": f"/lbaas/listeners/{self.listener}",
                "pool": f"/lbaas/pools/{self.pool}",
                "member": f"/lbaas/pools/{self.pool}/members/{self.member}",
                "healthmonitor": f"/lbaas/healthmonitors/{self.healthmonitor}",
                "l7policy": f"/lbaas/l7policies/{self.l7policy}",
                "rule": f"/lbaas/l7policies/{self.l7policy}/rules/{self.rule}"}[kind]


@pytest.fixture(scope="module")
def graph(api: Api) -> Graph:
    """A load balancer holding one of everything, each config-reaching field set."""
    monitor = {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 3, "url_path": "/healthz",
               "expected_codes": "200", "http_method": "GET", "http_version": 1.1,
               "domain_name": "example.com"}
    pool = {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
            "session_persistence": {"type": "APP_COOKIE", "cookie_name": "SESSIONID"},
            "members": [{"address": "127.0.0.1", "protocol_port": 8080,
                         "monitor_address": "127.0.0.2",
                         "monitor_port": 9000}],
            "healthmonitor": monitor}
    body = {"name": "hostile-target", "vip_subnet_id": "test-subnet",
            "listeners": [{"protocol": "HTTP", "protocol_port": 80, "default_pool": pool,
                           "insert_headers": {"X-Forwarded-For": "true"},
                           "allowed_cidrs": ["10.0.0.0/8"]}],
            "pools": [{"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}]}
    response = api.post("/lbaas/loadbalancers", {"loadbalancer": body})
    assert response.status_code == 201, dump(response)
    lb = api.wait_lb(response.json()["loadbalancer"]["id"])
    listener = api.get(f"/lbaas/listeners/{lb['listeners'][0]['id']}").json()["listener"]
    pools = [p["id"] for p in lb["pools"]]
    default = listener["default_pool_id"]
    member = api.get(f"/lbaas/pools/{default}/members").json()["members"][0]["id"]
    monitor_id = api.get(f"/lbaas/pools/{default}").json()["pool"]["healthmonitor_id"]
    policy = api.post("/lbaas/l7policies", {"l7policy": {
        "listener_id": listener["id"], "action": "REDIRECT_TO_URL", "redirect_url": "https://example.com/moved",
        "rules": [{"type": "PATH", "compare_type": "STARTS_WITH", "value": "/api"}]}})
    assert policy.status_code == 201, dump(policy)
    api.wait_lb(lb["id"])
    rule = api.get(f"/lbaas/l7policies/{policy.json()['l7policy']['id']}/rules").json()["rules"][0]
    return Graph(lb["id"], listener["id"], default, next(p for p in pools if p != default),
                 member, monitor_id, policy.json()["l7policy"]["id"], rule["id"])


def _fragment(target: Target, value: Any) -> dict[str, Any]:
    """The part of a request body that carries ``value`` into ``target``."""
    if target.form == TAG:
        return {"tags": [value]}
    if target.form == CIDR:
        return {"allowed_cidrs": [value]}
    if target.form == HEADER_KEY:
        return {"insert_headers": {value: "true"}}
    if target.form == HEADER_VALUE:
        return {"insert_headers": {"X-Forwarded-For": value}}
    if target.form == SP_TYPE:
        return {"session_persistence": {"type": value}}
    if target.form == COOKIE:
        return {"session_persistence": {"type": "APP_COOKIE", "cookie_name": value}}
    if target.form == DOMAIN:
        return {"domain_name": value, "http_version": 1.1}
    if target.form == REDIRECT_URL:
        return {"action": "REDIRECT_TO_URL", "redirect_url": value}
    if target.form == REDIRECT_PREFIX:
        return {"action": "REDIRECT_PREFIX", "redirect_prefix": value}
    if target.form in _RULES:
        return {**_RULES[target.form], target.field: value}
    return {target.field: value}


def _create(graph: Graph, kind: str, fragment: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(path, document) creating one ``kind`` whose body includes ``fragment``."""
    if kind == "loadbalancer":
        body = {} if "vip_address" in fragment else {"vip_subnet_id": "test-subnet"}
        return "/lbaas/loadbalancers", {kind: {**body, **fragment}}
    if kind == "listener":
        return "/lbaas/listeners", {kind: {"loadbalancer_id": graph.lb, "protocol": "HTTP",
                                           "protocol_port": next(_ports), **fragment}}
    if kind == "pool":
        return "/lbaas/pools", {kind: {"loadbalancer_id": graph.lb, "protocol": "HTTP",
                                       "lb_algorithm": "ROUND_ROBIN", **fragment}}
    if kind == "member":
        return f"/lbaas/pools/{graph.pool}/members", {kind: {
            "address": "127.0.0.1", "protocol_port": next(_ports), **fragment}}
    if kind == "l7policy":
        return "/lbaas/l7policies", {kind: {"listener_id": graph.listener, "action": "REJECT", **fragment}}
    if kind == "rule":
        return f"/lbaas/l7policies/{graph.l7policy}/rules", {kind: {
            "type": "PATH", "compare_type": "STARTS_WITH", "value": "/x", **fragment}}
    return "/lbaas/healthmonitors", {kind: {"pool_id": graph.spare_pool, "type": "HTTP", "delay": 5,
                                            "timeout": 3, "max_retries": 3, **fragment}}


# --- observations -------------------------------------------------------------------------

MODELS = {"loadbalancer": m.LoadBalancer, "listener": m.Listener, "pool": m.Pool,
          "member": m.Member, "healthmonitor": m.HealthMonitor, "l7policy": m.L7Policy,
          "rule": m.L7Rule}


def _send(api: Api, method: str, path: str, document: Any, token: str = "admin") -> httpx.Response:
    return api.request(method, path, token=token, content=hostile.body(document),
                       headers={"Content-Type": "application/json"})


def _rows(api: Api) -> dict[str, int]:
    with api.db.reading() as session:
        counts = {kind: session.scalar(select(func.count()).select_from(model))
                  for kind, model in MODELS.items()}
        counts["tag"] = session.scalar(select(func.count()).select_from(m.Tag))
    return counts


def _ids(api: Api, kind: str) -> set[str]:
    with api.db.reading() as session:
        return set(session.scalars(select(MODELS[kind].id)))


def rendered(api: Api, lb_id: str, blank_names: bool = False) -> str:
    """haproxy.cfg as the appliance would render the load balancer's desired state."""
    document = api.desired(lb_id)
    if blank_names:
        document = _blanked(document)
    return render.render(schema.validate(document), "/tmp/lbd-h/stats.sock", "/tmp/lbd-h/state")


def _blanked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "" if k == "name" else _blanked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_blanked(v) for v in value]
    return value


def haproxy_accepts(text: str) -> None:
    with tempfile.TemporaryDirectory(prefix="lbh") as folder:
        config = Path(folder) / "haproxy.cfg"
        config.write_text(text)
        result = subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True,
                                timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def _get(api: Api, path: str) -> dict[str, Any]:
    response = api.get(path)
    assert response.status_code == 200, dump(response)
    return response.json()


@dataclass
class Snapshot:
    rows: dict[str, int]
    lb: dict[str, Any]
    obj: dict[str, Any] | None
    config: str


def _snapshot(api: Api, graph: Graph, kind: str | None) -> Snapshot:
    return Snapshot(_rows(api), _get(api, graph.path("loadbalancer"))["loadbalancer"],
                    _get(api, graph.path(kind))[kind] if kind else None, rendered(api, graph.lb))


def assert_fault(response: httpx.Response, *words: str) -> None:
    """A 4xx in Octavia's fault format whose faultstring holds ``words``."""
    assert 400 <= response.status_code < 500, f"{response.status_code}: {dump(response)}"
    body = response.json()
    assert set(body) == {"faultcode", "faultstring", "debuginfo"}, body
    assert body["faultcode"] == "Client", body
    for word in words:
        assert word in body["faultstring"], body["faultstring"]


def _must_name(target: Target, value: Any) -> bool:
    return target.role == CONFIG and (target.values != "strings" or hostile.must_reject(value))


def _check_refusal(api: Api, graph: Graph, target: Target, case: Hostile, response: httpx.Response,
                   before: Snapshot, kind: str | None) -> None:
    if _must_name(target, case.value):
        assert response.status_code == 400, f"{response.status_code}: {dump(response)}"
        assert_fault(response, target.field)
    else:
        assert_fault(response)
    assert _snapshot(api, graph, kind) == before, "a refused request changed something"


def _stored(target: Target, obj: dict[str, Any]) -> Any:
    """The value ``target`` holds in a rendered object (the inverse of ``_fragment``)."""
    if target.form in (TAG, CIDR):
        values = obj["tags" if target.form == TAG else "allowed_cidrs"] or []
        return values[0] if len(values) == 1 else values
    if target.form == HEADER_KEY:
        return next(iter(obj["insert_headers"]), None)
    if target.form == HEADER_VALUE:
        return obj["insert_headers"].get("X-Forwarded-For")
    if target.form in (SP_TYPE, COOKIE):
        return (obj["session_persistence"] or {}).get("type" if target.form == SP_TYPE
                                                      else "cookie_name")
    return obj.get(target.field)


def _check_accepted(api: Api, graph: Graph, target: Target, case: Hostile, obj: dict[str, Any],
                    lb_id: str) -> None:
    """An accepted value: allowed for this field, round-trips, and shapes no haproxy.cfg."""
    assert target.role != IDENT, f"{target.id} accepted hostile {case.id}"
    assert not _must_name(target, case.value), f"{target.id} accepted hostile {case.id}"
    api.wait_lb(graph.lb if target.kind != "loadbalancer" else lb_id)
    assert _stored(target, obj) == case.value, "value did not round-trip"
    text = rendered(api, lb_id)
    if target.role == FREE:
        assert text == rendered(api, lb_id, blank_names=True), "free text shaped haproxy.cfg"
        if len(case.value.strip()) >= 3:
            assert case.value not in text
    else:
        haproxy_accepts(text)


# --- the tests -----------------------------------------------------------------------------

@ON_FULL
@pytest.mark.parametrize("target, case", _cases(update=False, full=True))
def test_create(api: Api, graph: Graph, target: Target, case: Hostile) -> None:
    create(api, graph, target, case)


@ON_OTHERS
@pytest.mark.parametrize("target, case", _cases(update=False, full=False))
def test_create_subset(api: Api, graph: Graph, target: Target, case: Hostile) -> None:
    create(api, graph, target, case)


def create(api: Api, graph: Graph, target: Target, case: Hostile) -> None:
    """POST ``case`` in ``target`` and hold the outcome to the module's contract."""
    path, document = _create(graph, target.kind, _fragment(target, case.value))
    before = _snapshot(api, graph, None)
    existing = _ids(api, target.kind)
    try:
        response = _send(api, "POST", path, document)
        if response.status_code != 201:
            _check_refusal(api, graph, target, case, response, before, None)
            return
        obj = response.json()[target.kind]
        lb_id = obj["id"] if target.kind == "loadbalancer" else graph.lb
        fetched = _get(api, f"{path}/{obj['id']}")[target.kind]
        _check_accepted(api, graph, target, case, fetched, lb_id)
    finally:
        _remove_new(api, graph, target.kind, existing)


def _remove_new(api: Api, graph: Graph, kind: str, existing: set[str]) -> None:
    """Delete whatever a test created (even after a failure), so no case poisons the next."""
    for ident in _ids(api, kind) - existing:
        _wait_quietly(api, ident if kind == "loadbalancer" else graph.lb)
        if kind == "loadbalancer":
            api.delete(f"/lbaas/loadbalancers/{ident}")
            api.wait_lb(ident, "DELETED")
            continue
        path = {"listener": "/lbaas/listeners", "pool": "/lbaas/pools",
                "member": f"/lbaas/pools/{graph.pool}/members",
                "healthmonitor": "/lbaas/healthmonitors", "l7policy": "/lbaas/l7policies",
                "rule": f"/lbaas/l7policies/{graph.l7policy}/rules"}[kind]
        api.delete(f"{path}/{ident}")
    _wait_quietly(api, graph.lb)


def _wait_quietly(api: Api, lb_id: str) -> None:
    try:
        api.wait_lb(lb_id)
    except AssertionError:
        pass  # the test that left it so has failed already


@ON_FULL
@pytest.mark.parametrize("target, case", _cases(update=True, full=True))
def test_update(api: Api, graph: Graph, target: Target, case: Hostile) -> None:
    update(api, graph, target, case)


@ON_OTHERS
@pytest.mark.parametrize("target, case", _cases(update=True, full=False))
def test_update_subset(api: Api, graph: Graph, target: Target, case: Hostile) -> None:
    update(api, graph, target, case)


def update(api: Api, graph: Graph, target: Target, case: Hostile) -> None:
    """PUT ``case`` in ``target`` and hold the outcome to the module's contract."""
    fragment = _fragment(target, case.value)
    path = graph.path(target.kind)
    before = _snapshot(api, graph, target.kind)
    try:
        response = _send(api, "PUT", path, {target.kind: fragment})
        if response.status_code != 200:
            _check_refusal(api, graph, target, case, response, before, target.kind)
            return
        fetched = _get(api, path)[target.kind]
        _check_accepted(api, graph, target, case, fetched, graph.lb)
    finally:
        _restore(api, graph, target, fragment, before.obj or {})


def _restore(api: Api, graph: Graph, target: Target, fragment: dict[str, Any],
             original: dict[str, Any]) -> None:
    """Put back what an accepted update changed (even after a failure)."""
    _wait_quietly(api, graph.lb)
    current = api.get(graph.path(target.kind))
    if current.status_code == 200 and all(current.json()[target.kind].get(k) == original.get(k)
                                          for k in fragment):
        return
    restore = {k: original.get(k) for k in fragment if k != "http_version"}
    response = _send(api, "PUT", graph.path(target.kind), {target.kind: restore})
    assert response.status_code == 200, f"could not restore {target.id}: {dump(response)}"
    _wait_quietly(api, graph.lb)


# --- numbers ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Number:
    kind: str
    field: str
    low: int
    high: int
    update: bool

    @property
    def id(self) -> str:
        return f"{self.kind}.{self.field}"


MAX_MS = 24 * 60 * 60 * 1000
NUMBERS = [
    Number("listener", "protocol_port", 1, 65535, False),
    Number("listener", "connection_limit", -1, 2 ** 31 - 1, True),
    *[Number("listener", f, 0, MAX_MS, True) for f in (
        "timeout_client_data", "timeout_member_connect", "timeout_member_data",
        "timeout_tcp_inspect")],
    Number("member", "protocol_port", 1, 65535, False),
    Number("member", "weight", 0, 256, True),
    Number("member", "monitor_port", 1, 65535, True),
    Number("healthmonitor", "delay", 3, 86400, True),  # the body's timeout is 3
    Number("healthmonitor", "timeout", 1, 5, True),     # the monitor's delay is 5
    Number("healthmonitor", "max_retries", 1, 10, True),
    Number("healthmonitor", "max_retries_down", 1, 10, True),
]


def _number_cases() -> list[Any]:
    return [pytest.param(number, op, case, id=f"{number.id}-{op}-{case.id}")
            for number in NUMBERS for op in ("POST", "PUT") if op == "POST" or number.update
            for case in hostile.integers()]


@pytest.mark.parametrize("number, op, case", _number_cases())
def test_numbers(api: Api, graph: Graph, number: Number, op: str, case: Hostile) -> None:
    if op == "POST":
        path, document = _create(graph, number.kind, {number.field: case.value})
    else:
        path, document = graph.path(number.kind), {number.kind: {number.field: case.value}}
    kind = None if op == "POST" else number.kind
    before = _snapshot(api, graph, kind)
    existing = _ids(api, number.kind)
    try:
        response = _send(api, op, path, document)
        if response.status_code not in (200, 201):
            assert response.status_code == 400, f"{response.status_code}: {dump(response)}"
            # NaN and Infinity are not JSON: refusing the whole body is enough.
            assert_fault(response, *([] if case.id in ("nan", "infinity") else [number.field]))
            assert _snapshot(api, graph, kind) == before, "a refused request changed something"
            return
        assert hostile.is_integer_in(case.value, number.low, number.high), \
            f"{number.id} accepted {case.value!r}"
        api.wait_lb(graph.lb)
        assert response.json()[number.kind][number.field] == case.value
        haproxy_accepts(rendered(api, graph.lb))
    finally:
        _remove_new(api, graph, number.kind, existing)
        if op == "PUT":
            _restore(api, graph, Target(number.kind, number.field, IDENT, True),
                     {number.field: None}, before.obj or {})


# --- VIPs a project member may not take ----------------------------------------------------

@pytest.fixture(scope="module")
def other_lb(api: Api) -> dict[str, Any]:
    """Another project's load balancer, whose VIP alice tries to take."""
    return api.create_lb(token="bob", name="bobs")


VIP_CASES = [("unspecified-v4", "0.0.0.0", None), ("unspecified-v6", "::", None),
             ("loopback-unconfigured", "127.0.0.1", None), ("multicast", "224.0.0.1", None),
             ("outside-every-subnet", "192.0.2.10", None), ("others-vip", None, None),
             ("others-vip-in-subnet", None, "test-subnet"),
             ("loopback-in-wrong-subnet", "127.0.0.1", "test-subnet")]


@pytest.mark.parametrize("address, subnet", [pytest.param(a, s, id=i) for i, a, s in VIP_CASES])
def test_member_cannot_take_forbidden_vips(api: Api, other_lb: dict[str, Any], address: str | None,
                                           subnet: str | None) -> None:
    body: dict[str, Any] = {"vip_address": address or other_lb["vip_address"]}
    if subnet:
        body["vip_subnet_id"] = subnet
    before = _rows(api)
    response = _send(api, "POST", "/lbaas/loadbalancers", {"loadbalancer": body}, token="alice")
    assert_fault(response)
    text = response.text
    assert other_lb["id"] not in text and other_lb["project_id"] not in text, text
    assert _rows(api) == before


def test_case_count() -> None:
    """The suite may not shrink unnoticed; prints the counts for the record."""
    others = len(BACKENDS) - 1
    counts = {"create": len(_cases(False, True)) + others * len(_cases(False, False)),
              "update": len(_cases(True, True)) + others * len(_cases(True, False)),
              "numbers": len(_number_cases()) * len(BACKENDS),
              "vip": len(VIP_CASES) * len(BACKENDS)}
    print(f"hostile API cases: {counts}, total {sum(counts.values())}")
    assert counts["create"] > 1500 and counts["update"] > 1000
