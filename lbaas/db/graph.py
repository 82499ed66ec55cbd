"""One load balancer's object graph, read once for every reader of it.

The desired state (what agents converge to), the status tree and the
response to a fully populated create all walk the same graph: listeners,
pools, each pool's members and monitor, each listener's L7 policies (by
position) and each policy's rules.  Its order is the database's
(created_at, id) order everywhere, so every reader lists it alike.
``live_only`` leaves out objects on their way out (PENDING_DELETE).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
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
    grouped: dict[str, list[Any]] = {}
    for row in (r for r in rows if isinstance(r, model)):
        grouped.setdefault(getattr(row, parent), []).append(row)
    return grouped


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
