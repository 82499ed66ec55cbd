"""Resolution tests every key manager must pass, whatever holds the secrets.

A test module imports these functions (so pytest collects them there) and provides a
``store`` fixture: a ``Store`` that puts secrets and containers into its key manager's
backend for two projects, and the key manager under test."""

from __future__ import annotations

import uuid
from typing import Protocol

import pytest

from lbaas.keys import InvalidReference, KeyManager
from lbaas.testing import certs

CA = certs.make_ca("Resolution CA")
INTERMEDIATE = certs.make_ca("Resolution Intermediate", issuer=CA)
SERVER = certs.make_cert(INTERMEDIATE, ["tls.example.com"])
PASSPHRASE = b"a passphrase"
OWNER, OTHER = "owner", "other"


class Store(Protocol):
    manager: KeyManager
    projects: dict[str, str]  # OWNER / OTHER -> the project id the key manager is asked for

    def secret(self, project: str, payload: bytes) -> str:
        """Store ``payload`` for ``project`` (OWNER or OTHER); its reference."""

    def container(self, project: str, parts: dict[str, str]) -> str:
        """A certificate container of ``project`` with these part -> secret references."""

    def unknown_ref(self, kind: str) -> str:
        """A well-formed reference to nothing."""


def _owner(store: Store) -> str:
    return store.projects[OWNER]


def test_a_pkcs12_secret_resolves(store: Store) -> None:
    ref = store.secret(OWNER, certs.pkcs12(SERVER, [INTERMEDIATE]))
    result = store.manager.certificate(ref, _owner(store))
    assert (result.certificate, result.intermediates) == (SERVER.cert_pem, (INTERMEDIATE.cert_pem,))
    assert result.private_key.startswith("-----BEGIN PRIVATE KEY-----")


def test_a_certificate_container_resolves(store: Store) -> None:
    parts = {"certificate": store.secret(OWNER, SERVER.cert_pem.encode()),
             "private_key": store.secret(OWNER, certs.key_pem(SERVER.key, PASSPHRASE).encode()),
             "private_key_passphrase": store.secret(OWNER, PASSPHRASE),
             "intermediates": store.secret(OWNER, INTERMEDIATE.cert_pem.encode())}
    result = store.manager.certificate(store.container(OWNER, parts), _owner(store))
    assert (result.certificate, result.intermediates) == (SERVER.cert_pem, (INTERMEDIATE.cert_pem,))
    assert "ENCRYPTED" not in result.private_key

    wrong = {**parts, "private_key_passphrase": store.secret(OWNER, b"not it")}
    with pytest.raises(InvalidReference, match="wrong private_key_passphrase"):
        store.manager.certificate(store.container(OWNER, wrong), _owner(store))
    keyless = {"certificate": parts["certificate"]}
    with pytest.raises(InvalidReference, match="no private_key"):
        store.manager.certificate(store.container(OWNER, keyless), _owner(store))


def test_ca_certificates_and_crls_resolve(store: Store) -> None:
    ca_ref = store.secret(OWNER, certs.bundle(CA, INTERMEDIATE).encode())
    assert store.manager.ca_certificates(ca_ref, _owner(store)) == certs.bundle(CA, INTERMEDIATE)
    crl_ref = store.secret(OWNER, certs.make_crl(CA, [SERVER], der=True))
    assert store.manager.crl(crl_ref, _owner(store)).startswith("-----BEGIN X509 CRL-----")
    with pytest.raises(InvalidReference, match="revocation list"):
        store.manager.crl(ca_ref, _owner(store))
    container = store.container(OWNER, {"certificate": ca_ref})
    with pytest.raises(InvalidReference, match="not a container"):
        store.manager.ca_certificates(container, _owner(store))


def test_another_projects_refs_are_as_unknown_ones(store: Store) -> None:
    secret = store.secret(OWNER, certs.pkcs12(SERVER))
    container = store.container(OWNER, {"certificate": store.secret(OWNER, SERVER.cert_pem.encode()),
                                        "private_key": store.secret(OWNER, SERVER.key_pem.encode())})
    other = store.projects[OTHER]
    for ref, unknown in ((secret, store.unknown_ref("secrets")), (container, store.unknown_ref("containers"))):
        with pytest.raises(InvalidReference) as theirs:
            store.manager.certificate(ref, other)
        with pytest.raises(InvalidReference) as nobodys:
            store.manager.certificate(unknown, other)
        assert str(theirs.value) == str(nobodys.value)
    with pytest.raises(InvalidReference):
        store.manager.ca_certificates(secret, other)
    # The owner still resolves both.
    store.manager.certificate(secret, _owner(store))
    store.manager.certificate(container, _owner(store))


def test_malformed_refs_and_contents_are_refused(store: Store) -> None:
    for ref in ("", "not a url", "http://x/v1/secrets/not-a-uuid", "ftp://x/v1/secrets/" + str(uuid.uuid4()),
                "http://x/v1/orders/" + str(uuid.uuid4()), "http://x/v1/secrets/" + "a" * 2000):
        with pytest.raises(InvalidReference, match="reference"):
            store.manager.certificate(ref, _owner(store))
    garbage = store.secret(OWNER, b"this is not a certificate")
    with pytest.raises(InvalidReference, match="PKCS12"):
        store.manager.certificate(garbage, _owner(store))
