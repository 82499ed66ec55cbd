"""/v2/lbaas/listeners"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from lbaas.api import build, changes, deps, openapi, resources, views
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.errors import BadRequest
from lbaas.api.resources import LISTENER, LOADBALANCER
from lbaas.api.routes.common import add_reads
from lbaas.db import models as m

router = APIRouter()
KIND = LISTENER
add_reads(router, KIND)


@router.post("/lbaas/listeners", status_code=201, openapi_extra=openapi.request_body(KIND.name, s.ListenerCreate))
def create_listener(request: Request, ctx: Context = Depends(deps.context),
                    document: Any = Depends(deps.body)) -> dict[str, Any]:
    body = s.parse(document, KIND.name, s.ListenerCreate)
    if body.default_pool is not None:
        raise BadRequest("default_pool is only accepted in a fully populated load balancer; "
                         "use default_pool_id.")
    if not body.loadbalancer_id:
        raise BadRequest("Mandatory field missing: listener.loadbalancer_id")
    state = deps.state(request)

    def make(session: Session, lb: m.LoadBalancer) -> m.Listener:
        provider = state.provider(lb.provider)
        build.check_port_free(session, lb.vip_address, body.protocol_port)
        row = build.listener(state, provider, body, lb, lb.project_id)
        build.check_default_pool(session, row, body.default_pool_id)
        return row

    _visible_lb(request, ctx, body.loadbalancer_id)
    return {KIND.name: changes.create_child(state, ctx, KIND, body.loadbalancer_id, make)}


def _visible_lb(request: Request, ctx: Context, lb_id: str) -> None:
    """A load balancer the caller cannot see is a 404, as if it did not exist."""
    with deps.state(request).reading() as session:
        resources.get(session, LOADBALANCER, lb_id, ctx)


@router.put("/lbaas/listeners/{ident}", openapi_extra=openapi.request_body(KIND.name, s.ListenerUpdate))
def update_listener(ident: str, request: Request, ctx: Context = Depends(deps.context),
                    document: Any = Depends(deps.body)) -> dict[str, Any]:
    body = s.parse(document, KIND.name, s.ListenerUpdate)
    state = deps.state(request)

    def apply(session: Session, row: m.Listener, lb: m.LoadBalancer) -> None:
        if body.insert_headers is not None or body.allowed_cidrs is not None:
            body.insert_headers = build.check_listener_extras(
                body.insert_headers, body.allowed_cidrs, row.protocol, lb.vip_address)
        if "default_pool_id" in body.model_fields_set:
            build.check_default_pool(session, row, body.default_pool_id)
        changes.set_fields(row, body)
        state.validate(state.provider(lb.provider), "listener",
                       {"protocol": row.protocol, "protocol_port": row.protocol_port,
                        **body.model_dump(exclude_unset=True, exclude={"tags"})})

    return {KIND.name: changes.update_child(state, ctx, KIND, ident, apply, body.tags)}


@router.delete("/lbaas/listeners/{ident}", status_code=204)
def delete_listener(ident: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    changes.delete_child(deps.state(request), ctx, KIND, ident)
    return Response(status_code=204)


@router.get("/lbaas/listeners/{ident}/stats")
def listener_stats(ident: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    with deps.state(request).reading() as session:
        return {"stats": views.stats(resources.get(session, KIND, ident, ctx).stats)}
