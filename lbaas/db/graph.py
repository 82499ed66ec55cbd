"""One load balancer's object graph, read once for every reader of it.

The desired state (what agents converge to), the status tree and the
response to a fully populated create all walk the same graph: listeners,
pools, each pool's members and monitor, each listener's L7 policies (by
position) and each policy's rules.  Its order is the database's
(created_at, id) order everywhere, so every reader lists it alike.
``live_only`` leaves out objects on their way out (PENDING_DELETE).

``read_live`` is the desired state's reader (a server's hot path): the same
graph of live objects as ``read(live_only=True)``, but as read-only Core
rows (``Record``: the model's columns as attributes), with statements built
once at import, each keyed by the load balancer's id, and no statement for a
level that cannot have rows (members and monitors without pools, policies
without listeners that take them, rules without policies).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from sqlalchemy import BindParameter, Row, Select, String, bindparam, select
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.db import models as m


@dataclasses.dataclass(frozen=True)
class Graph:
    listeners: list[m.Listener]
    pools: list[m.Pool]
    members: dict[str, list[m.Member]]        # pool id -> its members
    monitors: dict[str, m.HealthMonitor]      # pool id -> its monitor
    l7policies: dict[str, list[m.L7Policy]] = dataclasses.field(default_factory=dict)  # listener id -> by position
    l7rules: dict[str, list[m.L7Rule]] = dataclasses.field(default_factory=dict)       # policy id -> its rules

    def pool_members(self, pool_id: str) -> list[m.Member]:
        return self.members.get(pool_id, [])

    def listener_policies(self, listener_id: str) -> list[m.L7Policy]:
        return self.l7policies.get(listener_id, [])

    def policy_rules(self, policy_id: str) -> list[m.L7Rule]:
        return self.l7rules.get(policy_id, [])


# A Core row of one of the graph's tables: its columns as attributes, named as on the model.
Record = Any


@dataclasses.dataclass(frozen=True)
class LiveGraph:
    """A load balancer's row and its live graph (``read_live``), as Records."""

    loadbalancer: Record
    listeners: list[Record]
    pools: list[Record]
    members: dict[str, list[Record]]        # pool id -> its members
    monitors: dict[str, Record]             # pool id -> its monitor
    l7policies: dict[str, list[Record]]     # listener id -> by position
    l7rules: dict[str, list[Record]]        # policy id -> its rules

    def pool_members(self, pool_id: str) -> list[Record]:
        return self.members.get(pool_id, [])

    def listener_policies(self, listener_id: str) -> list[Record]:
        return self.l7policies.get(listener_id, [])

    def policy_rules(self, policy_id: str) -> list[Record]:
        return self.l7rules.get(policy_id, [])


def _order(row: Any) -> tuple[Any, str]:
    return row.created_at, row.id


def of_rows(rows: Iterable[Any]) -> Graph:
    """The graph of rows already in hand (made in this transaction): no query."""
    rows = sorted(rows, key=_order)
    policies = sorted((r for r in rows if isinstance(r, m.L7Policy)), key=lambda p: p.position)
    return Graph(listeners=[r for r in rows if isinstance(r, m.Listener)],
                 pools=[r for r in rows if isinstance(r, m.Pool)],
                 members=_by(rows, m.Member, "pool_id"),
                 monitors={r.pool_id: r for r in rows if isinstance(r, m.HealthMonitor)},
                 l7policies=_by(policies, m.L7Policy, "listener_id"),
                 l7rules=_by(rows, m.L7Rule, "l7policy_id"))


def _by(rows: Iterable[Any], model: Any, parent: str) -> dict[str, list[Any]]:
    """The rows of ``model`` grouped by their ``parent`` column, in the order given."""
    return _grouped((r for r in rows if isinstance(r, model)), parent)


def read(session: Session, lb_id: str, *, live_only: bool = False) -> Graph:
    """The graph of ``lb_id``: one query per kind, whatever its size."""
    def query(model: Any, *where: Any) -> list[Any]:
        if live_only:
            where += (model.provisioning_status != c.PENDING_DELETE,)
        return list(session.scalars(select(model).where(*where)))

    pools = query(m.Pool, m.Pool.load_balancer_id == lb_id)
    pool_ids = [p.id for p in pools]
    listeners = query(m.Listener, m.Listener.load_balancer_id == lb_id)
    policies = query(m.L7Policy, m.L7Policy.listener_id.in_([x.id for x in listeners]))
    return of_rows(listeners + pools + policies
                   + query(m.L7Rule, m.L7Rule.l7policy_id.in_([p.id for p in policies]))
                   + query(m.Member, m.Member.pool_id.in_(pool_ids))
                   + query(m.HealthMonitor, m.HealthMonitor.pool_id.in_(pool_ids)))


# --- the live graph as Core rows (read_live) ------------------------------------

_LB, _LISTENER, _POOL = m.LoadBalancer.__table__, m.Listener.__table__, m.Pool.__table__
_MEMBER, _MONITOR = m.Member.__table__, m.HealthMonitor.__table__
_POLICY, _RULE = m.L7Policy.__table__, m.L7Rule.__table__
_LB_ID: BindParameter[str] = bindparam("lb_id", type_=String())
# The listeners that take L7 policies (the API refuses policies on the others).
L7_PROTOCOLS = (c.PROTOCOL_HTTP, c.PROTOCOL_TERMINATED_HTTPS)


def _live(table: Any) -> Any:
    return table.c.provisioning_status != c.PENDING_DELETE


def _of_live_pools(table: Any) -> Select[Any]:
    """``table``'s live rows whose live pool belongs to the load balancer."""
    return (select(table).join(_POOL, _POOL.c.id == table.c.pool_id)
            .where(_POOL.c.load_balancer_id == _LB_ID, _live(_POOL), _live(table)))


_LIVE_LISTENERS = select(_LISTENER).where(_LISTENER.c.load_balancer_id == _LB_ID, _live(_LISTENER))
_LIVE_POLICIES = (select(_POLICY).join(_LISTENER, _LISTENER.c.id == _POLICY.c.listener_id)
                  .where(_LISTENER.c.load_balancer_id == _LB_ID, _live(_LISTENER), _live(_POLICY)))
LIVE_QUERIES: dict[str, Select[Any]] = {
    "loadbalancer": select(_LB).where(_LB.c.id == _LB_ID),
    "listeners": _LIVE_LISTENERS,
    "pools": select(_POOL).where(_POOL.c.load_balancer_id == _LB_ID, _live(_POOL)),
    "members": _of_live_pools(_MEMBER),
    "monitors": _of_live_pools(_MONITOR),
    "policies": _LIVE_POLICIES,
    "rules": (select(_RULE).join(_POLICY, _POLICY.c.id == _RULE.c.l7policy_id)
              .join(_LISTENER, _LISTENER.c.id == _POLICY.c.listener_id)
              .where(_LISTENER.c.load_balancer_id == _LB_ID, _live(_LISTENER), _live(_POLICY), _live(_RULE))),
}


def read_loadbalancer(session: Session, lb_id: str) -> Record | None:
    """The load balancer's row, or None."""
    return session.execute(LIVE_QUERIES["loadbalancer"], {"lb_id": lb_id}).first()


def read_live(session: Session, lb: Record) -> LiveGraph:
    """The live graph of the load balancer whose row is ``lb`` (``read_loadbalancer``)."""
    def rows(level: str, wanted: bool = True) -> list[Row[Any]]:
        if not wanted:
            return []
        return sorted(session.execute(LIVE_QUERIES[level], {"lb_id": lb.id}), key=_order)

    listeners, pools = rows("listeners"), rows("pools")
    policies = rows("policies", any(x.protocol in L7_PROTOCOLS for x in listeners))
    policies.sort(key=lambda p: p.position)   # stable: (created_at, id) among equal positions
    return LiveGraph(
        loadbalancer=lb, listeners=listeners, pools=pools,
        members=_grouped(rows("members", bool(pools)), "pool_id"),
        monitors={hm.pool_id: hm for hm in rows("monitors", bool(pools))},
        l7policies=_grouped(policies, "listener_id"),
        l7rules=_grouped(rows("rules", bool(policies)), "l7policy_id"))


def _grouped(rows: Iterable[Record], parent: str) -> dict[str, list[Record]]:
    grouped: dict[str, list[Record]] = {}
    for row in rows:
        grouped.setdefault(getattr(row, parent), []).append(row)
    return grouped
