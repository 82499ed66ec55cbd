"""/v2/lbaas/loadbalancers: CRUD, the fully populated create, status tree, stats."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from lbaas import logs
from lbaas.api import deps, openapi, resources, views
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.api.resources import LOADBALANCER
from lbaas.api.routes.common import get_document, list_document, stats_document
from lbaas.services import loadbalancers

router = APIRouter()
KIND = LOADBALANCER


@router.get("/lbaas/loadbalancers", openapi_extra=openapi.list_query(KIND.model))
def list_loadbalancers(request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    return list_document(request, KIND, ctx)


@router.get("/lbaas/loadbalancers/{lb_id}")
def get_loadbalancer(lb_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    return get_document(request, KIND, ctx, lb_id)


@router.post("/lbaas/loadbalancers", status_code=201,
             openapi_extra=openapi.request_body(KIND.name, s.LoadBalancerCreate))
def create_loadbalancer(request: Request, ctx: Context = Depends(deps.context),
                        document: Any = Depends(deps.body)) -> dict[str, Any]:
    ctx.authorize("loadbalancer:post")  # a reader is refused before its body is judged
    body = s.parse(document, KIND.name, s.LoadBalancerCreate)
    lb, graph = loadbalancers.create(deps.services(request), ctx, body)
    return {KIND.name: views.created(lb, graph, full=bool(body.listeners or body.pools))}


@router.put("/lbaas/loadbalancers/{lb_id}", openapi_extra=openapi.request_body(KIND.name, s.LoadBalancerUpdate))
def update_loadbalancer(lb_id: str, request: Request, ctx: Context = Depends(deps.context),
                        document: Any = Depends(deps.body)) -> dict[str, Any]:
    ctx.authorize("loadbalancer:put")
    body = s.parse(document, KIND.name, s.LoadBalancerUpdate)
    return {KIND.name: loadbalancers.update(deps.services(request), ctx, lb_id, body)}


@router.delete("/lbaas/loadbalancers/{lb_id}", status_code=204,
               openapi_extra=openapi.query(cascade={"type": "boolean"}))
def delete_loadbalancer(lb_id: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    ctx.authorize("loadbalancer:delete")
    cascade = resources.bool_param(deps.params(request), "cascade")
    loadbalancers.delete(deps.services(request), ctx, lb_id, cascade)
    return Response(status_code=204)


@router.put("/lbaas/loadbalancers/{lb_id}/failover", status_code=202)
def failover_loadbalancer(lb_id: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    """Converge the load balancer again from the database (admin only by default)."""
    ctx.authorize("loadbalancer:put_failover")
    loadbalancers.failover(deps.services(request), ctx, lb_id)
    logs.audit(ctx, "loadbalancer.failover", lb_id)
    return Response(status_code=202)


@router.get("/lbaas/loadbalancers/{lb_id}/status")
@router.get("/lbaas/loadbalancers/{lb_id}/statuses")
def status_tree(lb_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    lb, graph = loadbalancers.read_graph(deps.services(request), ctx, lb_id)
    ctx.authorize("loadbalancer:get_status", lb.project_id)
    return {"statuses": {"loadbalancer": views.status_tree(lb, graph)}}


@router.get("/lbaas/loadbalancers/{lb_id}/stats")
def loadbalancer_stats(lb_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    return stats_document(request, KIND, ctx, lb_id)
