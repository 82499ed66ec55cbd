"""/v2/lbaas/healthmonitors"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from lbaas.api import build, changes, deps, openapi, resources
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.errors import BadRequest, Conflict
from lbaas.api.resources import HEALTHMONITOR, POOL
from lbaas.api.routes.common import add_reads
from lbaas.db import models as m

router = APIRouter()
KIND = HEALTHMONITOR
add_reads(router, KIND)


@router.post("/lbaas/healthmonitors", status_code=201,
             openapi_extra=openapi.request_body(KIND.name, s.HealthMonitorCreate))
def create_healthmonitor(request: Request, ctx: Context = Depends(deps.context),
                         document: Any = Depends(deps.body)) -> dict[str, Any]:
    body = s.parse(document, KIND.name, s.HealthMonitorCreate)
    if not body.pool_id:
        raise BadRequest("Mandatory field missing: healthmonitor.pool_id")
    state = deps.state(request)
    with state.reading() as session:
        lb_id = resources.get(session, POOL, body.pool_id, ctx).load_balancer_id

    def make(session: Session, lb: m.LoadBalancer) -> m.HealthMonitor:
        taken = session.scalar(select(m.HealthMonitor.id).where(m.HealthMonitor.pool_id == body.pool_id))
        if taken:
            raise Conflict(f"Pool {body.pool_id} already has health monitor {taken}.")
        return build.healthmonitor(state, state.provider(lb.provider), body, body.pool_id,
                                   lb.project_id)

    return {KIND.name: changes.create_child(state, ctx, KIND, lb_id, make)}


@router.put("/lbaas/healthmonitors/{ident}", openapi_extra=openapi.request_body(KIND.name, s.HealthMonitorUpdate))
def update_healthmonitor(ident: str, request: Request, ctx: Context = Depends(deps.context),
                         document: Any = Depends(deps.body)) -> dict[str, Any]:
    body = s.parse(document, KIND.name, s.HealthMonitorUpdate)
    state = deps.state(request)

    def apply(_session: Session, row: m.HealthMonitor, _lb: m.LoadBalancer) -> None:
        changes.set_fields(row, body)
        try:
            s.HealthMonitorCreate.model_validate({
                "type": row.type, "delay": row.delay, "timeout": row.timeout, "max_retries": row.max_retries,
                "max_retries_down": row.max_retries_down, "http_method": row.http_method,
                "url_path": row.url_path, "expected_codes": row.expected_codes,
                "http_version": row.http_version, "domain_name": row.domain_name})
        except s.ValidationError as exc:
            raise BadRequest(s.describe(exc, KIND.name)) from None

    return {KIND.name: changes.update_child(state, ctx, KIND, ident, apply, body.tags)}


@router.delete("/lbaas/healthmonitors/{ident}", status_code=204)
def delete_healthmonitor(ident: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    changes.delete_child(deps.state(request), ctx, KIND, ident)
    return Response(status_code=204)
