"""Hostile HTTP: oversized and endless bodies, JSON bombs, bytes no database
stores, and control characters in URLs.  Every one is a 4xx in Octavia's
fault format, costs the server nothing, and writes nothing.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from lbaas.appliance.service import DeviceConfig
from lbaas.appliance.service import create_app as device_app
from tests.conftest import Api, dump, free_port

LIMIT = 1048576  # [api] max_request_body_size, default


def _fault(response, status: int, *words: str) -> None:
    assert response.status_code == status, dump(response)
    body = response.json()
    assert set(body) == {"faultcode", "faultstring", "debuginfo"}, body
    assert body["faultcode"] == "Client" and body["debuginfo"] == response.headers["x-openstack-request-id"]
    for word in words:
        assert word in body["faultstring"], body["faultstring"]


def _count_lbs(api: Api) -> int:
    return len(api.get("/lbaas/loadbalancers?fields=id").json()["loadbalancers"])


def _raw(api: Api, head: bytes, body: bytes, read_timeout: float = 5.0) -> tuple[int, dict, float]:
    """Send ``head`` + ``body`` on a fresh connection and read one answer: (status, body, seconds)."""
    address = urlsplit(api.url)
    started = time.monotonic()
    with socket.create_connection((address.hostname, address.port), timeout=read_timeout) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not _complete(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    elapsed = time.monotonic() - started
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(payload), elapsed


def _complete(answer: bytes) -> bool:
    head, _, payload = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(payload) >= int(line.split(b":")[1])
    return False


def test_a_huge_content_length_is_refused_unread_without_a_token(api: Api) -> None:
    """2 GiB announced, a few bytes sent, no token: 413 at once, the rest never awaited."""
    head = (b"POST /v2/lbaas/loadbalancers HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2147483648\r\n\r\n")
    status, body, seconds = _raw(api, head, b'{"loadbalancer": {')
    assert status == 413, body
    assert body["faultcode"] == "Client" and str(LIMIT) in body["faultstring"]
    assert seconds < 2


def test_a_chunked_body_is_cut_off_once_past_the_limit(api: Api) -> None:
    """The client never ends its chunked body: the 413 comes once the limit is passed."""
    head = (b"POST /v2/lbaas/loadbalancers HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"X-Auth-Token: " + api.tokens["admin"].encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 65536
    # Just past the limit and no terminating 0-chunk: the server must not wait for more.
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(LIMIT // len(chunk) + 1))
    status, answer, _ = _raw(api, head, body)
    assert status == 413, answer
    assert answer["faultcode"] == "Client"


def test_streamed_bodies_are_counted_not_trusted(api: Api) -> None:
    before = _count_lbs(api)

    def stream(size: int) -> Iterator[bytes]:
        document = json.dumps({"loadbalancer": {"vip_subnet_id": "test-subnet", "name": "x" * size}}).encode()
        for i in range(0, len(document), 8192):
            yield document[i:i + 8192]

    _fault(api.request("POST", "/lbaas/loadbalancers", content=stream(LIMIT + 1)), 413, "larger than")
    # Under the limit the same stream reaches validation: a 400 for the name, not a 413.
    _fault(api.request("POST", "/lbaas/loadbalancers", content=stream(LIMIT - 200)), 400, "name")
    assert _count_lbs(api) == before


def test_a_body_at_the_limit_is_read(api: Api) -> None:
    document = json.dumps({"loadbalancer": {"vip_subnet_id": "test-subnet"}}).encode()
    padded = document + b" " * (LIMIT - len(document))
    response = api.request("POST", "/lbaas/loadbalancers", content=padded,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 201, dump(response)
    api.wait_lb(response.json()["loadbalancer"]["id"])
    _fault(api.request("POST", "/lbaas/loadbalancers", content=padded + b" "), 413)


@pytest.mark.parametrize("raw, words", [
    (b"[" * 100000 + b"]" * 100000, ["nested deeper"]),
    (b'{"loadbalancer": ' + b'{"a": ' * 40 + b"1" + b"}" * 41, ["nested deeper"]),
    (b'{"loadbalancer": {"vip_subnet_id": "test-subnet", "tags": ' + b"[" * 5000 + b"]" * 5000 + b"}}",
     ["nested deeper"]),
    (b'{"loadbalancer": {"vip_subnet_id": "test-subnet", "name": "\\ud800"}}', ["loadbalancer.name", "surrogate"]),
    (b'{"loadbalancer": {"vip_subnet_id": "test-subnet", "name": "a\\udfffb"}}', ["loadbalancer.name"]),
    (b'{"loadbalancer": {"vip_subnet_id": "test-subnet", "description": "a\\u0000b"}}',
     ["loadbalancer.description", "NUL"]),
    (b'{"loadbalancer": {"vip_subnet_id": "test-subnet", "tags": ["ok", "\\u0000"]}}', ["loadbalancer.tags.1"]),
    (b'{"loadbalancer": {"vip_subnet_id": "test-subnet", "\\u0000": 1}}', ["attribute name"]),
    (b'{"loadbalancer": {"vip_subnet_id": "test-subnet", "name": "\xff\xfe"}}', ["UTF-8"]),
    (b'{"loadbalancer": {"vip_subnet_id": "caf\xe9"}}', ["UTF-8"]),
    ('{"loadbalancer": {"vip_subnet_id": "test-subnet"}}'.encode("utf-16"), ["UTF-8"]),
    (b'{"loadbalancer": {"vip_subnet_id": "test-subnet", "name": "a\x00b"}}', ["not valid JSON"]),
    (b'{"loadbalancer": {"vip_subnet_id": "test-subnet", "listeners": NaN}}', ["not valid JSON"]),
    (b'{"loadbalancer": {"vip_subnet_id": "test-subnet", "listeners": -Infinity}}', ["not valid JSON"]),
    (b'{"loadbalancer": {"vip_subnet_id": "test-subnet", "listeners": 1e400}}', ["not valid JSON"]),
    (b'{"loadbalancer": {"vip_subnet_id": "test-subnet", "listeners": ' + b"9" * 5000 + b"}}",
     ["not valid JSON"]),
    (b"\xef\xbb\xbf{}", ["not valid JSON"]),
])
def test_json_that_no_database_stores_is_400(api: Api, raw: bytes, words: list[str]) -> None:
    before = _count_lbs(api)
    response = api.request("POST", "/lbaas/loadbalancers", content=raw,
                           headers={"Content-Type": "application/json"})
    _fault(response, 400, *words)
    assert _count_lbs(api) == before


def test_unicode_beyond_the_bmp_is_stored_as_given(api: Api) -> None:
    name = "\U0001F600\u00e9\u4e2d" * 85  # 255 characters, 4-, 2- and 3-byte UTF-8
    lb = api.create_lb(name=name, description="\u0130stanbul \U0001F30D")
    assert len(name) == 255
    found = api.get(f"/lbaas/loadbalancers/{lb['id']}").json()["loadbalancer"]
    assert (found["name"], found["description"]) == (name, "\u0130stanbul \U0001F30D")
    listed = api.get("/lbaas/loadbalancers", params={"name": name}).json()["loadbalancers"]
    assert [x["id"] for x in listed] == [lb["id"]]


@pytest.mark.parametrize("query, words", [
    ("name=%00", ["name", "control"]),
    ("name=a%0Ab", ["name", "control"]),
    ("description=%1B%5B2J", ["description", "control"]),
    ("%00=x", ["control"]),
    ("name=%ED%A0%80", ["UTF-8"]),        # an encoded lone surrogate
    ("name=%FF", ["UTF-8"]),
    ("marker=%C2%85", ["control"]),       # NEL, a C1 control
    ("tags=a%00", ["control"]),
    ("sort_key=name%09", ["control"]),
])
def test_query_strings_no_database_takes_are_400(api: Api, query: str, words: list[str]) -> None:
    for path in ("/lbaas/loadbalancers", "/lbaas/listeners", "/lbaas/quotas"):
        _fault(api.get(f"{path}?{query}"), 400, *words)
    _fault(api.request("DELETE", f"/lbaas/loadbalancers/nope?{query}"), 400, *words)


@pytest.mark.parametrize("path", ["/lbaas/loadbalancers/%00", "/lbaas/pools/a%0Db", "/lbaas/listeners/%7F",
                                  "/lbaas/pools/x/members/%00"])
def test_control_characters_in_paths_are_400(api: Api, path: str) -> None:
    _fault(api.get(path), 400, "control")
    _fault(api.put(path, {"pool": {}}), 400, "control")


def test_odd_but_valid_urls_are_answered(api: Api) -> None:
    """Printable oddities are not errors: they find nothing."""
    assert api.get("/lbaas/loadbalancers?name=%F0%9F%98%80").json()["loadbalancers"] == []
    assert api.get("/lbaas/loadbalancers?name=" + "a" * 5000).json()["loadbalancers"] == []
    _fault(api.get("/lbaas/loadbalancers/%F0%9F%98%80"), 404)
    _fault(api.get("/lbaas/loadbalancers/" + "b" * 3000), 404)


# --- the appliance answers in its own fault format, whatever HAProxy prints ------------------

FAKE_HAPROXY = """#!/bin/sh
# An HAProxy that prints bytes that are not UTF-8, and rejects every configuration.
if [ "$1" = "-v" ]; then
    printf 'HAProxy version 2.8.5-1 2024/01/01 - https://haproxy.org/\\n\\377\\376 caf\\351\\n'
    exit 0
fi
printf '[ALERT] (1) : config : parsing [haproxy.cfg:3] : unknown keyword \\047caf\\351\\377\\047\\n'
exit 1
"""


@pytest.fixture
def appliance(tmp_path: Any) -> Iterator[httpx.Client]:
    """A device service whose HAProxy binary is the fake above."""
    binary = tmp_path / "haproxy"
    binary.write_text(FAKE_HAPROXY)
    binary.chmod(0o755)
    (tmp_path / "state").mkdir()
    port = free_port()
    config = DeviceConfig(token="hostile-token", bind_port=port, state_dir=str(tmp_path / "state"),
                          haproxy_bin=str(binary), check_interval=0)
    server = uvicorn.Server(uvicorn.Config(device_app(config), host="127.0.0.1", port=port,
                                           log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "device service did not start"
        time.sleep(0.02)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-Auth-Token": "hostile-token"},
                      timeout=30) as client:
        yield client
    server.should_exit = True
    thread.join(timeout=10)


def _device_fault(response: httpx.Response, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"faultcode", "faultstring", "debuginfo"} and body["faultcode"] == code, body
    for word in words:
        assert word in body["faultstring"], body["faultstring"]


def test_appliance_survives_haproxy_output_that_is_not_utf8(appliance: httpx.Client) -> None:
    assert appliance.get("/").json()["haproxy_version"] == "2.8.5"
    desired = {"id": "lb-hostile", "project_id": "p", "revision": 1, "name": "", "admin_state_up": True,
               "vip_address": "127.0.9.1", "listeners": [], "pools": []}
    response = appliance.put("/loadbalancers/lb-hostile", json=desired)
    _device_fault(response, 422, "Client", "haproxy rejected", "caf\ufffd")


@pytest.mark.parametrize("raw, words", [
    (b"[" * 100000 + b"]" * 100000, ["nested deeper"]),
    (b'{"id": "\\ud800"}', ["surrogate"]),
    (b'{"id": "a\\u0000"}', ["NUL"]),
    (b'{"id": "caf\xe9"}', ["UTF-8"]),
    (b"", ["empty"]),
])
def test_appliance_refuses_hostile_json_in_its_fault_format(appliance: httpx.Client, raw: bytes,
                                                            words: list[str]) -> None:
    _device_fault(appliance.put("/loadbalancers/x", content=raw), 400, "Client", *words)


def test_appliance_failures_are_faults_not_tracebacks(appliance: httpx.Client, tmp_path: Any) -> None:
    """A state directory entry that is not a directory: an unexpected OSError, answered as a fault."""
    (tmp_path / "state" / "lb-blocked").write_text("not a directory")
    desired = {"id": "lb-blocked", "project_id": "p", "revision": 1, "name": "", "admin_state_up": True,
               "vip_address": "127.0.9.2", "listeners": [], "pools": []}
    response = appliance.put("/loadbalancers/lb-blocked", json=desired)
    _device_fault(response, 500, "Server")
    assert "Traceback" not in response.text and str(tmp_path) not in response.text
