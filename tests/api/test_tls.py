"""TLS termination and re-encryption through the API, on every backend: certificates
stored in the local key store (its Barbican-compatible API), referenced by listeners and
pools, resolved for the right project before anything is written, and carried to agents
only in the desired state.  The HAProxy side is tested in tests/appliance/test_tls.py."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from lbaas import constants as c
from lbaas import keys
from lbaas.controller.handlers import ControllerHandlers
from lbaas.db import models as m
from lbaas.errors import BadRequest
from lbaas.scheduler import Scheduler
from lbaas.testing import certs
from tests.conftest import BACKENDS, Api, dump, start_api

POOL = {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}
CA = certs.make_ca("API test CA")
SERVER = certs.make_cert(CA, ["www.example.com"])
OTHER = certs.make_cert(CA, ["shop.example.com"])


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, temp_database: Any,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API on each backend, without the write rate limit: these tests store many secrets
    as one member in a row (the limit has tests of its own)."""
    server, stop = start_api(temp_database(request.param).url, str(tmp_path_factory.mktemp("tls")),
                             request.param, {"api": {"write_rate_limit": 0}})
    yield server
    stop()


def store(api: Api, payload: bytes | str, token: str = "admin", content_type: str | None = None) -> str:
    """A secret in the local key store; its reference."""
    if isinstance(payload, str):
        body = {"payload": payload, "payload_content_type": content_type or "text/plain"}
    else:
        body = {"payload": base64.b64encode(payload).decode(), "payload_content_encoding": "base64",
                "payload_content_type": content_type or "application/octet-stream"}
    response = api.post("/key-manager/v1/secrets", body, token=token)
    assert response.status_code == 201, dump(response)
    return response.json()["secret_ref"]


def container(api: Api, issued: certs.Issued, token: str = "admin", chain: tuple[certs.Issued, ...] = ()) -> str:
    """A certificate container (certificate, private_key, intermediates); its reference."""
    refs = [{"name": "certificate", "secret_ref": store(api, issued.cert_pem, token)},
            {"name": "private_key", "secret_ref": store(api, issued.key_pem, token)}]
    if chain:
        refs.append({"name": "intermediates", "secret_ref": store(api, certs.bundle(*chain), token)})
    response = api.post("/key-manager/v1/containers", {"type": "certificate", "name": "tls",
                                                       "secret_refs": refs}, token=token)
    assert response.status_code == 201, dump(response)
    return response.json()["container_ref"]


def p12(api: Api, issued: certs.Issued, token: str = "admin") -> str:
    return store(api, certs.pkcs12(issued), token)


def lb(api: Api, token: str = "admin") -> str:
    response = api.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "test-subnet",
                                                                   "pools": [{"name": "web", **POOL}]}}, token=token)
    assert response.status_code == 201, dump(response)
    return api.wait_lb(response.json()["loadbalancer"]["id"], token=token)["id"]


def listener(api: Api, lb_id: str, token: str = "admin", status: int = 201, **fields: Any) -> dict:
    body = {"loadbalancer_id": lb_id, "protocol": "TERMINATED_HTTPS", "protocol_port": 443, **fields}
    response = api.post("/lbaas/listeners", {"listener": body}, token=token)
    assert response.status_code == status, dump(response)
    if status == 201:
        api.wait_lb(lb_id, token=token)
        return api.get(f"/lbaas/listeners/{response.json()['listener']['id']}", token=token).json()["listener"]
    return response.json()


def fault(response: Any, status: int, *words: str) -> None:
    assert response.status_code == status, dump(response)
    for word in words:
        assert word in response.json()["faultstring"], response.json()["faultstring"]


def counts(api: Api) -> tuple[int, int]:
    with api.db.reading() as session:
        return (session.scalar(select(func.count()).select_from(m.Listener)) or 0,
                session.scalar(select(func.count()).select_from(m.Pool)) or 0)


def test_terminated_https_with_pkcs12_and_octavia_defaults(api: Api) -> None:
    lb_id = lb(api)
    ref = p12(api, SERVER)
    made = listener(api, lb_id, default_tls_container_ref=ref)
    assert made["provisioning_status"] == "ACTIVE" and made["default_tls_container_ref"] == ref
    assert made["tls_versions"] == list(c.DEFAULT_TLS_VERSIONS)
    assert made["tls_ciphers"] == c.DEFAULT_TLS_CIPHERS
    assert made["alpn_protocols"] == list(c.DEFAULT_LISTENER_ALPN_PROTOCOLS)
    assert (made["client_authentication"], made["sni_container_refs"], made["hsts_max_age"]) == ("NONE", [], None)

    tls = api.desired(lb_id)["listeners"][0]["tls"]  # type: ignore[typeddict-item]
    assert tls is not None
    assert tls["default_certificate"]["id"] == keys.certificate_id(ref)
    assert tls["default_certificate"]["certificate"].strip() == SERVER.cert_pem.strip()
    assert "PRIVATE KEY" in tls["default_certificate"]["private_key"]
    # The API never shows key material, only references.
    assert "PRIVATE KEY" not in api.get(f"/lbaas/listeners/{made['id']}").text


def test_sni_client_authentication_and_hsts_from_containers(api: Api) -> None:
    lb_id = lb(api)
    intermediate = certs.make_ca("Intermediate", issuer=CA)
    leaf = certs.make_cert(intermediate, ["api.example.com"])
    default, sni = container(api, SERVER), container(api, leaf, chain=(intermediate,))
    ca_ref = store(api, certs.bundle(CA))
    crl_ref = store(api, certs.make_crl(CA).decode())
    made = listener(api, lb_id, default_tls_container_ref=default, sni_container_refs=[sni, sni],
                    client_authentication="MANDATORY", client_ca_tls_container_ref=ca_ref,
                    client_crl_container_ref=crl_ref, hsts_max_age=31536000, hsts_include_subdomains=True,
                    tls_versions=["TLSv1.3"], alpn_protocols=["h2"], tls_ciphers="TLS_AES_128_GCM_SHA256",
                    insert_headers={"X-SSL-Client-Verify": "true", "X-SSL-Client-CN": "true"})
    assert made["sni_container_refs"] == [sni]   # a repeated reference counts once
    assert (made["hsts_max_age"], made["hsts_include_subdomains"], made["hsts_preload"]) == (31536000, True, False)
    tls = api.desired(lb_id)["listeners"][0]["tls"]  # type: ignore[typeddict-item]
    assert tls is not None
    assert [x["id"] for x in tls["sni_certificates"]] == [keys.certificate_id(sni)]
    assert tls["sni_certificates"][0]["intermediates"][0].strip() == intermediate.cert_pem.strip()
    assert tls["client_authentication"] == "MANDATORY"
    assert "BEGIN CERTIFICATE" in (tls["client_ca"] or "") and "BEGIN X509 CRL" in (tls["client_crl"] or "")
    assert (tls["versions"], tls["alpn_protocols"], tls["ciphers"]) == (["TLSv1.3"], ["h2"], "TLS_AES_128_GCM_SHA256")


@pytest.mark.parametrize("case", [
    "missing-default", "unknown-ref", "foreign-project", "expired", "key-mismatch", "not-a-certificate",
    "client-auth-without-ca", "crl-without-ca", "preload-without-max-age", "bad-cipher", "cipher-operator",
    "bad-version", "sslv3-alone", "bad-alpn", "ref-not-a-url", "ssl-header-on-http",
])
def test_refusals_name_the_problem_and_write_nothing(api: Api, case: str) -> None:
    lb_id = lb(api, token="alice")
    good = p12(api, SERVER, token="alice")
    fields: dict[str, Any] = {"default_tls_container_ref": good}
    words: tuple[str, ...]
    if case == "missing-default":
        fields, words = {}, ("default_tls_container_ref",)
    elif case == "unknown-ref":
        fields["default_tls_container_ref"] = good.rsplit("/", 1)[0] + "/00000000-0000-4000-8000-000000000000"
        words = ("default_tls_container_ref",)
    elif case == "foreign-project":
        fields["default_tls_container_ref"] = p12(api, SERVER, token="bob")
        words = ("default_tls_container_ref",)
    elif case == "expired":
        old = certs.make_cert(CA, ["old.example.com"], not_before=certs.now() - dt.timedelta(days=30),
                              not_after=certs.now() - dt.timedelta(days=1))
        fields["default_tls_container_ref"], words = p12(api, old, token="alice"), ("expired",)
    elif case == "key-mismatch":
        refs = [{"name": "certificate", "secret_ref": store(api, SERVER.cert_pem, "alice")},
                {"name": "private_key", "secret_ref": store(api, OTHER.key_pem, "alice")}]
        response = api.post("/key-manager/v1/containers", {"type": "certificate", "secret_refs": refs},
                            token="alice")
        fields["default_tls_container_ref"], words = response.json()["container_ref"], ("match",)
    elif case == "not-a-certificate":
        fields["default_tls_container_ref"] = store(api, b"\x00not pkcs12 at all", "alice")
        words = ("default_tls_container_ref",)
    elif case == "client-auth-without-ca":
        fields["client_authentication"], words = "OPTIONAL", ("client_ca_tls_container_ref",)
    elif case == "crl-without-ca":
        fields["client_crl_container_ref"] = store(api, certs.make_crl(CA).decode(), "alice")
        words = ("client_ca_tls_container_ref",)
    elif case == "preload-without-max-age":
        fields["hsts_preload"], words = True, ("hsts_max_age",)
    elif case == "bad-cipher":
        fields["tls_ciphers"], words = "NOT-A-CIPHER", ("tls_ciphers",)
    elif case == "cipher-operator":
        fields["tls_ciphers"], words = "ECDHE-RSA-AES128-GCM-SHA256:!aNULL", ("tls_ciphers",)
    elif case == "bad-version":
        fields["tls_versions"], words = ["TLSv1.4"], ("tls_versions",)
    elif case == "sslv3-alone":
        fields["tls_versions"], words = ["SSLv3"], ("tls_versions", "SSLv3")
    elif case == "bad-alpn":
        fields["alpn_protocols"], words = ["spdy/3"], ("alpn_protocols",)
    elif case == "ref-not-a-url":
        fields["default_tls_container_ref"], words = "file:///etc/shadow", ("default_tls_container_ref",)
    else:
        fields = {"protocol": "HTTP", "protocol_port": 80, "insert_headers": {"X-SSL-Client-Verify": "true"}}
        words = ("insert_headers",)
    before = counts(api)
    fault(api.post("/lbaas/listeners", {"listener": {"loadbalancer_id": lb_id, "protocol": "TERMINATED_HTTPS",
                                                     "protocol_port": 443, **fields}}, token="alice"),
          400, *words)
    assert counts(api) == before
    assert api.get(f"/lbaas/loadbalancers/{lb_id}", token="alice").json()["loadbalancer"][
        "provisioning_status"] == "ACTIVE"


def test_an_unknown_and_a_foreign_reference_read_the_same(api: Api) -> None:
    lb_id = lb(api, token="alice")
    foreign = p12(api, SERVER, token="bob")
    unknown = foreign.rsplit("/", 1)[0] + "/00000000-0000-4000-8000-000000000000"
    answers = [api.post("/lbaas/listeners", {"listener": {
        "loadbalancer_id": lb_id, "protocol": "TERMINATED_HTTPS", "protocol_port": 443,
        "default_tls_container_ref": ref}}, token="alice").json()["faultstring"] for ref in (foreign, unknown)]
    assert answers[0].replace(foreign, "REF") == answers[1].replace(unknown, "REF")


def test_tls_fields_belong_to_terminated_https_only(api: Api) -> None:
    lb_id = lb(api)
    ref = p12(api, SERVER)
    for protocol in ("HTTP", "HTTPS", "TCP"):
        fault(api.post("/lbaas/listeners", {"listener": {
            "loadbalancer_id": lb_id, "protocol": protocol, "protocol_port": 81,
            "default_tls_container_ref": ref}}), 400, "TERMINATED_HTTPS")
    plain = api.post("/lbaas/listeners", {"listener": {"loadbalancer_id": lb_id, "protocol": "HTTP",
                                                       "protocol_port": 82}})
    assert plain.status_code == 201
    api.wait_lb(lb_id)
    fault(api.put(f"/lbaas/listeners/{plain.json()['listener']['id']}", {"listener": {"hsts_max_age": 60}}),
          400, "hsts_max_age", "TERMINATED_HTTPS")
    assert plain.json()["listener"]["tls_versions"] is None


def test_rotation_and_updates_are_checked_like_creates(api: Api) -> None:
    lb_id = lb(api)
    first, second = p12(api, SERVER), p12(api, OTHER)
    made = listener(api, lb_id, default_tls_container_ref=first)
    path = f"/lbaas/listeners/{made['id']}"
    revision = api.desired(lb_id)["revision"]
    response = api.put(path, {"listener": {"default_tls_container_ref": second}})
    assert response.status_code == 200, dump(response)
    assert response.json()["listener"]["provisioning_status"] == "PENDING_UPDATE"
    api.wait_lb(lb_id)
    desired = api.desired(lb_id)
    assert desired["revision"] > revision   # type: ignore[operator]
    tls = desired["listeners"][0]["tls"]  # type: ignore[typeddict-item]
    assert tls["default_certificate"]["id"] == keys.certificate_id(second)
    assert tls["default_certificate"]["certificate"].strip() == OTHER.cert_pem.strip()

    fault(api.put(path, {"listener": {"default_tls_container_ref": None}}), 400, "default_tls_container_ref")
    fault(api.put(path, {"listener": {"client_authentication": "MANDATORY"}}), 400, "client_ca_tls_container_ref")
    fault(api.put(path, {"listener": {"tls_ciphers": "RC4-NOPE"}}), 400, "tls_ciphers")
    # Nothing of the refused updates stuck.
    shown = api.get(path).json()["listener"]
    assert (shown["default_tls_container_ref"], shown["client_authentication"]) == (second, "NONE")
    # A null puts Octavia's default back.
    assert api.put(path, {"listener": {"tls_versions": ["TLSv1.3"]}}).status_code == 200
    api.wait_lb(lb_id)
    assert api.put(path, {"listener": {"tls_versions": None}}).status_code == 200
    api.wait_lb(lb_id)
    assert api.get(path).json()["listener"]["tls_versions"] == list(c.DEFAULT_TLS_VERSIONS)


def test_pool_re_encryption(api: Api) -> None:
    lb_id = lb(api)
    client = certs.make_cert(CA, ["lb.example.com"], client=True)
    ca_ref, cert_ref = store(api, certs.bundle(CA)), container(api, client)
    response = api.post("/lbaas/pools", {"pool": {"loadbalancer_id": lb_id, "tls_enabled": True,
                                                  "ca_tls_container_ref": ca_ref, "tls_container_ref": cert_ref,
                                                  **POOL}})
    assert response.status_code == 201, dump(response)
    pool = response.json()["pool"]
    assert (pool["tls_enabled"], pool["ca_tls_container_ref"], pool["tls_container_ref"]) == (True, ca_ref, cert_ref)
    assert pool["tls_versions"] == list(c.DEFAULT_TLS_VERSIONS)
    assert pool["alpn_protocols"] == list(c.DEFAULT_POOL_ALPN_PROTOCOLS)
    api.wait_lb(lb_id)
    tls = next(p for p in api.desired(lb_id)["pools"] if p["id"] == pool["id"])["tls"]  # type: ignore[typeddict-item]
    assert tls is not None and tls["certificate"] is not None
    assert tls["certificate"]["id"] == keys.certificate_id(cert_ref) and "BEGIN CERTIFICATE" in (tls["ca"] or "")
    # Plain pools carry no TLS; references without tls_enabled are refused.
    web = next(p for p in api.desired(lb_id)["pools"] if p["id"] != pool["id"])
    assert web["tls"] is None
    before = counts(api)
    fault(api.post("/lbaas/pools", {"pool": {"loadbalancer_id": lb_id, "ca_tls_container_ref": ca_ref, **POOL}}),
          400, "tls_enabled")
    fault(api.post("/lbaas/pools", {"pool": {"loadbalancer_id": lb_id, "tls_enabled": True,
                                             "crl_container_ref": store(api, certs.make_crl(CA).decode()),
                                             **POOL}}), 400, "ca_tls_container_ref")
    assert counts(api) == before


def test_ssl_rules_need_a_terminated_https_listener(api: Api) -> None:
    lb_id = lb(api)
    tls_listener = listener(api, lb_id, default_tls_container_ref=p12(api, SERVER),
                            client_authentication="OPTIONAL", client_ca_tls_container_ref=store(api, certs.bundle(CA)))
    plain = api.post("/lbaas/listeners", {"listener": {"loadbalancer_id": lb_id, "protocol": "HTTP",
                                                       "protocol_port": 80}}).json()["listener"]
    api.wait_lb(lb_id)
    rules = [{"type": "SSL_CONN_HAS_CERT", "compare_type": "EQUAL_TO", "value": "True"},
             {"type": "SSL_VERIFY_RESULT", "compare_type": "EQUAL_TO", "value": "0"},
             {"type": "SSL_DN_FIELD", "compare_type": "STARTS_WITH", "key": "CN", "value": "client"}]
    made = api.post("/lbaas/l7policies", {"l7policy": {"listener_id": tls_listener["id"], "action": "REJECT",
                                                       "rules": rules}})
    assert made.status_code == 201, dump(made)
    api.wait_lb(lb_id)
    terminated = next(x for x in api.desired(lb_id)["listeners"]  # type: ignore[typeddict-item]
                      if x["id"] == tls_listener["id"])
    policy = terminated["l7policies"][0]
    assert sorted(r["type"] for r in policy["rules"]) == sorted(r["type"] for r in rules)
    for rule in rules:
        fault(api.post("/lbaas/l7policies", {"l7policy": {"listener_id": plain["id"], "action": "REJECT",
                                                          "rules": [rule]}}), 400, "TERMINATED_HTTPS")
    http_policy = api.post("/lbaas/l7policies", {"l7policy": {"listener_id": plain["id"], "action": "REJECT"}})
    api.wait_lb(lb_id)
    fault(api.post(f"/lbaas/l7policies/{http_policy.json()['l7policy']['id']}/rules", {"rule": rules[0]}),
          400, "TERMINATED_HTTPS")


def test_a_deleted_certificate_ends_the_change_in_flight_in_error(api: Api) -> None:
    lb_id = lb(api)
    ref = p12(api, SERVER)
    listener(api, lb_id, default_tls_container_ref=ref)
    assert api.request("DELETE", "/key-manager/v1/secrets/" + ref.rsplit("/", 1)[1]).status_code == 204
    assert api.keys is not None
    handlers = ControllerHandlers(api.db, Scheduler(30.0), api.keys)
    with api.db.transaction() as session:   # a change in flight, as an agent would find it
        row = session.get(m.LoadBalancer, lb_id)
        assert row is not None
        row.provisioning_status, row.revision = c.PENDING_UPDATE, row.revision + 1
    with pytest.raises(BadRequest, match="default_tls_container_ref"):
        handlers.get_loadbalancer(lb_id)
    shown = api.get(f"/lbaas/loadbalancers/{lb_id}").json()["loadbalancer"]
    assert shown["provisioning_status"] == "ERROR"
    assert "default_tls_container_ref" in shown["status_reason"]
