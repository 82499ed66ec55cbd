"""Writes that every kind shares: the lifecycle of one change.

validate -> test-and-set the load balancer (409 if it is changing) ->
write the object PENDING_* -> commit -> hand the change to the provider.
Everything between the test-and-set and the commit is one transaction, so
a failure anywhere writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.api import resources
from lbaas.api.auth import Context
from lbaas.api.deps import State
from lbaas.errors import BadRequest, QuotaExceeded
from lbaas.api.resources import Kind
from lbaas.db import lifecycle
from lbaas.db import models as m

QUOTA_KINDS = {"load_balancer": m.LoadBalancer, "listener": m.Listener, "pool": m.Pool,
               "member": m.Member, "health_monitor": m.HealthMonitor}


def owner(ctx: Context, fields: Any) -> str:
    """The project a new object belongs to: a body's project_id only counts for admins."""
    requested = getattr(fields, "project_id", None) or getattr(fields, "tenant_id", None)
    if requested and requested != ctx.project_id and not ctx.is_admin:
        raise BadRequest("project_id may only be set by an administrator.")
    return requested or ctx.project_id


def loadbalancer_of(session: Session, kind: Kind, obj: Any) -> str:
    if kind.model in (m.Member, m.HealthMonitor):
        return session.scalar(select(m.Pool.load_balancer_id).where(m.Pool.id == obj.pool_id))
    return obj.load_balancer_id


def quota_limit(state: State, session: Session, project_id: str, kind: str) -> int:
    # Read once per transaction: a missing row is not kept by the identity map.
    cache = session.info.setdefault("quota_rows", {})
    if project_id not in cache:
        cache[project_id] = session.get(m.Quota, project_id)
    row = cache[project_id]
    value = getattr(row, kind) if row is not None else None
    if value is None:
        value = getattr(state.config.quotas, f"default_{kind}_quota")
    return value


def check_quota(state: State, session: Session, project_id: str, kind: str, adding: int = 1) -> None:
    if adding <= 0:
        return
    limit = quota_limit(state, session, project_id, kind)
    if limit < 0:
        return
    model = QUOTA_KINDS[kind]
    used = session.scalar(select(func.count()).select_from(model).where(model.project_id == project_id))
    if used + adding > limit:
        raise QuotaExceeded(kind)


@contextmanager
def change(state: State, ctx: Context, lb_id: str,
           status: str = c.PENDING_UPDATE) -> Iterator[tuple[Session, m.LoadBalancer]]:
    """One change of a load balancer's graph: test-and-set, the caller's
    writes, commit, then the hand-over to the provider."""
    ctx.require_write()
    with state.transaction() as session:
        lb = lifecycle.begin_change(session, lb_id, ctx.scope(None), status)
        yield session, lb
        provider = state.provider(lb.provider)
        revision, target = lb.revision, provider.route(session, lb)
    provider.dispatch(lb_id, revision, target)


def _located(state: State, ctx: Context, kind: Kind, ident: str) -> tuple[str, str]:
    """(load balancer id, provisioning status) of a visible object, or NotFound."""
    with state.reading() as session:
        obj = resources.get(session, kind, ident, ctx)
        return loadbalancer_of(session, kind, obj), obj.provisioning_status


def create_child(state: State, ctx: Context, kind: Kind, lb_id: str,
                 build: Callable[[Session, m.LoadBalancer], Any]) -> dict[str, Any]:
    """Create one object under ``lb_id``; ``build`` returns it (not yet added)."""
    with change(state, ctx, lb_id) as (session, lb):
        obj = build(session, lb)
        check_quota(state, session, obj.project_id, kind.quota)
        obj.provisioning_status = c.PENDING_CREATE
        session.add(obj)
        session.flush()
        resources.tag_new(session, obj.id, getattr(obj, "_tags", None))
        document = kind.render_one(session, obj)
    return document


def update_child(state: State, ctx: Context, kind: Kind, ident: str,
                 apply: Callable[[Session, Any, m.LoadBalancer], None],
                 tags: list[str] | None) -> dict[str, Any]:
    """Change one object in place; ``apply`` sets its new fields."""
    lb_id, _ = _located(state, ctx, kind, ident)
    with change(state, ctx, lb_id) as (session, lb):
        obj = resources.get(session, kind, ident, ctx)
        apply(session, obj, lb)
        obj.provisioning_status = c.PENDING_UPDATE
        obj.updated_at = m.utcnow()
        resources.set_tags(session, obj.id, tags)
        session.flush()
        document = kind.render_one(session, obj)
    return document


def delete_child(state: State, ctx: Context, kind: Kind, ident: str) -> None:
    lb_id, status = _located(state, ctx, kind, ident)
    if status == c.PENDING_DELETE:
        return  # already on its way out
    with change(state, ctx, lb_id) as (session, _lb):
        obj = resources.get(session, kind, ident, ctx)
        obj.provisioning_status = c.PENDING_DELETE
        _cascade_pool_delete(session, obj)


def _cascade_pool_delete(session: Session, obj: Any) -> None:
    """A pool takes its members and monitor with it."""
    if not isinstance(obj, m.Pool):
        return
    for model in (m.Member, m.HealthMonitor):
        for child in session.scalars(select(model).where(model.pool_id == obj.id)):
            child.provisioning_status = c.PENDING_DELETE


# What a null in an update body sets a field to, where the column holds no null.
CLEARED_TO: dict[str, Any] = {"name": "", "description": "", "insert_headers": {}}


def set_fields(obj: Any, body: Any, skip: tuple[str, ...] = ("tags",)) -> None:
    """Copy the fields a client gave in an update body onto ``obj``."""
    for field in body.model_fields_set:
        if field in skip:
            continue
        value = getattr(body, field)
        if value is None and field in CLEARED_TO:
            value = CLEARED_TO[field]
        if hasattr(value, "model_dump"):
            value = value.model_dump(exclude_none=True)
        setattr(obj, field, value)
