"""Certificates for tests: a CA, certificates it signs, CRLs, PKCS12 bundles.

Everything is made with ``cryptography`` on the spot (EC P-256 keys: fast), so no test
depends on a file that expires.  ``Issued`` holds PEM text, as a key manager stores it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12 as _pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = dt.timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class Issued:
    """A certificate and its key: objects, and PEM text through the properties."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return key_pem(self.key)

    @property
    def serial(self) -> int:
        return self.cert.serial_number


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey, passphrase: bytes | None = None) -> str:
    """PKCS8 PEM, encrypted with ``passphrase`` when given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(name: str = "Test CA", issuer: Issued | None = None,
            not_before: dt.datetime | None = None, not_after: dt.datetime | None = None) -> Issued:
    """A CA certificate: self-signed, or an intermediate signed by ``issuer``."""
    key = new_key()
    start = not_before or now() - DAY
    builder = (x509.CertificateBuilder()
               .subject_name(_name(name))
               .issuer_name(issuer.cert.subject if issuer else _name(name))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(not_after or start + 3650 * DAY)
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False,
                                            encipher_only=False, decipher_only=False), critical=True))
    return Issued(builder.sign(issuer.key if issuer else key, hashes.SHA256()), key)


def make_cert(ca: Issued, names: Sequence[str] = ("www.example.com",), *,
              not_before: dt.datetime | None = None, not_after: dt.datetime | None = None,
              client: bool = False) -> Issued:
    """A leaf certificate signed by ``ca`` for DNS names or IP addresses ``names`` (the first
    is the common name); a client certificate when ``client``."""
    key = new_key()
    start = not_before or now() - DAY
    alt_names: list[x509.GeneralName] = [_general_name(name) for name in names]
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (x509.CertificateBuilder()
               .subject_name(_name(names[0] if names else "no-name"))
               .issuer_name(ca.cert.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(not_after or start + 365 * DAY)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def make_crl(ca: Issued, revoked: Iterable[Issued | int] = (), *, next_update: dt.timedelta = 30 * DAY,
             der: bool = False) -> bytes:
    """A CRL signed by ``ca`` revoking ``revoked`` (certificates or serial numbers); PEM
    bytes, or DER when ``der``."""
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(ca.cert.subject)
               .last_update(now() - DAY)
               .next_update(now() + next_update))
    for entry in revoked:
        serial = entry.serial if isinstance(entry, Issued) else entry
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now() - DAY).build())
    crl = builder.sign(ca.key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.DER if der else serialization.Encoding.PEM)


def pkcs12(issued: Issued, chain: Sequence[Issued] = (), passphrase: bytes | None = None,
           include_key: bool = True) -> bytes:
    """A PKCS12 bundle of ``issued`` (with its key unless not ``include_key``) and ``chain``."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption())
    return _pkcs12.serialize_key_and_certificates(
        b"lbaas-test", issued.key if include_key else None, issued.cert,
        [ca.cert for ca in chain] or None, encryption)


def bundle(*issued: Issued) -> str:
    """PEM certificates one after the other (a CA bundle, or a chain)."""
    return "".join(item.cert_pem for item in issued)
