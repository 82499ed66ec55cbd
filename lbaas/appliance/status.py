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
"""

from lbaas import constants as c
from lbaas.appliance.render import backend_name, frontend_name, server_name

COUNTERS = ("bytes_in", "bytes_out", "active_connections", "total_connections",
            "request_errors")
# show stat column behind each counter.
_COLUMNS = {"bytes_in": "bin", "bytes_out": "bout", "active_connections": "scur",
            "total_connections": "stot", "request_errors": "ereq"}


def status_document(desired: dict, rows: list[dict[str, str]] | None) -> dict:
    """The status document of ``desired``; ``rows`` is ``show stat`` (None if unavailable)."""
    index = {(r.get("pxname"), r.get("svname")): r for r in rows or []}
    pools = [_pool(pool, index, rows is not None) for pool in desired["pools"]]
    pool_status = {p["id"]: p["operating_status"] for p in pools}
    listeners = [_listener(desired, ln, index, pool_status) for ln in desired["listeners"]]
    listener_stats = {ln["id"]: _counters(index.get((frontend_name(ln["id"]), "FRONTEND")))
                      for ln in desired["listeners"]}
    return {
        "id": desired["id"],
        "revision": desired["revision"],
        "operating_status": _loadbalancer(desired, listeners, rows is not None),
        "listeners": listeners,
        "pools": pools,
        "stats": {key: sum(s[key] for s in listener_stats.values()) for key in COUNTERS},
        "listener_stats": listener_stats,
    }


def _member(pool: dict, member: dict, index: dict, available: bool) -> str:
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


def _pool(pool: dict, index: dict, available: bool) -> dict:
    members = [{"id": m["id"], "operating_status": _member(pool, m, index, available)}
               for m in pool["members"]]
    return {"id": pool["id"], "operating_status": _pool_status(pool, members, available),
            "members": members}


def _pool_status(pool: dict, members: list[dict], available: bool) -> str:
    if not available or not pool["admin_state_up"]:
        return c.OFFLINE
    if not members:
        return c.ONLINE
    enabled = [s for m, s in zip(pool["members"], members) if m["admin_state_up"]]
    down = [s for s in enabled if s["operating_status"] == c.OFFLINE]
    if not enabled or len(down) == len(enabled):
        return c.ERROR
    return c.DEGRADED if down else c.ONLINE


def _listener(desired: dict, listener: dict, index: dict, pool_status: dict) -> dict:
    return {"id": listener["id"],
            "operating_status": _listener_status(desired, listener, index, pool_status)}


def _listener_status(desired: dict, listener: dict, index: dict, pool_status: dict) -> str:
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


def _loadbalancer(desired: dict, listeners: list[dict], available: bool) -> str:
    if not desired["admin_state_up"]:
        return c.OFFLINE
    if not available:
        return c.ERROR
    enabled = [s["operating_status"] for ln, s in zip(desired["listeners"], listeners)
               if ln["admin_state_up"]]
    if any(s != c.ONLINE for s in enabled):
        return c.DEGRADED
    return c.ONLINE


def _counters(row: dict[str, str] | None) -> dict[str, int]:
    row = row or {}
    return {key: _int(row.get(column)) for key, column in _COLUMNS.items()}


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
