"""TLS fields of listeners and pools: the rules between them, Octavia's defaults, and every
reference resolved by the key manager for the object's project before anything is written.

``check_listener`` and ``check_pool`` take the row as it will be written (a new one, or an
existing one with the update applied) so create and update share one set of rules.  They
raise ``BadRequest`` naming the field, or ``APIError`` 503 when the key manager does not
answer; the caller's transaction then writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from lbaas import constants as c
from lbaas import keys
from lbaas.db import models as m
from lbaas.errors import APIError, BadRequest

# Listener fields that only a TERMINATED_HTTPS listener may set (with their unset values).
LISTENER_TLS_FIELDS: dict[str, object] = {"default_tls_container_ref": None, "sni_container_refs": [None, []],
                       "client_authentication": c.CLIENT_AUTH_NONE, "client_ca_tls_container_ref": None,
                       "client_crl_container_ref": None, "tls_versions": None, "tls_ciphers": None,
                       "alpn_protocols": None, "hsts_max_age": None, "hsts_include_subdomains": False,
                       "hsts_preload": False}
POOL_TLS_FIELDS = ("tls_container_ref", "ca_tls_container_ref", "crl_container_ref")
POOL_TLS_SETTINGS = (*POOL_TLS_FIELDS, "tls_versions", "tls_ciphers", "alpn_protocols")
T = TypeVar("T")


def check_listener(row: m.Listener, key_manager: keys.KeyManager) -> None:
    """The TLS fields of ``row`` fit its protocol and each other; defaults filled in."""
    if row.protocol != c.PROTOCOL_TERMINATED_HTTPS:
        _refuse_set(row)
        return
    if not row.default_tls_container_ref:
        raise BadRequest("Invalid input for listener: a TERMINATED_HTTPS listener needs a "
                         "default_tls_container_ref.")
    if row.client_authentication != c.CLIENT_AUTH_NONE and not row.client_ca_tls_container_ref:
        raise BadRequest(f"Invalid input for listener: client_authentication "
                         f"{row.client_authentication} needs a client_ca_tls_container_ref.")
    if row.client_crl_container_ref and not row.client_ca_tls_container_ref:
        raise BadRequest("Invalid input for listener: a client_crl_container_ref needs a "
                         "client_ca_tls_container_ref.")
    if (row.hsts_include_subdomains or row.hsts_preload) and row.hsts_max_age is None:
        raise BadRequest("Invalid input for listener: hsts_include_subdomains and hsts_preload "
                         "need hsts_max_age.")
    row.sni_container_refs = list(dict.fromkeys(row.sni_container_refs or []))
    _defaults(row, c.DEFAULT_LISTENER_ALPN_PROTOCOLS)
    resolve_listener(row, key_manager)


def check_pool(row: m.Pool, key_manager: keys.KeyManager) -> None:
    """The TLS fields of ``row`` fit ``tls_enabled``; defaults filled in."""
    if not row.tls_enabled:
        given = [name for name in POOL_TLS_FIELDS if getattr(row, name)]
        if given:
            raise BadRequest(f"Invalid input for pool.{given[0]}: only pools with tls_enabled take it.")
        # Versions, ciphers and ALPN mean nothing without TLS: not kept.
        row.tls_versions = row.tls_ciphers = row.alpn_protocols = None
        return
    if row.crl_container_ref and not row.ca_tls_container_ref:
        raise BadRequest("Invalid input for pool: a crl_container_ref needs a ca_tls_container_ref.")
    _defaults(row, c.DEFAULT_POOL_ALPN_PROTOCOLS)
    resolve_pool(row, key_manager)


def _refuse_set(row: m.Listener) -> None:
    for name, unset in LISTENER_TLS_FIELDS.items():
        value = getattr(row, name)
        if value not in (unset if isinstance(unset, list) else [unset]):
            raise BadRequest(f"Invalid input for listener.{name}: only TERMINATED_HTTPS listeners "
                             f"take it, not {row.protocol}.")


def _defaults(row: m.Listener | m.Pool, alpn: tuple[str, ...]) -> None:
    if row.tls_versions is None:
        row.tls_versions = list(c.DEFAULT_TLS_VERSIONS)
    if row.tls_ciphers is None:
        row.tls_ciphers = c.DEFAULT_TLS_CIPHERS
    if row.alpn_protocols is None:
        row.alpn_protocols = list(alpn)


# --- resolution: the API checks with these, the desired state is built with them -----------

def resolve_listener(row: m.Listener, key_manager: keys.KeyManager) -> tuple[
        keys.Certificate, list[keys.Certificate], str | None, str | None]:
    """(default certificate, SNI certificates, client CA, client CRL) of a TERMINATED_HTTPS listener."""
    assert row.default_tls_container_ref is not None
    project = row.project_id
    default = _resolve("listener.default_tls_container_ref", key_manager.certificate,
                       row.default_tls_container_ref, project)
    sni = [_resolve("listener.sni_container_refs", key_manager.certificate, ref, project)
           for ref in row.sni_container_refs or []]
    ca = _optional("listener.client_ca_tls_container_ref", key_manager.ca_certificates,
                   row.client_ca_tls_container_ref, project)
    crl = _optional("listener.client_crl_container_ref", key_manager.crl, row.client_crl_container_ref,
                    project)
    return default, sni, ca, crl


def resolve_pool(row: m.Pool, key_manager: keys.KeyManager) -> tuple[
        keys.Certificate | None, str | None, str | None]:
    """(client certificate, CA, CRL) of a pool that re-encrypts."""
    project = row.project_id
    return (_optional("pool.tls_container_ref", key_manager.certificate, row.tls_container_ref, project),
            _optional("pool.ca_tls_container_ref", key_manager.ca_certificates, row.ca_tls_container_ref,
                      project),
            _optional("pool.crl_container_ref", key_manager.crl, row.crl_container_ref, project))


def _optional(field: str, lookup: Callable[[str, str], T], ref: str | None, project: str) -> T | None:
    return None if not ref else _resolve(field, lookup, ref, project)


def _resolve(field: str, lookup: Callable[[str, str], T], ref: str, project: str) -> T:
    try:
        return lookup(ref, project)
    except keys.InvalidReference as exc:
        raise BadRequest(f"Invalid input for {field}: {exc}") from None
    except keys.KeyManagerUnavailable as exc:
        raise APIError(f"The key manager is unavailable ({exc}); nothing was changed. "
                       f"Try again shortly.", 503) from None
