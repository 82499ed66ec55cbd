"""Operating statuses and traffic counters of one load balancer, from HAProxy's ``show stat``.

Rules (Octavia's, as far as HAProxy can tell them):

* member: admin down -> OFFLINE; no (enabled) health monitor -> NO_MONITOR; check UP ->
  ONLINE; check DOWN -> OFFLINE; MAINT -> OFFLINE; DRAIN -> DRAINING.
* pool: admin down -> OFFLINE; no members -> ONLINE; among the admin-up members none
  OFFLINE -> ONLINE, some OFFLINE -> DEGRADED, all OFFLINE (or every member admin down)
  -> ERROR.
* listener: admin down (or load balancer admin down) -> OFFLINE; frontend not open ->
  OFFLINE; FULL -> DEGRADED; otherwise its default pool's status (ONLINE, DEGRADED, ERROR;
  a disabled pool -> ERROR because nothing can be served); no default pool -> ONLINE.
* load balancer: admin down -> OFFLINE; every admin-up listener ONLINE -> ONLINE; any
  DEGRADED or ERROR -> DEGRADED.

When HAProxy does not answer at all, everything is OFFLINE and the load balancer ERROR.

L7 policies and rules have no operating status of their own in HAProxy (ACLs and rules are
not proxies): the status document carries none, and a pool reached only through a policy is
reported like any other pool.
"""

from typing import cast

from lbaas import constants as c
from lbaas import wire
from lbaas.appliance.render import backend_name, frontend_name, server_name

# show stat column behind each counter (the keys of wire.Counters).
_COLUMNS = {"bytes_in": "bin", "bytes_out": "bout", "active_connections": "scur",
            "total_connections": "stot", "request_errors": "ereq"}

Index = dict[tuple[str | None, str | None], dict[str, str]]


def status_document(desired: wire.LoadBalancer,
                    rows: list[dict[str, str]] | None) -> wire.StatusDocument:
    """The status document of ``desired``; ``rows`` is ``show stat`` (None if unavailable)."""
    index: Index = {(r.get("pxname"), r.get("svname")): r for r in rows or []}
    pools = [_pool(pool, index, rows is not None) for pool in desired["pools"]]
    pool_status = {p["id"]: p["operating_status"] for p in pools}
    listeners = [_listener(desired, ln, index, pool_status) for ln in desired["listeners"]]
    counts = {ln["id"]: _counts(index.get((frontend_name(ln["id"]), "FRONTEND")))
              for ln in desired["listeners"]}
    return wire.StatusDocument(
        id=desired["id"],
        revision=desired["revision"],
        operating_status=_loadbalancer(desired, listeners, rows is not None),
        listeners=listeners,
        pools=pools,
        stats=_counters({key: sum(n[key] for n in counts.values()) for key in _COLUMNS}),
        listener_stats={ident: _counters(n) for ident, n in counts.items()},
    )


def _member(pool: wire.Pool, member: wire.Member, index: Index, available: bool) -> str:
    if not (available and pool["admin_state_up"] and member["admin_state_up"]):
        return c.OFFLINE
    row = index.get((backend_name(pool["id"]), server_name(member["id"])))
    if row is None:
        return c.OFFLINE
    # "UP 1/3" (going down) is still up, "DOWN 1/2" (going up) still down.
    state = row.get("status", "").split(" ")[0].upper()
    if state.startswith("MAINT"):
        return c.OFFLINE
    if state == "DRAIN":
        return c.DRAINING
    hm = pool["healthmonitor"]
    if not hm or not hm["admin_state_up"] or state == "NO":
        return c.NO_MONITOR
    return c.ONLINE if state in ("UP", "NOLB") else c.OFFLINE


def _pool(pool: wire.Pool, index: Index, available: bool) -> wire.PoolStatus:
    members = [wire.ObjectStatus(id=m["id"], operating_status=_member(pool, m, index, available))
               for m in pool["members"]]
    return wire.PoolStatus(id=pool["id"], operating_status=_pool_status(pool, members, available),
                           members=members)


def _pool_status(pool: wire.Pool, members: list[wire.ObjectStatus], available: bool) -> str:
    if not available or not pool["admin_state_up"]:
        return c.OFFLINE
    if not members:
        return c.ONLINE
    enabled = [s for m, s in zip(pool["members"], members) if m["admin_state_up"]]
    down = [s for s in enabled if s["operating_status"] == c.OFFLINE]
    if not enabled or len(down) == len(enabled):
        return c.ERROR
    return c.DEGRADED if down else c.ONLINE


def _listener(desired: wire.LoadBalancer, listener: wire.Listener, index: Index,
              pool_status: dict[str, str]) -> wire.ObjectStatus:
    return wire.ObjectStatus(id=listener["id"],
                             operating_status=_listener_status(desired, listener, index, pool_status))


def _listener_status(desired: wire.LoadBalancer, listener: wire.Listener, index: Index,
                     pool_status: dict[str, str]) -> str:
    if not (desired["admin_state_up"] and listener["admin_state_up"]):
        return c.OFFLINE
    row = index.get((frontend_name(listener["id"]), "FRONTEND"))
    state = (row or {}).get("status", "")
    if state == "FULL":
        return c.DEGRADED
    if state != "OPEN":
        return c.OFFLINE
    pool_id = listener["default_pool_id"]
    if pool_id is None:
        return c.ONLINE
    return {c.ONLINE: c.ONLINE, c.DEGRADED: c.DEGRADED}.get(pool_status[pool_id], c.ERROR)


def _loadbalancer(desired: wire.LoadBalancer, listeners: list[wire.ObjectStatus], available: bool) -> str:
    if not desired["admin_state_up"]:
        return c.OFFLINE
    if not available:
        return c.ERROR
    enabled = [s["operating_status"] for ln, s in zip(desired["listeners"], listeners)
               if ln["admin_state_up"]]
    if any(s != c.ONLINE for s in enabled):
        return c.DEGRADED
    return c.ONLINE


def _counts(row: dict[str, str] | None) -> dict[str, int]:
    row = row or {}
    return {key: _int(row.get(column)) for key, column in _COLUMNS.items()}


def _counters(counts: dict[str, int]) -> wire.Counters:
    # Counted over _COLUMNS, whose keys are exactly the counters.
    return cast(wire.Counters, counts)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
