"""Validation and rendering without a running HAProxy (``haproxy -c`` only)."""

import copy
import subprocess

import pytest

from lbaas.appliance import render, schema
from lbaas.appliance.errors import InvalidRequest
from lbaas.appliance.status import status_document
from tests.appliance.helpers import HAPROXY

EVERYTHING = {
    "id": "lb-1", "revision": 3, "vip_address": "127.0.9.5", "ignored": {"x": 1},
    "listeners": [
        {"id": "l-http", "protocol": "HTTP", "protocol_port": 80, "default_pool_id": "p-http",
         "connection_limit": 100, "timeout_tcp_inspect": 500},
        {"id": "l-tcp", "protocol": "TCP", "protocol_port": 81, "default_pool_id": "p-proxy",
         "admin_state_up": False},
        {"id": "l-https", "protocol": "HTTPS", "protocol_port": 443, "default_pool_id": "p-tls"},
        {"id": "l-empty", "protocol": "TCP", "protocol_port": 82, "default_pool_id": None},
    ],
    "pools": [
        {"id": "p-http", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
         "session_persistence": {"type": "HTTP_COOKIE", "cookie_name": "ignored"},
         "members": [
             {"id": "m-1", "address": "127.0.0.1", "protocol_port": 8080},
             {"id": "m-2", "address": "127.0.0.1", "protocol_port": 8081, "weight": 0,
              "backup": True, "admin_state_up": False, "monitor_address": "127.0.0.2",
              "monitor_port": 9000}],
         "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 3,
                           "http_method": "HEAD", "url_path": "/healthz?full=1",
                           "expected_codes": "200-299,301"}},
        {"id": "p-proxy", "protocol": "PROXY", "lb_algorithm": "SOURCE_IP",
         "session_persistence": {"type": "SOURCE_IP"},
         "members": [{"id": "m-3", "address": "::1", "protocol_port": 8082}],
         "healthmonitor": {"type": "PING", "delay": 5, "timeout": 3, "max_retries": 2}},
        {"id": "p-tls", "protocol": "HTTPS", "lb_algorithm": "LEAST_CONNECTIONS",
         "admin_state_up": False,
         "members": [{"id": "m-4", "address": "127.0.0.1", "protocol_port": 8443}],
         "healthmonitor": {"type": "HTTPS", "delay": 5, "timeout": 3, "max_retries": 3,
                           "expected_codes": "200,204"}},
        {"id": "p-app", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
         "session_persistence": {"type": "APP_COOKIE", "cookie_name": "JSESSIONID"},
         "members": [{"id": "m-5", "address": "127.0.0.1", "protocol_port": 8083}],
         "healthmonitor": {"type": "TLS-HELLO", "delay": 5, "timeout": 3, "max_retries": 3}},
    ],
}


def rendered(doc: dict = EVERYTHING) -> str:
    return render.render(schema.validate(doc), "/tmp/lbd-x/stats.sock", "/tmp/lbd-x/state")


def test_validate_fills_defaults_and_drops_unknown_keys():
    desired = schema.validate(EVERYTHING)

    assert "ignored" not in desired
    listener = desired["listeners"][2]
    assert listener["timeout_client_data"] == 50000 and listener["connection_limit"] == -1
    assert desired["pools"][0]["session_persistence"]["cookie_name"] is None
    assert desired["pools"][1]["members"][0]["address"] == "::1"
    assert desired["pools"][1]["healthmonitor"]["max_retries_down"] == 3


def test_rendered_features():
    text = rendered()

    assert "bind 127.0.9.5:80" in text and "maxconn 100" in text
    assert "tcp-request inspect-delay 500ms" in text
    assert "frontend listener_l-tcp\n    mode tcp\n    bind 127.0.9.5:81\n" in text
    assert "balance leastconn" in text and "hash-type consistent" in text
    assert "cookie SRV insert indirect nocache" in text
    assert "stick on src" in text and "stick match req.cook(JSESSIONID)" in text
    assert "http-check send meth HEAD uri /healthz?full=1" in text
    assert "http-check expect rstatus ^(2[0-9][0-9]|301)$" in text
    assert "http-check expect rstatus ^(20[04])$" in text
    assert ("server member_m-2 127.0.0.1:8081 weight 0 backup disabled cookie member_m-2 "
            "check inter 5s fall 3 rise 3 addr 127.0.0.2 port 9000") in text
    assert "server member_m-3 ipv6@::1:8082 weight 1 send-proxy check" in text
    assert "check-send-proxy" in text and "check-ssl verify none" in text
    assert "option ssl-hello-chk" in text


def test_haproxy_accepts_everything(tmp_path):
    config = tmp_path / "haproxy.cfg"
    config.write_text(rendered())

    result = subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True,
                            text=True, timeout=30)

    assert result.returncode == 0, result.stdout + result.stderr


def test_rendering_ignores_names_and_revision():
    other = copy.deepcopy(EVERYTHING)
    other["revision"], other["name"], other["project_id"] = 9, "new name", "other"
    other["pools"][0]["members"][0]["name"] = "renamed"

    assert rendered(other) == rendered()


def test_runtime_changes_are_recognised():
    old = schema.validate(EVERYTHING)
    new = copy.deepcopy(old)
    new["pools"][0]["members"][0]["weight"] = 7
    new["pools"][0]["members"][1]["admin_state_up"] = True

    probe = render.with_runtime_values(new, old)

    assert render.render(probe, "/s", "/f") == render.render(old, "/s", "/f")
    assert render.runtime_commands(old, new) == [
        "set server pool_p-http/member_m-1 weight 7",
        "set server pool_p-http/member_m-2 state ready"]


@pytest.mark.parametrize("codes, regex", [
    ("200", None), ("200,202", "^(20[02])$"), ("200-204", "^(20[01234])$"),
    ("100-599", "^(1[0-9][0-9]|2[0-9][0-9]|3[0-9][0-9]|4[0-9][0-9]|5[0-9][0-9])$")])
def test_expected_codes(codes, regex):
    assert render.expect_regex(codes) == regex


@pytest.mark.parametrize("path, value, message", [
    ("pools.0.healthmonitor.url_path", '/"quoted"', "url_path"),
    ("pools.0.healthmonitor.expected_codes", "200-100", "expected_codes"),
    ("pools.0.healthmonitor.http_method", "FETCH", "http_method"),
    ("pools.1.session_persistence.type", "COOKIE_MONSTER", "unknown"),
    ("pools.1.lb_algorithm", "SOURCE_IP_PORT", "not supported"),
    ("listeners.2.protocol", "UDP", "not supported"),
    ("listeners.2.protocol", "TERMINATED_HTTPS", "tls is required"),
    ("listeners.1.protocol_port", 80, "duplicate"),
    ("listeners.3.default_pool_id", "p-http", "more than one listener"),
    ("listeners.0.default_pool_id", "p-tls", "cannot use pool"),
    ("pools.3.protocol", "TCP", "needs an HTTP pool"),
    ("pools.0.members.1.id", "m-1", "duplicate"),
    ("listeners.0.id", None, "required"),
])
def test_invalid_documents(path, value, message):
    doc = copy.deepcopy(EVERYTHING)
    *parents, key = path.split(".")
    target = doc
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[key] = value

    with pytest.raises(InvalidRequest, match=message):
        schema.validate(doc)


def test_status_rules():
    desired = schema.validate(EVERYTHING)
    rows = [
        {"pxname": "listener_l-http", "svname": "FRONTEND", "status": "OPEN", "bin": "10",
         "bout": "20", "scur": "1", "stot": "5", "ereq": "1"},
        {"pxname": "listener_l-https", "svname": "FRONTEND", "status": "OPEN"},
        {"pxname": "listener_l-empty", "svname": "FRONTEND", "status": "OPEN"},
        {"pxname": "pool_p-http", "svname": "member_m-1", "status": "UP 1/3"},
        {"pxname": "pool_p-http", "svname": "member_m-2", "status": "MAINT"},
        {"pxname": "pool_p-proxy", "svname": "member_m-3", "status": "DOWN"},
        {"pxname": "pool_p-app", "svname": "member_m-5", "status": "DOWN 1/2"},
    ]

    doc = status_document(desired, rows)

    pools = {p["id"]: p for p in doc["pools"]}
    assert [m["operating_status"] for m in pools["p-http"]["members"]] == ["ONLINE", "OFFLINE"]
    assert pools["p-http"]["operating_status"] == "ONLINE"
    assert pools["p-proxy"]["operating_status"] == "ERROR"
    assert pools["p-tls"]["operating_status"] == "OFFLINE"
    assert [ln["operating_status"] for ln in doc["listeners"]] == [
        "ONLINE", "OFFLINE", "ERROR", "ONLINE"]
    assert doc["operating_status"] == "DEGRADED"
    assert doc["stats"] == {"bytes_in": 10, "bytes_out": 20, "active_connections": 1,
                            "total_connections": 5, "request_errors": 1}

    unavailable = status_document(desired, None)
    assert unavailable["operating_status"] == "ERROR"
    assert {ln["operating_status"] for ln in unavailable["listeners"]} == {"OFFLINE"}
