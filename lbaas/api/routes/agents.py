"""Agents, Neutron-shaped (admin only by default, rules os_load-balancer_api:agent:*): /v2.0/agents and the bindings.

Deleting an alive agent is refused (409), and so is deleting a dead one that
still hosts load balancers unless ``?rebind=true`` (see ``lbaas.services.agents``).
Times are UTC to the second, ``2026-01-31T12:00:00Z``, on every database
(MariaDB keeps no fractions of a second).

``GET /v2.0/agents/status`` (rule ``agent:get_status``): per environment the
agents alive and dead, per agent its load, and the load balancers pending and
in ERROR with the age in seconds of the oldest pending change.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from lbaas import constants as c
from lbaas import logs
from lbaas.api import deps, openapi, resources
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.scheduler import Scheduler
from lbaas.services import agents

router = APIRouter()


class AgentUpdate(s.Body):
    admin_state_up: bool | None = None
    description: str | None = None


def _scheduler(request: Request) -> Scheduler:
    return request.app.state.scheduler


def _utc(moment: dt.datetime) -> str:
    # Stored naive in UTC; a driver that hands a zone back is converted, not trusted to be UTC.
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _document(seen: agents.Seen) -> dict[str, Any]:
    agent, alive = seen
    return {"id": agent.id, "agent_type": "Loadbalancer agent", "binary": "lbaas-agent", "host": agent.host,
            "topic": c.agent_queue(agent.environment, agent.host), "environment": agent.environment,
            "environment_group_number": agent.group, "device_driver": agent.device_driver,
            "admin_state_up": agent.admin_state_up, "alive": alive,
            "heartbeat_timestamp": _utc(agent.heartbeat_at),
            "started_at": _utc(agent.started_at), "created_at": _utc(agent.created_at),
            "configurations": agent.configurations or {}, "capacity_score": agent.capacity_score,
            "loadbalancer_count": agent.loadbalancer_count, "description": ""}


def _flag(params: dict[str, list[str]], key: str) -> bool | None:
    return resources.bool_param(params, key) if key in params else None


@router.get("/agents", openapi_extra=openapi.query(host={"type": "string"}, environment={"type": "string"},
                                                  admin_state_up={"type": "boolean"}, alive={"type": "boolean"}))
def list_agents(request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    ctx.authorize("agent:get_all")
    params = deps.params(request)
    listed = agents.listed(deps.services(request), _scheduler(request), params.get("host", []),
                           params.get("environment", []), _flag(params, "admin_state_up"), _flag(params, "alive"))
    return {"agents": [_document(seen) for seen in listed]}


# Before /agents/{agent_id}: the first route that matches answers.
@router.get("/agents/status")
def agents_status(request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    ctx.authorize("agent:get_status")
    return {"status": agents.status(deps.services(request), _scheduler(request))}


@router.get("/agents/{agent_id}")
def get_agent(agent_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    ctx.authorize("agent:get_one")
    return {"agent": _document(agents.get(deps.services(request), _scheduler(request), agent_id))}


@router.put("/agents/{agent_id}", openapi_extra=openapi.request_body("agent", AgentUpdate))
def update_agent(agent_id: str, request: Request, ctx: Context = Depends(deps.context),
                 document: Any = Depends(deps.body)) -> dict[str, Any]:
    ctx.authorize("agent:put")
    body = s.parse(document, "agent", AgentUpdate)
    seen = agents.update(deps.services(request), _scheduler(request), agent_id, body.admin_state_up)
    if body.admin_state_up is not None:
        logs.audit(ctx, "agent.enable" if body.admin_state_up else "agent.disable", agent_id)
    return {"agent": _document(seen)}


@router.delete("/agents/{agent_id}", status_code=204,
                openapi_extra=openapi.query(rebind={"type": "boolean"}))
def delete_agent(agent_id: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    ctx.authorize("agent:delete")
    rebind = resources.bool_param(deps.params(request), "rebind")
    if rebind:
        ctx.authorize("agent:rebind")
    agents.delete(deps.services(request), _scheduler(request), agent_id, rebind)
    logs.audit(ctx, "agent.rebind" if rebind else "agent.delete", agent_id)
    return Response(status_code=204)


@router.get("/agents/{agent_id}/agent-loadbalancers")
def agent_loadbalancers(agent_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    ctx.authorize("agent:get_one")
    return {"loadbalancers": agents.loadbalancers(deps.services(request), agent_id)}


@router.get("/lbaas/loadbalancers/{lb_id}/loadbalancer-hosting-agent")
def hosting_agent(lb_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    ctx.authorize("agent:get_one")
    seen = agents.hosting(deps.services(request), _scheduler(request), ctx, lb_id)
    return {"agent": None if seen is None else _document(seen)}
