"""Agents, Neutron-shaped (admin only): /v2.0/agents and the bindings.

Deleting an agent that still hosts load balancers is refused, unless it is
dead and ``?rebind=true``: its load balancers are then spread over the
active agents of its environment and group and converged there.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.api import deps, openapi, resources
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.errors import Conflict, NotFound
from lbaas.api.resources import LOADBALANCER
from lbaas.db import models as m
from lbaas.scheduler import Scheduler

router = APIRouter()


class AgentUpdate(s.Body):
    admin_state_up: bool | None = None
    description: str | None = None


def _scheduler(request: Request) -> Scheduler:
    return request.app.state.scheduler


def _document(agent: m.Agent, alive: bool) -> dict[str, Any]:
    return {"id": agent.id, "agent_type": "Loadbalancer agent", "binary": "lbaas-agent", "host": agent.host,
            "topic": c.agent_queue(agent.environment, agent.host), "environment": agent.environment,
            "environment_group_number": agent.group, "device_driver": agent.device_driver,
            "admin_state_up": agent.admin_state_up, "alive": alive,
            "heartbeat_timestamp": agent.heartbeat_at.isoformat(sep=" "),
            "started_at": agent.started_at.isoformat(sep=" "), "created_at": agent.created_at.isoformat(sep=" "),
            "configurations": agent.configurations or {}, "capacity_score": agent.capacity_score,
            "loadbalancer_count": agent.loadbalancer_count, "description": ""}


def _get(session: Session, agent_id: str) -> m.Agent:
    agent = session.get(m.Agent, agent_id)
    if agent is None:
        raise NotFound("Agent", agent_id)
    return agent


@router.get("/agents", openapi_extra=openapi.query(host={"type": "string"}, environment={"type": "string"},
                                                  admin_state_up={"type": "boolean"}, alive={"type": "boolean"}))
def list_agents(request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    ctx.require_admin()
    params = deps.params(request)
    scheduler = _scheduler(request)
    with deps.state(request).reading() as session:
        query = select(m.Agent).order_by(m.Agent.environment, m.Agent.host)
        for key, column in (("host", m.Agent.host), ("environment", m.Agent.environment)):
            if key in params:
                query = query.where(column.in_(params[key]))
        if "admin_state_up" in params:
            query = query.where(m.Agent.admin_state_up.is_(resources.bool_param(params, "admin_state_up")))
        cutoff = scheduler.cutoff(session)
        agents = [_document(a, a.heartbeat_at >= cutoff) for a in session.scalars(query)]
    if "alive" in params:
        wanted = resources.bool_param(params, "alive")
        agents = [a for a in agents if a["alive"] == wanted]
    return {"agents": agents}


@router.get("/agents/{agent_id}")
def get_agent(agent_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    ctx.require_admin()
    with deps.state(request).reading() as session:
        agent = _get(session, agent_id)
        return {"agent": _document(agent, agent.heartbeat_at >= _scheduler(request).cutoff(session))}


@router.put("/agents/{agent_id}", openapi_extra=openapi.request_body("agent", AgentUpdate))
def update_agent(agent_id: str, request: Request, ctx: Context = Depends(deps.context),
                 document: Any = Depends(deps.body)) -> dict[str, Any]:
    ctx.require_admin()
    body = s.parse(document, "agent", AgentUpdate)
    with deps.state(request).transaction() as session:
        agent = _get(session, agent_id)
        if body.admin_state_up is not None:
            agent.admin_state_up = body.admin_state_up
        session.flush()
        return {"agent": _document(agent, agent.heartbeat_at >= _scheduler(request).cutoff(session))}


@router.delete("/agents/{agent_id}", status_code=204,
                openapi_extra=openapi.query(rebind={"type": "boolean"}))
def delete_agent(agent_id: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    ctx.require_admin()
    rebind = resources.bool_param(deps.params(request), "rebind")
    state = deps.state(request)
    scheduler = _scheduler(request)
    with state.transaction() as session:
        agent = session.get(m.Agent, agent_id, with_for_update=True)
        if agent is None:
            raise NotFound("Agent", agent_id)
        bound = session.scalar(select(func.count()).select_from(m.Binding).where(m.Binding.agent_id == agent_id))
        moved: list[tuple[str, int, str]] = []
        if bound:
            if not rebind:
                raise Conflict(f"Agent {agent.host} still hosts {bound} load balancer(s); delete them first, "
                               "or, if the agent is dead, delete it with ?rebind=true to move them to its peers.")
            if scheduler.is_active(session, agent):
                raise Conflict(f"Agent {agent.host} is alive; only a dead agent's load balancers are rebound.")
            moved = _rebind(session, scheduler, agent)
        session.delete(agent)
    for lb_id, revision, provider in moved:
        state.provider(provider).dispatch(lb_id, revision)
    return Response(status_code=204)


def _rebind(session: Session, scheduler: Scheduler, agent: m.Agent) -> list[tuple[str, int, str]]:
    """Spread a dead agent's bindings over the live agents of its environment and group."""
    peers = list(session.scalars(scheduler.active(session, agent.environment, agent.group)
                                 .where(m.Agent.id != agent.id).with_for_update()))
    if not peers:
        raise Conflict(f"No active agent in environment {agent.environment} group {agent.group} "
                       "to take the load balancers over.")
    load = {peer.id: peer.loadbalancer_count for peer in peers}
    moved = []
    rows = session.execute(select(m.Binding, m.LoadBalancer.revision, m.LoadBalancer.provider)
                           .join(m.LoadBalancer, m.LoadBalancer.id == m.Binding.loadbalancer_id)
                           .where(m.Binding.agent_id == agent.id).order_by(m.Binding.project_id))
    for binding, revision, provider in rows:
        target = min(load, key=lambda ident: (load[ident], ident))
        binding.agent_id = target
        load[target] += 1
        moved.append((binding.loadbalancer_id, revision, provider))
    for peer in peers:
        session.execute(update(m.Agent).where(m.Agent.id == peer.id).values(loadbalancer_count=load[peer.id]))
    session.flush()
    return moved


@router.get("/agents/{agent_id}/agent-loadbalancers")
def agent_loadbalancers(agent_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    ctx.require_admin()
    with deps.state(request).reading() as session:
        _get(session, agent_id)
        lbs = list(session.scalars(select(m.LoadBalancer).join(m.Binding, m.Binding.loadbalancer_id == m.LoadBalancer.id)
                                   .where(m.Binding.agent_id == agent_id).order_by(m.LoadBalancer.created_at)))
        return {"loadbalancers": LOADBALANCER.render(session, lbs)}


@router.get("/lbaas/loadbalancers/{lb_id}/loadbalancer-hosting-agent")
def hosting_agent(lb_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    ctx.require_admin()
    with deps.state(request).reading() as session:
        resources.get(session, LOADBALANCER, lb_id, ctx)
        binding = session.get(m.Binding, lb_id)
        if binding is None:
            return {"agent": None}
        agent = _get(session, binding.agent_id)
        return {"agent": _document(agent, agent.heartbeat_at >= _scheduler(request).cutoff(session))}
