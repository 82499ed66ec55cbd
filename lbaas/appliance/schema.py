"""Validation of the desired state of one load balancer, as the agent sends it.

``validate(document)`` returns a normalised copy, a ``wire.LoadBalancer`` (unknown keys dropped,
optional keys filled with their defaults), or raises ``InvalidRequest`` naming the first problem. Everything that
ends up in haproxy.cfg is checked here against a strict pattern, because the template
interpolates it verbatim: an id, a path or a cookie name must never be able to start a new
configuration line or keyword.

Required keys: load balancer ``id``, ``revision``, ``vip_address``, ``listeners``, ``pools``;
listener ``id``, ``protocol``, ``protocol_port``; pool ``id``, ``protocol``, ``lb_algorithm``;
member ``id``, ``address``, ``protocol_port``; health monitor ``type``, ``delay``,
``timeout``, ``max_retries``; session persistence ``type``; L7 policy ``id``, ``action``,
``position`` and the redirect field its action needs (``redirect_pool_id``, ``redirect_url``
or ``redirect_prefix``); L7 rule ``id``, ``type``, ``compare_type``, ``value`` (and ``key``
for HEADER, COOKIE and SSL_DN_FIELD); a TERMINATED_HTTPS listener's ``tls`` (refused on every
other listener) with its ``default_certificate``, and ``client_ca`` unless
``client_authentication`` is NONE; a certificate's ``id``, ``certificate`` and
``private_key``. Every other key has the Octavia default. L7 rule values, redirect URLs and
cipher lists take the closed forms of ``lbaas.validate``, the same rules as at the API.

TLS material is PEM text that must be nothing but PEM blocks of the right kind, parse, and
(a key) belong to its certificate (``lbaas.pem``); what is kept is the re-encoded form, so
nothing of the sender's text but the parsed objects reaches a file HAProxy reads. A
certificate's ``id`` is a hex digest (it names the certificate's file). Refusals never quote
PEM text.
"""

import ipaddress
import re
from collections.abc import Callable
from typing import Any, TypeVar

from lbaas import constants as c
from lbaas import pem
from lbaas import validate as closed
from lbaas import wire
from lbaas.appliance.errors import InvalidRequest

# Ids become directory, backend and server names; uuids fit easily. Matched whole and
# ASCII-only (see lbaas.validate for why).
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", re.ASCII)
# A certificate's id is a hex digest of its reference (lbaas.keys.certificate_id): it names
# the certificate's file.
CERTIFICATE_ID_PATTERN = re.compile(r"[0-9a-f]{16,64}", re.ASCII)
MAX_SNI_CERTIFICATES = 100
MAX_INTERMEDIATES = 10
# The local OpenSSL (3.x) has no SSLv3 at all: HAProxy refuses a bind or server that offers
# nothing else (with other versions beside it, SSLv3 is simply never negotiated).
NO_SSLV3_ALONE = ["SSLv3"]
# Listeners that speak HTTP to their clients (after TLS, for TERMINATED_HTTPS).
HTTP_LISTENER_PROTOCOLS = (c.PROTOCOL_HTTP, c.PROTOCOL_TERMINATED_HTTPS)

# Octavia's limits: policy positions, rules a policy (which also keeps a policy's condition
# well under HAProxy's 64 words a line) and the redirect code when none is given.
MAX_POSITION = 2 ** 31 - 1

DEFAULT_REDIRECT_CODE = 302

# Monitors send HTTP/1.0 requests unless 1.1 is asked for (as a string: "1.0" or "1.1").
HTTP_VERSIONS = ("1.0", "1.1")

_MISSING = object()
T = TypeVar("T")


def validate(document: Any) -> wire.LoadBalancer:
    """Check ``document`` against the desired-state schema; return the normalised copy.

    Raises ``InvalidRequest`` with a message naming the offending field.
    """
    lb = _object(document, "body")
    out = wire.LoadBalancer(
        id=_id(lb, "id", "loadbalancer"),
        project_id=_str(lb, "project_id", "loadbalancer", default=""),
        revision=_int(lb, "revision", "loadbalancer", low=0),
        name=_str(lb, "name", "loadbalancer", default=""),
        admin_state_up=_bool(lb, "admin_state_up", "loadbalancer", default=True),
        vip_address=_ip(lb, "vip_address", "loadbalancer"),
        listeners=[_listener(item, f"listeners[{i}]")
                   for i, item in enumerate(_list(lb, "listeners", "loadbalancer"))],
        pools=[_pool(item, f"pools[{i}]") for i, item in enumerate(_list(lb, "pools", "loadbalancer"))],
    )
    _check_references(out)
    return out


def pool_mode(desired: wire.LoadBalancer, pool: wire.Pool) -> str:
    """The HAProxy ``mode`` (``http`` or ``tcp``) the backend of ``pool`` runs in.

    HTTP pools speak HTTP; PROXY pools follow the listener that uses them (a PROXY header can
    precede either); everything else is plain TCP.
    """
    if pool["protocol"] == c.PROTOCOL_HTTP:
        return "http"
    if pool["protocol"] in (c.PROTOCOL_PROXY, c.PROTOCOL_PROXYV2):
        if any(ln["protocol"] in HTTP_LISTENER_PROTOCOLS for ln in pool_users(desired, pool["id"])):
            return "http"
    return "tcp"


def pool_users(desired: wire.LoadBalancer, pool_id: str) -> list[wire.Listener]:
    """The listeners that send traffic to ``pool_id``: the one whose default pool it is
    first, then those with an L7 policy redirecting to it (enabled or not)."""
    default = [ln for ln in desired["listeners"] if ln["default_pool_id"] == pool_id]
    by_policy = [ln for ln in desired["listeners"] if ln not in default and any(
        p["redirect_pool_id"] == pool_id for p in ln.get("l7policies", []))]
    return default + by_policy


# --- objects ---------------------------------------------------------------------------

def _listener(item: Any, where: str) -> wire.Listener:
    obj = _object(item, where)
    listener = wire.Listener(
        id=_id(obj, "id", where),
        name=_str(obj, "name", where, default=""),
        protocol=_choice(obj, "protocol", where, c.DEVICE_LISTENER_PROTOCOLS, c.LISTENER_PROTOCOLS),
        protocol_port=_int(obj, "protocol_port", where, low=1, high=65535),
        connection_limit=_int(obj, "connection_limit", where, low=-1,
                              high=c.MAX_CONNECTION_LIMIT, default=-1),
        admin_state_up=_bool(obj, "admin_state_up", where, default=True),
        timeout_client_data=_timeout(obj, "timeout_client_data", where, c.DEFAULT_TIMEOUT_CLIENT_DATA),
        timeout_member_connect=_timeout(obj, "timeout_member_connect", where,
                                        c.DEFAULT_TIMEOUT_MEMBER_CONNECT),
        timeout_member_data=_timeout(obj, "timeout_member_data", where, c.DEFAULT_TIMEOUT_MEMBER_DATA),
        timeout_tcp_inspect=_timeout(obj, "timeout_tcp_inspect", where, c.DEFAULT_TIMEOUT_TCP_INSPECT),
        default_pool_id=_id(obj, "default_pool_id", where, default=None),
        allowed_cidrs=[_cidr(cidr, f"{where}.allowed_cidrs[{i}]") for i, cidr in
                       enumerate(_list(obj, "allowed_cidrs", where, default=[]))],
        insert_headers={},  # checked last: which headers are allowed depends on the protocol
        tls=None,
    )
    listener["insert_headers"] = _headers(obj, where, listener["protocol"])
    listener["l7policies"] = _l7policies(obj, where, listener["protocol"])
    listener["tls"] = _listener_tls(obj, where, listener["protocol"])
    return listener


def _l7policies(obj: dict, where: str, protocol: str) -> list[wire.L7Policy]:
    """The listener's policies in position order (positions unique); HTTP and
    TERMINATED_HTTPS listeners only, and rules on the client's certificate on
    TERMINATED_HTTPS only."""
    policies = [_l7policy(item, f"{where}.l7policies[{i}]")
                for i, item in enumerate(_list(obj, "l7policies", where, default=[]))]
    if policies and protocol not in HTTP_LISTENER_PROTOCOLS:
        raise InvalidRequest(f"{where}.l7policies: only HTTP and TERMINATED_HTTPS listeners "
                             f"have L7 policies on this device, not {protocol}")
    if protocol != c.PROTOCOL_TERMINATED_HTTPS and any(
            r["type"] in c.L7RULE_SSL_TYPES for p in policies for r in p["rules"]):
        raise InvalidRequest(f"{where}.l7policies: rules on the client certificate "
                             f"({', '.join(c.L7RULE_SSL_TYPES)}) need a TERMINATED_HTTPS listener")
    _unique([p["position"] for p in policies], f"{where}.l7policies position")
    return sorted(policies, key=lambda p: p["position"])


def _l7policy(item: Any, where: str) -> wire.L7Policy:
    obj = _object(item, where)
    action = _choice(obj, "action", where, c.L7POLICY_ACTIONS, c.L7POLICY_ACTIONS)
    redirects = action in ("REDIRECT_TO_URL", "REDIRECT_PREFIX")
    # Fields of other actions are dropped, as Octavia clears them when the action changes.
    policy = wire.L7Policy(
        id=_id(obj, "id", where),
        action=action,
        position=_int(obj, "position", where, low=1, high=MAX_POSITION),
        redirect_pool_id=_id(obj, "redirect_pool_id", where) if action == "REDIRECT_TO_POOL"
        else None,
        redirect_url=_closed(obj, "redirect_url", where, closed.redirect_url)
        if action == "REDIRECT_TO_URL" else None,
        redirect_prefix=_closed(obj, "redirect_prefix", where, closed.redirect_prefix)
        if action == "REDIRECT_PREFIX" else None,
        redirect_http_code=_redirect_code(obj, where) if redirects else None,
        admin_state_up=_bool(obj, "admin_state_up", where, default=True),
        rules=[_l7rule(rule, f"{where}.rules[{i}]")
               for i, rule in enumerate(_list(obj, "rules", where, default=[]))],
    )
    if len(policy["rules"]) > c.MAX_L7RULES_PER_POLICY:
        raise InvalidRequest(f"{where}.rules: at most {c.MAX_L7RULES_PER_POLICY} rules a policy")
    return policy


def _redirect_code(obj: dict, where: str) -> int:
    code = _int(obj, "redirect_http_code", where, default=DEFAULT_REDIRECT_CODE)
    if code not in c.L7POLICY_REDIRECT_CODES:
        raise InvalidRequest(f"{where}.redirect_http_code {code} is not one of "
                             f"{', '.join(map(str, c.L7POLICY_REDIRECT_CODES))}")
    return code


def _l7rule(item: Any, where: str) -> wire.L7Rule:
    obj = _object(item, where)
    kind = _choice(obj, "type", where, c.L7RULE_TYPES, c.L7RULE_TYPES)
    compare = _choice(obj, "compare_type", where, c.L7RULE_COMPARE_TYPES, c.L7RULE_COMPARE_TYPES)
    try:
        key, value = closed.l7_rule(kind, compare, _str(obj, "key", where, default=None),
                                    _str(obj, "value", where))
    except ValueError as exc:
        raise InvalidRequest(f"{where} (key, value): {exc}") from None
    return wire.L7Rule(id=_id(obj, "id", where), type=kind, compare_type=compare, key=key,
                       value=value, invert=_bool(obj, "invert", where, default=False),
                       admin_state_up=_bool(obj, "admin_state_up", where, default=True))


def _cidr(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f"{where} must be a string")
    try:
        return closed.cidr(value)
    except ValueError as exc:
        raise InvalidRequest(f"{where} {exc}") from None


def _headers(obj: dict, where: str, protocol: str) -> dict[str, str]:
    headers = _get(obj, "insert_headers", where, {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise InvalidRequest(f"{where}.insert_headers must map header names to strings")
    try:
        return closed.insert_headers(headers, protocol)
    except ValueError as exc:
        raise InvalidRequest(f"{where}.insert_headers: {exc}") from None


def _pool(item: Any, where: str) -> wire.Pool:
    obj = _object(item, where)
    pool = wire.Pool(
        id=_id(obj, "id", where),
        name=_str(obj, "name", where, default=""),
        protocol=_choice(obj, "protocol", where, c.DEVICE_POOL_PROTOCOLS, c.POOL_PROTOCOLS),
        lb_algorithm=_choice(obj, "lb_algorithm", where, c.DEVICE_LB_ALGORITHMS, c.LB_ALGORITHMS),
        admin_state_up=_bool(obj, "admin_state_up", where, default=True),
        session_persistence=_nullable(obj, "session_persistence", where, _persistence),
        members=[_member(m, f"{where}.members[{i}]")
                 for i, m in enumerate(_list(obj, "members", where, default=[]))],
        healthmonitor=_nullable(obj, "healthmonitor", where, _healthmonitor),
        tls=_nullable(obj, "tls", where, _pool_tls),
    )
    _unique([m["id"] for m in pool["members"]], f"{where}.members id")
    return pool


def _member(item: Any, where: str) -> wire.Member:
    obj = _object(item, where)
    return wire.Member(
        id=_id(obj, "id", where),
        name=_str(obj, "name", where, default=""),
        address=_ip(obj, "address", where),
        protocol_port=_int(obj, "protocol_port", where, low=1, high=65535),
        weight=_int(obj, "weight", where, low=0, high=256, default=1),
        backup=_bool(obj, "backup", where, default=False),
        admin_state_up=_bool(obj, "admin_state_up", where, default=True),
        monitor_address=_ip(obj, "monitor_address", where, default=None),
        monitor_port=_int(obj, "monitor_port", where, low=1, high=65535, default=None),
    )


def _persistence(item: Any, where: str) -> wire.SessionPersistence:
    obj = _object(item, where)
    kind = _choice(obj, "type", where, c.DEVICE_SESSION_PERSISTENCE_TYPES,
                   c.SESSION_PERSISTENCE_TYPES)
    cookie = _closed(obj, "cookie_name", where, closed.cookie_name, default=None)
    if kind == "APP_COOKIE" and not cookie:
        raise InvalidRequest(f"{where}.cookie_name is required for APP_COOKIE")
    if kind != "APP_COOKIE":
        cookie = None  # only APP_COOKIE names the cookie; ignore it elsewhere as Octavia does
    return wire.SessionPersistence(type=kind, cookie_name=cookie)


def _healthmonitor(item: Any, where: str) -> wire.HealthMonitor:
    obj = _object(item, where)
    hm = wire.HealthMonitor(
        id=_id(obj, "id", where, default=None),
        type=_choice(obj, "type", where, c.DEVICE_HEALTH_MONITOR_TYPES, c.HEALTH_MONITOR_TYPES),
        delay=_int(obj, "delay", where, low=1, high=86400),
        timeout=_int(obj, "timeout", where, low=1, high=86400),
        max_retries=_int(obj, "max_retries", where, low=1, high=10),
        max_retries_down=_int(obj, "max_retries_down", where, low=1, high=10, default=3),
        http_method=_choice(obj, "http_method", where, c.HTTP_METHODS, c.HTTP_METHODS, default="GET"),
        url_path=_closed(obj, "url_path", where, closed.url_path, default="/"),
        expected_codes=_closed(obj, "expected_codes", where, closed.expected_codes, default="200"),
        http_version=_choice(obj, "http_version", where, HTTP_VERSIONS, HTTP_VERSIONS, default=None),
        domain_name=_closed(obj, "domain_name", where, closed.hostname, default=None),
        admin_state_up=_bool(obj, "admin_state_up", where, default=True),
    )
    if hm["timeout"] > hm["delay"]:
        raise InvalidRequest(f"{where}.timeout must not exceed {where}.delay")
    if hm["domain_name"] and hm["http_version"] != "1.1":
        raise InvalidRequest(f"{where}.domain_name needs http_version 1.1")
    return hm


# --- TLS ----------------------------------------------------------------------------------

def _listener_tls(obj: dict, where: str, protocol: str) -> wire.ListenerTLS | None:
    """Required on TERMINATED_HTTPS listeners, refused on every other."""
    terminates = protocol == c.PROTOCOL_TERMINATED_HTTPS
    if obj.get("tls") is None:
        if terminates:
            raise InvalidRequest(f"{where}.tls is required for TERMINATED_HTTPS")
        return None
    if not terminates:
        raise InvalidRequest(f"{where}.tls: only TERMINATED_HTTPS listeners terminate TLS")
    where = f"{where}.tls"
    tls = _object(obj["tls"], where)
    sni = _list(tls, "sni_certificates", where, default=[])
    if len(sni) > MAX_SNI_CERTIFICATES:
        raise InvalidRequest(f"{where}.sni_certificates: at most {MAX_SNI_CERTIFICATES}")
    mode = _choice(tls, "client_authentication", where, c.CLIENT_AUTH_MODES, c.CLIENT_AUTH_MODES,
                   default=c.CLIENT_AUTH_NONE)
    # Without client authentication a CA and CRL mean nothing: dropped, as Octavia ignores them.
    ca = _pem(tls, "client_ca", where, pem.certificate_text) if mode != c.CLIENT_AUTH_NONE else None
    if mode != c.CLIENT_AUTH_NONE and ca is None:
        raise InvalidRequest(f"{where}.client_ca is required for client_authentication {mode}")
    hsts = _int(tls, "hsts_max_age", where, low=0, high=2 ** 31 - 1, default=None)
    out = wire.ListenerTLS(
        default_certificate=_certificate(_get(tls, "default_certificate", where, _MISSING),
                                         f"{where}.default_certificate"),
        sni_certificates=[_certificate(item, f"{where}.sni_certificates[{i}]")
                          for i, item in enumerate(sni)],
        client_authentication=mode,
        client_ca=ca,
        client_crl=_crl(tls, "client_crl", where, ca) if ca else None,
        versions=_versions(tls, where),
        ciphers=_closed(tls, "ciphers", where, closed.tls_ciphers, default=None),
        alpn_protocols=_alpn(tls, where, c.DEFAULT_LISTENER_ALPN_PROTOCOLS),
        hsts_max_age=hsts,
        hsts_include_subdomains=_bool(tls, "hsts_include_subdomains", where, default=False),
        hsts_preload=_bool(tls, "hsts_preload", where, default=False),
    )
    _unique([cert["id"] for cert in [out["default_certificate"], *out["sni_certificates"]]],
            f"{where} certificate id")
    return out


def _pool_tls(item: Any, where: str) -> wire.PoolTLS:
    tls = _object(item, where)
    ca = _pem(tls, "ca", where, pem.certificate_text)
    return wire.PoolTLS(
        certificate=_nullable(tls, "certificate", where, _certificate),
        ca=ca,
        crl=_crl(tls, "crl", where, ca),
        versions=_versions(tls, where),
        ciphers=_closed(tls, "ciphers", where, closed.tls_ciphers, default=None),
        alpn_protocols=_alpn(tls, where, c.DEFAULT_POOL_ALPN_PROTOCOLS),
    )


def _certificate(item: Any, where: str) -> wire.TLSCertificate:
    obj = _object(item, where)
    chain = _list(obj, "intermediates", where, default=[])
    if len(chain) > MAX_INTERMEDIATES or not all(isinstance(x, str) for x in chain):
        raise InvalidRequest(f"{where}.intermediates must be at most {MAX_INTERMEDIATES} "
                             f"PEM strings")
    try:
        certificate, key, intermediates = pem.certificate_with_key(
            _str(obj, "certificate", where), _str(obj, "private_key", where), chain)
    except ValueError as exc:
        raise InvalidRequest(f"{where}: {exc}") from None
    return wire.TLSCertificate(id=_str(obj, "id", where, pattern=CERTIFICATE_ID_PATTERN),
                               certificate=certificate, private_key=key,
                               intermediates=intermediates)


def _pem(obj: dict, key: str, where: str, rule: Callable[[str, str], str]) -> str | None:
    value = _str(obj, key, where, default=None)
    if value is None:
        return None
    try:
        return rule(value, key)
    except ValueError as exc:
        raise InvalidRequest(f"{where}.{key}: {exc}") from None


def _crl(obj: dict, key: str, where: str, ca: str | None) -> str | None:
    """A CRL of ``ca`` (required with a CRL: HAProxy checks it against the CA)."""
    value = _str(obj, key, where, default=None)
    if value is None:
        return None
    if ca is None:
        raise InvalidRequest(f"{where}.{key} needs a certificate authority to go with it")
    try:
        return pem.crl_text(value, pem.certificates(ca))
    except ValueError as exc:
        raise InvalidRequest(f"{where}.{key}: {exc}") from None


def _versions(obj: dict, where: str) -> list[str]:
    versions = _enum_list(obj, "versions", where, c.TLS_VERSIONS, c.DEFAULT_TLS_VERSIONS)
    if versions == NO_SSLV3_ALONE:
        raise InvalidRequest(f"{where}.versions: SSLv3 alone is not supported by this device "
                             f"(its OpenSSL has no SSLv3); add a TLS version")
    return versions


def _alpn(obj: dict, where: str, default: tuple[str, ...]) -> list[str]:
    return _enum_list(obj, "alpn_protocols", where, c.ALPN_PROTOCOLS, default)


def _enum_list(obj: dict, key: str, where: str, allowed: tuple[str, ...],
               default: tuple[str, ...]) -> list[str]:
    """A non-empty list of distinct values of ``allowed``, in the order given."""
    values = _list(obj, key, where, default=list(default))
    if not values or not all(isinstance(v, str) and v in allowed for v in values):
        raise InvalidRequest(f"{where}.{key} must be a non-empty list of {', '.join(allowed)}")
    _unique(values, f"{where}.{key}")
    return values


# --- cross-object rules ---------------------------------------------------------------

def _check_references(lb: wire.LoadBalancer) -> None:
    """Ids unique, ports unique, default pools exist, belong to one listener, fit its protocol."""
    _unique([ln["id"] for ln in lb["listeners"]], "listeners id")
    _unique([p["id"] for p in lb["pools"]], "pools id")
    _unique([ln["protocol_port"] for ln in lb["listeners"]], "listeners protocol_port")
    version = 6 if ":" in lb["vip_address"] else 4
    for ln in lb["listeners"]:
        if any(ipaddress.ip_network(cidr).version != version for cidr in ln["allowed_cidrs"]):
            raise InvalidRequest(f"listener {ln['id']}: allowed_cidrs must be IPv{version} "
                                 f"networks like the VIP")
    pools = {p["id"]: p for p in lb["pools"]}
    used: set[str] = set()
    for ln in lb["listeners"]:
        pool_id = ln["default_pool_id"]
        if pool_id is None:
            continue
        if pool_id not in pools:
            raise InvalidRequest(f"listener {ln['id']}: default_pool_id {pool_id} is not in pools")
        if pool_id in used:
            raise InvalidRequest(f"pool {pool_id} is the default pool of more than one listener")
        used.add(pool_id)
        allowed = c.VALID_LISTENER_POOL_PROTOCOLS[ln["protocol"]]
        if pools[pool_id]["protocol"] not in allowed:
            raise InvalidRequest(f"listener {ln['id']} ({ln['protocol']}) cannot use pool "
                                 f"{pool_id} ({pools[pool_id]['protocol']})")
    _check_policies(lb, pools)
    for pool in lb["pools"]:
        sp = pool["session_persistence"]
        if sp and sp["type"] != "SOURCE_IP" and pool_mode(lb, pool) != "http":
            raise InvalidRequest(f"pool {pool['id']}: {sp['type']} persistence needs an HTTP pool")


def _check_policies(lb: wire.LoadBalancer, pools: dict[str, wire.Pool]) -> None:
    """Policy and rule ids unique (they name ACLs); a redirect pool is a pool of this load
    balancer that the listener's protocol can forward to."""
    policies = [(ln, p) for ln in lb["listeners"] for p in ln.get("l7policies", [])]
    _unique([p["id"] for _, p in policies], "l7policies id")
    _unique([r["id"] for _, p in policies for r in p["rules"]], "l7policies rules id")
    for ln, policy in policies:
        pool_id = policy["redirect_pool_id"]
        if pool_id is None:
            continue
        if pool_id not in pools:
            raise InvalidRequest(f"l7policy {policy['id']}: redirect_pool_id {pool_id} is not "
                                 f"in pools")
        if pools[pool_id]["protocol"] not in c.VALID_LISTENER_POOL_PROTOCOLS[ln["protocol"]]:
            raise InvalidRequest(f"l7policy {policy['id']}: listener {ln['id']} "
                                 f"({ln['protocol']}) cannot use pool {pool_id} "
                                 f"({pools[pool_id]['protocol']})")


def _unique(values: list, what: str) -> None:
    seen = set()
    for value in values:
        if value in seen:
            raise InvalidRequest(f"duplicate {what}: {value}")
        seen.add(value)


# --- fields ------------------------------------------------------------------------------

def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where} must be a JSON object")
    return value


def _get(obj: dict, key: str, where: str, default: Any) -> Any:
    """The value of ``key``; a missing or null key gives ``default`` (an error if required)."""
    value = obj.get(key)
    if value is None:
        if default is _MISSING:
            raise InvalidRequest(f"{where}.{key} is required")
        return default
    return value


def _nullable(obj: dict, key: str, where: str, parse: Callable[[Any, str], T]) -> T | None:
    value = obj.get(key)
    return None if value is None else parse(value, f"{where}.{key}")


def _list(obj: dict, key: str, where: str, default: Any = _MISSING) -> list:
    value = _get(obj, key, where, default)
    if not isinstance(value, list):
        raise InvalidRequest(f"{where}.{key} must be a list")
    return value


def _str(obj: dict, key: str, where: str, default: Any = _MISSING,
         pattern: re.Pattern | None = None) -> Any:
    value = _get(obj, key, where, default)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}.{key} must be a string")
    if pattern is not None and not pattern.fullmatch(value):
        raise InvalidRequest(f"{where}.{key} must match {pattern.pattern}")
    return value


def _id(obj: dict, key: str, where: str, default: Any = _MISSING) -> Any:
    return _str(obj, key, where, default, pattern=ID_PATTERN)


def _int(obj: dict, key: str, where: str, low: int | None = None, high: int | None = None,
         default: Any = _MISSING) -> Any:
    value = _get(obj, key, where, default)
    if value is None:
        return None
    # bool is an int in Python but never a valid count or port here.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{where}.{key} must be an integer")
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidRequest(f"{where}.{key} {value} is out of range "
                             f"[{'' if low is None else low}, {'' if high is None else high}]")
    return value


def _timeout(obj: dict, key: str, where: str, default: int) -> int:
    return _int(obj, key, where, low=0, high=c.MAX_TIMEOUT, default=default)


def _bool(obj: dict, key: str, where: str, default: Any = _MISSING) -> bool:
    value = _get(obj, key, where, default)
    if not isinstance(value, bool):
        raise InvalidRequest(f"{where}.{key} must be true or false")
    return value


def _ip(obj: dict, key: str, where: str, default: Any = _MISSING) -> Any:
    # Canonical, so that the config text (and "unchanged" detection) is too.
    return _closed(obj, key, where, closed.ip_address, default)


def _closed(obj: dict, key: str, where: str, rule: Callable[[str], str],
            default: Any = _MISSING) -> Any:
    """The value of ``key`` in the closed form ``rule`` (one of ``lbaas.validate``'s)."""
    value = _str(obj, key, where, default)
    if value is None:
        return None
    try:
        return rule(value)
    except ValueError as exc:
        raise InvalidRequest(f"{where}.{key} {exc}") from None


def _choice(obj: dict, key: str, where: str, supported: tuple, known: tuple,
            default: Any = _MISSING) -> Any:
    value = _str(obj, key, where, default)
    if value is None and default is None:
        return None
    if value not in supported:
        reason = "is not supported by this device" if value in known else "is unknown"
        raise InvalidRequest(f"{where}.{key} {value!r} {reason} "
                             f"(supported: {', '.join(supported)})")
    return value
