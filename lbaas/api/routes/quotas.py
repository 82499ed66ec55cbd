"""/v2/lbaas/quotas"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from lbaas import logs
from lbaas.api import deps, openapi
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.services import quotas

router = APIRouter()
# The API answers every name Octavia's clients use.
ALIASES = {"loadbalancer": "load_balancer", "healthmonitor": "health_monitor"}


def _document(project_id: str, limits: quotas.Limits) -> dict[str, Any]:
    return {**limits, "loadbalancer": limits["load_balancer"], "healthmonitor": limits["health_monitor"],
            "project_id": project_id}


@router.get("/lbaas/quotas")
def list_quotas(request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    ctx.authorize("quota:get_all")
    listed = quotas.listed(deps.services(request), ctx.visible_project("quota"))
    return {"quotas": [_document(project_id, limits) for project_id, limits in listed], "quotas_links": []}


@router.get("/lbaas/quotas/defaults")
def default_quotas(request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    ctx.authorize("quota:get_defaults")
    document = _document("", quotas.defaults(deps.services(request)))
    document.pop("project_id")
    return {"quota": document}


@router.get("/lbaas/quotas/{project_id}")
def get_quota(project_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    ctx.authorize("quota:get_one", project_id)
    return {"quota": _document(project_id, quotas.of_project(deps.services(request), project_id))}


@router.put("/lbaas/quotas/{project_id}", status_code=202,
            openapi_extra=openapi.request_body("quota", s.QuotaUpdate))
def set_quota(project_id: str, request: Request, ctx: Context = Depends(deps.context),
              document: Any = Depends(deps.body)) -> dict[str, Any]:
    ctx.authorize("quota:put", project_id)
    body = s.parse(document, "quota", s.QuotaUpdate)
    given = {ALIASES.get(field, field): getattr(body, field) for field in body.model_fields_set}
    limits = quotas.set_limits(deps.services(request), project_id,
                               {kind: value for kind, value in given.items() if kind in quotas.KINDS})
    logs.audit(ctx, "quota.set", project_id, **given)
    return {"quota": _document(project_id, limits)}


@router.delete("/lbaas/quotas/{project_id}", status_code=204)
def reset_quota(project_id: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    ctx.authorize("quota:delete", project_id)
    quotas.reset(deps.services(request), project_id)
    logs.audit(ctx, "quota.reset", project_id)
    return Response(status_code=204)
