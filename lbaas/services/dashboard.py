"""The operator dashboard's one document: agents with their liveness, device
state, load and bindings; the load balancers waiting (PENDING_*) or failed
(ERROR) with their reason and age.

Contract: the cost does not grow with the number of load balancers. Agents
are few and listed whole; per agent at most ``BINDINGS_SHOWN`` bindings are
named (the count is the agent's own counter); pending and ERROR load
balancers are counted by aggregate queries and at most ``LIST_CAP`` of each,
the oldest first, are listed (pending by ``pending_since``, which every change
sets and the index on status and ``pending_since`` serves; ERROR by the time it
was last changed). Liveness and ages are judged by the database's
clock, as the scheduler judges them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.db import models as m
from lbaas.scheduler import Scheduler
from lbaas.services import Services

LIST_CAP = 50
BINDINGS_SHOWN = 20


def overview(services: Services, scheduler: Scheduler) -> dict[str, Any]:
    """The dashboard document (see the module's contract)."""
    with services.reading() as session:
        now = scheduler.clock.now(session)
        cutoff = scheduler.cutoff(session)
        agents = list(session.scalars(select(m.Agent).order_by(m.Agent.environment, m.Agent.group, m.Agent.host)))
        return {
            "agents": [_agent(session, agent, agent.heartbeat_at >= cutoff, now) for agent in agents],
            "pending": _waiting(session, m.LoadBalancer.provisioning_status.in_(sorted(c.PENDING_STATUSES)),
                                m.LoadBalancer.pending_since, now),
            "error": _waiting(session, m.LoadBalancer.provisioning_status == c.ERROR,
                              func.coalesce(m.LoadBalancer.updated_at, m.LoadBalancer.created_at), now),
        }


def _agent(session: Session, agent: m.Agent, alive: bool, now: dt.datetime) -> dict[str, Any]:
    bound = session.execute(
        select(m.LoadBalancer.id, m.LoadBalancer.name, m.LoadBalancer.provisioning_status)
        .join(m.Binding, m.Binding.loadbalancer_id == m.LoadBalancer.id)
        .where(m.Binding.agent_id == agent.id).order_by(m.LoadBalancer.created_at).limit(BINDINGS_SHOWN)).all()
    return {"id": agent.id, "host": agent.host, "environment": agent.environment,
            "environment_group_number": agent.group, "alive": alive, "admin_state_up": agent.admin_state_up,
            "device_up": agent.device_up, "loadbalancer_count": agent.loadbalancer_count,
            "capacity_score": agent.capacity_score, "heartbeat_age": _age(agent.heartbeat_at, now),
            "bindings": [{"id": lb_id, "name": name, "provisioning_status": status}
                         for lb_id, name, status in bound]}


def _waiting(session: Session, where: Any, since: Any, now: dt.datetime) -> dict[str, Any]:
    """The count of the load balancers matching ``where`` and the oldest of them by ``since``."""
    total = session.scalar(select(func.count()).select_from(m.LoadBalancer).where(where))
    rows = session.execute(
        select(m.LoadBalancer.id, m.LoadBalancer.name, m.LoadBalancer.project_id,
               m.LoadBalancer.provisioning_status, m.LoadBalancer.status_reason, since.label("since"))
        .where(where).order_by(since, m.LoadBalancer.id).limit(LIST_CAP)).all()
    return {"count": total or 0,
            "loadbalancers": [{"id": lb_id, "name": name, "project_id": project, "provisioning_status": status,
                               "status_reason": reason or "", "age": _age(moment, now)}
                              for lb_id, name, project, status, reason, moment in rows]}


def _age(moment: dt.datetime | str | None, now: dt.datetime) -> float | None:
    """Seconds since ``moment`` (stored naive in UTC; SQLite may hand a computed one back as text)."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    return round(max((now.replace(tzinfo=None) - moment.replace(tzinfo=None)).total_seconds(), 0.0), 1)
