"""The desired state -> AS3 translation: names, objects, idempotence, refusals.

Every declaration built here is also checked by the emulator's AS3 schema checks
(``lbaas.testing.bigip.schema``), the ones a device makes before it touches a tenant.
"""

from __future__ import annotations

import copy
import uuid

import pytest

from lbaas.agent.drivers import as3
from lbaas.testing.bigip import schema
from tests.bigip.desired import bump, listener, loadbalancer, member, monitor, pool

ENV = "east"


def declared(desired: dict) -> dict:
    """The declaration the driver would send for ``desired`` alone, schema-checked."""
    tenant = as3.tenant_name(ENV, desired["project_id"])
    doc = as3.declaration({tenant: as3.tenant({as3.app_name(desired["id"]): as3.application(desired)})},
                          "lbaas_test")
    schema.validate(doc)
    return doc[tenant][as3.app_name(desired["id"])]


def service_of(app: dict, listener_doc: dict) -> dict:
    return app["l_" + uuid.UUID(listener_doc["id"]).hex]


def pool_of(app: dict, pool_doc: dict) -> dict:
    return app["p_" + uuid.UUID(pool_doc["id"]).hex]


# --- names ---------------------------------------------------------------------------

def test_names_are_as3_names_and_reversible() -> None:
    lb_id = str(uuid.uuid4())
    name = as3.app_name(lb_id)
    assert schema.OBJECT_NAME.fullmatch(name) and len(name) <= as3.MAX_NAME
    assert as3.lb_id_of(name) == lb_id
    assert as3.lb_id_of("lb_nothex") is None and as3.lb_id_of("Shared") is None


@pytest.mark.parametrize("project", ["0f1e2d3c4b5a69788796a5b4c3d2e1f0", str(uuid.uuid4()), "admin",
                                     "x", "p/../Common", "é", "a b\n", "_", "x" * 300])
def test_tenant_names_fit_the_pattern(project: str) -> None:
    name = as3.tenant_name(ENV, project)
    assert schema.TENANT_NAME.fullmatch(name) and len(name) <= as3.MAX_NAME
    assert as3.owns_tenant(ENV, name)


def test_tenant_names_do_not_collide() -> None:
    projects = ["ab", "a-b", "a_b", "ax2db", "aX2db", "a.b", "A-B", "x" * 40, "x" * 41, "x" * 300, "x" * 301]
    names = [as3.tenant_name(ENV, p) for p in projects]
    assert len(set(names)) == len(names)


def test_an_environment_never_owns_another_environments_tenant() -> None:
    # "east" is a prefix of "east2" as text, never as a tenant owner.
    assert not as3.owns_tenant("east", as3.tenant_name("east2", "p"))
    assert not as3.owns_tenant("east2", as3.tenant_name("east", "p"))
    assert not as3.owns_tenant("east", "east")
    assert not as3.owns_tenant("east", "Common")


@pytest.mark.parametrize("environment", ["", "1east", "east_west", "east-west", "e" * 17, "ést"])
def test_environments_that_cannot_prefix_a_tenant_are_refused(environment: str) -> None:
    with pytest.raises(ValueError, match="environment"):
        as3.tenant_name(environment, "p")


def test_the_revision_is_read_back_from_the_remark() -> None:
    desired = loadbalancer(revision=42)
    app = declared(desired)
    assert as3.held(as3.app_name(desired["id"]), app) == (desired["id"], 42)
    assert as3.held(as3.app_name(desired["id"]), {**app, "remark": "someone else's"}) is None
    assert as3.held("lb_" + "0" * 32, app) is None  # the remark names another load balancer


# --- objects ------------------------------------------------------------------------

def test_an_http_load_balancer() -> None:
    desired = loadbalancer()
    app = declared(desired)
    service = service_of(app, desired["listeners"][0])
    assert service == {"class": "Service_HTTP", "virtualAddresses": [desired["vip_address"]],
                       "virtualPort": 80, "enable": True, "maxConnections": 0,
                       "persistenceMethods": [], "pool": "p_" + uuid.UUID(desired["pools"][0]["id"]).hex}
    body = pool_of(app, desired["pools"][0])
    assert body["loadBalancingMode"] == "ratio-member" and body["monitors"] == []
    [one] = body["members"]
    assert one["serverAddresses"] == ["192.0.2.10"] and one["servicePort"] == 8080
    assert one["adminState"] == "enable" and one["ratio"] == 1 and one["priorityGroup"] == 1


@pytest.mark.parametrize("protocol", ["TCP", "HTTPS"])
def test_tcp_and_https_pass_through_are_tcp_services(protocol: str) -> None:
    desired = loadbalancer(protocol=protocol)
    assert service_of(declared(desired), desired["listeners"][0])["class"] == "Service_TCP"


def test_members_weights_states_and_backups() -> None:
    members = [member(weight=5), member(weight=0), member(admin_state_up=False),
               member(backup=True), member(weight=256)]
    desired = loadbalancer(pools=[pool(members, lb_algorithm="LEAST_CONNECTIONS")])
    body = pool_of(declared(desired), desired["pools"][0])
    assert body["loadBalancingMode"] == "ratio-least-connections-member"
    assert body["minimumMembersActive"] == 1
    states = [(m["adminState"], m["ratio"], m["priorityGroup"]) for m in body["members"]]
    assert states == [("enable", 2, 1), ("disable", 1, 1), ("offline", 1, 1), ("enable", 1, 0),
                      ("enable", 100, 1)]


def test_a_pool_that_is_down_takes_its_members_offline() -> None:
    desired = loadbalancer(pools=[pool([member(), member()], admin_state_up=False)])
    body = pool_of(declared(desired), desired["pools"][0])
    assert {m["adminState"] for m in body["members"]} == {"offline"}


def test_connection_limit_and_admin_state() -> None:
    first = pool()
    desired = loadbalancer(pools=[first], listeners=[listener(first, connection_limit=100),
                                                     listener(first, port=81, admin_state_up=False)])
    app = declared(desired)
    up, down = (service_of(app, x) for x in desired["listeners"])
    assert up["maxConnections"] == 100 and up["enable"] and not down["enable"]
    desired["admin_state_up"] = False
    assert not service_of(declared(desired), desired["listeners"][0])["enable"]


def test_http_monitor() -> None:
    hm = monitor(http_method="HEAD", url_path="/healthz?full=1", expected_codes="200-202,301",
                 http_version="1.1", domain_name="app.example.com")
    desired = loadbalancer(pools=[pool(healthmonitor=hm)])
    app = declared(desired)
    key = uuid.UUID(desired["pools"][0]["id"]).hex
    assert app["p_" + key]["monitors"] == [{"use": "m_" + key}]
    assert app["m_" + key] == {
        "class": "Monitor", "monitorType": "http", "interval": 5, "timeout": 18,
        "send": "HEAD /healthz?full=1 HTTP/1.1\r\nHost: app.example.com\r\nConnection: close\r\n\r\n",
        "receive": "^HTTP/1\\.[01] (200|201|202|301)"}


@pytest.mark.parametrize("kind, monitor_type", [("TCP", "tcp"), ("PING", "icmp"), ("HTTPS", "https")])
def test_other_monitors(kind: str, monitor_type: str) -> None:
    desired = loadbalancer(pools=[pool(healthmonitor=monitor(kind))])
    key = uuid.UUID(desired["pools"][0]["id"]).hex
    assert declared(desired)["m_" + key]["monitorType"] == monitor_type


def test_a_monitor_that_is_down_is_not_used() -> None:
    desired = loadbalancer(pools=[pool(healthmonitor=monitor(admin_state_up=False))])
    app = declared(desired)
    assert pool_of(app, desired["pools"][0])["monitors"] == []
    assert not [k for k in app if k.startswith("m_")]


@pytest.mark.parametrize("persistence, expected", [
    ({"type": "SOURCE_IP", "cookie_name": None}, ["source-address"]),
    ({"type": "HTTP_COOKIE", "cookie_name": None}, ["cookie"]),
])
def test_persistence(persistence: dict, expected: list) -> None:
    desired = loadbalancer(pools=[pool(session_persistence=persistence)])
    assert service_of(declared(desired), desired["listeners"][0])["persistenceMethods"] == expected


def test_app_cookie_persistence_hashes_the_named_cookie() -> None:
    desired = loadbalancer(pools=[pool(session_persistence={"type": "APP_COOKIE", "cookie_name": "JSESSIONID"})])
    app = declared(desired)
    key = uuid.UUID(desired["pools"][0]["id"]).hex
    assert service_of(app, desired["listeners"][0])["persistenceMethods"] == [{"use": "s_" + key}]
    assert app["s_" + key] == {"class": "Persist", "persistenceMethod": "cookie",
                               "cookieMethod": "hash", "cookieName": "JSESSIONID"}


def test_a_listener_without_pool_and_a_pool_without_listener() -> None:
    spare = pool()
    desired = loadbalancer(pools=[spare], listeners=[listener(None)])
    app = declared(desired)
    assert "pool" not in service_of(app, desired["listeners"][0])
    assert pool_of(app, spare)["class"] == "Pool"


def test_ipv6() -> None:
    desired = loadbalancer(vip_address="2001:db8::10",
                           pools=[pool([member(address="2001:db8::20")])])
    app = declared(desired)
    assert service_of(app, desired["listeners"][0])["virtualAddresses"] == ["2001:db8::10"]


# --- idempotence ----------------------------------------------------------------------

def test_the_same_state_gives_the_same_declaration() -> None:
    desired = loadbalancer(pools=[pool(healthmonitor=monitor())])
    assert as3.application(desired) == as3.application(copy.deepcopy(desired))
    following = bump(desired)
    changed = [k for k, v in as3.application(following).items() if as3.application(desired)[k] != v]
    assert changed == ["remark"]


# --- refusals ---------------------------------------------------------------------------

def _refused(desired: dict, words: str) -> None:
    with pytest.raises(as3.Unexpressible, match=words):
        as3.application(desired)


@pytest.mark.parametrize("protocol", ["TERMINATED_HTTPS", "UDP", "SCTP"])
def test_listener_protocols_it_cannot_serve(protocol: str) -> None:
    _refused(loadbalancer(protocol=protocol), f"protocol {protocol}")


@pytest.mark.parametrize("protocol", ["PROXY", "PROXYV2", "UDP"])
def test_pool_protocols_it_cannot_serve(protocol: str) -> None:
    first = pool(protocol=protocol)
    _refused(loadbalancer(pools=[first], listeners=[listener(first, protocol="TCP")]), f"protocol {protocol}")


@pytest.mark.parametrize("field, value, words", [
    ("l7policies", [{"id": "x"}], "L7 policies"),
    ("tls", {"versions": []}, "TLS termination"),
    ("insert_headers", {"X-Forwarded-For": "true", "X-Forwarded-Port": "true"}, "X-Forwarded-Port"),
    ("insert_headers", {"X-Forwarded-Proto": "true"}, "inserts X-Forwarded-For only"),
    ("allowed_cidrs", ["10.0.0.0/8"], "allowed_cidrs"),
    ("timeout_client_data", 1000, "timeout_client_data"),
    ("timeout_tcp_inspect", 5, "timeout_tcp_inspect"),
])
def test_listener_settings_it_cannot_express(field: str, value: object, words: str) -> None:
    desired = loadbalancer()
    desired["listeners"][0][field] = value
    _refused(desired, words)


def test_inserting_no_header_is_fine() -> None:
    desired = loadbalancer()
    desired["listeners"][0]["insert_headers"] = {"X-Forwarded-For": "false", "X-Forwarded-Port": "false"}
    assert "profileHTTP" not in service_of(declared(desired), desired["listeners"][0])


def test_x_forwarded_for_is_an_http_profile() -> None:
    desired = loadbalancer()
    desired["listeners"][0]["insert_headers"] = {"X-Forwarded-For": "true"}
    app = declared(desired)
    key = uuid.UUID(desired["listeners"][0]["id"]).hex
    assert service_of(app, desired["listeners"][0])["profileHTTP"] == {"use": "h_" + key}
    assert app["h_" + key] == {"class": "HTTP_Profile", "xForwardedFor": True}


@pytest.mark.parametrize("change, words", [
    ({"lb_algorithm": "SOURCE_IP"}, "lb_algorithm SOURCE_IP"),
    ({"tls": {"ca": None}}, "TLS towards members"),
    ({"healthmonitor": monitor("UDP-CONNECT")}, "UDP-CONNECT"),
    ({"healthmonitor": monitor("TLS-HELLO")}, "TLS-HELLO"),
    ({"members": [member(monitor_port=9000)]}, "monitor_address/monitor_port"),
    ({"healthmonitor": monitor(delay=100, timeout=10, max_retries_down=9)}, "waits at most 900s"),
])
def test_pool_settings_it_cannot_express(change: dict, words: str) -> None:
    _refused(loadbalancer(pools=[pool(**change)]), words)


def test_cookie_persistence_on_a_tcp_listener() -> None:
    first = pool(protocol="HTTP", session_persistence={"type": "HTTP_COOKIE", "cookie_name": None})
    _refused(loadbalancer(pools=[first], listeners=[listener(first, protocol="TCP")]), "needs an HTTP listener")


@pytest.mark.parametrize("where, value, words", [
    ("vip", "10.0.0.1\nx", "vip_address"),
    ("member", "not-an-ip", "member address"),
    ("url_path", "/a b", "url_path"),
    ("url_path", "/x\r\nHost: evil", "url_path"),
    ("expected_codes", "200|x", "expected_codes"),
    ("domain_name", "evil\r\n.com", "domain_name"),
    ("http_method", "GET /\r\n", "http_method"),
    ("cookie", "a;b", "cookie_name"),
    ("id", "lb-1", "not a UUID"),
])
def test_hostile_values_are_checked_again(where: str, value: str, words: str) -> None:
    desired = loadbalancer(pools=[pool(healthmonitor=monitor(http_version="1.1", domain_name="a.example"))])
    target = desired["pools"][0]
    if where == "vip":
        desired["vip_address"] = value
    elif where == "member":
        target["members"][0]["address"] = value
    elif where == "cookie":
        target["session_persistence"] = {"type": "APP_COOKIE", "cookie_name": value}
    elif where == "id":
        desired["listeners"][0]["id"] = value
    else:
        target["healthmonitor"][where] = value
    _refused(desired, words)
