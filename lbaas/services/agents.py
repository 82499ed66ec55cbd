"""Agents as an operator sees them: listed with their liveness (judged by
the scheduler, by the database's clock), disabled, deleted.

Deleting an alive agent (a heartbeat within ``agent_down_time``) is
refused: it would register again at its next report. Deleting a dead agent
that still hosts load balancers is refused too, unless ``rebind`` is asked:
the scheduler then moves its load balancers to the active agents of its
environment and group, and each is converged there (dispatched after the
commit, as every change).

``status`` sums agents and load balancers up with aggregate queries: its
cost does not grow with the number of load balancers loaded into Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.api import resources
from lbaas.api.auth import Context
from lbaas.api.resources import LOADBALANCER
from lbaas.db import models as m
from lbaas.db.clock import naive_utc
from lbaas.errors import Conflict, NotFound
from lbaas.scheduler import Scheduler
from lbaas.services import Services

# An agent and whether it is alive.
Seen = tuple[m.Agent, bool]


def _get(session: Session, agent_id: str, lock: bool = False) -> m.Agent:
    agent = session.get(m.Agent, agent_id, with_for_update=lock)
    if agent is None:
        raise NotFound("Agent", agent_id)
    return agent


def _seen(session: Session, scheduler: Scheduler, agent: m.Agent) -> Seen:
    return agent, agent.heartbeat_at >= scheduler.cutoff(session)


def listed(services: Services, scheduler: Scheduler, hosts: Sequence[str] = (),
           environments: Sequence[str] = (), admin_state_up: bool | None = None,
           alive: bool | None = None) -> list[Seen]:
    """Every agent, by environment and host; each filter given narrows the list."""
    query = select(m.Agent).order_by(m.Agent.environment, m.Agent.host)
    if hosts:
        query = query.where(m.Agent.host.in_(hosts))
    if environments:
        query = query.where(m.Agent.environment.in_(environments))
    if admin_state_up is not None:
        query = query.where(m.Agent.admin_state_up.is_(admin_state_up))
    with services.reading() as session:
        cutoff = scheduler.cutoff(session)
        agents = [(agent, agent.heartbeat_at >= cutoff) for agent in session.scalars(query)]
    return [seen for seen in agents if alive is None or seen[1] == alive]


def get(services: Services, scheduler: Scheduler, agent_id: str) -> Seen:
    with services.reading() as session:
        return _seen(session, scheduler, _get(session, agent_id))


def update(services: Services, scheduler: Scheduler, agent_id: str, admin_state_up: bool | None) -> Seen:
    with services.transaction() as session:
        agent = _get(session, agent_id)
        if admin_state_up is not None:
            agent.admin_state_up = admin_state_up
        session.flush()
        return _seen(session, scheduler, agent)


def delete(services: Services, scheduler: Scheduler, agent_id: str, rebind: bool) -> None:
    with services.transaction() as session:
        agent = _get(session, agent_id, lock=True)
        bound = session.scalar(select(func.count()).select_from(m.Binding).where(m.Binding.agent_id == agent_id))
        moved: list[tuple[str, int, str]] = []
        if _seen(session, scheduler, agent)[1]:
            raise Conflict(f"Agent {agent.host} is alive and hosts {bound} load balancer(s); stop it first "
                           "(a live agent registers again at its next report), then delete it once it is dead.")
        if bound:
            if not rebind:
                raise Conflict(f"Agent {agent.host} still hosts {bound} load balancer(s); delete them first, "
                               "or delete the agent with ?rebind=true to move them to its peers.")
            moved = scheduler.rebind(session, agent)
        session.delete(agent)
    for lb_id, revision, provider in moved:
        services.provider(provider).dispatch(lb_id, revision)


def loadbalancers(services: Services, agent_id: str) -> list[dict[str, Any]]:
    """The documents of the load balancers bound to the agent, oldest first."""
    with services.reading() as session:
        _get(session, agent_id)
        lbs = list(session.scalars(select(m.LoadBalancer).join(m.Binding, m.Binding.loadbalancer_id == m.LoadBalancer.id)
                                   .where(m.Binding.agent_id == agent_id).order_by(m.LoadBalancer.created_at)))
        return LOADBALANCER.render(session, lbs)


def hosting(services: Services, scheduler: Scheduler, ctx: Context, lb_id: str) -> Seen | None:
    """The agent a visible load balancer is bound to; None while it is bound to none."""
    with services.reading() as session:
        resources.get(session, LOADBALANCER, lb_id, ctx)
        binding = session.get(m.Binding, lb_id)
        return None if binding is None else _seen(session, scheduler, _get(session, binding.agent_id))


def status(services: Services, scheduler: Scheduler) -> dict[str, Any]:
    """Per environment: agents, alive, dead, load balancers bound; per agent: its load;
    load balancers pending, in ERROR, and the age in seconds of the oldest pending change."""
    with services.reading() as session:
        now = scheduler.clock.now(session)
        alive = m.Agent.heartbeat_at >= scheduler.cutoff(session)
        environments = session.execute(
            select(m.Agent.environment, func.count(), func.sum(case((alive, 1), else_=0)),
                   func.sum(m.Agent.loadbalancer_count))
            .group_by(m.Agent.environment).order_by(m.Agent.environment)).all()
        agents = session.execute(
            select(m.Agent.id, m.Agent.host, m.Agent.environment, alive, m.Agent.admin_state_up,
                   m.Agent.device_up, m.Agent.loadbalancer_count, m.Agent.capacity_score)
            .order_by(m.Agent.environment, m.Agent.host)).all()
        pending, oldest = session.execute(
            select(func.count(), func.min(m.LoadBalancer.pending_since))
            .where(m.LoadBalancer.provisioning_status.in_(sorted(c.PENDING_STATUSES)))).one()
        errors = session.scalar(select(func.count()).select_from(m.LoadBalancer)
                                .where(m.LoadBalancer.provisioning_status == c.ERROR))
    return {
        "environments": [{"environment": env, "agents": total, "alive": int(up or 0), "dead": total - int(up or 0),
                          "loadbalancers": int(bound or 0)} for env, total, up, bound in environments],
        "agents": [{"id": agent_id, "host": host, "environment": env, "alive": bool(up), "admin_state_up": admin,
                    "device_up": device, "loadbalancer_count": count, "capacity_score": score}
                   for agent_id, host, env, up, admin, device, count, score in agents],
        "loadbalancers": {"pending": pending, "error": errors or 0,
                          "oldest_pending_age": None if oldest is None else
                          round(max((now - naive_utc(oldest)).total_seconds(), 0.0), 1)},
    }
