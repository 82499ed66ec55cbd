"""Pools: create (on a load balancer, or as a listener's default pool) and
update, each one change of their load balancer."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.api import resources
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.api.resources import LISTENER, LOADBALANCER, POOL
from lbaas.db import models as m
from lbaas.errors import BadRequest, Conflict
from lbaas.services import Services, build, changes, tls


def create(services: Services, ctx: Context, body: s.PoolCreate) -> dict[str, Any]:
    if body.members or body.healthmonitor:
        raise BadRequest("members and healthmonitor are only accepted in a fully populated load balancer.")
    if not (body.listener_id or body.loadbalancer_id):
        raise BadRequest("A pool needs a listener_id or a loadbalancer_id.")
    lb_id, listener_id = _parent(services, ctx, body)

    def make(session: Session, lb: m.LoadBalancer) -> m.Pool:
        row = build.pool(services, services.provider(lb.provider), body, lb.id, lb.project_id)
        if listener_id:
            _attach(session, row, listener_id)
        return row

    return changes.create_child(services, ctx, POOL, lb_id, make)


def _parent(services: Services, ctx: Context, body: s.PoolCreate) -> tuple[str, str | None]:
    """(load balancer id, listener id or None) of a new pool, both visible to the caller."""
    with services.reading() as session:
        if body.listener_id:
            listener = resources.get(session, LISTENER, body.listener_id, ctx)
            if body.loadbalancer_id and body.loadbalancer_id != listener.load_balancer_id:
                raise BadRequest("listener_id and loadbalancer_id name different load balancers.")
            return listener.load_balancer_id, listener.id
        assert body.loadbalancer_id is not None  # create() asks for one of the two
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


def update(services: Services, ctx: Context, ident: str, body: s.PoolUpdate) -> dict[str, Any]:
    def apply(_session: Session, row: m.Pool, lb: m.LoadBalancer) -> None:
        changes.set_fields(row, body)
        tls.check_pool(row, services.keys)
        services.validate(services.provider(lb.provider), "pool",
                          {"protocol": row.protocol, "lb_algorithm": row.lb_algorithm,
                           "session_persistence": row.session_persistence})

    return changes.update_child(services, ctx, POOL, ident, apply, body.tags)
