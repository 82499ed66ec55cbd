"""/v2/lbaas/pools"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.api import build, changes, deps, openapi, resources
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.errors import BadRequest, Conflict
from lbaas.api.resources import LISTENER, LOADBALANCER, POOL
from lbaas.api.routes.common import add_reads
from lbaas.db import models as m

router = APIRouter()
KIND = POOL
add_reads(router, KIND)


@router.post("/lbaas/pools", status_code=201, openapi_extra=openapi.request_body(KIND.name, s.PoolCreate))
def create_pool(request: Request, ctx: Context = Depends(deps.context),
                document: Any = Depends(deps.body)) -> dict[str, Any]:
    body = s.parse(document, KIND.name, s.PoolCreate)
    if body.members or body.healthmonitor:
        raise BadRequest("members and healthmonitor are only accepted in a fully populated load balancer.")
    if not (body.listener_id or body.loadbalancer_id):
        raise BadRequest("A pool needs a listener_id or a loadbalancer_id.")
    state = deps.state(request)
    lb_id, listener_id = _parent(request, ctx, body)

    def make(session: Session, lb: m.LoadBalancer) -> m.Pool:
        row = build.pool(state, state.provider(lb.provider), body, lb.id, lb.project_id)
        if listener_id:
            _attach(session, row, listener_id)
        return row

    return {KIND.name: changes.create_child(state, ctx, KIND, lb_id, make)}


def _parent(request: Request, ctx: Context, body: s.PoolCreate) -> tuple[str, str | None]:
    with deps.state(request).reading() as session:
        if body.listener_id:
            listener = resources.get(session, LISTENER, body.listener_id, ctx)
            if body.loadbalancer_id and body.loadbalancer_id != listener.load_balancer_id:
                raise BadRequest("listener_id and loadbalancer_id name different load balancers.")
            return listener.load_balancer_id, listener.id
        resources.get(session, LOADBALANCER, body.loadbalancer_id, ctx)
        return body.loadbalancer_id, None


def _attach(session: Session, pool: m.Pool, listener_id: str) -> None:
    listener = session.get(m.Listener, listener_id)
    if listener is None or listener.provisioning_status == c.PENDING_DELETE:
        raise BadRequest(f"Listener {listener_id} not found.")
    if listener.default_pool_id:
        raise Conflict(f"Listener {listener_id} already has default pool {listener.default_pool_id}.")
    build.check_protocols(listener.protocol, pool.protocol)
    listener.default_pool_id = pool.id


@router.put("/lbaas/pools/{ident}", openapi_extra=openapi.request_body(KIND.name, s.PoolUpdate))
def update_pool(ident: str, request: Request, ctx: Context = Depends(deps.context),
                document: Any = Depends(deps.body)) -> dict[str, Any]:
    body = s.parse(document, KIND.name, s.PoolUpdate)
    state = deps.state(request)

    def apply(_session: Session, row: m.Pool, lb: m.LoadBalancer) -> None:
        changes.set_fields(row, body)
        state.validate(state.provider(lb.provider), "pool",
                       {"protocol": row.protocol, "lb_algorithm": row.lb_algorithm,
                        "session_persistence": row.session_persistence})

    return {KIND.name: changes.update_child(state, ctx, KIND, ident, apply, body.tags)}


@router.delete("/lbaas/pools/{ident}", status_code=204)
def delete_pool(ident: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    changes.delete_child(deps.state(request), ctx, KIND, ident)
    return Response(status_code=204)
