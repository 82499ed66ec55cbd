"""Validation of the desired state of one load balancer, as the agent sends it.

``validate(document)`` returns a normalised copy (unknown keys dropped, optional keys filled
with their defaults) or raises ``InvalidRequest`` naming the first problem. Everything that
ends up in haproxy.cfg is checked here against a strict pattern, because the template
interpolates it verbatim: an id, a path or a cookie name must never be able to start a new
configuration line or keyword.

Required keys: load balancer ``id``, ``revision``, ``vip_address``, ``listeners``, ``pools``;
listener ``id``, ``protocol``, ``protocol_port``; pool ``id``, ``protocol``, ``lb_algorithm``;
member ``id``, ``address``, ``protocol_port``; health monitor ``type``, ``delay``,
``timeout``, ``max_retries``; session persistence ``type``. Every other key has the Octavia
default.
"""

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from lbaas import constants as c
from lbaas.device.errors import InvalidRequest

# Ids become directory, backend and server names; uuids fit easily.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# A URL path for the HTTP check: visible ASCII without spaces (the check line is space
# separated) nor the characters haproxy.cfg gives a meaning to (quotes, escapes, comments).
URL_PATH_PATTERN = re.compile(r"^/[\x21-\x7e]{0,1023}$")
_URL_PATH_FORBIDDEN = "\"'#\\"
# Cookie names: a conservative subset of RFC 6265 tokens that is also inert in haproxy.cfg.
COOKIE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# "200", "200-204" or "200,202" (Octavia's expected_codes forms).
EXPECTED_CODES_PATTERN = re.compile(r"^(\d{3}(-\d{3})?)(,\d{3}(-\d{3})?)*$")

_MISSING = object()


def validate(document: Any) -> dict:
    """Check ``document`` against the desired-state schema; return the normalised copy.

    Raises ``InvalidRequest`` with a message naming the offending field.
    """
    lb = _object(document, "body")
    out = {
        "id": _id(lb, "id", "loadbalancer"),
        "project_id": _str(lb, "project_id", "loadbalancer", default=""),
        "revision": _int(lb, "revision", "loadbalancer", low=0),
        "name": _str(lb, "name", "loadbalancer", default=""),
        "admin_state_up": _bool(lb, "admin_state_up", "loadbalancer", default=True),
        "vip_address": _ip(lb, "vip_address", "loadbalancer"),
    }
    out["listeners"] = [_listener(item, f"listeners[{i}]")
                        for i, item in enumerate(_list(lb, "listeners", "loadbalancer"))]
    out["pools"] = [_pool(item, f"pools[{i}]")
                    for i, item in enumerate(_list(lb, "pools", "loadbalancer"))]
    _check_references(out)
    return out


def pool_mode(desired: dict, pool: dict) -> str:
    """The HAProxy ``mode`` (``http`` or ``tcp``) the backend of ``pool`` runs in.

    HTTP pools speak HTTP; PROXY pools follow the listener that uses them (a PROXY header can
    precede either); everything else is plain TCP.
    """
    if pool["protocol"] == c.PROTOCOL_HTTP:
        return "http"
    if pool["protocol"] in (c.PROTOCOL_PROXY, c.PROTOCOL_PROXYV2):
        users = [ln for ln in desired["listeners"] if ln["default_pool_id"] == pool["id"]]
        if any(ln["protocol"] == c.PROTOCOL_HTTP for ln in users):
            return "http"
    return "tcp"


# --- objects ---------------------------------------------------------------------------

def _listener(item: Any, where: str) -> dict:
    obj = _object(item, where)
    return {
        "id": _id(obj, "id", where),
        "name": _str(obj, "name", where, default=""),
        "protocol": _choice(obj, "protocol", where, c.DEVICE_LISTENER_PROTOCOLS,
                            c.LISTENER_PROTOCOLS),
        "protocol_port": _int(obj, "protocol_port", where, low=1, high=65535),
        "connection_limit": _int(obj, "connection_limit", where, low=-1, default=-1),
        "admin_state_up": _bool(obj, "admin_state_up", where, default=True),
        "timeout_client_data": _timeout(obj, "timeout_client_data", where,
                                        c.DEFAULT_TIMEOUT_CLIENT_DATA),
        "timeout_member_connect": _timeout(obj, "timeout_member_connect", where,
                                           c.DEFAULT_TIMEOUT_MEMBER_CONNECT),
        "timeout_member_data": _timeout(obj, "timeout_member_data", where,
                                        c.DEFAULT_TIMEOUT_MEMBER_DATA),
        "timeout_tcp_inspect": _timeout(obj, "timeout_tcp_inspect", where,
                                        c.DEFAULT_TIMEOUT_TCP_INSPECT),
        "default_pool_id": _id(obj, "default_pool_id", where, default=None),
    }


def _pool(item: Any, where: str) -> dict:
    obj = _object(item, where)
    pool = {
        "id": _id(obj, "id", where),
        "name": _str(obj, "name", where, default=""),
        "protocol": _choice(obj, "protocol", where, c.DEVICE_POOL_PROTOCOLS, c.POOL_PROTOCOLS),
        "lb_algorithm": _choice(obj, "lb_algorithm", where, c.DEVICE_LB_ALGORITHMS,
                                c.LB_ALGORITHMS),
        "admin_state_up": _bool(obj, "admin_state_up", where, default=True),
        "session_persistence": _nullable(obj, "session_persistence", where, _persistence),
        "members": [_member(m, f"{where}.members[{i}]")
                    for i, m in enumerate(_list(obj, "members", where, default=[]))],
        "healthmonitor": _nullable(obj, "healthmonitor", where, _healthmonitor),
    }
    _unique([m["id"] for m in pool["members"]], f"{where}.members id")
    return pool


def _member(item: Any, where: str) -> dict:
    obj = _object(item, where)
    return {
        "id": _id(obj, "id", where),
        "name": _str(obj, "name", where, default=""),
        "address": _ip(obj, "address", where),
        "protocol_port": _int(obj, "protocol_port", where, low=1, high=65535),
        "weight": _int(obj, "weight", where, low=0, high=256, default=1),
        "backup": _bool(obj, "backup", where, default=False),
        "admin_state_up": _bool(obj, "admin_state_up", where, default=True),
        "monitor_address": _ip(obj, "monitor_address", where, default=None),
        "monitor_port": _int(obj, "monitor_port", where, low=1, high=65535, default=None),
    }


def _persistence(item: Any, where: str) -> dict:
    obj = _object(item, where)
    kind = _choice(obj, "type", where, c.DEVICE_SESSION_PERSISTENCE_TYPES,
                   c.SESSION_PERSISTENCE_TYPES)
    cookie = _str(obj, "cookie_name", where, default=None)
    if kind == "APP_COOKIE":
        if not cookie:
            raise InvalidRequest(f"{where}.cookie_name is required for APP_COOKIE")
        if not COOKIE_NAME_PATTERN.match(cookie):
            raise InvalidRequest(f"{where}.cookie_name must match {COOKIE_NAME_PATTERN.pattern}")
    else:
        cookie = None  # only APP_COOKIE names the cookie; ignore it elsewhere as Octavia does
    return {"type": kind, "cookie_name": cookie}


def _url_path(obj: dict, where: str) -> str:
    path = _str(obj, "url_path", where, default="/", pattern=URL_PATH_PATTERN)
    if any(ch in path for ch in _URL_PATH_FORBIDDEN):
        raise InvalidRequest(f"{where}.url_path must not contain any of {_URL_PATH_FORBIDDEN}")
    return path


def _healthmonitor(item: Any, where: str) -> dict:
    obj = _object(item, where)
    hm = {
        "id": _id(obj, "id", where, default=None),
        "type": _choice(obj, "type", where, c.DEVICE_HEALTH_MONITOR_TYPES,
                        c.HEALTH_MONITOR_TYPES),
        "delay": _int(obj, "delay", where, low=1, high=86400),
        "timeout": _int(obj, "timeout", where, low=1, high=86400),
        "max_retries": _int(obj, "max_retries", where, low=1, high=10),
        "max_retries_down": _int(obj, "max_retries_down", where, low=1, high=10, default=3),
        "http_method": _choice(obj, "http_method", where, c.HTTP_METHODS, c.HTTP_METHODS,
                               default="GET"),
        "url_path": _url_path(obj, where),
        "expected_codes": _str(obj, "expected_codes", where, default="200",
                               pattern=EXPECTED_CODES_PATTERN),
        "admin_state_up": _bool(obj, "admin_state_up", where, default=True),
    }
    if hm["timeout"] > hm["delay"]:
        raise InvalidRequest(f"{where}.timeout must not exceed {where}.delay")
    _check_code_ranges(hm["expected_codes"], f"{where}.expected_codes")
    return hm


# --- cross-object rules ---------------------------------------------------------------

def _check_references(lb: dict) -> None:
    """Ids unique, ports unique, default pools exist, belong to one listener, fit its protocol."""
    _unique([ln["id"] for ln in lb["listeners"]], "listeners id")
    _unique([p["id"] for p in lb["pools"]], "pools id")
    _unique([ln["protocol_port"] for ln in lb["listeners"]], "listeners protocol_port")
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
    for pool in lb["pools"]:
        sp = pool["session_persistence"]
        if sp and sp["type"] != "SOURCE_IP" and pool_mode(lb, pool) != "http":
            raise InvalidRequest(f"pool {pool['id']}: {sp['type']} persistence needs an HTTP pool")


def _check_code_ranges(codes: str, where: str) -> None:
    for part in codes.split(","):
        low, _, high = part.partition("-")
        if not 100 <= int(low) <= 599 or (high and not int(low) <= int(high) <= 599):
            raise InvalidRequest(f"{where}: {part!r} is not a status code or range of them")


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


def _nullable(obj: dict, key: str, where: str, parse: Callable[[Any, str], dict]) -> dict | None:
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
    if pattern is not None and not pattern.match(value):
        raise InvalidRequest(f"{where}.{key} {value!r} must match {pattern.pattern}")
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
    value = _str(obj, key, where, default)
    if value is None:
        return None
    try:
        # Normalised so that the config text (and "unchanged" detection) is canonical.
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidRequest(f"{where}.{key} {value!r} is not an IP address") from None


def _choice(obj: dict, key: str, where: str, supported: tuple, known: tuple,
            default: Any = _MISSING) -> str:
    value = _str(obj, key, where, default)
    if value not in supported:
        reason = "is not supported by this device" if value in known else "is unknown"
        raise InvalidRequest(f"{where}.{key} {value!r} {reason} "
                             f"(supported: {', '.join(supported)})")
    return value
