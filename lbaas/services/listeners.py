"""Listeners: create and update, each one change of their load balancer."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from lbaas.api import resources
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.api.resources import LISTENER, LOADBALANCER
from lbaas.db import models as m
from lbaas.errors import BadRequest
from lbaas.services import Services, build, changes, tls


def create(services: Services, ctx: Context, body: s.ListenerCreate) -> dict[str, Any]:
    if body.default_pool is not None:
        raise BadRequest("default_pool is only accepted in a fully populated load balancer; "
                         "use default_pool_id.")
    if not body.loadbalancer_id:
        raise BadRequest("Mandatory field missing: listener.loadbalancer_id")

    def make(session: Session, lb: m.LoadBalancer) -> m.Listener:
        provider = services.provider(lb.provider)
        build.check_port_free(session, lb.vip_address, body.protocol_port)
        row = build.listener(services, provider, body, lb, lb.project_id)
        build.check_default_pool(session, row, body.default_pool_id)
        return row

    # A load balancer the caller cannot see is a 404, as if it did not exist.
    with services.reading() as session:
        resources.get(session, LOADBALANCER, body.loadbalancer_id, ctx)
    return changes.create_child(services, ctx, LISTENER, body.loadbalancer_id, make)


def update(services: Services, ctx: Context, ident: str, body: s.ListenerUpdate) -> dict[str, Any]:
    def apply(session: Session, row: m.Listener, lb: m.LoadBalancer) -> None:
        if body.insert_headers is not None or body.allowed_cidrs is not None:
            body.insert_headers = build.check_listener_extras(
                body.insert_headers, body.allowed_cidrs, row.protocol, lb.vip_address)
        if "default_pool_id" in body.model_fields_set:
            build.check_default_pool(session, row, body.default_pool_id)
        changes.set_fields(row, body)
        tls.check_listener(row, services.keys)
        services.validate(services.provider(lb.provider), "listener",
                          {"protocol": row.protocol, "protocol_port": row.protocol_port,
                           **body.model_dump(exclude_unset=True, exclude={"tags"})})

    return changes.update_child(services, ctx, LISTENER, ident, apply, body.tags)
