"""The lifecycle of one change, shared by every kind and by the create of
a load balancer.

validate -> test-and-set the load balancer (409 if it is changing) ->
write the objects PENDING_* -> commit -> hand the load balancer's id and
revision to its provider.  Everything before the commit is one
transaction, so a failure anywhere writes nothing; the hand-over comes only
after the commit, so an agent never converges to a state that was rolled
back.  Every write ends in ``committed``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.api import resources
from lbaas.api.auth import Context
from lbaas.api.resources import Kind
from lbaas.db import lifecycle
from lbaas.db import models as m
from lbaas.errors import BadRequest, Conflict
from lbaas.services import Services, positions, quotas

# What a null in an update body sets a field to, where the column holds no null.
CLEARED_TO: dict[str, Any] = {"name": "", "description": "", "insert_headers": {}, "sni_container_refs": [],
                              "client_authentication": c.CLIENT_AUTH_NONE, "hsts_include_subdomains": False,
                              "hsts_preload": False}


def owner(ctx: Context, fields: Any) -> str:
    """The project a new object belongs to: a body's project_id only counts for admins."""
    requested = getattr(fields, "project_id", None) or getattr(fields, "tenant_id", None)
    if requested and requested != ctx.project_id and not ctx.is_admin:
        raise BadRequest("project_id may only be set by an administrator.")
    return requested or ctx.project_id


@contextmanager
def committed(services: Services, begin: Callable[[Session], m.LoadBalancer]
              ) -> Iterator[tuple[Session, m.LoadBalancer]]:
    """The tail of every write.  ``begin`` opens it and returns the load
    balancer (the test-and-set of an existing one, or the rows of a new one);
    the caller writes; then commit, then the hand-over to the provider."""
    with services.transaction() as session:
        lb = begin(session)
        yield session, lb
        provider = services.provider(lb.provider)
        lb_id, revision, target = lb.id, lb.revision, provider.route(session, lb)
    provider.dispatch(lb_id, revision, target)


@contextmanager
def change(services: Services, ctx: Context, lb_id: str,
           status: str = c.PENDING_UPDATE) -> Iterator[tuple[Session, m.LoadBalancer]]:
    """One change of an existing load balancer's graph: test-and-set, the caller's writes, the tail.
    The route has authorized the action; another project's load balancer is NotFound unless admin."""

    def begin(session: Session) -> m.LoadBalancer:
        return lifecycle.begin_change(session, lb_id, ctx.writable_project(), status)

    with committed(services, begin) as opened:
        yield opened


def loadbalancer_of(session: Session, kind: Kind, obj: Any) -> str:
    # The parent is there (foreign key) unless a delete raced us: then None, which the
    # change's test-and-set answers with NotFound.
    if kind.model in (m.Member, m.HealthMonitor):
        return cast(str, session.scalar(select(m.Pool.load_balancer_id).where(m.Pool.id == obj.pool_id)))
    if kind.model is m.L7Policy:
        return cast(str, session.scalar(select(m.Listener.load_balancer_id)
                                        .where(m.Listener.id == obj.listener_id)))
    if kind.model is m.L7Rule:
        return cast(str, session.scalar(
            select(m.Listener.load_balancer_id).join(m.L7Policy, m.L7Policy.listener_id == m.Listener.id)
            .where(m.L7Policy.id == obj.l7policy_id)))
    return obj.load_balancer_id


def _located(services: Services, ctx: Context, kind: Kind, ident: str) -> tuple[str, str]:
    """(load balancer id, provisioning status) of a visible object, or NotFound."""
    with services.reading() as session:
        obj = resources.get(session, kind, ident, ctx)
        return loadbalancer_of(session, kind, obj), obj.provisioning_status


def create_child(services: Services, ctx: Context, kind: Kind, lb_id: str,
                 build: Callable[[Session, m.LoadBalancer], Any]) -> dict[str, Any]:
    """Create one object under ``lb_id``; ``build`` returns it (not yet added)."""
    with change(services, ctx, lb_id) as (session, lb):
        obj = build(session, lb)
        quotas.check(services, session, obj.project_id, kind.quota)
        obj.provisioning_status = c.PENDING_CREATE
        session.add(obj)
        session.flush()
        resources.tag_new(session, obj.id, getattr(obj, "_tags", None))
        document = kind.render_one(session, obj)
    return document


def update_child(services: Services, ctx: Context, kind: Kind, ident: str,
                 apply: Callable[[Session, Any, m.LoadBalancer], None],
                 tags: list[str] | None) -> dict[str, Any]:
    """Change one object in place; ``apply`` sets its new fields."""
    lb_id, _ = _located(services, ctx, kind, ident)
    with change(services, ctx, lb_id) as (session, lb):
        obj = resources.get(session, kind, ident, ctx)
        apply(session, obj, lb)
        obj.provisioning_status = c.PENDING_UPDATE
        obj.updated_at = m.utcnow()
        resources.set_tags(session, obj.id, tags)
        session.flush()
        document = kind.render_one(session, obj)
    return document


def delete_child(services: Services, ctx: Context, kind: Kind, ident: str) -> None:
    lb_id, status = _located(services, ctx, kind, ident)
    if status == c.PENDING_DELETE:
        return  # already on its way out
    with change(services, ctx, lb_id) as (session, _lb):
        obj = resources.get(session, kind, ident, ctx)
        obj.provisioning_status = c.PENDING_DELETE
        _cascade_delete(session, obj)


def _cascade_delete(session: Session, obj: Any) -> None:
    """A pool takes its members and monitor with it (refused while an L7 policy redirects
    to it, as Octavia); a listener its L7 policies; a policy its rules, closing its gap."""
    if isinstance(obj, m.Pool):
        _refuse_redirect_target(session, obj.id)
        _mark_deleting(session, m.Member, m.Member.pool_id == obj.id)
        _mark_deleting(session, m.HealthMonitor, m.HealthMonitor.pool_id == obj.id)
    elif isinstance(obj, m.Listener):
        policies = select(m.L7Policy.id).where(m.L7Policy.listener_id == obj.id)
        _mark_deleting(session, m.L7Rule, m.L7Rule.l7policy_id.in_(policies))
        _mark_deleting(session, m.L7Policy, m.L7Policy.listener_id == obj.id)
    elif isinstance(obj, m.L7Policy):
        _mark_deleting(session, m.L7Rule, m.L7Rule.l7policy_id == obj.id)
        positions.arrange(session, obj.listener_id)


def _mark_deleting(session: Session, model: Any, where: Any) -> None:
    for row in session.scalars(select(model).where(where)):
        row.provisioning_status = c.PENDING_DELETE


def _refuse_redirect_target(session: Session, pool_id: str) -> None:
    policy = session.scalar(select(m.L7Policy.id).where(
        m.L7Policy.redirect_pool_id == pool_id, m.L7Policy.provisioning_status != c.PENDING_DELETE).limit(1))
    if policy is not None:
        raise Conflict(f"Pool {pool_id} is in use by L7 policy {policy}; change or delete the policy first.")


def set_fields(obj: Any, body: Any, skip: tuple[str, ...] = ("tags",)) -> None:
    """Copy the fields a client gave in an update body onto ``obj``."""
    for field in body.model_fields_set:
        if field in skip:
            continue
        value = getattr(body, field)
        if value is None and field in CLEARED_TO:
            value = CLEARED_TO[field]
        if value is None and not _nullable(obj, field):
            raise BadRequest(f"Invalid input for {field}: it may not be null.")
        if hasattr(value, "model_dump"):
            value = value.model_dump(exclude_none=True)
        setattr(obj, field, value)


def _nullable(obj: Any, field: str) -> bool:
    column = type(obj).__table__.columns.get(field)
    return column is None or bool(column.nullable)
