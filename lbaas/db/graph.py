"""One load balancer's object graph, read once for every reader of it.

The desired state (what agents converge to), the status tree and the
response to a fully populated create all walk the same graph: listeners,
pools, and each pool's members and monitor.  Its order is the database's
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

    def pool_members(self, pool_id: str) -> list[m.Member]:
        return self.members.get(pool_id, [])


def _order(row: Any) -> tuple[Any, str]:
    return row.created_at, row.id


def of_rows(rows: Iterable[Any]) -> Graph:
    """The graph of rows already in hand (made in this transaction): no query."""
    rows = sorted(rows, key=_order)
    members: dict[str, list[m.Member]] = {}
    for member in (r for r in rows if isinstance(r, m.Member)):
        members.setdefault(member.pool_id, []).append(member)
    return Graph(listeners=[r for r in rows if isinstance(r, m.Listener)],
                 pools=[r for r in rows if isinstance(r, m.Pool)], members=members,
                 monitors={r.pool_id: r for r in rows if isinstance(r, m.HealthMonitor)})


def read(session: Session, lb_id: str, *, live_only: bool = False) -> Graph:
    """The graph of ``lb_id``: one query per kind, whatever its size."""
    def query(model: Any, *where: Any) -> list[Any]:
        if live_only:
            where += (model.provisioning_status != c.PENDING_DELETE,)
        return list(session.scalars(select(model).where(*where)))

    pools = query(m.Pool, m.Pool.load_balancer_id == lb_id)
    pool_ids = [p.id for p in pools]
    return of_rows(query(m.Listener, m.Listener.load_balancer_id == lb_id) + pools
                   + query(m.Member, m.Member.pool_id.in_(pool_ids))
                   + query(m.HealthMonitor, m.HealthMonitor.pool_id.in_(pool_ids)))
