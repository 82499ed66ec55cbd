"""Hostile values in the TLS fields of a desired state, PUT to the real appliance.

The contract of ``test_hostile_appliance`` (refused with a 400/422 fault and haproxy.cfg
byte-for-byte the same, or accepted and sound), over a load balancer whose document sets
every TLS field: a TERMINATED_HTTPS listener with a default and an SNI certificate (with an
intermediate), client authentication with a CA and a CRL, versions, ciphers, ALPN, HSTS,
client certificate headers and L7 rules on the client certificate; a re-encrypting pool with
a CA, a CRL and a client certificate. Besides haproxy.cfg, the TLS files must stay byte-for-
byte the same after every refusal.

PEM fields are attacked with the same hostile forms around a valid PEM text. Line breaks are
part of PEM, so a form that only adds or changes line breaks at the edges may be accepted:
then the files HAProxy reads must be exactly what they were (the re-encoded PEM), and
haproxy.cfg too.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from lbaas import constants as c
from lbaas.testing import certs
from lbaas.testing import tls as t
from tests.appliance.helpers import DeviceService
from tests.security import hostile
from tests.security.hostile import Hostile
from tests.security.test_hostile_appliance import (Appliance, _before, _expect_refused_or_sound, _label,
                                                  _replaced, assert_device_fault, baseline, serving)

CA = certs.make_ca("Hostile CA")
INTERMEDIATE = certs.make_ca("Hostile Intermediate", issuer=CA)
SERVER = certs.make_cert(INTERMEDIATE, ["www.example.com"])
SNI = certs.make_cert(CA, ["api.example.com"])
MEMBER_CLIENT = certs.make_cert(CA, ["lb.example.com"], client=True)
CRL = certs.make_crl(CA).decode()
DEFAULT_ID = "0123456789abcdef0123456789abcdef"
SNI_ID = DEFAULT_ID[::-1]
POOL_CERTIFICATE_ID = "fedcba9876543210fedcba9876543210"


def tls_baseline(address: str, port: int) -> dict[str, Any]:
    """The baseline with its listener terminating TLS (every TLS field set) and its pool
    re-encrypting."""
    document = baseline(address, port)
    listener = document["listeners"][0]
    listener["protocol"] = c.PROTOCOL_TERMINATED_HTTPS
    listener["insert_headers"] = {"X-Forwarded-For": "true", "X-SSL-Client-Verify": "true",
                                  "X-SSL-Client-CN": "true"}
    listener["tls"] = t.listener_tls(
        t.certificate(SERVER, [INTERMEDIATE], ident=DEFAULT_ID), [t.certificate(SNI, ident=SNI_ID)],
        client_authentication="OPTIONAL", client_ca=CA.cert_pem, client_crl=CRL,
        versions=["TLSv1.2", "TLSv1.3"], ciphers="TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES128-GCM-SHA256",
        alpn_protocols=["h2", "http/1.1"], hsts_max_age=3600, hsts_include_subdomains=True)
    listener["l7policies"][3]["rules"].append(
        {"id": "rule-dn", "type": "SSL_DN_FIELD", "compare_type": "EQUAL_TO", "key": "CN",
         "value": "client.example.com", "invert": False, "admin_state_up": True})
    listener["l7policies"][3]["rules"].append(
        {"id": "rule-verify", "type": "SSL_VERIFY_RESULT", "compare_type": "EQUAL_TO",
         "key": None, "value": "0", "invert": False, "admin_state_up": True})
    document["pools"][0]["tls"] = t.pool_tls(
        certificate=t.certificate(MEMBER_CLIENT, ident=POOL_CERTIFICATE_ID), ca=CA.cert_pem, crl=CRL,
        ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    return document


class TLSAppliance(Appliance):
    """The hostile suite's ``Appliance`` holding the TLS baseline, and its TLS files."""

    document_factory = staticmethod(tls_baseline)

    def __init__(self, service: DeviceService) -> None:
        super().__init__(service)
        self.files = self.tls_files()

    def tls_files(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted((self.folder / "tls").iterdir())}


@pytest.fixture(scope="module")
def appliance() -> Iterator[TLSAppliance]:
    with serving("lbt") as service:
        yield TLSAppliance(service)


LISTENER_TLS = ("listeners", 0, "tls")
POOL_TLS = ("pools", 0, "tls")
RULES = ("listeners", 0, "l7policies", 3, "rules")
# (path, base of the string forms): every non-PEM TLS string that reaches haproxy.cfg.
STRING_FIELDS: list[tuple[tuple, str]] = [
    ((*LISTENER_TLS, "ciphers"), "TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES128-GCM-SHA256"),
    ((*LISTENER_TLS, "versions", 0), "TLSv1.2"),
    ((*LISTENER_TLS, "alpn_protocols", 0), "h2"),
    ((*LISTENER_TLS, "client_authentication"), "OPTIONAL"),
    ((*LISTENER_TLS, "default_certificate", "id"), DEFAULT_ID),
    ((*LISTENER_TLS, "sni_certificates", 0, "id"), SNI_ID),
    ((*POOL_TLS, "ciphers"), "ECDHE-ECDSA-AES128-GCM-SHA256"),
    ((*POOL_TLS, "versions", 1), "TLSv1.3"),
    ((*POOL_TLS, "alpn_protocols", 0), "http/1.1"),
    ((*POOL_TLS, "certificate", "id"), POOL_CERTIFICATE_ID),
    (("listeners", 0, "insert_headers", "X-SSL-Client-Verify"), "true"),
    ((*RULES, 1, "key"), "CN"),
    ((*RULES, 1, "value"), "client.example.com"),
    ((*RULES, 2, "value"), "0"),
]
PEM_FIELDS: list[tuple[tuple, str]] = [
    ((*LISTENER_TLS, "default_certificate", "certificate"), SERVER.cert_pem),
    ((*LISTENER_TLS, "default_certificate", "private_key"), SERVER.key_pem),
    ((*LISTENER_TLS, "default_certificate", "intermediates", 0), INTERMEDIATE.cert_pem),
    ((*LISTENER_TLS, "client_ca"), CA.cert_pem),
    ((*LISTENER_TLS, "client_crl"), CRL),
    ((*POOL_TLS, "ca"), CA.cert_pem),
    ((*POOL_TLS, "crl"), CRL),
    ((*POOL_TLS, "certificate", "private_key"), MEMBER_CLIENT.key_pem),
]


def _cases(fields: list[tuple[tuple, str]]) -> list[Any]:
    return [pytest.param(path, case, id=f"{_label(path)}-{case.id}")
            for path, base in fields for case in hostile.strings(base)]


@pytest.mark.parametrize("path, case", _cases(STRING_FIELDS))
def test_hostile_tls_string(appliance: TLSAppliance, path: tuple, case: Hostile) -> None:
    document = _replaced(appliance.document, path, case.value)
    before = _before(appliance)
    response = appliance.put(document)
    _expect_refused_or_sound(appliance, response, not hostile.must_reject(case.value), False,
                             before)
    if response.status_code != 200:
        assert appliance.tls_files() == appliance.files, "a TLS file changed"


@pytest.mark.parametrize("path, case", _cases(PEM_FIELDS))
def test_hostile_pem(appliance: TLSAppliance, path: tuple, case: Hostile) -> None:
    document = _replaced(appliance.document, path, case.value)
    before = _before(appliance)
    response = appliance.put(document)
    config, files = appliance.config_bytes(), appliance.tls_files()
    if response.status_code == 200:
        appliance.restore()
    else:
        assert_device_fault(response)
        assert "BEGIN" not in response.text, "the refusal quotes PEM text"
    assert _before(appliance) == before, "a new state entry or process appeared"
    assert config == appliance.config, "haproxy.cfg changed"
    assert files == appliance.files, "a TLS file changed"


def test_case_count() -> None:
    counts = {"strings": len(_cases(STRING_FIELDS)), "pem": len(_cases(PEM_FIELDS))}
    print(f"hostile TLS cases: {counts}, total {sum(counts.values())}")
    assert counts["strings"] > 400 and counts["pem"] > 250


def test_tls_baseline_is_served(appliance: TLSAppliance) -> None:
    """The baseline is really in force: the listener serves the default certificate."""
    address, port = appliance.document["vip_address"], appliance.document["listeners"][0]["protocol_port"]
    context = t.client_context()
    with socket.create_connection((address, port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="www.example.com") as sock:
            assert t.common_name(sock.getpeercert(binary_form=True)) == "www.example.com"

