"""Health monitors: create (one per pool) and update, each one change of
their load balancer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lbaas.api import resources
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.api.resources import HEALTHMONITOR, POOL
from lbaas.db import models as m
from lbaas.errors import BadRequest, Conflict
from lbaas.services import Services, build, changes


def create(services: Services, ctx: Context, body: s.HealthMonitorCreate) -> dict[str, Any]:
    if not body.pool_id:
        raise BadRequest("Mandatory field missing: healthmonitor.pool_id")
    pool_id = body.pool_id
    with services.reading() as session:
        lb_id = resources.get(session, POOL, pool_id, ctx).load_balancer_id

    def make(session: Session, lb: m.LoadBalancer) -> m.HealthMonitor:
        taken = session.scalar(select(m.HealthMonitor.id).where(m.HealthMonitor.pool_id == pool_id))
        if taken:
            raise Conflict(f"Pool {pool_id} already has health monitor {taken}.")
        return build.healthmonitor(services, services.provider(lb.provider), body, pool_id, lb.project_id)

    return changes.create_child(services, ctx, HEALTHMONITOR, lb_id, make)


def update(services: Services, ctx: Context, ident: str, body: s.HealthMonitorUpdate) -> dict[str, Any]:
    def apply(_session: Session, row: m.HealthMonitor, _lb: m.LoadBalancer) -> None:
        changes.set_fields(row, body)
        # The monitor as a whole must still be one a create would accept.
        try:
            s.HealthMonitorCreate.model_validate({
                "type": row.type, "delay": row.delay, "timeout": row.timeout, "max_retries": row.max_retries,
                "max_retries_down": row.max_retries_down, "http_method": row.http_method,
                "url_path": row.url_path, "expected_codes": row.expected_codes,
                "http_version": row.http_version, "domain_name": row.domain_name})
        except s.ValidationError as exc:
            raise BadRequest(s.describe(exc, HEALTHMONITOR.name)) from None

    return changes.update_child(services, ctx, HEALTHMONITOR, ident, apply, body.tags)
