"""References and how any secret store resolves them.

A reference is a Barbican-style URL ending in ``/secrets/<uuid>`` or ``/containers/<uuid>``.
Only the kind and the uuid are taken from it: a key manager asks its own store (its database,
or the configured Barbican endpoint), never the host a tenant wrote, so a reference cannot
make a server fetch an arbitrary URL.

``SecretStoreKeyManager`` implements ``KeyManager`` once for every store that can hand out a
secret's payload and a container's parts by id for a project; what the parts must hold is
checked in ``lbaas.keys.material``.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping

from lbaas.keys import Certificate, InvalidReference, KeyManager, material

SECRET = "secrets"
CONTAINER = "containers"
MAX_REF_LENGTH = 1024
REF = re.compile(r"^https?://[^\s/?#]+(?:/[^\s?#]*)?/(secrets|containers)/"
                 r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})/?$")
# The parts of a certificate container, by Barbican's names.
CERTIFICATE_PARTS = ("certificate", "private_key", "intermediates", "private_key_passphrase")


def parse_ref(ref: str) -> tuple[str, str]:
    """(``secrets`` or ``containers``, the lower-case uuid) of a reference URL, or
    ``InvalidReference``; the message quotes at most the start of the reference."""
    if not isinstance(ref, str) or len(ref) > MAX_REF_LENGTH:
        raise InvalidReference(f"A reference is a URL of at most {MAX_REF_LENGTH} characters.")
    match = REF.match(ref)
    if match is None:
        raise InvalidReference("A reference must be a key manager URL ending in /secrets/<uuid> or "
                               "/containers/<uuid>.")
    return match.group(1), match.group(2).lower()


def not_found(ref_kind: str) -> InvalidReference:
    """The one answer for unknown and another project's: nothing tells them apart."""
    noun = "secret" if ref_kind == SECRET else "container"
    return InvalidReference(f"The {noun} reference does not resolve to a {noun} of this project.")


class SecretStoreKeyManager(KeyManager):
    """A key manager over a store of secrets and containers."""

    @abc.abstractmethod
    def secret_payload(self, secret_id: str, project_id: str) -> bytes:
        """The payload of one of the project's secrets; ``not_found(SECRET)`` otherwise."""

    @abc.abstractmethod
    def container_parts(self, container_id: str, project_id: str) -> Mapping[str, str]:
        """Part name -> secret id of one of the project's containers; ``not_found(CONTAINER)``
        otherwise."""

    def certificate(self, ref: str, project_id: str) -> Certificate:
        kind, ident = parse_ref(ref)
        if kind == SECRET:
            return material.certificate_bundle(self.secret_payload(ident, project_id))
        parts = self.container_parts(ident, project_id)
        if "certificate" not in parts:
            raise InvalidReference("The container has no secret named 'certificate'.")
        payloads = {name: self.secret_payload(parts[name], project_id)
                    for name in CERTIFICATE_PARTS if name in parts}
        return material.certificate_parts(payloads["certificate"], payloads.get("private_key"),
                                          payloads.get("intermediates"), payloads.get("private_key_passphrase"))

    def ca_certificates(self, ref: str, project_id: str) -> str:
        return material.ca_certificates(self._secret(ref, project_id, "CA certificates"))

    def crl(self, ref: str, project_id: str) -> str:
        return material.crl(self._secret(ref, project_id, "a revocation list"))

    def _secret(self, ref: str, project_id: str, what: str) -> bytes:
        kind, ident = parse_ref(ref)
        if kind != SECRET:
            raise InvalidReference(f"A secret reference (/secrets/<uuid>) holding {what} is needed here, "
                                   "not a container.")
        return self.secret_payload(ident, project_id)
