"""Key material: what a secret's payload holds, checked and turned into what a device loads.

Contract: every function takes the raw bytes a key manager returned (tenant data: hostile)
and returns PEM text, or raises ``InvalidReference`` with a message that names the problem
(not parseable, private key missing, key does not match, expired or not yet valid, wrong or
missing passphrase) and never quotes the material.  A private key comes back unencrypted
PKCS8 PEM: the device needs it so, and it travels only inside the desired state.

Accepted forms:

* a certificate with its key: PKCS12 (with or without a passphrase), or a PEM bundle
  holding the certificate, its private key and any intermediates;
* a certificate container's parts: certificate (PEM, DER or PKCS12), private_key (PEM or
  DER, encrypted with private_key_passphrase or not), intermediates (PEM certificates or
  PKCS7);
* CA certificates: one or more PEM certificates, or one DER certificate;
* CRLs: one or more PEM CRLs, or one DER CRL (returned as PEM).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from lbaas.keys import Certificate, InvalidReference

# Every error cryptography raises for input it cannot read.
UNREADABLE = (ValueError, TypeError, UnsupportedAlgorithm)


def certificate_bundle(payload: bytes, passphrase: bytes | None = None) -> Certificate:
    """A secret that holds a certificate with its key: a PEM bundle, else PKCS12."""
    if _is_pem(payload):
        blocks = _pem_blocks(payload)
        certs = [block for label, block in blocks if label == b"CERTIFICATE"]
        keys = [block for label, block in blocks if label.endswith(b"PRIVATE KEY")]
        if not certs:
            raise InvalidReference("The PEM bundle holds no certificate.")
        if not keys:
            raise InvalidReference("The PEM bundle holds no private key.")
        if len(keys) > 1:
            raise InvalidReference("The PEM bundle holds more than one private key.")
        leaf = _load_certificate(certs[0])
        return _checked(leaf, _load_private_key(keys[0], passphrase),
                        [_load_certificate(block) for block in certs[1:]])
    return _from_pkcs12(payload, passphrase)


def certificate_parts(certificate: bytes, private_key: bytes | None, intermediates: bytes | None = None,
                      passphrase: bytes | None = None) -> Certificate:
    """A certificate container's parts, checked together."""
    if not _is_pem(certificate) and private_key is None:
        return _from_pkcs12(certificate, passphrase)  # a PKCS12 in the certificate slot
    leaf = _load_certificate(certificate)
    if private_key is None:
        raise InvalidReference("The certificate container has no private_key.")
    chain = _load_intermediates(intermediates) if intermediates else []
    return _checked(leaf, _load_private_key(private_key, passphrase), chain)


def ca_certificates(payload: bytes) -> str:
    """One or more CA certificates, as PEM text."""
    if _is_pem(payload):
        blocks = [block for label, block in _pem_blocks(payload) if label == b"CERTIFICATE"]
        if not blocks:
            raise InvalidReference("The secret holds no PEM certificate (CA certificates expected).")
        return "".join(_pem(_load_certificate(block)) for block in blocks)
    return _pem(_load_certificate(payload))


def crl(payload: bytes) -> str:
    """One or more certificate revocation lists, as PEM text."""
    try:
        if _is_pem(payload):
            blocks = [block for label, block in _pem_blocks(payload) if label == b"X509 CRL"]
            if not blocks:
                raise InvalidReference("The secret holds no PEM certificate revocation list.")
            lists = [x509.load_pem_x509_crl(block) for block in blocks]
        else:
            lists = [x509.load_der_x509_crl(payload)]
    except UNREADABLE:
        raise InvalidReference("The secret does not hold a readable certificate revocation list "
                               "(PEM or DER).") from None
    return "".join(item.public_bytes(serialization.Encoding.PEM).decode() for item in lists)


# --- parsing ----------------------------------------------------------------------------

def _is_pem(data: bytes) -> bool:
    return b"-----BEGIN " in data[:4096]


def _pem_blocks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(label, block) of every complete PEM block; found with plain searches, not a
    backtracking pattern, since the text is the tenant's."""
    blocks = []
    position = 0
    while (start := data.find(b"-----BEGIN ", position)) != -1:
        label_end = data.find(b"-----", start + 11)
        if label_end == -1 or label_end - start > 80:
            position = start + 11
            continue
        label = data[start + 11:label_end]
        end_marker = b"-----END " + label + b"-----"
        end = data.find(end_marker, label_end)
        if end == -1:
            position = label_end
            continue
        position = end + len(end_marker)
        blocks.append((label, data[start:position]))
    return blocks


def _load_certificate(data: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data) if _is_pem(data) else x509.load_der_x509_certificate(data)
    except UNREADABLE:
        raise InvalidReference("The secret does not hold a readable X.509 certificate (PEM or DER).") from None


def _load_intermediates(data: bytes) -> list[x509.Certificate]:
    blocks = _pem_blocks(data) if _is_pem(data) else []
    if any(label == b"PKCS7" for label, _ in blocks) or not _is_pem(data):
        try:
            return pkcs7.load_pem_pkcs7_certificates(data) if _is_pem(data) \
                else pkcs7.load_der_pkcs7_certificates(data)
        except UNREADABLE:
            raise InvalidReference("The intermediates are neither PEM certificates nor PKCS7.") from None
    certs = [_load_certificate(block) for label, block in blocks if label == b"CERTIFICATE"]
    if not certs:
        raise InvalidReference("The intermediates hold no certificate.")
    return certs


def _load_private_key(data: bytes, passphrase: bytes | None) -> PrivateKeyTypes:
    encrypted = b"ENCRYPTED" in data[:4096]
    if encrypted and not passphrase:
        raise InvalidReference("The private key is encrypted and no private_key_passphrase was given.")
    try:
        if _is_pem(data):
            return serialization.load_pem_private_key(data, passphrase if encrypted else None)
        return serialization.load_der_private_key(data, passphrase or None)
    except TypeError:  # DER: encrypted without a passphrase, or a passphrase for a plain key
        raise InvalidReference("The private key's passphrase is missing or was not needed.") from None
    except (ValueError, UnsupportedAlgorithm):
        if encrypted:
            raise InvalidReference("The private key cannot be decrypted: wrong private_key_passphrase.") from None
        raise InvalidReference("The private key is not readable (PEM or DER, PKCS1/PKCS8/SEC1).") from None


def _from_pkcs12(data: bytes, passphrase: bytes | None) -> Certificate:
    try:
        key, leaf, chain = pkcs12.load_key_and_certificates(data, passphrase or None)
    except UNREADABLE:
        raise InvalidReference("The secret is neither a PEM bundle nor PKCS12 that opens with the given "
                               "passphrase (wrong or missing passphrase, or not a certificate).") from None
    if key is None:  # then a certificate shows only among the others
        raise InvalidReference("The PKCS12 bundle holds no private key.")
    if leaf is None:
        raise InvalidReference("The PKCS12 bundle holds no certificate.")
    return _checked(leaf, key, chain)


# --- checks -----------------------------------------------------------------------------

def _checked(leaf: x509.Certificate, key: PrivateKeyTypes, chain: Sequence[x509.Certificate]) -> Certificate:
    _check_validity(leaf)
    if _public(key.public_key()) != _public(leaf.public_key()):
        raise InvalidReference("The private key does not match the certificate.")
    plain = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode()
    return Certificate(certificate=_pem(leaf), private_key=plain, intermediates=tuple(_pem(c) for c in chain))


def _check_validity(cert: x509.Certificate, now: dt.datetime | None = None) -> None:
    now = now or dt.datetime.now(dt.timezone.utc)
    if cert.not_valid_after_utc < now:
        raise InvalidReference(f"The certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC.")
    if cert.not_valid_before_utc > now:
        raise InvalidReference(f"The certificate is not valid before "
                               f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC.")


def _public(key: object) -> bytes:
    assert hasattr(key, "public_bytes")
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()
