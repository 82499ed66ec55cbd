"""/v2/lbaas/l7policies/{l7policy_id}/rules"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from lbaas.api import deps, openapi, resources
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.api.resources import L7RULE
from lbaas.api.routes.common import list_document
from lbaas.services import l7rules

router = APIRouter()
KIND = L7RULE
BASE = "/lbaas/l7policies/{l7policy_id}/rules"


@router.get(BASE, openapi_extra=openapi.list_query(KIND.model))
def list_rules(l7policy_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    ctx.authorize("l7rule:get_all")
    l7rules.check_policy(deps.services(request), ctx, l7policy_id)
    return list_document(request, KIND, ctx, scope={"l7policy_id": l7policy_id})


@router.get(BASE + "/{ident}")
def get_rule(l7policy_id: str, ident: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    with deps.services(request).reading() as session:
        return {KIND.name: resources.read_document(session, KIND, ident, ctx, {"l7policy_id": l7policy_id})}


@router.post(BASE, status_code=201, openapi_extra=openapi.request_body(KIND.name, s.L7RuleCreate))
def create_rule(l7policy_id: str, request: Request, ctx: Context = Depends(deps.context),
                document: Any = Depends(deps.body)) -> dict[str, Any]:
    ctx.authorize("l7rule:post")
    body = s.parse(document, KIND.name, s.L7RuleCreate)
    return {KIND.name: l7rules.create(deps.services(request), ctx, l7policy_id, body)}


@router.put(BASE + "/{ident}", openapi_extra=openapi.request_body(KIND.name, s.L7RuleUpdate))
def update_rule(l7policy_id: str, ident: str, request: Request, ctx: Context = Depends(deps.context),
                document: Any = Depends(deps.body)) -> dict[str, Any]:
    ctx.authorize("l7rule:put")
    body = s.parse(document, KIND.name, s.L7RuleUpdate)
    return {KIND.name: l7rules.update(deps.services(request), ctx, l7policy_id, ident, body)}


@router.delete(BASE + "/{ident}", status_code=204)
def delete_rule(l7policy_id: str, ident: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    ctx.authorize("l7rule:delete")
    l7rules.delete(deps.services(request), ctx, l7policy_id, ident)
    return Response(status_code=204)
