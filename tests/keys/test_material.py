"""Key material checks (lbaas.keys.material) on certificates made on the spot
(lbaas.testing.certs): every accepted form, and every refusal with a message that names the
problem and never quotes the material."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from lbaas.keys import Certificate, InvalidReference, material
from lbaas.testing import certs

CA = certs.make_ca("Material CA")
INTERMEDIATE = certs.make_ca("Material Intermediate", issuer=CA)
SERVER = certs.make_cert(INTERMEDIATE, ["www.example.com", "127.0.0.1"])
OTHER = certs.make_cert(CA, ["other.example.com"])
PASSPHRASE = b"correct horse"


def refused(match: str) -> pytest.RaisesContext[InvalidReference]:
    return pytest.raises(InvalidReference, match=match)


def assert_server(result: Certificate, chain: tuple[certs.Issued, ...] = (INTERMEDIATE,)) -> None:
    assert result.certificate == SERVER.cert_pem
    assert result.intermediates == tuple(item.cert_pem for item in chain)
    # Unencrypted PKCS8, and the key of the certificate.
    assert result.private_key.startswith("-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(result.private_key.encode(), None)
    assert key.private_numbers() == SERVER.key.private_numbers()  # type: ignore[union-attr]
    assert "PRIVATE" not in repr(result)


def assert_quiet(exc: pytest.ExceptionInfo[InvalidReference], *secrets: bytes) -> None:
    for secret in secrets:
        assert secret.decode(errors="ignore")[:40] not in str(exc.value)


# --- a certificate with its key in one secret -------------------------------------------

def test_pkcs12_without_passphrase() -> None:
    assert_server(material.certificate_bundle(certs.pkcs12(SERVER, [INTERMEDIATE])))


def test_pkcs12_with_passphrase() -> None:
    bundle = certs.pkcs12(SERVER, [INTERMEDIATE], passphrase=PASSPHRASE)
    assert_server(material.certificate_bundle(bundle, PASSPHRASE))
    for wrong in (None, b"wrong"):
        with refused("passphrase") as exc:
            material.certificate_bundle(bundle, wrong)
        assert_quiet(exc, PASSPHRASE)


def test_pkcs12_without_key_is_refused() -> None:
    with refused("no private key"):
        material.certificate_bundle(certs.pkcs12(SERVER, include_key=False))


def test_pem_bundle() -> None:
    bundle = (SERVER.cert_pem + SERVER.key_pem + INTERMEDIATE.cert_pem).encode()
    assert_server(material.certificate_bundle(bundle))


def test_pem_bundle_without_key_or_certificate_is_refused() -> None:
    with refused("no private key"):
        material.certificate_bundle(SERVER.cert_pem.encode())
    with refused("no certificate"):
        material.certificate_bundle(SERVER.key_pem.encode())


def test_garbage_is_not_a_certificate() -> None:
    for garbage in (b"", b"hello", b"\x30\x82\x01\x00" + b"\x00" * 50, "-----BEGIN CERTIFICATE-----\nnope\n"
                    "-----END CERTIFICATE-----\n".encode() + SERVER.key_pem.encode()):
        with pytest.raises(InvalidReference) as exc:
            material.certificate_bundle(garbage)
        assert "certificate" in str(exc.value).lower() or "PKCS12" in str(exc.value)
        assert_quiet(exc, SERVER.key_pem.encode()[30:])


def test_key_of_another_certificate_is_refused() -> None:
    with refused("does not match"):
        material.certificate_bundle((SERVER.cert_pem + OTHER.key_pem).encode())
    with refused("does not match"):
        material.certificate_parts(SERVER.cert_pem.encode(), OTHER.key_pem.encode())


def test_expired_and_not_yet_valid_are_refused() -> None:
    expired = certs.make_cert(CA, ["old.example.com"], not_before=certs.now() - 30 * certs.DAY,
                              not_after=certs.now() - certs.DAY)
    future = certs.make_cert(CA, ["new.example.com"], not_before=certs.now() + certs.DAY)
    with refused("expired on"):
        material.certificate_bundle(certs.pkcs12(expired))
    with refused("not valid before"):
        material.certificate_parts(future.cert_pem.encode(), future.key_pem.encode())


# --- a certificate container's parts ------------------------------------------------------

def test_container_parts_pem() -> None:
    result = material.certificate_parts(SERVER.cert_pem.encode(), SERVER.key_pem.encode(),
                                        INTERMEDIATE.cert_pem.encode())
    assert_server(result)


def test_container_parts_der_and_pkcs7_intermediates() -> None:
    der_cert = SERVER.cert.public_bytes(serialization.Encoding.DER)
    der_key = SERVER.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
    chain = pkcs7.serialize_certificates([INTERMEDIATE.cert], serialization.Encoding.PEM)
    assert_server(material.certificate_parts(der_cert, der_key, chain))


def test_container_encrypted_key_needs_its_passphrase() -> None:
    encrypted = certs.key_pem(SERVER.key, PASSPHRASE).encode()
    assert_server(material.certificate_parts(SERVER.cert_pem.encode(), encrypted, None, PASSPHRASE), ())
    with refused("no private_key_passphrase"):
        material.certificate_parts(SERVER.cert_pem.encode(), encrypted)
    with refused("wrong private_key_passphrase") as exc:
        material.certificate_parts(SERVER.cert_pem.encode(), encrypted, None, b"wrong")
    assert_quiet(exc, PASSPHRASE)


def test_container_without_key_is_refused() -> None:
    with refused("no private_key"):
        material.certificate_parts(SERVER.cert_pem.encode(), None)


def test_container_with_unreadable_parts_is_refused() -> None:
    with refused("not readable"):
        material.certificate_parts(SERVER.cert_pem.encode(), b"-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                   b"-----END PRIVATE KEY-----\n")
    with refused("intermediates"):
        material.certificate_parts(SERVER.cert_pem.encode(), SERVER.key_pem.encode(), b"\x01\x02")
    with refused("readable X.509"):
        material.certificate_parts(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                                   SERVER.key_pem.encode())


def test_pkcs12_in_a_container_certificate_slot() -> None:
    bundle = certs.pkcs12(SERVER, [INTERMEDIATE], passphrase=PASSPHRASE)
    assert_server(material.certificate_parts(bundle, None, None, PASSPHRASE))


# --- CA certificates and revocation lists -----------------------------------------------

def test_ca_bundles() -> None:
    assert material.ca_certificates(CA.cert_pem.encode()) == CA.cert_pem
    assert material.ca_certificates(certs.bundle(CA, INTERMEDIATE).encode()) == certs.bundle(CA, INTERMEDIATE)
    assert material.ca_certificates(CA.cert.public_bytes(serialization.Encoding.DER)) == CA.cert_pem
    with refused("no PEM certificate"):
        material.ca_certificates(SERVER.key_pem.encode())
    with refused("readable X.509"):
        material.ca_certificates(b"not a certificate")


def test_crls_pem_and_der() -> None:
    pem = certs.make_crl(CA, [SERVER])
    assert material.crl(pem) == pem.decode()
    from_der = material.crl(certs.make_crl(CA, [SERVER], der=True))
    revoked = x509.load_pem_x509_crl(from_der.encode())
    assert from_der.startswith("-----BEGIN X509 CRL-----")
    assert revoked.get_revoked_certificate_by_serial_number(SERVER.serial) is not None
    two = certs.make_crl(CA) + certs.make_crl(INTERMEDIATE, [OTHER.serial])
    assert material.crl(two).count("BEGIN X509 CRL") == 2
    for garbage in (b"junk", CA.cert_pem.encode(), b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"):
        with refused("revocation list"):
            material.crl(garbage)


def test_hostile_pem_text_is_refused_quickly() -> None:
    # Many unterminated blocks: the scan stays linear enough to answer at once.
    hostile = b"-----BEGIN CERTIFICATE-----\n" * 3000
    started = dt.datetime.now()
    with refused("no certificate"):
        material.certificate_bundle(hostile)
    with refused("no PEM certificate"):
        material.ca_certificates(hostile)
    assert (dt.datetime.now() - started).total_seconds() < 2
