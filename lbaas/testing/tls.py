"""TLS parts of desired-state documents and TLS clients, for tests and benchmarks.

``certificate(issued)`` is a ``wire.TLSCertificate`` as a server sends it (its id the digest
a key manager gives), ``listener_tls``/``pool_tls`` fill every field with Octavia's default
unless given, ``terminated(desired, tls)`` turns the first listener of a one-listener
document into a TERMINATED_HTTPS listener. ``client_context`` and ``get`` speak HTTPS to a
VIP with a chosen SNI name, CA and client certificate, on a fresh connection.
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import socket
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from lbaas import constants as c
from lbaas import wire
from lbaas.testing.certs import Issued

_serials = itertools.count(1)


def certificate(issued: Issued, chain: Sequence[Issued] = (), ident: str | None = None) -> wire.TLSCertificate:
    """``issued`` with its key and ``chain`` as a desired state carries it; ``ident`` names
    its file (default: a fresh digest, as ``lbaas.keys.certificate_id`` makes from a ref)."""
    return wire.TLSCertificate(
        id=ident or hashlib.sha256(f"ref-{next(_serials)}".encode()).hexdigest()[:32],
        certificate=issued.cert_pem, private_key=issued.key_pem,
        intermediates=[item.cert_pem for item in chain])


def listener_tls(default: wire.TLSCertificate, sni: Sequence[wire.TLSCertificate] = (),
                 **extra: object) -> dict:
    """A ``wire.ListenerTLS`` document with Octavia's defaults for what ``extra`` leaves out."""
    return {"default_certificate": default, "sni_certificates": list(sni),
            "client_authentication": c.CLIENT_AUTH_NONE, "client_ca": None, "client_crl": None,
            "versions": list(c.DEFAULT_TLS_VERSIONS), "ciphers": c.DEFAULT_TLS_CIPHERS,
            "alpn_protocols": list(c.DEFAULT_LISTENER_ALPN_PROTOCOLS), "hsts_max_age": None,
            "hsts_include_subdomains": False, "hsts_preload": False, **extra}


def pool_tls(**extra: object) -> dict:
    """A ``wire.PoolTLS`` document: no client certificate, no CA (members unverified)."""
    return {"certificate": None, "ca": None, "crl": None,
            "versions": list(c.DEFAULT_TLS_VERSIONS), "ciphers": None,
            "alpn_protocols": list(c.DEFAULT_POOL_ALPN_PROTOCOLS), **extra}


def terminated(desired: dict, tls: dict) -> dict:
    """``desired`` with its first listener terminating TLS (its pool stays HTTP)."""
    listener = desired["listeners"][0]
    listener["protocol"] = c.PROTOCOL_TERMINATED_HTTPS
    listener["tls"] = tls
    for pool in desired["pools"]:
        if pool["id"] == listener["default_pool_id"] and pool["protocol"] == c.PROTOCOL_TERMINATED_HTTPS:
            pool["protocol"] = c.PROTOCOL_HTTP
    return desired


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    headers: dict[str, str]     # names in lower case
    peer_cn: str                # the common name of the certificate the server presented
    alpn: str | None


def client_context(ca: Issued | None = None, client: Issued | None = None,
                   alpn: Sequence[str] = ()) -> ssl.SSLContext:
    """A client context trusting ``ca`` (nothing checked without one), presenting ``client``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_verify_locations(cadata=ca.cert_pem)
    if client is not None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "client.pem"
            path.write_text(client.cert_pem + client.key_pem)
            context.load_cert_chain(str(path))
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def get(address: str, port: int, context: ssl.SSLContext, server_name: str | None = None,
        path: str = "/", timeout: float = 5.0) -> Answer:
    """One HTTPS GET on a fresh connection, SNI ``server_name`` (none when None)."""
    raw = socket.create_connection((address, port), timeout=timeout)
    try:
        sock = context.wrap_socket(raw, server_hostname=server_name)
    except BaseException:
        raw.close()
        raise
    connection = http.client.HTTPConnection(address, port, timeout=timeout)
    connection.sock = sock  # already connected: http.client speaks over it as it is
    try:
        peer = sock.getpeercert(binary_form=True)
        connection.request("GET", path, headers={"Host": server_name or address,
                                                 "Connection": "close"})
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Answer(response.status, body, headers,
                      common_name(peer), sock.selected_alpn_protocol())
    finally:
        connection.close()


def common_name(der: bytes | None) -> str:
    """The subject's common name of a DER certificate ("" without one)."""
    if not der:
        return ""
    names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""
