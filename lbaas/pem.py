"""Closed forms of PEM text: certificates, private keys and CRLs.

What a device writes into a file that HAProxy reads must be exactly PEM blocks and nothing
else: HAProxy's parser skips text around blocks, so a stray line is harmless to it, but a
key manager's text is tenant text all the same. Each function takes the text as given,
checks that it is nothing but PEM blocks of the expected labels (ASCII, base64 bodies,
matching BEGIN/END lines), parses every block with ``cryptography`` and returns the
*re-encoded* form: what comes out is written by ``cryptography``, never copied from the input.

Errors are ``ValueError`` with a message that quotes nothing of the input (it may hold a key).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

MAX_PEM_TEXT: Final = 512 * 1024      # a CA bundle of a few hundred certificates
MAX_BLOCKS: Final = 500

_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,40})-----\n((?:[A-Za-z0-9+/=]{1,80}\n){1,4000})"
                    r"-----END \1-----", re.ASCII)
_CERTIFICATE_LABELS = ("CERTIFICATE",)
_KEY_LABELS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")
_CRL_LABELS = ("X509 CRL",)
T = TypeVar("T")


def certificates(text: str, what: str = "certificate") -> list[x509.Certificate]:
    """The certificates of ``text`` (one or more CERTIFICATE blocks), in order."""
    return [_parse(x509.load_pem_x509_certificate, block, what)
            for block in _blocks(text, _CERTIFICATE_LABELS, what)]


def certificate_text(text: str, what: str = "certificate") -> str:
    """``text`` (one or more certificates) re-encoded."""
    return _encode(certificates(text, what))


def private_key(text: str, what: str = "private key") -> PrivateKeyTypes:
    """The one unencrypted RSA or EC private key of ``text`` (PKCS#8, PKCS#1 or SEC1): the
    kinds of key HAProxy serves with."""
    blocks = _blocks(text, _KEY_LABELS, what)
    if len(blocks) != 1:
        raise ValueError(f"the {what} must be exactly one PEM private key")
    key = _parse(lambda data: serialization.load_pem_private_key(data, password=None),
                 blocks[0], what)
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ValueError(f"the {what} must be an RSA or EC key")
    return key


def private_key_text(key: PrivateKeyTypes) -> str:
    """``key`` as unencrypted PKCS#8 PEM."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def certificate_with_key(certificate: str, key: str,
                         intermediates: list[str]) -> tuple[str, str, list[str]]:
    """(certificate, key, intermediates) re-encoded, after checking that ``certificate`` is
    exactly one certificate and that ``key`` is its private key."""
    leaf = certificates(certificate)
    if len(leaf) != 1:
        raise ValueError("the certificate must be exactly one PEM certificate")
    private = private_key(key)
    if _public_der(private.public_key()) != _public_der(leaf[0].public_key()):
        raise ValueError("the private key does not belong to the certificate")
    chain = [certificate_text(item, "intermediate") for item in intermediates]
    return _encode(leaf), private_key_text(private), chain


def crl_text(text: str, issuers: list[x509.Certificate] | None = None) -> str:
    """``text`` (one or more CRLs) re-encoded; with ``issuers``, each CRL must be signed by
    one of them."""
    crls = [_parse(x509.load_pem_x509_crl, block, "CRL")
            for block in _blocks(text, _CRL_LABELS, "CRL")]
    for crl in crls:
        if issuers is not None and not any(_signed_by(crl, ca) for ca in issuers):
            raise ValueError("the CRL is not signed by the certificate authority given with it")
    return "".join(crl.public_bytes(serialization.Encoding.PEM).decode("ascii") for crl in crls)


def _blocks(text: str, labels: tuple[str, ...], what: str) -> list[bytes]:
    """The PEM blocks of ``text`` (whole: blocks separated by line breaks only)."""
    if not isinstance(text, str) or not text.isascii() or len(text) > MAX_PEM_TEXT:
        raise ValueError(f"the {what} must be PEM text of at most {MAX_PEM_TEXT} ASCII characters")
    normal = text.replace("\r\n", "\n").strip("\n")
    blocks, position = [], 0
    for match in _BLOCK.finditer(normal):
        if normal[position:match.start()].strip("\n") or match.group(1) not in labels:
            break
        blocks.append(match.group(0).encode("ascii") + b"\n")
        position = match.end()
    else:
        if blocks and not normal[position:].strip("\n") and len(blocks) <= MAX_BLOCKS:
            return blocks
    raise ValueError(f"the {what} must be nothing but PEM blocks (1 to {MAX_BLOCKS}) labelled "
                     f"{' or '.join(labels)}")


def _parse(load: Callable[[bytes], T], block: bytes, what: str) -> T:
    try:
        return load(block)
    except Exception:  # noqa: BLE001 - ValueError, TypeError, UnsupportedAlgorithm alike
        # Not cryptography's message: nothing of a (possibly secret) input goes back.
        raise ValueError(f"the {what} does not parse") from None


def _encode(certs: list[x509.Certificate]) -> str:
    return "".join(cert.public_bytes(serialization.Encoding.PEM).decode("ascii") for cert in certs)


def _public_der(key: object) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    try:
        return crl.issuer == ca.subject and crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
