"""The desired state of one load balancer as an AS3 application: a pure translation.

Contract: ``application(desired)`` returns the AS3 ``Application`` object that makes a
BIG-IP hold exactly that load balancer, or raises ``Unexpressible`` naming the first thing
the desired state asks for that this translation cannot express (it is never dropped
silently).  The same desired state always gives the same document, so declaring it twice
is AS3's "no change".  Nothing here talks to a device (``lbaas.agent.drivers.bigip`` does).

Names (AS3 names are letters, digits and ``_``, starting with a letter; BIG-IP partition
names are short, so every name here stays within ``MAX_NAME``):

* tenant (a BIG-IP partition): ``<environment>_<project>`` where the environment is used as
  it is (``environment_tag`` insists on a letter then letters and digits, so it never holds
  the ``_`` separator and one environment's tenants never start with another's prefix) and
  the project is escaped injectively by ``escape`` (letters and digits but ``x`` stay, every
  other byte becomes ``x`` and two hex digits).  A project whose escape is too long is named
  ``<environment>__<digest>`` instead (an escape never holds ``_``, so the two forms never
  meet).
* application: ``lb_<id>`` with the load balancer's UUID in 32 hex digits; ``lb_id_of``
  reverses it.  Its ``remark`` holds ``lb <id> rev <revision>`` so the revision a device
  holds can be read back (``held``).
* inside the application: ``l_<listener hex>`` (a virtual server per listener),
  ``p_<pool hex>`` (pool), ``m_<pool hex>`` (the pool's monitor: one per pool),
  ``s_<pool hex>`` (an application-cookie persistence profile).

What is expressed, and how:

* listeners: HTTP -> ``Service_HTTP``; TCP and HTTPS (passed through, never terminated) ->
  ``Service_TCP``; ``connection_limit`` -> ``maxConnections`` (-1, unlimited, is 0);
  ``admin_state_up`` (of the listener and of the load balancer) -> ``enable``; inserting
  X-Forwarded-For (HTTP listeners) -> an ``HTTP_Profile`` ``h_<listener hex>`` with
  ``xForwardedFor``.
* pools: ``lb_algorithm`` ROUND_ROBIN / LEAST_CONNECTIONS -> ``loadBalancingMode``
  ``ratio-member`` / ``ratio-least-connections-member`` (the modes that honour weights); session
  persistence on the virtual servers whose default pool it is (SOURCE_IP ->
  ``source-address``, HTTP_COOKIE -> ``cookie`` insert, APP_COOKIE -> a ``Persist`` that
  hashes the named cookie; AS3 persists by default, so "none" is an explicit ``[]``).
  A pool that is down (``admin_state_up`` false) has every member ``offline``.
* members: ``weight`` -> ``ratio`` (1-100: weights of a pool above 100 are scaled down in
  proportion; weight 0, "no new connections", -> ``adminState``
  ``disable``); ``admin_state_up`` false -> ``offline``; ``backup`` -> ``priorityGroup`` 0
  against 1 for the others, with ``minimumMembersActive`` 1 so the backups serve only when no
  other member is up.
* monitors: HTTP/HTTPS (method, path, Host for HTTP/1.1, expected codes as a ``receive``
  pattern), TCP, PING (``icmp``); ``interval`` = delay; ``timeout`` = delay *
  max_retries_down + timeout (BIG-IP marks a member down after ``timeout`` seconds without
  an answer; at most 900, the interval at most 3600, as AS3 allows).  A member goes up on its
  first good answer: ``max_retries`` has no counterpart.

Refused (``Unexpressible``): other protocols (TERMINATED_HTTPS, UDP, SCTP, PROXY pools), TLS
settings, L7 policies, allowed CIDRs, non-default listener timeouts, SOURCE_IP(_PORT)
algorithms, inserted headers other than X-Forwarded-For, member monitor address/port, other
monitor types, monitor timings beyond AS3's limits, cookie persistence on a TCP virtual
server.  ``CAPABILITIES`` is the part the API can check first.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any, Final

from lbaas import constants as c
from lbaas import validate
from lbaas import wire

# The AS3 release this translation is written for, and the schemaVersion it declares.
SCHEMA_VERSION: Final = "3.20.0"
MAX_NAME: Final = 48
MAX_ENVIRONMENT: Final = 16
_ENVIRONMENT = re.compile(r"[A-Za-z][A-Za-z0-9]*", re.ASCII)
_APP = re.compile(r"lb_([0-9a-f]{32})", re.ASCII)
_REMARK = re.compile(r"lb ([0-9a-f-]{36}) rev ([0-9]{1,18})", re.ASCII)
_KEPT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWYZabcdefghijklmnopqrstuvwyz0123456789")

LISTENER_CLASSES: Final = {c.PROTOCOL_HTTP: "Service_HTTP", c.PROTOCOL_TCP: "Service_TCP",
                           c.PROTOCOL_HTTPS: "Service_TCP"}
POOL_PROTOCOLS: Final = (c.PROTOCOL_HTTP, c.PROTOCOL_HTTPS, c.PROTOCOL_TCP)
# The ratio modes: plain round-robin and least-connections ignore a member's ratio (weight).
LB_MODES: Final = {"ROUND_ROBIN": "ratio-member", "LEAST_CONNECTIONS": "ratio-least-connections-member"}
MAX_RATIO: Final = 100
# AS3's Monitor limits, seconds.
MAX_MONITOR_INTERVAL: Final = 3600
MAX_MONITOR_TIMEOUT: Final = 900
PERSISTENCE: Final = {"SOURCE_IP": "source-address", "HTTP_COOKIE": "cookie"}
MONITOR_TYPES: Final = {"HTTP": "http", "HTTPS": "https", "TCP": "tcp", "PING": "icmp"}
# What the API may let through to a bigip environment (lbaas.controller.agent_provider).
CAPABILITIES: Final = {
    "protocols": sorted(set(LISTENER_CLASSES) | set(POOL_PROTOCOLS)),
    "listener_protocols": list(LISTENER_CLASSES),
    "pool_protocols": list(POOL_PROTOCOLS),
    "lb_algorithms": list(LB_MODES),
    "session_persistence": list(c.SESSION_PERSISTENCE_TYPES),
    "health_monitors": list(MONITOR_TYPES),
    "kinds": ["loadbalancer", "listener", "pool", "member", "healthmonitor"],  # no L7 policies
}
_DEFAULT_TIMEOUTS: Final = {"timeout_client_data": c.DEFAULT_TIMEOUT_CLIENT_DATA,
                            "timeout_member_connect": c.DEFAULT_TIMEOUT_MEMBER_CONNECT,
                            "timeout_member_data": c.DEFAULT_TIMEOUT_MEMBER_DATA,
                            "timeout_tcp_inspect": c.DEFAULT_TIMEOUT_TCP_INSPECT}


class Unexpressible(ValueError):
    """The desired state asks for something an AS3 declaration here cannot say."""


# --- names ---------------------------------------------------------------------------

def environment_tag(environment: str) -> str:
    """The environment as the first part of tenant names; ValueError unless it is a letter
    then letters and digits, at most ``MAX_ENVIRONMENT`` long."""
    if not _ENVIRONMENT.fullmatch(environment) or len(environment) > MAX_ENVIRONMENT:
        raise ValueError(f"the bigip driver prefixes AS3 tenant names with the environment: it must "
                         f"be a letter then letters and digits, at most {MAX_ENVIRONMENT} "
                         f"(not {environment[:40]!r})")
    return environment


def escape(text: str) -> str:
    """``text`` in letters and digits, injectively: every byte but the letters and digits
    other than x/X becomes ``x`` and two hex digits."""
    return "".join(chr(b) if chr(b) in _KEPT else f"x{b:02x}" for b in text.encode())


def tenant_name(environment: str, project_id: str) -> str:
    """The tenant holding ``project_id``'s load balancers of ``environment``."""
    name = f"{environment_tag(environment)}_{escape(project_id)}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(project_id.encode()).hexdigest()
    return f"{environment}__{digest[:MAX_NAME - len(environment) - 2]}"


def owns_tenant(environment: str, tenant: str) -> bool:
    """Whether ``tenant`` is one of ``environment``'s (never another environment's)."""
    head, sep, _ = tenant.partition("_")
    return bool(sep) and head == environment


def _hex(object_id: str, what: str) -> str:
    """The 32 hex digits of a UUID; Unexpressible for anything else."""
    try:
        return uuid.UUID(object_id).hex
    except (ValueError, TypeError, AttributeError):
        raise Unexpressible(f"{what} id {str(object_id)[:40]!r} is not a UUID") from None


def app_name(loadbalancer_id: str) -> str:
    return "lb_" + _hex(loadbalancer_id, "load balancer")


def lb_id_of(name: str) -> str | None:
    """The load balancer id an application name stands for; None if it is none of ours."""
    match = _APP.fullmatch(name)
    return str(uuid.UUID(match.group(1))) if match else None


def remark(loadbalancer_id: str, revision: int) -> str:
    return f"lb {uuid.UUID(loadbalancer_id)} rev {revision}"


def held(name: str, application: Any) -> tuple[str, int] | None:
    """(id, revision) of an application this translation made, read from its name and
    remark; None for anything else."""
    lb_id = lb_id_of(name)
    if lb_id is None or not isinstance(application, dict) or application.get("class") != "Application":
        return None
    match = _REMARK.fullmatch(str(application.get("remark", "")))
    if match is None or match.group(1) != lb_id:
        return None
    return lb_id, int(match.group(2))


def applications(tenant: Any) -> dict[str, dict]:
    """The applications of a tenant's declaration, by name."""
    if not isinstance(tenant, dict):
        return {}
    return {name: value for name, value in tenant.items()
            if isinstance(value, dict) and value.get("class") == "Application"}


# --- the application -------------------------------------------------------------------

def application(desired: wire.Present) -> dict[str, Any]:
    """The AS3 Application of one load balancer. Raises ``Unexpressible``."""
    app: dict[str, Any] = {"class": "Application", "template": "generic",
                           "remark": remark(desired["id"], desired["revision"])}
    vip = _checked(validate.ip_address, desired["vip_address"], "vip_address")
    pools = {pool["id"]: pool for pool in desired["pools"]}
    for listener in desired["listeners"]:
        key = _hex(listener["id"], "listener")
        app["l_" + key] = _service(listener, vip, pools, desired["admin_state_up"])
        if (listener.get("insert_headers") or {}).get("X-Forwarded-For") == "true":
            app["h_" + key] = {"class": "HTTP_Profile", "xForwardedFor": True}
            app["l_" + key]["profileHTTP"] = {"use": "h_" + key}
    for pool in desired["pools"]:
        app.update(_pool_objects(pool))
    return app


def _service(listener: wire.Listener, vip: str, pools: dict[str, wire.Pool],
             lb_up: bool) -> dict[str, Any]:
    protocol = listener["protocol"]
    where = f"listener {listener['id']}"
    if protocol not in LISTENER_CLASSES:
        raise Unexpressible(f"{where}: protocol {protocol} (supported: {', '.join(LISTENER_CLASSES)})")
    _refuse_extras(listener, where)
    limit = listener["connection_limit"]
    service: dict[str, Any] = {
        "class": LISTENER_CLASSES[protocol], "virtualAddresses": [vip],
        "virtualPort": listener["protocol_port"],
        "enable": bool(lb_up and listener["admin_state_up"]),
        "maxConnections": 0 if limit is None or limit < 0 else limit,
        "persistenceMethods": [],
    }
    pool_id = listener["default_pool_id"]
    if pool_id is not None:
        if pool_id not in pools:
            raise Unexpressible(f"{where}: default pool {pool_id} is not a pool of this load balancer")
        service["pool"] = "p_" + _hex(pool_id, "pool")
        service["persistenceMethods"] = _persistence(pools[pool_id], protocol, where)
    return service


def _refuse_extras(listener: wire.Listener, where: str) -> None:
    """Unexpressible for what a listener asks beyond a plain virtual server."""
    if listener.get("tls"):
        raise Unexpressible(f"{where}: TLS termination is not supported by the bigip driver")
    if listener.get("l7policies"):
        raise Unexpressible(f"{where}: L7 policies are not supported by the bigip driver")
    inserted = sorted(h for h, flag in (listener.get("insert_headers") or {}).items() if flag == "true")
    if set(inserted) - {"X-Forwarded-For"}:
        raise Unexpressible(f"{where}: insert_headers {', '.join(inserted)} (the bigip driver "
                            f"inserts X-Forwarded-For only)")
    if listener.get("allowed_cidrs"):
        raise Unexpressible(f"{where}: allowed_cidrs are not supported by the bigip driver")
    for key, default in _DEFAULT_TIMEOUTS.items():
        value = listener.get(key)
        if value is not None and value != default:
            raise Unexpressible(f"{where}: {key} {value} (the bigip driver keeps the "
                                f"device's timeouts; only the default {default} is accepted)")


def _persistence(pool: wire.Pool, protocol: str, where: str) -> list[Any]:
    persistence = pool["session_persistence"]
    if not persistence:
        return []
    kind = persistence["type"]
    if kind in ("HTTP_COOKIE", "APP_COOKIE") and protocol != c.PROTOCOL_HTTP:
        raise Unexpressible(f"{where}: {kind} persistence needs an HTTP listener on the bigip driver")
    if kind == "APP_COOKIE":
        return [{"use": "s_" + _hex(pool["id"], "pool")}]
    if kind not in PERSISTENCE:
        raise Unexpressible(f"pool {pool['id']}: session persistence {kind}")
    return [PERSISTENCE[kind]]


def _pool_objects(pool: wire.Pool) -> dict[str, Any]:
    """The Pool, its Monitor and its Persist, by name."""
    where = f"pool {pool['id']}"
    key = _hex(pool["id"], "pool")
    if pool["protocol"] not in POOL_PROTOCOLS:
        raise Unexpressible(f"{where}: protocol {pool['protocol']} (supported: {', '.join(POOL_PROTOCOLS)})")
    if pool.get("tls"):
        raise Unexpressible(f"{where}: TLS towards members is not supported by the bigip driver")
    if pool["lb_algorithm"] not in LB_MODES:
        raise Unexpressible(f"{where}: lb_algorithm {pool['lb_algorithm']} (supported: {', '.join(LB_MODES)})")
    scale = max([MAX_RATIO, *(member["weight"] for member in pool["members"])]) / MAX_RATIO
    members = [_member(member, pool["admin_state_up"], scale, where) for member in pool["members"]]
    body: dict[str, Any] = {"class": "Pool", "loadBalancingMode": LB_MODES[pool["lb_algorithm"]],
                            "members": members, "monitors": []}
    if any(member["backup"] for member in pool["members"]):
        body["minimumMembersActive"] = 1
    objects: dict[str, Any] = {"p_" + key: body}
    monitor = pool["healthmonitor"]
    if monitor is not None and monitor["admin_state_up"]:
        objects["m_" + key] = _monitor(monitor, where)
        body["monitors"] = [{"use": "m_" + key}]
    persistence = pool["session_persistence"]
    if persistence and persistence["type"] == "APP_COOKIE":
        name = _checked(validate.cookie_name, persistence.get("cookie_name") or "", f"{where} cookie_name")
        objects["s_" + key] = {"class": "Persist", "persistenceMethod": "cookie",
                               "cookieMethod": "hash", "cookieName": name}
    return objects


def _member(member: wire.Member, pool_up: bool, scale: float, where: str) -> dict[str, Any]:
    if member.get("monitor_address") or member.get("monitor_port"):
        raise Unexpressible(f"{where} member {member['id']}: monitor_address/monitor_port are "
                            f"not supported by the bigip driver")
    address = _checked(validate.ip_address, member["address"], f"{where} member address")
    weight = member["weight"]
    state = "enable"
    if not (pool_up and member["admin_state_up"]):
        state = "offline"
    elif weight == 0:
        state = "disable"  # Octavia's weight 0: established and persistent connections only
    return {"servicePort": member["protocol_port"], "serverAddresses": [address],
            "ratio": max(round(weight / scale), 1), "adminState": state,
            "priorityGroup": 0 if member["backup"] else 1,
            "remark": "member " + _hex(member["id"], "member")}


def _monitor(monitor: wire.HealthMonitor, where: str) -> dict[str, Any]:
    kind = monitor["type"]
    if kind not in MONITOR_TYPES:
        raise Unexpressible(f"{where}: health monitor type {kind} (supported: {', '.join(MONITOR_TYPES)})")
    interval = monitor["delay"]
    timeout = interval * monitor["max_retries_down"] + monitor["timeout"]
    if interval > MAX_MONITOR_INTERVAL or timeout > MAX_MONITOR_TIMEOUT:
        raise Unexpressible(f"{where}: a BIG-IP monitor checks at most every {MAX_MONITOR_INTERVAL}s and "
                            f"waits at most {MAX_MONITOR_TIMEOUT}s (delay * max_retries_down + timeout), "
                            f"not {interval}s and {timeout}s")
    body: dict[str, Any] = {"class": "Monitor", "monitorType": MONITOR_TYPES[kind],
                            "interval": interval, "timeout": timeout}
    if kind in ("HTTP", "HTTPS"):
        body["send"] = _send(monitor, where)
        body["receive"] = _receive(monitor.get("expected_codes") or "200", where)
    return body


def _send(monitor: wire.HealthMonitor, where: str) -> str:
    """The request an HTTP(S) monitor sends, from closed forms only."""
    method = monitor.get("http_method") or "GET"
    if method not in c.HTTP_METHODS:
        raise Unexpressible(f"{where}: health monitor http_method {method[:20]!r}")
    path = _checked(validate.url_path, monitor.get("url_path") or "/", f"{where} url_path")
    if (monitor.get("http_version") or "1.0") == "1.0":
        return f"{method} {path} HTTP/1.0\r\n\r\n"
    host = monitor.get("domain_name")
    host = _checked(validate.hostname, host, f"{where} domain_name") if host else "localhost"
    return f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"


def _receive(expected_codes: str, where: str) -> str:
    """A pattern matching the status line of any expected code."""
    codes = _checked(validate.expected_codes, expected_codes, f"{where} expected_codes")
    wanted: list[str] = []
    for part in codes.split(","):
        low, _, high = part.partition("-")
        wanted.extend(str(code) for code in range(int(low), int(high or low) + 1)
                      if str(code) not in wanted)
    return f"^HTTP/1\\.[01] ({'|'.join(wanted)})"


def _checked(rule: Any, value: Any, what: str) -> Any:
    """``rule(value)`` with its ValueError as Unexpressible naming ``what``."""
    try:
        return rule(value)
    except (ValueError, TypeError) as exc:
        raise Unexpressible(f"{what} {exc}") from None


# --- declarations -------------------------------------------------------------------------

def declaration(tenants: dict[str, dict[str, Any]], declaration_id: str) -> dict[str, Any]:
    """An ADC declaration of exactly these tenants (each replaces what the device holds of
    it; tenants not named stay as they are)."""
    return {"class": "ADC", "schemaVersion": SCHEMA_VERSION, "id": declaration_id, **tenants}


def tenant(applications_by_name: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A tenant of these applications; with none, declaring it removes the tenant."""
    return {"class": "Tenant", **applications_by_name}
