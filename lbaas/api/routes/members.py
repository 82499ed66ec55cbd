"""/v2/lbaas/pools/{pool_id}/members, including the batch update."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from lbaas.api import deps, openapi, resources
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.api.resources import MEMBER
from lbaas.api.routes.common import list_document
from lbaas.errors import BadRequest
from lbaas.services import members

router = APIRouter()
KIND = MEMBER
BASE = "/lbaas/pools/{pool_id}/members"


@router.get(BASE, openapi_extra=openapi.list_query(KIND.model))
def list_members(pool_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    ctx.authorize("member:get_all")
    members.check_pool(deps.services(request), ctx, pool_id)
    return list_document(request, KIND, ctx, scope={"pool_id": pool_id})


@router.get(BASE + "/{ident}")
def get_member(pool_id: str, ident: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    with deps.services(request).reading() as session:
        return {KIND.name: resources.read_document(session, KIND, ident, ctx, {"pool_id": pool_id})}


@router.post(BASE, status_code=201, openapi_extra=openapi.request_body(KIND.name, s.MemberCreate))
def create_member(pool_id: str, request: Request, ctx: Context = Depends(deps.context),
                  document: Any = Depends(deps.body)) -> dict[str, Any]:
    ctx.authorize("member:post")
    body = s.parse(document, KIND.name, s.MemberCreate)
    return {KIND.name: members.create(deps.services(request), ctx, pool_id, body)}


@router.put(BASE + "/{ident}", openapi_extra=openapi.request_body(KIND.name, s.MemberUpdate))
def update_member(pool_id: str, ident: str, request: Request, ctx: Context = Depends(deps.context),
                  document: Any = Depends(deps.body)) -> dict[str, Any]:
    ctx.authorize("member:put")
    body = s.parse(document, KIND.name, s.MemberUpdate)
    return {KIND.name: members.update(deps.services(request), ctx, pool_id, ident, body)}


@router.delete(BASE + "/{ident}", status_code=204)
def delete_member(pool_id: str, ident: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    ctx.authorize("member:delete")
    members.delete(deps.services(request), ctx, pool_id, ident)
    return Response(status_code=204)


@router.put(BASE, status_code=202, openapi_extra={**openapi.request_body(None, s.MemberBatch),
                                                   **openapi.query(additive_only={"type": "boolean"})})
def batch_update_members(pool_id: str, request: Request, ctx: Context = Depends(deps.context),
                         document: Any = Depends(deps.body)) -> Response:
    """Make the pool's members exactly the given list (``additive_only``: keep the rest).

    Members are matched by address and protocol port: matches are updated,
    the others created, and (unless additive) missing ones deleted, all in
    one change of the load balancer.
    """
    ctx.authorize("member:put")  # Octavia's rule for the batch update
    if not isinstance(document, dict) or set(document) != {"members"}:
        raise BadRequest("The request body must be a JSON object with the key 'members'.")
    batch = s.parse({"batch": document}, "batch", s.MemberBatch)
    additive = resources.bool_param(deps.params(request), "additive_only")
    members.batch(deps.services(request), ctx, pool_id, batch.members, additive)
    return Response(status_code=202)
