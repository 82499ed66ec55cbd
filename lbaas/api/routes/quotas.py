"""/v2/lbaas/quotas"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from lbaas.api import deps, openapi
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.api.deps import State
from lbaas.db import models as m

router = APIRouter()
COLUMNS = ("load_balancer", "listener", "pool", "member", "health_monitor")
# The API answers every name Octavia's clients use.
ALIASES = {"loadbalancer": "load_balancer", "healthmonitor": "health_monitor"}


def _defaults(state: State) -> dict[str, int]:
    return {col: getattr(state.config.quotas, f"default_{col}_quota") for col in COLUMNS}


def _document(state: State, project_id: str, row: m.Quota | None) -> dict[str, Any]:
    values = _defaults(state)
    for col in COLUMNS:
        if row is not None and getattr(row, col) is not None:
            values[col] = getattr(row, col)
    values["loadbalancer"] = values["load_balancer"]
    values["healthmonitor"] = values["health_monitor"]
    values.update({"l7policy": -1, "l7rule": -1, "project_id": project_id})
    return values


@router.get("/lbaas/quotas")
def list_quotas(request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    state = deps.state(request)
    with state.reading() as session:
        query = select(m.Quota).order_by(m.Quota.project_id)
        if not ctx.is_admin:
            query = query.where(m.Quota.project_id == ctx.project_id)
        rows = list(session.scalars(query))
    return {"quotas": [_document(state, row.project_id, row) for row in rows], "quotas_links": []}


@router.get("/lbaas/quotas/defaults")
def default_quotas(request: Request, _ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    document = _document(deps.state(request), "", None)
    document.pop("project_id")
    return {"quota": document}


@router.get("/lbaas/quotas/{project_id}")
def get_quota(project_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    if not ctx.is_admin and project_id != ctx.project_id:
        ctx.require_admin()
    state = deps.state(request)
    with state.reading() as session:
        return {"quota": _document(state, project_id, session.get(m.Quota, project_id))}


@router.put("/lbaas/quotas/{project_id}", status_code=202,
            openapi_extra=openapi.request_body("quota", s.QuotaUpdate))
def set_quota(project_id: str, request: Request, ctx: Context = Depends(deps.context),
              document: Any = Depends(deps.body)) -> dict[str, Any]:
    ctx.require_admin()
    body = s.parse(document, "quota", s.QuotaUpdate)
    state = deps.state(request)
    with state.transaction() as session:
        row = session.get(m.Quota, project_id, with_for_update=True)
        if row is None:
            row = m.Quota(project_id=project_id)
            session.add(row)
        for field in body.model_fields_set:
            column = ALIASES.get(field, field)
            if column in COLUMNS:
                setattr(row, column, getattr(body, field))
        session.flush()
        return {"quota": _document(state, project_id, row)}


@router.delete("/lbaas/quotas/{project_id}", status_code=204)
def reset_quota(project_id: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    ctx.require_admin()
    with deps.state(request).transaction() as session:
        row = session.get(m.Quota, project_id)
        if row is not None:
            session.delete(row)
    return Response(status_code=204)
