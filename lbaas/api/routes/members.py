"""/v2/lbaas/pools/{pool_id}/members, including the batch update."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.api import build, changes, deps, openapi, resources
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.errors import BadRequest, NotFound
from lbaas.api.resources import MEMBER, POOL
from lbaas.api.routes.common import list_document
from lbaas.db import models as m

router = APIRouter()
KIND = MEMBER
BASE = "/lbaas/pools/{pool_id}/members"


def _pool(request: Request, ctx: Context, pool_id: str) -> m.Pool:
    with deps.state(request).reading() as session:
        return resources.get(session, POOL, pool_id, ctx)


def _member(session: Session, ctx: Context, pool_id: str, ident: str) -> m.Member:
    member = resources.get(session, KIND, ident, ctx)
    if member.pool_id != pool_id:
        raise NotFound(KIND.label, ident)
    return member


@router.get(BASE, openapi_extra=openapi.list_query(KIND.model))
def list_members(pool_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    _pool(request, ctx, pool_id)
    return list_document(request, KIND, ctx, select(m.Member).where(m.Member.pool_id == pool_id))


@router.get(BASE + "/{ident}")
def get_member(pool_id: str, ident: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    with deps.state(request).reading() as session:
        return {KIND.name: KIND.render_one(session, _member(session, ctx, pool_id, ident))}


@router.post(BASE, status_code=201, openapi_extra=openapi.request_body(KIND.name, s.MemberCreate))
def create_member(pool_id: str, request: Request, ctx: Context = Depends(deps.context),
                  document: Any = Depends(deps.body)) -> dict[str, Any]:
    body = s.parse(document, KIND.name, s.MemberCreate)
    state = deps.state(request)
    pool = _pool(request, ctx, pool_id)

    def make(_session: Session, lb: m.LoadBalancer) -> m.Member:
        return build.member(state, state.provider(lb.provider), body, pool_id, lb.project_id)

    return {KIND.name: changes.create_child(state, ctx, KIND, pool.load_balancer_id, make)}


@router.put(BASE + "/{ident}", openapi_extra=openapi.request_body(KIND.name, s.MemberUpdate))
def update_member(pool_id: str, ident: str, request: Request, ctx: Context = Depends(deps.context),
                  document: Any = Depends(deps.body)) -> dict[str, Any]:
    body = s.parse(document, KIND.name, s.MemberUpdate)
    state = deps.state(request)
    with state.reading() as session:
        _member(session, ctx, pool_id, ident)

    def apply(_session: Session, row: m.Member, _lb: m.LoadBalancer) -> None:
        changes.set_fields(row, body)

    return {KIND.name: changes.update_child(state, ctx, KIND, ident, apply, body.tags)}


@router.delete(BASE + "/{ident}", status_code=204)
def delete_member(pool_id: str, ident: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    state = deps.state(request)
    with state.reading() as session:
        _member(session, ctx, pool_id, ident)
    changes.delete_child(state, ctx, KIND, ident)
    return Response(status_code=204)


@router.put(BASE, status_code=202, openapi_extra={**openapi.request_body(None, s.MemberBatch),
                                                   **openapi.query(additive_only={"type": "boolean"})})
def batch_update_members(pool_id: str, request: Request, ctx: Context = Depends(deps.context),
                         document: Any = Depends(deps.body)) -> Response:
    """Make the pool's members exactly the given list (``additive_only``: keep the rest).

    Members are matched by address and protocol port: matches are updated,
    the others created, and (unless additive) missing ones deleted, all in
    one change of the load balancer.
    """
    ctx.require_write()
    if not isinstance(document, dict) or set(document) != {"members"}:
        raise BadRequest("The request body must be a JSON object with the key 'members'.")
    batch = s.parse({"batch": document}, "batch", s.MemberBatch)
    additive = resources.bool_param(deps.params(request), "additive_only")
    state = deps.state(request)
    pool = _pool(request, ctx, pool_id)
    with changes.change(state, ctx, pool.load_balancer_id) as (session, lb):
        _apply_batch(session, state, ctx, state.provider(lb.provider), pool, batch.members, additive)
    return Response(status_code=202)


def _apply_batch(session: Session, state: deps.State, ctx: Context, provider: Any, pool: m.Pool,
                 wanted: list[s.MemberFields], additive: bool) -> None:
    existing = {(x.address, x.protocol_port): x for x in
                session.scalars(select(m.Member).where(m.Member.pool_id == pool.id))}
    seen = set()
    created = 0
    for body in wanted:
        key = (body.address, body.protocol_port)
        if key in seen:
            raise BadRequest(f"Member {key[0]} port {key[1]} appears twice in the batch.")
        seen.add(key)
        row = existing.get(key)
        if row is None:
            row = build.member(state, provider, body, pool.id, pool.project_id)
            session.add(row)
            session.flush()
            resources.tag_new(session, row.id, body.tags)
            created += 1
            continue
        for field in ("name", "admin_state_up", "weight", "backup", "monitor_address", "monitor_port"):
            if field in body.model_fields_set:
                setattr(row, field, getattr(body, field) if field != "name" else (body.name or ""))
        row.provisioning_status = c.PENDING_UPDATE
        resources.set_tags(session, row.id, body.tags if "tags" in body.model_fields_set else None)
    changes.check_quota(state, session, pool.project_id, "member", created)
    if not additive:
        for key, row in existing.items():
            if key not in seen:
                row.provisioning_status = c.PENDING_DELETE
