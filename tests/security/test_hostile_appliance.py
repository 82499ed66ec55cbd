"""Hostile values in desired-state documents, PUT to the real appliance (real HAProxy).

One appliance (``lbaas.appliance.service.create_app`` over a temporary state directory) holds
one load balancer whose document sets every field that reaches haproxy.cfg. Each case PUTs
that document with one field replaced by a hostile value (``tests.security.hostile``).
The contract checked:

* a refusal is a 400 or 422 in the appliance's fault format, and afterwards the load
  balancer's haproxy.cfg is byte-for-byte the one before, the state directory holds the same
  entries, and no process runs that is not HAProxy (a ``program`` section would start one);
* every value with a control, non-ASCII, quote, backslash, space, '#', '$' or '%' character,
  every forbidden or non-canonical address and every unknown enum is refused;
* names may be accepted, but then haproxy.cfg does not change at all;
* anything else accepted (a long plain value, an in-range number) leaves a haproxy.cfg that
  ``haproxy -c`` accepts and that follows the template's grammar (``GRAMMAR`` below).

A pure unit test of ``lbaas.appliance.render`` drives random valid documents (hypothesis)
through validation and rendering and holds every line to the same grammar, with no
``program``, ``lua``, ``external-check``, ``${`` or tenant ``%[`` anywhere.
The case count is the number of collected tests.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from lbaas import constants as c
from lbaas import validate
from lbaas.appliance import render, schema, tlsfiles
from lbaas.testing import certs, tls
from tests.appliance.helpers import HAPROXY, DeviceService, free_port, kill_haproxy, vip
from tests.security import hostile
from tests.security.hostile import Hostile

ZONE_BASE = "fe80::1%eth0"
FREE, CONFIG = "free", "config"
SLEEP_MARKER = "47.25"  # the argument of the program-sleep cases' sleep


def baseline(address: str, port: int) -> dict[str, Any]:
    """A load balancer document setting every field that reaches haproxy.cfg."""
    monitor = {"id": "hm-base", "type": "HTTP", "delay": 30, "timeout": 5, "max_retries": 3,
               "max_retries_down": 3, "http_method": "GET", "url_path": "/healthz",
               "expected_codes": "200", "http_version": "1.1", "domain_name": "example.com",
               "admin_state_up": True}
    member = {"id": "member-base", "name": "", "address": "127.0.0.1", "protocol_port": 9,
              "weight": 1, "backup": False, "admin_state_up": True,
              "monitor_address": "127.0.0.2", "monitor_port": 9}
    return {
        "id": "lb-hostile", "project_id": "p", "revision": 1, "name": "", "admin_state_up": True,
        "vip_address": address,
        "listeners": [{
            "id": "listener-base", "name": "", "protocol": "HTTP", "protocol_port": port,
            "connection_limit": 100, "admin_state_up": True, "timeout_client_data": 50000,
            "timeout_member_connect": 5000, "timeout_member_data": 50000,
            "timeout_tcp_inspect": 0, "default_pool_id": "pool-base",
            "insert_headers": {"X-Forwarded-For": "true"}, "allowed_cidrs": ["127.0.0.0/8"],
            "l7policies": _baseline_policies()}],
        "pools": [{
            "id": "pool-base", "name": "", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
            "admin_state_up": True,
            "session_persistence": {"type": "APP_COOKIE", "cookie_name": "SESSIONID"},
            "members": [member], "healthmonitor": monitor}],
    }


def _rule(ident: str, kind: str, compare: str, value: str, key: str | None = None) -> dict:
    return {"id": ident, "type": kind, "compare_type": compare, "key": key, "value": value,
            "invert": False, "admin_state_up": True}


def _baseline_policies() -> list[dict[str, Any]]:
    """One L7 policy of each action, with every rule type and a key of each kind."""
    none = {"redirect_pool_id": None, "redirect_url": None, "redirect_prefix": None,
            "redirect_http_code": None, "admin_state_up": True}
    return [
        {**none, "id": "pol-pool", "action": "REDIRECT_TO_POOL", "position": 1,
         "redirect_pool_id": "pool-base", "rules": [
             _rule("rule-host", "HOST_NAME", "EQUAL_TO", "example.com"),
             _rule("rule-header", "HEADER", "CONTAINS", "prod", key="X-Env"),
             _rule("rule-cookie", "COOKIE", "STARTS_WITH", "choc", key="flavour")]},
        {**none, "id": "pol-url", "action": "REDIRECT_TO_URL", "position": 2,
         "redirect_url": "https://example.com/moved", "redirect_http_code": 301, "rules": [
             _rule("rule-path", "PATH", "STARTS_WITH", "/api"),
             _rule("rule-file", "FILE_TYPE", "EQUAL_TO", "jpg")]},
        {**none, "id": "pol-prefix", "action": "REDIRECT_PREFIX", "position": 3,
         "redirect_prefix": "https://example.com", "redirect_http_code": 302, "rules": [
             _rule("rule-regex", "PATH", "REGEX", "^/v[0-9]+/")]},
        {**none, "id": "pol-reject", "action": "REJECT", "position": 4, "rules": [
             _rule("rule-end", "PATH", "ENDS_WITH", ".php")]},
    ]


# --- the fields under attack ----------------------------------------------------------

LISTENER, POOL = ("listeners", 0), ("pools", 0)
MEMBER, MONITOR = (*POOL, "members", 0), (*POOL, "healthmonitor")
L7 = (*LISTENER, "l7policies")
L7_RULE_FIELDS = [((*L7, 0, "rules", 0), "example.com"), ((*L7, 0, "rules", 1), "prod"),
                  ((*L7, 0, "rules", 2), "choc"), ((*L7, 1, "rules", 0), "/api"),
                  ((*L7, 1, "rules", 1), "jpg"), ((*L7, 2, "rules", 0), "^/v[0-9]+/")]
# (path in the document, role, base of the string forms, extra value set)
STRING_FIELDS: list[tuple[tuple, str, str, str]] = [
    (("id",), CONFIG, "lb-hostile", ""),
    (("vip_address",), CONFIG, ZONE_BASE, "addresses"),
    ((*LISTENER, "id"), CONFIG, "listener-base", ""),
    ((*LISTENER, "default_pool_id"), CONFIG, "pool-base", ""),
    ((*LISTENER, "protocol"), CONFIG, "HTTP", ""),
    ((*LISTENER, "allowed_cidrs", 0), CONFIG, "127.0.0.0/8", "cidrs"),
    ((*LISTENER, "insert_headers", "X-Forwarded-For"), CONFIG, "true", ""),
    ((*POOL, "id"), CONFIG, "pool-base", ""),
    ((*POOL, "protocol"), CONFIG, "HTTP", ""),
    ((*POOL, "lb_algorithm"), CONFIG, "ROUND_ROBIN", ""),
    ((*POOL, "session_persistence", "type"), CONFIG, "APP_COOKIE", ""),
    ((*POOL, "session_persistence", "cookie_name"), CONFIG, "SESSIONID", ""),
    ((*MEMBER, "id"), CONFIG, "member-base", ""),
    ((*MEMBER, "address"), CONFIG, ZONE_BASE, "addresses"),
    ((*MEMBER, "monitor_address"), CONFIG, ZONE_BASE, "addresses"),
    ((*MONITOR, "id"), CONFIG, "hm-base", ""),
    ((*MONITOR, "type"), CONFIG, "HTTP", ""),
    ((*MONITOR, "http_method"), CONFIG, "GET", ""),
    ((*MONITOR, "url_path"), CONFIG, "/healthz", ""),
    ((*MONITOR, "expected_codes"), CONFIG, "200", ""),
    ((*MONITOR, "http_version"), CONFIG, "1.1", ""),
    ((*MONITOR, "domain_name"), CONFIG, "example.com", ""),
    ((*L7, 0, "id"), CONFIG, "pol-pool", ""),
    ((*L7, 0, "action"), CONFIG, "REDIRECT_TO_POOL", ""),
    ((*L7, 0, "redirect_pool_id"), CONFIG, "pool-base", ""),
    ((*L7, 1, "redirect_url"), CONFIG, "https://example.com/moved", ""),
    ((*L7, 2, "redirect_prefix"), CONFIG, "https://example.com", ""),
    ((*L7, 0, "rules", 0, "id"), CONFIG, "rule-host", ""),
    ((*L7, 0, "rules", 0, "type"), CONFIG, "HOST_NAME", ""),
    ((*L7, 0, "rules", 0, "compare_type"), CONFIG, "EQUAL_TO", ""),
    ((*L7, 0, "rules", 1, "key"), CONFIG, "X-Env", ""),
    ((*L7, 0, "rules", 2, "key"), CONFIG, "flavour", ""),
    *[((*rule, "value"), CONFIG, value, "") for rule, value in L7_RULE_FIELDS],
    (("name",), FREE, "hostile", ""),
    (("project_id",), FREE, "hostile", ""),
    ((*LISTENER, "name"), FREE, "hostile", ""),
    ((*POOL, "name"), FREE, "hostile", ""),
    ((*MEMBER, "name"), FREE, "hostile", ""),
]
# (path, lowest and highest value the appliance may accept)
NUMBER_FIELDS: list[tuple[tuple, int, int]] = [
    (("revision",), 0, 10 ** 1000),  # never in haproxy.cfg: any non-negative integer
    ((*LISTENER, "protocol_port"), 1, 65535),
    ((*LISTENER, "connection_limit"), -1, 2 ** 31 - 1),
    *[((*LISTENER, f), 0, c.MAX_TIMEOUT) for f in (
        "timeout_client_data", "timeout_member_connect", "timeout_member_data",
        "timeout_tcp_inspect")],
    ((*MEMBER, "protocol_port"), 1, 65535),
    ((*MEMBER, "weight"), 0, 256),
    ((*MEMBER, "monitor_port"), 1, 65535),
    ((*MONITOR, "delay"), 5, 86400),   # the monitor's timeout is 5
    ((*MONITOR, "timeout"), 1, 30),    # the monitor's delay is 30
    ((*MONITOR, "max_retries"), 1, 10),
    ((*MONITOR, "max_retries_down"), 1, 10),
    ((*L7, 3, "position"), 1, 2 ** 31 - 1),  # the last policy: no duplicate position
    ((*L7, 1, "redirect_http_code"), 301, 308),  # no hostile integer is 302..307
]


def _label(path: tuple) -> str:
    return ".".join(str(part) for part in path)


def _string_cases() -> list[Any]:
    cases = []
    for path, role, base, extra in STRING_FIELDS:
        values = {"addresses": hostile.addresses(), "cidrs": hostile.cidrs()}.get(extra, [])
        for case in values + hostile.strings(base):
            cases.append(pytest.param(path, role, case, id=f"{_label(path)}-{case.id}"))
    return cases


def _number_cases() -> list[Any]:
    return [pytest.param(path, low, high, case, id=f"{_label(path)}-{case.id}")
            for path, low, high in NUMBER_FIELDS for case in hostile.integers()]


def _replaced(document: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    """A copy of ``document`` with the value at ``path`` replaced (a dict key for a header)."""
    out = copy.deepcopy(document)
    target: Any = out
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return out


# --- the appliance ------------------------------------------------------------------------

class Appliance:
    """A running appliance holding the baseline load balancer; records what it must keep."""

    # What the load balancer holds (its port is replaced by a free one).
    document_factory = staticmethod(baseline)

    def __init__(self, service: DeviceService) -> None:
        self.service = service
        self.document = self.document_factory(vip(), 0)
        self.document["listeners"][0]["protocol_port"] = free_port(self.document["vip_address"])
        self.revisions = itertools.count(2)
        self.put(self.document, expect=200)
        self.config = self.config_bytes()

    @property
    def folder(self) -> Path:
        return self.service.folder(self.document["id"])

    def config_bytes(self) -> bytes:
        return (self.folder / "haproxy.cfg").read_bytes()

    def put(self, document: dict[str, Any], url_id: str | None = None,
            expect: int | None = None, bump: bool = True) -> httpx.Response:
        """PUT ``document`` (with the next revision unless ``bump`` is False) to the URL of
        ``url_id`` (default: the document's id)."""
        if bump:
            document = {**document, "revision": next(self.revisions)}
        ident = urllib.parse.quote(str(url_id if url_id is not None else document.get("id")),
                                   safe="")
        response = self.service.client.put(f"/loadbalancers/{ident}",
                                           content=hostile.body(document),
                                           headers={"Content-Type": "application/json"})
        if expect is not None:
            assert response.status_code == expect, response.text
        return response

    def restore(self) -> None:
        """Put the baseline back (after an accepted case) and prove it is in force."""
        self.put(self.document, expect=200)
        assert self.config_bytes() == self.config


@contextlib.contextmanager
def serving(prefix: str) -> Iterator[DeviceService]:
    """An appliance over a fresh state directory; everything it started is gone afterwards."""
    folder = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    service = DeviceService(folder).start()
    try:
        yield service
    finally:
        try:
            for entry in service.client.get("/loadbalancers").json()["loadbalancers"]:
                service.client.delete(f"/loadbalancers/{entry['id']}")
        finally:
            service.stop()
            service.client.close()
            kill_haproxy(folder)
            _kill_sleepers()
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def appliance() -> Iterator[Appliance]:
    with serving("lbh") as service:
        yield Appliance(service)


# --- processes ------------------------------------------------------------------------------

def _processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, comm, command line) of every process we may read."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        parent = int(stat[stat.rindex(")") + 2:].split()[1])
        found[int(entry.name)] = (parent, comm, cmdline)
    return found


def foreign_processes(state_dir: str) -> set[tuple[int, str]]:
    """Processes descended from this test process or from our HAProxy that are not HAProxy,
    plus anything running the program-sleep case's marker command."""
    procs = _processes()
    roots = {os.getpid()} | {pid for pid, (_, _, cmd) in procs.items() if state_dir in cmd}
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in procs.items():
        children.setdefault(parent, []).append(pid)
    seen, queue = set(), list(roots)
    while queue:
        pid = queue.pop()
        if pid not in seen:
            seen.add(pid)
            queue.extend(children.get(pid, []))
    foreign = {(pid, procs[pid][2]) for pid in seen - {os.getpid()}
               if pid in procs and procs[pid][1] != "haproxy"}
    return foreign | {(pid, cmd) for pid, (_, _, cmd) in procs.items()
                      if f"sleep {SLEEP_MARKER}" in cmd}


def _kill_sleepers() -> None:
    """Kill what the program-sleep case may have started (only that command, by pid)."""
    for pid, (_, _, cmd) in _processes().items():
        if cmd.split() == ["sleep", SLEEP_MARKER]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- checks -----------------------------------------------------------------------------------

def assert_device_fault(response: httpx.Response) -> None:
    assert response.status_code in (400, 422), f"{response.status_code}: {response.text}"
    body = response.json()
    assert set(body) == {"faultcode", "faultstring", "debuginfo"}, body
    assert body["faultcode"] == "Client", body


def haproxy_accepts(text: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="lbh") as folder:
        config = Path(folder) / "haproxy.cfg"
        config.write_bytes(text)
        result = subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True,
                                text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def _expect_refused_or_sound(appliance: Appliance, response: httpx.Response, may_accept: bool,
                             inert: bool, before: tuple) -> None:
    """The outcome of one hostile PUT against the contract in the module docstring."""
    text = appliance.config_bytes()
    after = _before(appliance)
    if response.status_code == 200:
        appliance.restore()
    assert after == before, "a new state entry or process appeared"
    if response.status_code != 200 or not may_accept:
        assert_device_fault(response)
        assert text == appliance.config, "haproxy.cfg changed"
    elif inert:
        assert text == appliance.config, "a name changed haproxy.cfg"
    else:
        haproxy_accepts(text)
        assert_grammar(text.decode("ascii"))


def _routable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False  # a lone surrogate has no URL form
    return value not in ("", ".", "..") and "/" not in value and len(value) < 4096


def _before(appliance: Appliance) -> tuple:
    return (sorted(os.listdir(appliance.service.state_dir)),
            foreign_processes(appliance.service.state_dir))


@pytest.mark.parametrize("path, role, case", _string_cases())
def test_hostile_string(appliance: Appliance, path: tuple, role: str, case: Hostile) -> None:
    document = _replaced(appliance.document, path, case.value)
    before = _before(appliance)
    url_id = None
    if path == ("id",):
        # The hostile id in the URL too, unless no URL can carry it as one path segment.
        url_id = case.value if _routable(case.value) else appliance.document["id"]
    response = appliance.put(document, url_id=url_id)
    may_accept = role == FREE or not hostile.must_reject(case.value)
    _expect_refused_or_sound(appliance, response, may_accept, role == FREE, before)


@pytest.mark.parametrize("case", hostile.strings("X-Forwarded-For"), ids=lambda h: h.id)
def test_hostile_header_name(appliance: Appliance, case: Hostile) -> None:
    document = copy.deepcopy(appliance.document)
    document["listeners"][0]["insert_headers"] = {case.value: "true"}
    before = _before(appliance)
    response = appliance.put(document)
    _expect_refused_or_sound(appliance, response, False, False, before)


@pytest.mark.parametrize("path, low, high, case", _number_cases())
def test_hostile_number(appliance: Appliance, path: tuple, low: int, high: int,
                        case: Hostile) -> None:
    document = _replaced(appliance.document, path, case.value)
    before = _before(appliance)
    response = appliance.put(document, bump=path != ("revision",))
    may_accept = hostile.is_integer_in(case.value, low, high)
    _expect_refused_or_sound(appliance, response, may_accept, False, before)


def test_refused_document_leaves_no_folder(appliance: Appliance) -> None:
    """A first PUT of a new load balancer that is refused leaves nothing behind."""
    document = _replaced(appliance.document, ("id",), "lb-new")
    document = _replaced(document, (*MEMBER, "address"), "::1%eth0\nprogram x")
    before = _before(appliance)
    assert_device_fault(appliance.put(document))
    assert _before(appliance) == before
    assert appliance.service.client.get("/loadbalancers/lb-new").status_code == 404


# --- the template's grammar -----------------------------------------------------------------

_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
_N = r"[0-9]{1,10}"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # canonical: no leading zero
_IP4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_IP6 = r"[0-9a-f:]*:[0-9a-f:.]*"
_IP = rf"(?:{_IP4}|{_IP6})"
_EP = rf"(?:{_IP4}|ipv6@{_IP6}):[0-9]{{1,5}}"
_FILE = r"/[A-Za-z0-9_./-]+"
_URL = r"/[A-Za-z0-9\-._~!&()*+,;=:@/?]*"
_WORD = r"(?:(?![\"'\\#%])[\x21-\x7e])+"
_CONDITION = rf"!?rule_{_ID}(?: !?rule_{_ID})*"
# TLS: versions, cipher names, ALPN names, as bind and server lines carry them.
_CIPHERS = r"[A-Z0-9][A-Za-z0-9_-]*(?::[A-Z0-9][A-Za-z0-9_-]*)*"
_TLS = (r" ssl-min-ver (?:SSLv3|TLSv1\.[0-3]) ssl-max-ver (?:SSLv3|TLSv1\.[0-3])"
        rf"(?: ciphers {_CIPHERS})?(?: ciphersuites {_CIPHERS})?"
        r"(?: alpn (?:h2|http/1\.[01])(?:,(?:h2|http/1\.[01]))*)?")
_DN = r"(?:SN|GN|C|ST|L|O|OU|CN|DC|EMAIL|UID|serialNumber|title)"
SECTION = re.compile(rf"global|defaults|frontend listener_{_ID}|backend pool_{_ID}", re.ASCII)
COMMENT = re.compile(r"(?: {4})?# [\x20-\x7e]*", re.ASCII)
GRAMMAR = {
    "global": [
        rf"stats socket {_FILE} mode 600 level admin expose-fd listeners", r"stats timeout 30s",
        rf"server-state-file {_FILE}", rf"hard-stop-after {_N}ms", r"nbthread 1",
        r"user [a-z_][a-z0-9_-]*", r"group [a-z_][a-z0-9_-]*", rf"chroot {_FILE}"],
    "defaults": [
        r"retries 3", r"option redispatch", r"load-server-state-from-file global",
        rf"timeout (?:connect|client|server) {_N}ms"],
    "frontend": [
        r"mode (?:http|tcp)", r"option idle-close-on-response",
        (rf"bind {_EP}(?: transparent)?(?: ssl crt {_FILE}(?: crt-list {_FILE})?"
         rf"(?: ca-file {_FILE} verify (?:optional|required)(?: crl-file {_FILE})?)?{_TLS})?"),
        rf"maxconn {_N}", rf"timeout client {_N}ms", rf"tcp-request inspect-delay {_N}ms",
        r"disabled", rf"default_backend pool_{_ID}",
        rf"acl allowed_cidr src {_IP}/{_N}(?: {_IP}/{_N})*",
        r"tcp-request connection reject if !allowed_cidr", r"option forwardfor",
        # The one sample fetch the template writes itself; no tenant value is in it.
        r"http-request set-header X-Forwarded-Port %\[dst_port\]",
        r"http-request set-header X-Forwarded-Proto https?",
        # The client certificate headers: fixed fetches of the template's, no tenant value.
        (r"http-request set-header X-SSL-[A-Za-z0-9-]+ "
         r"%(?:\{\+Q\})?\[ssl_c_(?:verify|used|s_dn|s_dn\(cn\)|i_dn|sha1,hex|notbefore|notafter)\]"),
        (r'http-response set-header Strict-Transport-Security '
         r'"max-age=[0-9]+(?:; includeSubDomains)?(?:; preload)?"'),
        rf"acl rule_{_ID} ssl_c_used -m bool", rf"acl rule_{_ID} ssl_c_verify -m int -- [0-9]+",
        # L7 rules and policies: one word of no quote, backslash, '#' or '%' per value.
        (rf"acl rule_{_ID} (?:req\.hdr\(host\),field\(1,:\) -i|path"
         rf"|req\.(?:hdr|cook)\([A-Za-z0-9!*+^|~._-]+\)|ssl_c_s_dn\({_DN}\))"
         rf" -m (?:str|beg|end|sub|reg) -- {_WORD}"),
        rf"http-request deny deny_status 403 if {_CONDITION}",
        rf"http-request redirect (?:location|prefix) https?://{_WORD} code 30[12378] if {_CONDITION}",
        rf"use_backend pool_{_ID} if {_CONDITION}",
        # PROMETHEUS listeners: HAProxy's exporter, on exactly this path.
        r"http-request use-service prometheus-exporter if \{ path /metrics \}"],
    "backend": [
        r"mode (?:http|tcp)", r"balance (?:roundrobin|leastconn|source)", r"hash-type consistent",
        rf"timeout (?:connect|server) {_N}ms", rf"timeout check {_N}s", r"disabled",
        rf"stick-table type (?:ip|ipv6|string len 64) size {_N}k? expire {_N}ms",
        r"stick on src", r"cookie SRV insert indirect nocache",
        r"stick (?:store-response res|match req)\.cook\([A-Za-z0-9_.-]{1,64}\)", r"option httpchk",
        (rf"http-check send meth [A-Z]+ uri {_URL}(?: ver HTTP/1\.[01])?"
         r"(?: hdr Host [A-Za-z0-9.-]+)?"),
        r"http-check expect rstatus \^\([0-9\[\]|-]+\)\$", r"http-check expect status [0-9]{3}",
        r"option ssl-hello-chk",
        (rf"server member_{_ID} {_EP} weight {_N}(?: backup)?(?: disabled)?"
         rf"(?: cookie member_{_ID})?(?: send-proxy(?:-v2)?)?"
         rf"(?: ssl(?: verify required ca-file {_FILE}(?: crl-file {_FILE})?| verify none)"
         rf"(?: crt {_FILE})?{_TLS})?"
         rf"(?: check inter {_N}s fall {_N} rise {_N}(?: check-ssl(?: verify none)?)?"
         rf"(?: check-send-proxy)?(?: addr (?:{_IP}|\[{_IP}\]))?(?: port {_N})?)?")],
}
_DIRECTIVES = {name: re.compile(" {4}(?:" + "|".join(lines) + ")", re.ASCII)
               for name, lines in GRAMMAR.items()}
FORBIDDEN = ("program", "lua", "external-check", "${", "insecure-fork", "setenv", "presetenv")


def assert_grammar(text: str) -> None:
    """Every line is a section start, a template comment or a directive of its section."""
    assert text.isascii(), "non-ASCII text in haproxy.cfg"
    section = None
    for number, line in enumerate(text.split("\n"), 1):
        if not line or COMMENT.fullmatch(line):
            continue
        if SECTION.fullmatch(line):
            section = line.split(" ")[0]
            continue
        assert section and _DIRECTIVES[section].fullmatch(line), f"line {number}: {line!r}"
    lowered = text.lower()
    for word in FORBIDDEN:
        assert word not in lowered, f"{word!r} in haproxy.cfg"
    own = sum(lowered.count(f) for f in ("%[dst_port]", "%[ssl_c_verify]", "%[ssl_c_used]"))
    assert lowered.count("%[") == own, "a sample fetch in haproxy.cfg"


# --- random valid documents -----------------------------------------------------------------

_FORBIDDEN_IN_IDS = ("program", "lua", "external", "setenv", "insecure")
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,15}", fullmatch=True).filter(
    lambda s: not any(w in s.lower() for w in _FORBIDDEN_IN_IDS))
names = st.text(max_size=40)
ipv4 = st.ip_addresses(v=4).filter(
    lambda a: not (a.is_unspecified or a.is_multicast or str(a) == "255.255.255.255")).map(str)
ipv6 = st.ip_addresses(v=6).filter(
    lambda a: not (a.is_unspecified or a.is_multicast or a.ipv4_mapped)).map(str)
url_paths = st.from_regex(r"/[A-Za-z0-9\-._~!&()*+,;=:@/?]{0,40}", fullmatch=True)
cookies = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)
hostnames = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}",
                          fullmatch=True)


@st.composite
def expected_codes(draw: st.DrawFn) -> str:
    low = draw(st.integers(100, 599))
    form = draw(st.sampled_from(["one", "range", "list"]))
    if form == "range":
        return f"{low}-{draw(st.integers(low, 599))}"
    if form == "list":
        return ",".join(str(code) for code in draw(st.lists(st.integers(100, 599), min_size=1,
                                                             max_size=4)))
    return str(low)


@st.composite
def monitors(draw: st.DrawFn) -> dict[str, Any]:
    delay = draw(st.integers(1, 86400))
    version = draw(st.sampled_from([None, "1.0", "1.1"]))
    return {"id": draw(ids), "type": draw(st.sampled_from(c.DEVICE_HEALTH_MONITOR_TYPES)),
            "delay": delay, "timeout": draw(st.integers(1, delay)),
            "max_retries": draw(st.integers(1, 10)), "max_retries_down": draw(st.integers(1, 10)),
            "http_method": draw(st.sampled_from(c.HTTP_METHODS)), "url_path": draw(url_paths),
            "expected_codes": draw(expected_codes()), "http_version": version,
            "domain_name": draw(hostnames) if version == "1.1" and draw(st.booleans()) else None,
            "admin_state_up": draw(st.booleans())}


@st.composite
def members(draw: st.DrawFn, address: st.SearchStrategy[str]) -> dict[str, Any]:
    return {"id": draw(ids), "name": draw(names), "address": draw(address),
            "protocol_port": draw(st.integers(1, 65535)), "weight": draw(st.integers(0, 256)),
            "backup": draw(st.booleans()), "admin_state_up": draw(st.booleans()),
            "monitor_address": draw(st.none() | address),
            "monitor_port": draw(st.none() | st.integers(1, 65535))}


def _persistence(draw: st.DrawFn, http: bool) -> dict[str, Any] | None:
    kinds = list(c.DEVICE_SESSION_PERSISTENCE_TYPES) if http else ["SOURCE_IP"]
    kind = draw(st.none() | st.sampled_from(kinds))
    if kind is None:
        return None
    return {"type": kind, "cookie_name": draw(cookies) if kind == "APP_COOKIE" else None}


# TLS material: made once (key generation is too slow for every example), ids fixed.
_CA = certs.make_ca("Hypothesis CA")
_CERTIFICATES = [tls.certificate(certs.make_cert(_CA, [f"h{i}.example.com"]), ident=f"{i:032x}")
                 for i in range(3)]
_CRL = certs.make_crl(_CA).decode()
_HTTP_LISTENERS = ("HTTP", "TERMINATED_HTTPS")
versions = st.lists(st.sampled_from(c.TLS_VERSIONS), min_size=1, unique=True).filter(
    lambda chosen: chosen != schema.NO_SSLV3_ALONE)
alpn = st.lists(st.sampled_from(c.ALPN_PROTOCOLS), min_size=1, unique=True)
ciphers = st.none() | st.lists(st.sampled_from(sorted(validate.known_ciphers())), min_size=1,
                               max_size=30, unique=True).map(":".join)


@st.composite
def listener_tls(draw: st.DrawFn) -> dict[str, Any]:
    chosen = draw(st.permutations(_CERTIFICATES))[:draw(st.integers(1, 3))]
    mode = draw(st.sampled_from(c.CLIENT_AUTH_MODES))
    authenticated = mode != c.CLIENT_AUTH_NONE
    return tls.listener_tls(
        chosen[0], chosen[1:], client_authentication=mode,
        client_ca=_CA.cert_pem if authenticated else None,
        client_crl=_CRL if authenticated and draw(st.booleans()) else None,
        versions=draw(versions), ciphers=draw(ciphers), alpn_protocols=draw(alpn),
        hsts_max_age=draw(st.none() | st.integers(0, 2 ** 31 - 1)),
        hsts_include_subdomains=draw(st.booleans()), hsts_preload=draw(st.booleans()))


@st.composite
def pool_tls(draw: st.DrawFn) -> dict[str, Any]:
    ca = draw(st.sampled_from([None, _CA.cert_pem]))
    return tls.pool_tls(certificate=draw(st.none() | st.sampled_from(_CERTIFICATES)), ca=ca,
                        crl=_CRL if ca and draw(st.booleans()) else None, versions=draw(versions),
                        ciphers=draw(ciphers), alpn_protocols=draw(alpn))


@st.composite
def pools(draw: st.DrawFn, pool_id: str, listener_protocol: str | None,
          address: st.SearchStrategy[str]) -> dict[str, Any]:
    allowed = c.VALID_LISTENER_POOL_PROTOCOLS[listener_protocol] if listener_protocol \
        else c.DEVICE_POOL_PROTOCOLS
    protocol = draw(st.sampled_from([p for p in allowed if p in c.DEVICE_POOL_PROTOCOLS]))
    http = protocol == "HTTP" or (protocol.startswith("PROXY") and listener_protocol in _HTTP_LISTENERS)
    member_list = draw(st.lists(members(address), max_size=3, unique_by=lambda x: x["id"]))
    return {"id": pool_id, "name": draw(names), "protocol": protocol,
            "lb_algorithm": draw(st.sampled_from(c.DEVICE_LB_ALGORITHMS)),
            "admin_state_up": draw(st.booleans()), "session_persistence": _persistence(draw, http),
            "members": member_list, "healthmonitor": draw(st.none() | monitors()),
            "tls": draw(st.none() | pool_tls())}


@st.composite
def listeners(draw: st.DrawFn, listener_id: str, port: int, pool_id: str | None,
              cidr: st.SearchStrategy[str]) -> dict[str, Any]:
    # A listener with a default pool speaks a protocol that has pools (PROMETHEUS has none).
    protocol = draw(st.sampled_from([p for p in c.DEVICE_LISTENER_PROTOCOLS
                                     if pool_id is None or c.VALID_LISTENER_POOL_PROTOCOLS[p]]))
    flags = st.sampled_from(["true", "false"]) if protocol in _HTTP_LISTENERS else st.just("false")
    names_ = ["X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto"]
    if protocol == "TERMINATED_HTTPS":
        names_ += c.SSL_CLIENT_HEADERS
    headers = draw(st.dictionaries(st.sampled_from(names_), flags))
    timeout = st.integers(0, c.MAX_TIMEOUT)
    return {"id": listener_id, "name": draw(names), "protocol": protocol, "protocol_port": port,
            "connection_limit": draw(st.integers(-1, 1_000_000)),
            "admin_state_up": draw(st.booleans()), "timeout_client_data": draw(timeout),
            "timeout_member_connect": draw(timeout), "timeout_member_data": draw(timeout),
            "timeout_tcp_inspect": draw(timeout), "default_pool_id": pool_id,
            "insert_headers": headers, "allowed_cidrs": draw(st.lists(cidr, max_size=3)),
            "tls": draw(listener_tls()) if protocol == "TERMINATED_HTTPS" else None}


_RULE_VALUES = {
    "HOST_NAME": st.from_regex(r"[A-Za-z0-9.*-]{1,40}", fullmatch=True),
    "PATH": st.from_regex(r"[A-Za-z0-9\-._~!&()*+,;=:@/?]{1,40}", fullmatch=True),
    "FILE_TYPE": st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
    "HEADER": st.from_regex(r"[A-Za-z0-9\-._~!&()*+,;=:@/?<>|^]{1,40}", fullmatch=True),
    "COOKIE": st.from_regex(r"[A-Za-z0-9\-._~!&()*+,:@/?=]{1,40}", fullmatch=True),
}
regexes = st.sampled_from(["^/api$", "[.](jpg|png)$", "^[a-z]{2,}[0-9]*", "x|y", "(?i)a+b?"])
redirects = st.from_regex(r"https?://[a-z0-9.-]{1,30}(:[0-9]{1,5})?(/[A-Za-z0-9\-._~!&()*+,;=:@/?]"
                          r"{0,30})?", fullmatch=True)
header_names = st.from_regex(r"[A-Za-z0-9\-_.!*+^|~]{1,20}", fullmatch=True)


_RULE_VALUES.update({
    "SSL_CONN_HAS_CERT": st.just("True"),
    "SSL_VERIFY_RESULT": st.integers(0, 99999).map(str),
    "SSL_DN_FIELD": st.from_regex(r"[A-Za-z0-9\-._~!&()*+,;=:@/?]{1,40}", fullmatch=True),
})


@st.composite
def l7rules(draw: st.DrawFn, rule_id: str, certificate_rules: bool) -> dict[str, Any]:
    kind = draw(st.sampled_from([k for k in c.L7RULE_TYPES
                                 if certificate_rules or k not in c.L7RULE_SSL_TYPES]))
    compares = ("EQUAL_TO", "REGEX") if kind == "FILE_TYPE" else c.L7RULE_COMPARE_TYPES
    if kind in ("SSL_CONN_HAS_CERT", "SSL_VERIFY_RESULT"):
        compares = ("EQUAL_TO",)
    compare = draw(st.sampled_from(compares))
    key = {"HEADER": header_names, "COOKIE": cookies,
           "SSL_DN_FIELD": st.sampled_from(c.DISTINGUISHED_NAME_FIELDS)}.get(kind, st.none())
    return {"id": rule_id, "type": kind, "compare_type": compare, "key": draw(key),
            "value": draw(regexes if compare == "REGEX" else _RULE_VALUES[kind]),
            "invert": draw(st.booleans()), "admin_state_up": draw(st.booleans())}


@st.composite
def l7policies(draw: st.DrawFn, listener_id: str, pool_id: str | None,
               certificate_rules: bool) -> list[dict[str, Any]]:
    """Up to 4 policies (ids derived from the listener's, so unique); REDIRECT_TO_POOL only
    towards the listener's own (compatible) default pool."""
    actions = [a for a in c.L7POLICY_ACTIONS if pool_id or a != "REDIRECT_TO_POOL"]
    out = []
    for i in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(actions))
        redirects_to = draw(redirects) if action.startswith("REDIRECT_") else None
        out.append({
            "id": f"{listener_id}-p{i}", "action": action, "position": i + 1,
            "redirect_pool_id": pool_id if action == "REDIRECT_TO_POOL" else None,
            "redirect_url": redirects_to if action == "REDIRECT_TO_URL" else None,
            "redirect_prefix": redirects_to if action == "REDIRECT_PREFIX" else None,
            "redirect_http_code": draw(st.sampled_from(c.L7POLICY_REDIRECT_CODES)),
            "admin_state_up": draw(st.booleans()),
            "rules": [draw(l7rules(f"{listener_id}-p{i}-r{j}", certificate_rules))
                      for j in range(draw(st.integers(0, 3)))]})
    return out


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    version = draw(st.sampled_from([4, 6]))
    address = ipv4 if version == 4 else ipv6
    cidr = address.map(lambda a: f"{a}/{32 if version == 4 else 128}")
    object_ids = draw(st.lists(ids, min_size=6, max_size=6, unique=True))
    ports = draw(st.lists(st.integers(1, 65535), min_size=2, max_size=2, unique=True))
    attached = draw(st.booleans())
    listener_list = [draw(listeners(object_ids[0], ports[0], object_ids[2] if attached else None,
                                    cidr)),
                     draw(listeners(object_ids[1], ports[1], None, cidr))]
    if listener_list[0]["protocol"] in _HTTP_LISTENERS:
        listener_list[0]["l7policies"] = draw(l7policies(
            object_ids[0], object_ids[2] if attached else None,
            listener_list[0]["protocol"] == "TERMINATED_HTTPS"))
    pool_list = [draw(pools(object_ids[2], listener_list[0]["protocol"] if attached else None,
                            address)),
                 draw(pools(object_ids[3], None, address))]
    return {"id": object_ids[4], "project_id": draw(names), "revision": draw(st.integers(0, 10**9)),
            "name": draw(names), "admin_state_up": draw(st.booleans()),
            "vip_address": draw(address), "listeners": listener_list, "pools": pool_list}


def _render(document: dict[str, Any], folder: str = "/tmp/lbd-h") -> str:
    """haproxy.cfg of ``document`` as a device with ``folder`` as its load balancer's folder
    renders it; with the TLS files it names written there unless it is the default."""
    valid = schema.validate(document)
    if folder != "/tmp/lbd-h":
        tls_folder = tlsfiles.folder_of(Path(folder))
        tlsfiles.write(tls_folder, tlsfiles.files(valid, tls_folder))
    return render.render(valid, f"{folder}/stats.sock", f"{folder}/state")


def _haproxy_accepts_document(document: dict[str, Any]) -> str:
    """Render ``document`` with its TLS files in place and have ``haproxy -c`` accept it."""
    with tempfile.TemporaryDirectory(prefix="lbh") as folder:
        text = _render(document, folder)
        haproxy_accepts(text.encode("ascii"))
    return text


# No example database: nothing is written into the checkout.
FAST = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
# Each example runs haproxy -c; shrinking a failure would take minutes, so it is skipped
# and the failing document is printed whole instead.
WITH_HAPROXY = settings(max_examples=30, deadline=None, database=None,
                        phases=[Phase.explicit, Phase.generate],
                        suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(documents())
def test_render_follows_grammar(document: dict[str, Any]) -> None:
    note(json.dumps(document, indent=1))
    text = _render(document)
    assert_grammar(text)
    renamed = _replaced_names(document)
    assert _render(renamed) == text, "a name or the project shaped haproxy.cfg"


def _replaced_names(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "x" if k in ("name", "project_id") else _replaced_names(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_replaced_names(v) for v in value]
    return value


@WITH_HAPROXY
@given(documents())
def test_haproxy_accepts_rendered(document: dict[str, Any]) -> None:
    note(json.dumps(document, indent=1))
    _haproxy_accepts_document(document)


def _edge(path: tuple, value: Any) -> dict[str, Any]:
    return _replaced(baseline("127.0.9.9", 80), path, value)


EDGE_DOCUMENTS = {
    "one-code-range": _edge((*MONITOR, "expected_codes"), "441-441"),
    "every-code": _edge((*MONITOR, "expected_codes"), "100-599"),
    "ipv6-monitor-address": _edge((*MEMBER, "monitor_address"), "::1"),
    "ipv6-member": _edge((*MEMBER, "address"), "2001:db8::1"),
    "ipv6-vip": _replaced(_edge(("vip_address",), "::1"), (*LISTENER, "allowed_cidrs"),
                          ["::1/128"]),
    "long-url-path": _edge((*MONITOR, "url_path"), "/" + "a" * 1023),
    "every-header": _edge((*LISTENER, "insert_headers"), {
        "X-Forwarded-For": "true", "X-Forwarded-Port": "true", "X-Forwarded-Proto": "true"}),
    "many-cidrs": _edge((*LISTENER, "allowed_cidrs"), [f"10.{i}.0.0/16" for i in range(100)]),
    "long-l7-values": _replaced(_replaced(
        _edge((*L7, 0, "rules", 1, "value"), "prod-" + "p" * 1019),
        (*L7, 1, "redirect_url"), "https://example.com/" + "m" * 2000),
        (*L7, 2, "rules", 0, "value"), "^/(v|w)[0-9]{1,3}/" + "x" * 1000 + "$"),
    "no-l7-policies": _edge((*LISTENER, "l7policies"), []),
}


@pytest.mark.parametrize("document", EDGE_DOCUMENTS.values(), ids=EDGE_DOCUMENTS.keys())
def test_render_edge_documents(document: dict[str, Any]) -> None:
    """Valid corners random documents may miss: grammar and ``haproxy -c`` both hold."""
    text = _render(document)
    assert_grammar(text)
    haproxy_accepts(text.encode("ascii"))


def test_case_count() -> None:
    """The suite may not shrink unnoticed; prints the counts for the record."""
    counts = {"strings": len(_string_cases()), "header names": len(hostile.strings()),
              "numbers": len(_number_cases())}
    print(f"hostile appliance cases: {counts}, total {sum(counts.values())}")
    assert counts["strings"] > 1000 and counts["numbers"] > 150
