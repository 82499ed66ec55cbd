"""TLS on the appliance: real HAProxy, real TLS on loopback, certificates made by the tests.

TERMINATED_HTTPS listeners (certificate per SNI name, the default one without SNI, client
authentication with a CA and a CRL, client certificate headers, ALPN, HSTS, L7 rules on the
client certificate), re-encrypting pools (members verified against a CA, a client
certificate presented to them), TLS health monitors, certificate rotation under load, the
files (0600, pruned, removed with the load balancer), private keys kept out of GET answers
and logs; then validation of every TLS field without HAProxy.
"""

from __future__ import annotations

import copy
import http.client
import logging
import re
import socket
import ssl
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes

from lbaas import constants as c
from lbaas.appliance import render, schema, tlsfiles
from lbaas.appliance.errors import InvalidRequest
from lbaas.testing import certs
from lbaas.testing import tls as t
from lbaas.testing.backends import Backend
from tests.appliance.helpers import HAPROXY, bump, fetch, loadbalancer, member, uid, url_of, wait_for

# What PEM text (a key's included) looks like inside a message or a log.
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{40}")
CLIENT_ERRORS = (ssl.SSLError, ConnectionError, http.client.HTTPException, OSError)


@pytest.fixture(scope="module")
def ca() -> certs.Issued:
    return certs.make_ca("Test Root CA")


@pytest.fixture(scope="module")
def other_ca() -> certs.Issued:
    return certs.make_ca("Another CA")


@pytest.fixture(scope="module")
def www(ca: certs.Issued) -> certs.Issued:
    return certs.make_cert(ca, ["www.example.com"])


@pytest.fixture(scope="module")
def api(ca: certs.Issued) -> certs.Issued:
    return certs.make_cert(ca, ["api.example.com", "*.api.example.com"])


def terminated_lb(backend: Backend, default: certs.Issued, sni: tuple[certs.Issued, ...] = (),
                  **tls: object) -> dict:
    """A TERMINATED_HTTPS load balancer in front of ``backend``."""
    desired = loadbalancer([member(backend)])
    return t.terminated(desired, t.listener_tls(t.certificate(default),
                                                [t.certificate(x) for x in sni], **tls))


def endpoint(desired: dict) -> tuple[str, int]:
    return desired["vip_address"], desired["listeners"][0]["protocol_port"]


def https(desired: dict, name: str | None = "www.example.com", trust: certs.Issued | None = None,
          client: certs.Issued | None = None, alpn: tuple[str, ...] = ()) -> t.Answer:
    return t.get(*endpoint(desired), t.client_context(trust, client, alpn), server_name=name)


def refused(desired: dict, client: certs.Issued | None = None) -> bool:
    """True when the listener refuses the connection (handshake, or the first read in TLS 1.3,
    where the server judges the client certificate after the client finished)."""
    try:
        answer = https(desired, client=client)
    except CLIENT_ERRORS:
        return True
    return answer.status >= 400 and answer.status != 404


def negotiated(desired: dict, offer: list[str]) -> str | None:
    context = t.client_context(alpn=offer)
    with socket.create_connection(endpoint(desired), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="www.example.com") as sock:
            return sock.selected_alpn_protocol()


def server_context(issued: certs.Issued, require_client_of: certs.Issued | None = None) -> ssl.SSLContext:
    """A TLS back end's context serving ``issued``; asking for a client certificate signed by
    ``require_client_of`` when given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="lbt") as folder:
        path = Path(folder) / "server.pem"
        path.write_text(issued.cert_pem + issued.key_pem)
        context.load_cert_chain(str(path))
    if require_client_of is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=require_client_of.cert_pem)
    return context


# --- termination ----------------------------------------------------------------------------

def test_certificate_per_sni_name_and_default_without_sni(device, backends, ca, www, api) -> None:
    desired = terminated_lb(backends("web"), www, (api,))
    assert device.apply(desired) == c.APPLIED_STARTED

    assert https(desired, "api.example.com", trust=ca).peer_cn == "api.example.com"
    assert https(desired, "v2.api.example.com", trust=ca).peer_cn == "api.example.com"
    assert https(desired, "www.example.com", trust=ca).peer_cn == "www.example.com"
    assert https(desired, "unknown.example.org").peer_cn == "www.example.com"
    answer = https(desired, None)
    assert (answer.peer_cn, answer.status, answer.body) == ("www.example.com", 200, "web")


def test_mandatory_client_authentication_with_crl(device, backends, ca, other_ca, www) -> None:
    good = certs.make_cert(ca, ["client.example.com"], client=True)
    revoked = certs.make_cert(ca, ["revoked.example.com"], client=True)
    stranger = certs.make_cert(other_ca, ["stranger.example.com"], client=True)
    desired = terminated_lb(backends("web"), www, client_authentication="MANDATORY",
                            client_ca=ca.cert_pem,
                            client_crl=certs.make_crl(ca, [revoked]).decode())
    device.apply(desired)

    assert refused(desired)
    assert refused(desired, client=stranger)
    assert refused(desired, client=revoked)
    assert https(desired, client=good).body == "web"


def test_optional_client_authentication_passes_certificate_headers(device, backends, ca, www) -> None:
    backend = backends("web")
    client = certs.make_cert(ca, ["client.example.com"], client=True)
    desired = terminated_lb(backend, www, client_authentication="OPTIONAL", client_ca=ca.cert_pem)
    desired["listeners"][0]["insert_headers"] = {
        name: "true" for name in ("X-SSL-Client-Verify", "X-SSL-Client-Has-Cert",
                                  "X-SSL-Client-CN", "X-SSL-Client-DN", "X-SSL-Issuer",
                                  "X-SSL-Client-SHA1", "X-Forwarded-Proto")}
    device.apply(desired)

    def seen() -> dict[str, str]:
        # HAProxy sends header names in lower case over HTTP/1.1.
        return {name.lower(): value for name, value in backend.last_headers.items()}

    assert https(desired).status == 200
    assert seen()["x-ssl-client-has-cert"] == "0"
    assert seen()["x-forwarded-proto"] == "https"

    assert https(desired, client=client).status == 200
    headers = seen()
    assert (headers["x-ssl-client-verify"], headers["x-ssl-client-has-cert"]) == ("0", "1")
    assert headers["x-ssl-client-cn"] == "client.example.com"
    assert headers["x-ssl-issuer"] == "/CN=Test Root CA"
    assert headers["x-ssl-client-sha1"].lower() == client.cert.fingerprint(
        hashes.SHA1()).hex()


def test_alpn_negotiates_h2_and_hsts_is_sent(device, backends, www) -> None:
    desired = terminated_lb(backends("web"), www, hsts_max_age=31536000,
                            hsts_include_subdomains=True, hsts_preload=True)
    device.apply(desired)

    assert negotiated(desired, ["h2", "http/1.1"]) == "h2"
    assert negotiated(desired, ["http/1.1"]) == "http/1.1"
    answer = https(desired)
    assert answer.headers["strict-transport-security"] == \
        "max-age=31536000; includeSubDomains; preload"

    desired["listeners"][0]["tls"]["alpn_protocols"] = ["http/1.1"]
    device.apply(bump(desired))
    assert negotiated(desired, ["h2", "http/1.1"]) == "http/1.1"


def test_tls_versions_and_ciphers_are_enforced(device, backends, www) -> None:
    desired = terminated_lb(backends("web"), www, versions=["TLSv1.2"],
                            ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    device.apply(desired)

    context = t.client_context()
    with socket.create_connection(endpoint(desired), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="www.example.com") as sock:
            assert sock.version() == "TLSv1.2"
            assert sock.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
    only13 = t.client_context()
    only13.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises(CLIENT_ERRORS):
        t.get(*endpoint(desired), only13, server_name="www.example.com")


def test_l7_rules_on_the_client_certificate(device, backends, ca, www) -> None:
    desired = terminated_lb(backends("anonymous"), www, client_authentication="OPTIONAL",
                            client_ca=ca.cert_pem)
    pools = {}
    for name in ("special", "verified"):
        pools[name] = uid("pool")
        desired["pools"].append({"id": pools[name], "protocol": "HTTP",
                                 "lb_algorithm": "ROUND_ROBIN", "members": [member(backends(name))]})

    def rule(kind: str, value: str, key: str | None = None) -> dict:
        return {"id": uid("rule"), "type": kind, "compare_type": "EQUAL_TO", "key": key,
                "value": value}

    desired["listeners"][0]["l7policies"] = [
        {"id": uid("policy"), "action": "REDIRECT_TO_POOL", "position": 1,
         "redirect_pool_id": pools["special"],
         "rules": [rule("SSL_DN_FIELD", "special.example.com", key="CN")]},
        {"id": uid("policy"), "action": "REDIRECT_TO_POOL", "position": 2,
         "redirect_pool_id": pools["verified"],
         "rules": [rule("SSL_CONN_HAS_CERT", "True"), rule("SSL_VERIFY_RESULT", "0")]},
    ]
    device.apply(desired)

    assert https(desired).body == "anonymous"
    special = certs.make_cert(ca, ["special.example.com"], client=True)
    assert https(desired, client=special).body == "special"
    plain = certs.make_cert(ca, ["someone.example.com"], client=True)
    assert https(desired, client=plain).body == "verified"


# --- re-encryption and monitors --------------------------------------------------------------

def reencrypting_lb(backend: Backend, **pool_tls: object) -> dict:
    desired = loadbalancer([member(backend)])
    desired["pools"][0]["tls"] = t.pool_tls(**pool_tls)
    return desired


def test_reencryption_verifies_members_against_the_ca(device, backends, ca, other_ca) -> None:
    trusted = backends("trusted", tls=server_context(certs.make_cert(ca, ["127.0.0.1"])))
    foreign = backends("foreign", tls=server_context(certs.make_cert(other_ca, ["127.0.0.1"])))
    good = reencrypting_lb(trusted, ca=ca.cert_pem)
    bad = reencrypting_lb(foreign, ca=ca.cert_pem)
    unverified = reencrypting_lb(foreign)
    for desired in (good, bad, unverified):
        device.apply(desired)

    assert fetch(url_of(good)).text == "trusted"
    assert fetch(url_of(bad)).status_code == 503
    assert fetch(url_of(unverified)).text == "foreign"


def test_reencryption_presents_the_member_client_certificate(device, backends, ca) -> None:
    picky = backends("picky", tls=server_context(certs.make_cert(ca, ["127.0.0.1"]),
                                                 require_client_of=ca))
    desired = reencrypting_lb(picky, ca=ca.cert_pem)
    device.apply(desired)
    # TLS 1.3: the member judges the (missing) client certificate after the handshake, so
    # HAProxy sees a connection that fails on the request (502) rather than at connect (503).
    assert fetch(url_of(desired)).status_code in (502, 503)

    client = certs.make_cert(ca, ["lb.example.com"], client=True)
    desired["pools"][0]["tls"]["certificate"] = t.certificate(client)
    device.apply(bump(desired))
    assert fetch(url_of(desired)).text == "picky"


@pytest.mark.parametrize("kind", ["TLS-HELLO", "HTTPS"])
def test_tls_monitors_mark_a_tls_member_up_and_a_plain_one_down(device, backends, ca, kind) -> None:
    secure = backends("secure", tls=server_context(certs.make_cert(ca, ["127.0.0.1"])))
    plain = backends("plain")
    desired = loadbalancer([member(secure), member(plain)], protocol="HTTPS",
                           healthmonitor={"type": kind, "delay": 1, "timeout": 1, "max_retries": 1,
                                          "max_retries_down": 1, "url_path": "/health"})
    device.apply(desired)

    def statuses() -> list[str]:
        members = device.status(desired["id"])["pools"][0]["members"]
        return [m["operating_status"] for m in members]

    wait_for(lambda: statuses() == ["ONLINE", "OFFLINE"], timeout=15,
             what=f"{kind} monitor verdicts")


@pytest.mark.parametrize("kind", ["TLS-HELLO", "HTTPS", "HTTP", "TCP"])
def test_monitors_of_a_reencrypting_pool(device, backends, ca, kind) -> None:
    """Every monitor of a pool whose members speak TLS reaches them through TLS."""
    secure = backends("secure", tls=server_context(certs.make_cert(ca, ["127.0.0.1"])))
    desired = reencrypting_lb(secure, ca=ca.cert_pem)
    desired["pools"][0]["healthmonitor"] = {"type": kind, "delay": 1, "timeout": 1,
                                            "max_retries": 1, "max_retries_down": 1,
                                            "url_path": "/health"}
    device.apply(desired)
    wait_for(lambda: device.status(desired["id"])["pools"][0]["members"][0]["operating_status"]
             == "ONLINE", timeout=15, what=f"{kind} monitor verdict")


# --- rotation, files, secrets -----------------------------------------------------------------

def test_rotation_under_load_loses_no_request(device, backends, ca, www) -> None:
    desired = terminated_lb(backends("web"), www)
    device.apply(desired)
    results: list[bool | str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                results.append(https(desired).status == 200)
            except CLIENT_ERRORS as exc:
                results.append(repr(exc))

    client = threading.Thread(target=load, daemon=True)
    client.start()
    wait_for(lambda: len(results) >= 20, what="requests before the rotation")
    rotated = certs.make_cert(ca, ["www.example.com"])
    ident = desired["listeners"][0]["tls"]["default_certificate"]["id"]
    desired["listeners"][0]["tls"]["default_certificate"] = t.certificate(rotated, ident=ident)
    assert device.apply(bump(desired)) == c.APPLIED_RELOADED
    count = len(results)
    wait_for(lambda: len(results) >= count + 20, what="requests after the rotation")
    stop.set()
    client.join(10)

    failures = [r for r in results if r is not True]
    assert not failures, f"{len(failures)} of {len(results)} failed: {failures[:3]}"
    served = ssl.DER_cert_to_PEM_cert(_peer_der(desired))
    assert served == rotated.cert_pem


def _peer_der(desired: dict) -> bytes:
    with socket.create_connection(endpoint(desired), timeout=5) as raw:
        with t.client_context().wrap_socket(raw, server_hostname="www.example.com") as sock:
            der = sock.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_same_document_again_is_unchanged(device, backends, www) -> None:
    desired = terminated_lb(backends("web"), www)
    device.apply(desired)
    assert device.apply(bump(desired)) == c.APPLIED_UNCHANGED


def test_files_are_private_pruned_and_removed_with_the_load_balancer(device, backends, ca, www,
                                                                      api) -> None:
    desired = terminated_lb(backends("web"), www, (api,), client_authentication="MANDATORY",
                            client_ca=ca.cert_pem, client_crl=certs.make_crl(ca).decode())
    device.apply(desired)
    folder = device.folder(desired["id"])
    tls_folder = folder / "tls"
    names = sorted(p.name for p in tls_folder.iterdir())
    assert len(names) == 5, names     # two certificates, the crt-list, the CA, the CRL
    assert stat.S_IMODE(tls_folder.stat().st_mode) == 0o700
    for path in [*tls_folder.iterdir(), folder / "desired.json"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    www_file = tls_folder / f"cert_{desired['listeners'][0]['tls']['default_certificate']['id']}.pem"
    assert www_file.read_text() == www.cert_pem + schema.pem.private_key_text(www.key)

    desired["listeners"][0]["tls"]["sni_certificates"] = []
    desired["listeners"][0]["tls"]["client_authentication"] = "NONE"
    device.apply(bump(desired))
    assert [p.name for p in tls_folder.iterdir()] == [www_file.name]

    assert device.client.delete(f"/loadbalancers/{desired['id']}").status_code == 204
    assert not folder.exists()


def test_private_keys_never_leave_in_answers_or_logs(device, backends, ca, www, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    pool_client = certs.make_cert(ca, ["lb.example.com"], client=True)
    desired = terminated_lb(backends("web"), www)
    desired["pools"][0]["tls"] = t.pool_tls(certificate=t.certificate(pool_client))
    device.apply(desired)

    answer = device.client.get(f"/loadbalancers/{desired['id']}")
    assert answer.status_code == 200
    assert "PRIVATE KEY" not in answer.text
    body = answer.json()
    assert body["listeners"][0]["tls"]["default_certificate"]["private_key"] == "<redacted>"
    assert body["pools"][0]["tls"]["certificate"]["private_key"] == "<redacted>"
    assert body["listeners"][0]["tls"]["default_certificate"]["certificate"] == www.cert_pem

    # A refused document with a key that does not match: the fault names no key either.
    mismatched = copy.deepcopy(desired)
    mismatched["listeners"][0]["tls"]["default_certificate"]["private_key"] = \
        certs.key_pem(certs.new_key())
    refusal = device.put(bump(mismatched))
    assert refusal.status_code == 400
    assert "does not belong" in refusal.text and "PRIVATE KEY" not in refusal.text
    assert not BASE64_RUN.search(caplog.text), "a log line holds PEM text"


# --- validation (no HAProxy) -------------------------------------------------------------------

def _valid(www: certs.Issued, ca: certs.Issued) -> dict:
    backend_member = {"id": "m1", "address": "127.0.0.1", "protocol_port": 80}
    desired = loadbalancer([backend_member], address="127.0.0.9", port=443)
    desired["pools"][0]["tls"] = t.pool_tls(ca=ca.cert_pem)
    return t.terminated(desired, t.listener_tls(
        t.certificate(www, [ca]), client_authentication="OPTIONAL", client_ca=ca.cert_pem,
        client_crl=certs.make_crl(ca).decode()))


TLS = ("listeners", 0, "tls")
CERT = (*TLS, "default_certificate")


def _injected(pem: str) -> str:
    lines = pem.splitlines(keepends=True)
    return "".join(lines[:2] + ["program x\n"] + lines[2:])


INVALID: list[tuple[tuple, Callable[[dict], object], str]] = [
    ((*CERT, "id"), lambda d: "../../etc/passwd", "must match"),
    ((*CERT, "id"), lambda d: "ABCDEF0123456789", "must match"),
    ((*CERT, "private_key"), lambda d: certs.key_pem(certs.new_key()), "does not belong"),
    ((*CERT, "private_key"), lambda d: certs.key_pem(certs.new_key(), b"secret"), "labelled PRIVATE KEY"),
    ((*CERT, "certificate"), lambda d: _injected(d["certificate"]), "nothing but PEM"),
    ((*CERT, "certificate"), lambda d: d["certificate"] + "program x\n", "nothing but PEM"),
    ((*CERT, "certificate"), lambda d: "# comment\n" + d["certificate"], "nothing but PEM"),
    ((*CERT, "certificate"), lambda d: d["certificate"] * 2, "exactly one"),
    ((*CERT, "certificate"), lambda d: d["certificate"].replace("A", "@", 1), "nothing"),
    ((*CERT, "certificate"), lambda d: d["private_key"], "labelled CERTIFICATE"),
    ((*CERT, "intermediates"), lambda d: ["junk"], "intermediate"),
    ((*TLS, "client_ca"), lambda d: None, "client_ca is required"),
    ((*TLS, "client_crl"), lambda d: certs.make_crl(certs.make_ca("X")).decode(), "not signed"),
    ((*TLS, "client_authentication"), lambda d: "SOMETIMES", "unknown"),
    ((*TLS, "versions"), lambda d: ["TLSv1.4"], "non-empty list"),
    ((*TLS, "versions"), lambda d: ["SSLv3"], "SSLv3 alone is not supported by this device"),
    ((*TLS, "versions"), lambda d: [], "non-empty list"),
    ((*TLS, "versions"), lambda d: ["TLSv1.2", "TLSv1.2"], "duplicate"),
    ((*TLS, "ciphers"), lambda d: "ALL:!aNULL", "cipher names"),
    ((*TLS, "ciphers"), lambda d: "HIGH", "cipher names"),
    ((*TLS, "ciphers"), lambda d: "ECDHE-RSA-AES128-GCM-SHA256 ", "cipher names"),
    ((*TLS, "ciphers"), lambda d: "@SECLEVEL=0", "cipher names"),
    ((*TLS, "alpn_protocols"), lambda d: ["h3"], "non-empty list"),
    ((*TLS, "hsts_max_age"), lambda d: -1, "out of range"),
    ((*TLS, "sni_certificates"), lambda d: [{"id": "ab" * 8}], "required"),
    (TLS, lambda d: None, "tls is required"),
    (("listeners", 0, "protocol"), lambda d: "HTTP", "only TERMINATED_HTTPS listeners terminate"),
    (("pools", 0, "tls", "crl"), lambda d: certs.make_crl(certs.make_ca("Y")).decode(), "not signed"),
    (("pools", 0, "tls", "ca"), lambda d: None, "needs a certificate authority"),
    (("listeners", 0, "insert_headers"), lambda d: {"X-SSL-Client-CN": "maybe"}, "true or false"),
]


@pytest.mark.parametrize("path, change, message", INVALID,
                         ids=[f"{'.'.join(map(str, p))}-{m}" for p, _, m in INVALID])
def test_invalid_tls_fields_are_refused(path, change, message, www, ca) -> None:
    doc = _valid(www, ca)
    if path[-1] == "ca":
        doc["pools"][0]["tls"]["crl"] = certs.make_crl(ca).decode()
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = change(target)
    with pytest.raises(InvalidRequest, match=message) as refusal:
        schema.validate(doc)
    assert not BASE64_RUN.search(str(refusal.value)), "the refusal quotes PEM text"


def test_certificate_rules_and_headers_need_terminated_https(www, ca) -> None:
    plain = loadbalancer([{"id": "m1", "address": "127.0.0.1", "protocol_port": 80}],
                         address="127.0.0.9", port=80)
    plain["listeners"][0]["insert_headers"] = {"X-SSL-Client-Verify": "true"}
    with pytest.raises(InvalidRequest, match="need a TERMINATED_HTTPS listener"):
        schema.validate(plain)
    plain["listeners"][0]["insert_headers"] = {}
    plain["listeners"][0]["l7policies"] = [{"id": "p", "action": "REJECT", "position": 1, "rules": [
        {"id": "r", "type": "SSL_CONN_HAS_CERT", "compare_type": "EQUAL_TO", "value": "True"}]}]
    with pytest.raises(InvalidRequest, match="need a TERMINATED_HTTPS listener"):
        schema.validate(plain)


@pytest.mark.parametrize("kind, compare, key, value, message", [
    ("SSL_CONN_HAS_CERT", "EQUAL_TO", None, "False", "must be True"),
    ("SSL_CONN_HAS_CERT", "CONTAINS", None, "True", "EQUAL_TO only"),
    ("SSL_CONN_HAS_CERT", "EQUAL_TO", "CN", "True", "takes no key"),
    ("SSL_VERIFY_RESULT", "EQUAL_TO", None, "-1", "integer"),
    ("SSL_VERIFY_RESULT", "EQUAL_TO", None, "0\nprogram", "integer"),
    ("SSL_DN_FIELD", "EQUAL_TO", "cn;x", "a", "distinguished name field"),
    ("SSL_DN_FIELD", "EQUAL_TO", None, "a", "distinguished name field"),
    ("SSL_DN_FIELD", "EQUAL_TO", "CN", "Example Inc", "may not hold"),
    ("SSL_DN_FIELD", "REGEX", "O", "Example\\sInc", "no backslash"),
])
def test_invalid_certificate_rules(kind, compare, key, value, message, www, ca) -> None:
    doc = _valid(www, ca)
    doc["listeners"][0]["l7policies"] = [{"id": "p", "action": "REJECT", "position": 1, "rules": [
        {"id": "r", "type": kind, "compare_type": compare, "key": key, "value": value}]}]
    with pytest.raises(InvalidRequest, match=message):
        schema.validate(doc)


def test_canonical_forms(www, ca) -> None:
    doc = _valid(www, ca)
    doc["listeners"][0]["tls"]["default_certificate"]["certificate"] = \
        "\n" + www.cert_pem.replace("\n", "\r\n") + "\n\n"
    doc["listeners"][0]["l7policies"] = [{"id": "p", "action": "REJECT", "position": 1, "rules": [
        {"id": "r", "type": "SSL_CONN_HAS_CERT", "compare_type": "EQUAL_TO", "value": "TRUE"},
        {"id": "s", "type": "SSL_VERIFY_RESULT", "compare_type": "EQUAL_TO", "value": "007"}]}]
    valid = schema.validate(doc)
    tls = valid["listeners"][0]["tls"]
    assert tls is not None
    assert tls["default_certificate"]["certificate"] == www.cert_pem
    assert [r["value"] for r in valid["listeners"][0]["l7policies"][0]["rules"]] == ["True", "7"]
    assert tls["versions"] == list(c.DEFAULT_TLS_VERSIONS)


def test_every_tls_line_renders_within_the_grammar_and_haproxy_accepts_it(www, ca, api,
                                                                         tmp_path) -> None:
    """The longest cipher list, every header, SNI, client auth with a CRL, a member client
    certificate, an HTTPS monitor: the grammar holds and ``haproxy -c`` accepts the text."""
    doc = _valid(www, ca)
    tls = doc["listeners"][0]["tls"]
    tls["sni_certificates"] = [t.certificate(api)]
    tls.update(hsts_max_age=0, versions=["TLSv1.3", "SSLv3"], alpn_protocols=["h2"],
               ciphers=":".join(sorted(schema.closed.known_ciphers()))[:2000].rsplit(":", 1)[0])
    doc["listeners"][0]["insert_headers"] = {name: "true" for name in c.SSL_CLIENT_HEADERS}
    doc["pools"][0]["tls"]["certificate"] = t.certificate(www)
    doc["pools"][0]["healthmonitor"] = {"type": "HTTPS", "delay": 1, "timeout": 1, "max_retries": 1}
    valid = schema.validate(doc)
    text = render.render(valid, str(tmp_path / "stats.sock"), str(tmp_path / "state"))
    assert "ssl-min-ver SSLv3 ssl-max-ver TLSv1.3" in text
    assert "check-ssl\n" in text and "verify none" not in text
    assert "PRIVATE" not in text
    tlsfiles.write(tmp_path / "tls", tlsfiles.files(valid, tmp_path / "tls"))
    (tmp_path / "haproxy.cfg").write_text(text)
    result = subprocess.run([HAPROXY, "-c", "-f", str(tmp_path / "haproxy.cfg")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr

