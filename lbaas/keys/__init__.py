"""Key managers: where certificates and their keys are kept, and how a reference resolves.

A listener or pool names its certificates by reference (a Barbican-style URL to a secret or a
certificate container); the rows hold only the reference.  A ``KeyManager`` resolves a
reference for one project: at the API, so a bad reference is a 400 before anything is
written, and again when the desired state is built, so key material reaches an agent only
through the desired state and is never stored with the load balancer.

Two backends (``[certificates] backend``):

* ``local`` (``lbaas.keys.local``): the server keeps secrets and containers itself,
  encrypted at rest, and answers the subset of Barbican's v1 API that the OpenStack clients
  use (``lbaas.api.routes.secrets``);
* ``barbican`` (``lbaas.keys.barbican``): a real Barbican reached over HTTP with the
  caller's project.

Contract of every backend: a reference that does not resolve, belongs to another project, or
holds something that is not what the field needs raises ``InvalidReference`` with a message
that names the problem (never the key material); a backend that cannot be reached raises
``KeyManagerUnavailable``.  Nothing here logs a payload.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lbaas.config import Config
    from lbaas.db.session import Database


class InvalidReference(ValueError):
    """The reference cannot be used: unknown, another project's, or the wrong content."""


class KeyManagerUnavailable(Exception):
    """The key manager did not answer (the API answers 503)."""


@dataclasses.dataclass(frozen=True)
class Certificate:
    """A certificate with its private key (unencrypted) and chain, PEM text."""

    certificate: str
    private_key: str
    intermediates: tuple[str, ...] = ()

    def __repr__(self) -> str:  # never print a key
        return "Certificate(<redacted>)"


def certificate_id(ref: str) -> str:
    """A stable name for the material behind ``ref``: devices name files after it."""
    return hashlib.sha256(ref.encode()).hexdigest()[:32]


class KeyManager(abc.ABC):
    """Resolves references for one project at a time."""

    @abc.abstractmethod
    def certificate(self, ref: str, project_id: str) -> Certificate:
        """A server or client certificate with its key: a secret holding PKCS12 or a PEM
        bundle (certificate, key, intermediates), or a certificate container (certificate,
        private_key, intermediates, private_key_passphrase).  The key matches the certificate and the certificate is
        within its validity.  Raises ``InvalidReference``, ``KeyManagerUnavailable``."""

    @abc.abstractmethod
    def ca_certificates(self, ref: str, project_id: str) -> str:
        """A secret holding one or more PEM CA certificates; returned as PEM text.
        Raises ``InvalidReference``, ``KeyManagerUnavailable``."""

    @abc.abstractmethod
    def crl(self, ref: str, project_id: str) -> str:
        """A secret holding certificate revocation lists (PEM, or one DER); returned as PEM text.
        Raises ``InvalidReference``, ``KeyManagerUnavailable``."""


def make(config: "Config", db: "Database") -> KeyManager:
    """The key manager ``[certificates] backend`` names.  ``local`` without an
    encryption_key still builds (the API's other routes work; every secret operation answers
    ``KeyManagerUnavailable``): ``lbaas server`` refuses to start that way, tests need not."""
    certificates = config.certificates
    if certificates.backend == "barbican":
        from lbaas.keys.barbican import BarbicanKeyManager
        if not certificates.barbican_endpoint:
            from lbaas.config import ConfigError
            raise ConfigError("[certificates] backend = barbican needs barbican_endpoint "
                              "(Barbican's base URL, e.g. http://barbican.example.net:9311)")
        return BarbicanKeyManager(certificates.barbican_endpoint, certificates.barbican_timeout)
    from lbaas.keys.local import LocalKeyManager, LocalStore
    return LocalKeyManager(LocalStore(db, certificates.encryption_key or None))
