"""Members of a pool: one at a time, or the whole list at once (the batch
update), each one change of the pool's load balancer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.api import resources
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.api.resources import MEMBER, POOL
from lbaas.controller.provider import Provider
from lbaas.db import models as m
from lbaas.errors import BadRequest, NotFound
from lbaas.services import Services, build, changes, quotas

# What a batch may change on a member it matched (address and port are the match).
BATCH_FIELDS = ("name", "admin_state_up", "weight", "backup", "monitor_address", "monitor_port")


def visible(session: Session, ctx: Context, pool_id: str, ident: str) -> m.Member:
    """A member of ``pool_id`` the caller may see, or NotFound."""
    member = resources.get(session, MEMBER, ident, ctx)
    if member.pool_id != pool_id:
        raise NotFound(MEMBER.label, ident)
    return member


def check_pool(services: Services, ctx: Context, pool_id: str) -> m.Pool:
    """The pool, when the caller may see it, or NotFound."""
    with services.reading() as session:
        return resources.get(session, POOL, pool_id, ctx)


def _check_member(services: Services, ctx: Context, pool_id: str, ident: str) -> None:
    with services.reading() as session:
        visible(session, ctx, pool_id, ident)


def create(services: Services, ctx: Context, pool_id: str, body: s.MemberCreate) -> dict[str, Any]:
    pool = check_pool(services, ctx, pool_id)

    def make(_session: Session, lb: m.LoadBalancer) -> m.Member:
        return build.member(services, services.provider(lb.provider), body, pool_id, lb.project_id)

    return changes.create_child(services, ctx, MEMBER, pool.load_balancer_id, make)


def update(services: Services, ctx: Context, pool_id: str, ident: str, body: s.MemberUpdate) -> dict[str, Any]:
    _check_member(services, ctx, pool_id, ident)

    def apply(_session: Session, row: m.Member, _lb: m.LoadBalancer) -> None:
        changes.set_fields(row, body)

    return changes.update_child(services, ctx, MEMBER, ident, apply, body.tags)


def delete(services: Services, ctx: Context, pool_id: str, ident: str) -> None:
    _check_member(services, ctx, pool_id, ident)
    changes.delete_child(services, ctx, MEMBER, ident)


def batch(services: Services, ctx: Context, pool_id: str, wanted: list[s.MemberFields], additive: bool) -> None:
    """Make the pool's members exactly ``wanted`` (``additive``: keep the rest), in one
    change: matched by (address, protocol_port), a match is updated, a new one created,
    a missing one deleted."""
    pool = check_pool(services, ctx, pool_id)
    with changes.change(services, ctx, pool.load_balancer_id) as (session, lb):
        provider = services.provider(lb.provider)
        existing = {(x.address, x.protocol_port): x for x in
                    session.scalars(select(m.Member).where(m.Member.pool_id == pool.id))}
        seen: set[tuple[str, int]] = set()
        for body in wanted:
            key = (body.address, body.protocol_port)
            if key in seen:
                raise BadRequest(f"Member {key[0]} port {key[1]} appears twice in the batch.")
            seen.add(key)
            _apply(session, services, provider, pool, body, existing.get(key))
        quotas.check(services, session, pool.project_id, "member", len(seen - set(existing)))
        if not additive:
            for key, row in existing.items():
                if key not in seen:
                    row.provisioning_status = c.PENDING_DELETE


def _apply(session: Session, services: Services, provider: Provider, pool: m.Pool,
           body: s.MemberFields, row: m.Member | None) -> None:
    """Create the member of ``body``, or update ``row``, its match."""
    if row is None:
        row = build.member(services, provider, body, pool.id, pool.project_id)
        session.add(row)
        session.flush()
        resources.tag_new(session, row.id, body.tags)
        return
    for field in BATCH_FIELDS:
        if field in body.model_fields_set:
            setattr(row, field, getattr(body, field) if field != "name" else (body.name or ""))
    row.provisioning_status = c.PENDING_UPDATE
    resources.set_tags(session, row.id, body.tags if "tags" in body.model_fields_set else None)
