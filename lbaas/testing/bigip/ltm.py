"""What the LTM module of a BIG-IP holds once AS3 declared its tenants, and how
iControl REST shows it (``/mgmt/tm/ltm/virtual``, ``/mgmt/tm/ltm/pool``, ``/stats``).

Contract:

- ``virtuals(tenants)`` and ``pools(tenants)`` derive the LTM objects AS3 creates from
  declared tenants: one virtual per service address (the first named after the service,
  the next ``<name>-1-``, ...), plus ``<name>-Redirect-`` on port 80 for a Service_HTTPS
  unless ``redirect80`` is false; pools with members named ``address:port``
  (``address.port`` for IPv6) in the tenant's partition.
- Availability is derived the way TMOS reports it: a member without any monitor is
  ``unknown``; a monitored one is ``Health.default`` unless a knob set its state;
  ``adminState: offline`` forces ``offline``.  A pool is available when a member is,
  offline when all are, else unknown; a virtual follows its pool (no pool: unknown).
- ``*_item`` and ``*_stats`` render iControl's documented shapes: items carry ``name``,
  ``partition``, ``subPath``, ``fullPath``; stats are ``entries`` keyed by a self link with
  ``nestedStats.entries`` of ``{"value": n}`` counters and ``{"description": s}`` strings.
  One object's stats are keyed ``<object>/<name>/stats`` (the name repeated, as TMOS 12+
  does); a collection's stats (``/virtual/stats``, ``/pool/stats``, ``.../members/stats``)
  key each object ``<object>/stats``.  Clients must read ``tmName``/``nestedStats`` rather
  than parse the keys.  Counters are synthetic: zero unless set.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from lbaas.testing.bigip.schema import applications, find_object

SERVICE_PORTS: Final[Mapping[str, int | None]] = {
    "Service_HTTP": 80, "Service_HTTPS": 443, "Service_TCP": None, "Service_UDP": None,
    "Service_L4": None}
AVAILABILITY: Final = ("available", "offline", "unknown")
VIRTUAL_REASONS: Final[Mapping[str, str]] = {
    "available": "The virtual server is available",
    "offline": "The children pool member(s) are down",
    "unknown": "The children pool member(s) either don't have service checking enabled, "
               "or service check results are not available yet",
    "disabled": "The virtual server is disabled"}
POOL_REASONS: Final[Mapping[str, str]] = {
    "available": "The pool is available",
    "offline": "The children pool member(s) are down",
    "unknown": VIRTUAL_REASONS["unknown"],
    "disabled": "The pool is disabled"}
MEMBER_REASONS: Final[Mapping[str, str]] = {
    "available": "Pool member is available",
    "offline": "Pool member has been marked down by a monitor",
    "unknown": "Pool member does not have service checking enabled",
    "disabled": "Pool member is disabled"}


@dataclass(frozen=True)
class Virtual:
    tenant: str
    application: str
    name: str
    address: str  # with %route-domain when declared, without mask
    port: int
    protocol: str  # tcp, udp or any
    pool: str | None  # full path
    enabled: bool
    connection_limit: int
    rules: tuple[str, ...]
    persist: tuple[str, ...]
    service_class: str

    @property
    def full_path(self) -> str:
        return f"/{self.tenant}/{self.application}/{self.name}"

    @property
    def destination(self) -> str:
        return f"/{self.tenant}/{join_port(self.address, self.port)}"

    def clashes(self, other: Virtual) -> bool:
        """Two virtuals may not listen on one address, port and protocol."""
        return (self.address, self.port) == (other.address, other.port) and (
            "any" in (self.protocol, other.protocol) or self.protocol == other.protocol)


@dataclass(frozen=True)
class Member:
    tenant: str
    address: str
    port: int
    ratio: int
    priority_group: int
    connection_limit: int
    admin_state: str  # enable, disable, offline
    monitors: tuple[str, ...]

    @property
    def name(self) -> str:
        return join_port(self.address, self.port)

    @property
    def full_path(self) -> str:
        return f"/{self.tenant}/{self.name}"


@dataclass(frozen=True)
class Pool:
    tenant: str
    application: str
    name: str
    load_balancing_mode: str
    monitors: tuple[str, ...]
    members: tuple[Member, ...]
    minimum_active: int

    @property
    def full_path(self) -> str:
        return f"/{self.tenant}/{self.application}/{self.name}"


@dataclass
class Health:
    """Member availability knobs: ``states`` by (address, port); ``default`` for monitored
    members nobody set."""

    default: str = "available"
    states: dict[tuple[str, int], str] = field(default_factory=dict)

    def member(self, member: Member) -> str:
        if member.admin_state == "offline":
            return "offline"
        if (member.address, member.port) in self.states:
            return self.states[(member.address, member.port)]
        return self.default if member.monitors else "unknown"

    def pool(self, pool: Pool) -> str:
        states = [self.member(member) for member in pool.members]
        if "available" in states:
            return "available"
        return "offline" if states and all(s == "offline" for s in states) else "unknown"


def join_port(address: str, port: int) -> str:
    """TMOS writes ``10.0.0.1:80`` but ``2001:db8::1.80``."""
    bare = address.split("%", 1)[0]
    try:
        ipv6 = ipaddress.ip_address(bare).version == 6
    except ValueError:
        ipv6 = False
    return f"{address}.{port}" if ipv6 else f"{address}:{port}"


def _path(declaration: Mapping[str, Any], tenant: str, app: str, pointer: Any,
          builtin_folder: str = "/Common") -> str:
    """The full path a pointer names: builtins live in /Common."""
    if isinstance(pointer, dict) and "bigip" in pointer:
        return str(pointer["bigip"])
    target = pointer.get("use") if isinstance(pointer, dict) else pointer
    if isinstance(target, str) and "/" not in target:
        if find_object(declaration, tenant, app, target) is None:
            return f"{builtin_folder}/{target}"
        return f"/{tenant}/{app}/{target}"
    return str(target)


def _objects(tenants: Mapping[str, Any], kinds: tuple[str, ...]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for tenant_name, tenant in tenants.items():
        for app_name, app in applications(tenant).items():
            if not isinstance(app, dict):
                continue
            for name, value in app.items():
                if isinstance(value, dict) and value.get("class") in kinds:
                    yield tenant_name, app_name, name, value


def virtuals(tenants: Mapping[str, Any]) -> list[Virtual]:
    """Every virtual server the declared tenants create."""
    found: list[Virtual] = []
    for tenant, app, name, service in _objects(tenants, tuple(SERVICE_PORTS)):
        found.extend(_service_virtuals(tenants, tenant, app, name, service))
    return found


def _service_virtuals(tenants: Mapping[str, Any], tenant: str, app: str, name: str,
                      service: dict[str, Any]) -> Iterator[Virtual]:
    kind = service["class"]
    port = service.get("virtualPort", SERVICE_PORTS[kind])
    protocol = "udp" if kind == "Service_UDP" else str(service.get("layer4", "tcp"))
    enabled = service.get("enable", True) and service.get("adminState", "enable") == "enable"
    pool = _path(tenants, tenant, app, service["pool"]) if "pool" in service else None
    rules = tuple(_path(tenants, tenant, app, rule) for rule in service.get("iRules", []))
    persist = tuple(_path(tenants, tenant, app, method)
                    for method in service.get("persistenceMethods", ["source-address"]
                                              if kind in ("Service_TCP", "Service_L4", "Service_UDP")
                                              else ["cookie"]))
    for index, declared in enumerate(service.get("virtualAddresses", [])):
        address = _address(tenants, tenant, app, declared)
        if address is None:
            continue
        virtual_name = name if index == 0 else f"{name}-{index}-"
        yield Virtual(tenant, app, virtual_name, address, int(port or 0), protocol, pool, enabled,
                      int(service.get("maxConnections", 0)), rules, persist, kind)
        if kind == "Service_HTTPS" and service.get("redirect80", True):
            yield Virtual(tenant, app, f"{virtual_name}-Redirect-", address, 80, "tcp", None,
                          enabled, 0, ("/Common/_sys_https_redirect",), (), kind)


def _address(tenants: Mapping[str, Any], tenant: str, app: str, declared: Any) -> str | None:
    if isinstance(declared, list):
        declared = declared[0]
    if isinstance(declared, dict):  # a Service_Address pointer
        target = find_object(tenants, tenant, app, str(declared.get("use", "")))
        declared = target.get("virtualAddress") if target else None
    if not isinstance(declared, str):
        return None
    # one spelling per address, so that 2001:DB8::1 and 2001:db8::1 clash as on the device
    address, percent, route_domain = declared.split("/", 1)[0].partition("%")
    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        pass
    return address + percent + route_domain


def pools(tenants: Mapping[str, Any]) -> list[Pool]:
    """Every pool the declared tenants create."""
    found = []
    for tenant, app, name, pool in _objects(tenants, ("Pool",)):
        monitors = tuple(_path(tenants, tenant, app, m) for m in pool.get("monitors", []))
        members = tuple(_members(tenants, tenant, app, pool, monitors))
        found.append(Pool(tenant, app, name, pool.get("loadBalancingMode", "round-robin"),
                          monitors, members, int(pool.get("minimumMembersActive", 1))))
    return found


def _members(tenants: Mapping[str, Any], tenant: str, app: str, pool: dict[str, Any],
             pool_monitors: tuple[str, ...]) -> Iterator[Member]:
    for member in pool.get("members", []):
        own = tuple(_path(tenants, tenant, app, m) for m in member.get("monitors", []))
        admin = "disable" if member.get("enable", True) is False else member.get("adminState", "enable")
        addresses = list(member.get("serverAddresses", []))
        addresses += [server["address"] for server in member.get("servers", []) if isinstance(server, dict)]
        for address in addresses:
            yield Member(tenant, address, int(member["servicePort"]), int(member.get("ratio", 1)),
                         int(member.get("priorityGroup", 0)), int(member.get("connectionLimit", 0)),
                         admin, own or pool_monitors)


# --- iControl REST renderings -------------------------------------------------------------

def tilde(full_path: str) -> str:
    """``/T/A/name`` as iControl writes it in URLs: ``~T~A~name``."""
    return full_path.replace("/", "~")


def _folder(full_path: str) -> dict[str, Any]:
    parts = full_path.strip("/").split("/")
    names: dict[str, Any] = {"name": parts[-1], "partition": parts[0], "fullPath": full_path}
    if len(parts) == 3:
        names["subPath"] = parts[1]
    return names


def virtual_item(base: str, virtual: Virtual) -> dict[str, Any]:
    item = {"kind": "tm:ltm:virtual:virtualstate", **_folder(virtual.full_path), "generation": 1,
            "selfLink": f"{base}/mgmt/tm/ltm/virtual/{tilde(virtual.full_path)}",
            "destination": virtual.destination, "source": "0.0.0.0/0", "mask": "255.255.255.255",
            "ipProtocol": virtual.protocol, "connectionLimit": virtual.connection_limit,
            "rules": list(virtual.rules),
            "persist": [{"name": p.rsplit("/", 1)[-1], "partition": p.strip("/").split("/")[0],
                         "tmDefault": "yes" if i == 0 else "no"} for i, p in enumerate(virtual.persist)]}
    item["enabled" if virtual.enabled else "disabled"] = True
    if virtual.pool:
        item["pool"] = virtual.pool
    return item


def member_item(base: str, pool: Pool, member: Member, health: Health) -> dict[str, Any]:
    state = health.member(member)
    forced = member.admin_state == "offline"
    session = ("user-disabled" if member.admin_state != "enable"
               else "monitor-enabled" if member.monitors else "user-enabled")
    return {"kind": "tm:ltm:pool:members:membersstate", "name": member.name,
            "partition": member.tenant, "fullPath": member.full_path, "generation": 1,
            "selfLink": f"{base}/mgmt/tm/ltm/pool/{tilde(pool.full_path)}/members/{tilde(member.full_path)}",
            "address": member.address, "connectionLimit": member.connection_limit,
            "ratio": member.ratio, "priorityGroup": member.priority_group,
            "monitor": " and ".join(member.monitors) or "default", "session": session,
            "state": "user-down" if forced else {"available": "up", "offline": "down"}.get(state, "unchecked")}


def pool_item(base: str, pool: Pool, health: Health, expand: bool = False) -> dict[str, Any]:
    link = f"{base}/mgmt/tm/ltm/pool/{tilde(pool.full_path)}"
    item: dict[str, Any] = {
        "kind": "tm:ltm:pool:poolstate", **_folder(pool.full_path), "generation": 1,
        "selfLink": link, "loadBalancingMode": pool.load_balancing_mode,
        "minActiveMembers": pool.minimum_active,
        "membersReference": {"link": f"{link}/members", "isSubcollection": True}}
    if pool.monitors:
        item["monitor"] = " and ".join(pool.monitors)
    if expand:
        item["membersReference"]["items"] = [member_item(base, pool, m, health) for m in pool.members]
    return item


def _counters(values: Mapping[str, int], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: {"value": int(values.get(name, 0))} for name in names}


def _status(state: str, enabled: bool, reasons: Mapping[str, str]) -> dict[str, Any]:
    """``reasons`` by availability, plus ``disabled`` for an administratively disabled object."""
    return {"status.availabilityState": {"description": state},
            "status.enabledState": {"description": "enabled" if enabled else "disabled"},
            "status.statusReason": {"description": reasons[state] if enabled else reasons["disabled"]}}


def stats_entry(link: str, kind: str, entries: dict[str, Any], collection: bool) -> dict[str, Any]:
    """One ``entries`` element of the object at ``link``: ``{key: {"nestedStats": {...}}}``,
    keyed ``<link>/stats`` in a collection's answer, ``<link>/<name>/stats`` in its own."""
    name = link.rsplit("/", 1)[-1]
    key = f"{link}/stats" if collection else f"{link}/{name}/stats"
    return {key: {"nestedStats": {"kind": kind, "selfLink": f"{link}/stats", "entries": entries}}}


def virtual_stats(base: str, virtual: Virtual, pool: Pool | None, health: Health,
                  counters: Mapping[str, int], collection: bool = False) -> dict[str, Any]:
    state = health.pool(pool) if pool else "unknown"
    path = tilde(virtual.full_path)
    entries = {"tmName": {"description": virtual.full_path},
               "destination": {"description": virtual.destination.rsplit("/", 1)[-1]},
               **_status(state, virtual.enabled, VIRTUAL_REASONS),
               **_counters(counters, ("clientside.bitsIn", "clientside.bitsOut", "clientside.curConns",
                                      "clientside.maxConns", "clientside.pktsIn", "clientside.pktsOut",
                                      "clientside.totConns", "totRequests"))}
    return stats_entry(f"{base}/mgmt/tm/ltm/virtual/{path}", "tm:ltm:virtual:virtualstats", entries,
                       collection)


def pool_stats(base: str, pool: Pool, health: Health, counters: Mapping[str, int],
               collection: bool = False) -> dict[str, Any]:
    path = tilde(pool.full_path)
    active = sum(health.member(m) == "available" for m in pool.members)
    entries = {"tmName": {"description": pool.full_path},
               **_status(health.pool(pool), True, POOL_REASONS),
               "activeMemberCnt": {"value": active}, "memberCnt": {"value": len(pool.members)},
               **_counters(counters, ("serverside.bitsIn", "serverside.bitsOut", "serverside.curConns",
                                      "serverside.maxConns", "serverside.totConns", "curSessions",
                                      "totRequests"))}
    return stats_entry(f"{base}/mgmt/tm/ltm/pool/{path}", "tm:ltm:pool:poolstats", entries, collection)


def member_stats(base: str, pool: Pool, member: Member, health: Health,
                 counters: Mapping[str, int], collection: bool = False) -> dict[str, Any]:
    state = health.member(member)
    path = tilde(member.full_path)
    entries = {"addr": {"description": member.address}, "port": {"value": member.port},
               "nodeName": {"description": f"/{member.tenant}/{member.address}"},
               "poolName": {"description": pool.full_path},
               "monitorStatus": {"description": {"available": "up", "offline": "down"}.get(state, "unchecked")},
               **_status(state, member.admin_state == "enable", MEMBER_REASONS),
               **_counters(counters, ("serverside.bitsIn", "serverside.bitsOut", "serverside.curConns",
                                      "serverside.maxConns", "serverside.totConns", "curSessions",
                                      "totRequests"))}
    return stats_entry(f"{base}/mgmt/tm/ltm/pool/{tilde(pool.full_path)}/members/{path}",
                       "tm:ltm:pool:members:membersstats", entries, collection)
