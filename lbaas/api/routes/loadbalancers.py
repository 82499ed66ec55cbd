"""/v2/lbaas/loadbalancers: CRUD, the fully populated create, status tree, stats."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.api import build, changes, deps, openapi, resources, views
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.api.deps import State
from lbaas.errors import BadRequest, Conflict
from lbaas.api.resources import LOADBALANCER
from lbaas.db import lifecycle
from lbaas.db import models as m

router = APIRouter()
KIND = LOADBALANCER


@router.get("/lbaas/loadbalancers", openapi_extra=openapi.list_query(KIND.model))
def list_loadbalancers(request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    state = deps.state(request)
    with state.reading() as session:
        page = resources.list_page(session, KIND, ctx, deps.params(request), deps.page_url(request),
                                   state.config.api.pagination_max_limit)
    return {KIND.plural: page.items, f"{KIND.plural}_links": page.links}


@router.get("/lbaas/loadbalancers/{lb_id}")
def get_loadbalancer(lb_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    with deps.state(request).reading() as session:
        return {KIND.name: KIND.render_one(session, resources.get(session, KIND, lb_id, ctx))}


@router.post("/lbaas/loadbalancers", status_code=201,
             openapi_extra=openapi.request_body(KIND.name, s.LoadBalancerCreate))
def create_loadbalancer(request: Request, ctx: Context = Depends(deps.context),
                        document: Any = Depends(deps.body)) -> dict[str, Any]:
    ctx.require_write()
    body = s.parse(document, KIND.name, s.LoadBalancerCreate)
    state = deps.state(request)
    provider = state.provider(body.provider)
    with state.transaction() as session:
        lb, rows = _graph(session, state, ctx, body, provider)
        target = provider.route(session, lb)
        response = _render_graph(lb, rows, full=bool(body.listeners or body.pools))
        revision = lb.revision
    provider.dispatch(lb.id, revision, target)
    return {KIND.name: response}


def _graph(session: Session, state: State, ctx: Context, body: s.LoadBalancerCreate,
           provider: Any) -> tuple[m.LoadBalancer, list[Any]]:
    """Every row of a (possibly fully populated) load balancer, added to the session."""
    project_id = changes.owner(ctx, body)
    anywhere = ctx.is_admin and state.config.api.admin_vip_anywhere
    address, subnet_id = state.subnets.resolve(session, body.vip_address, body.vip_subnet_id, anywhere)
    state.validate(provider, "loadbalancer", body.model_dump(exclude={"listeners", "pools"}))
    lb = m.LoadBalancer(**build._common(body, project_id), provider=provider.name, vip_address=address,
                        vip_subnet_id=subnet_id, vip_network_id=body.vip_network_id or subnet_id,
                        vip_port_id=body.vip_port_id, flavor_id=body.flavor_id,
                        availability_zone=body.availability_zone, revision=1, pending_since=m.utcnow())
    lb._tags = body.tags
    rows: list[Any] = [lb]
    ports: set[int] = set()
    for listener_body in body.listeners:
        rows += _listener_graph(session, state, provider, listener_body, lb, project_id, ports)
    for pool_body in body.pools:
        rows += build.pool_graph(session, state, provider, pool_body, lb.id, project_id)[1]
    _check_graph_quota(state, session, project_id, rows)
    session.add(lb)
    session.flush()  # parents before children, for the foreign keys
    for row in rows[1:]:
        session.add(row)
        session.flush()
    for row in rows:
        resources.tag_new(session, row.id, row._tags)
    return lb, rows


def _listener_graph(session: Session, state: State, provider: Any, body: s.ListenerCreate,
                    lb: m.LoadBalancer, project_id: str, ports: set[int]) -> list[Any]:
    if body.protocol_port in ports:
        raise Conflict(f"Two listeners of the load balancer use port {body.protocol_port}.")
    ports.add(body.protocol_port)
    if body.default_pool_id is not None:
        raise BadRequest("In a fully populated load balancer, give the listener's default_pool, "
                         "not default_pool_id.")
    build.check_port_free(session, lb.vip_address, body.protocol_port)
    listener = build.listener(state, provider, body, lb, project_id)
    rows: list[Any] = []
    if body.default_pool is not None:
        build.check_protocols(body.protocol, body.default_pool.protocol)
        pool, rows = build.pool_graph(session, state, provider, body.default_pool, lb.id, project_id)
        listener.default_pool_id = pool.id
    return rows + [listener]


def _check_graph_quota(state: State, session: Session, project_id: str, rows: list[Any]) -> None:
    for kind, model in changes.QUOTA_KINDS.items():
        changes.check_quota(state, session, project_id, kind, sum(isinstance(r, model) for r in rows))


def _render_graph(lb: m.LoadBalancer, rows: list[Any], full: bool) -> dict[str, Any]:
    """The created graph's documents.  Every row was made in this
    transaction, so their relations are known: no query, same documents
    (id lists in the database's (created_at, id) order, tags sorted)."""
    def tags(row: Any) -> list[str]:
        return sorted(dict.fromkeys(getattr(row, "_tags", None) or ()))

    def ids(objs: list[Any]) -> list[str]:
        return [r.id for r in sorted(objs, key=lambda r: (r.created_at, r.id))]

    listeners = [r for r in rows if isinstance(r, m.Listener)]
    pools = [r for r in rows if isinstance(r, m.Pool)]
    document = views.loadbalancer(lb, {"tags": tags(lb), "listeners": ids(listeners), "pools": ids(pools)})
    if not full:
        return document
    # As Octavia: a fully populated create answers with the full graph.
    document["listeners"] = [views.listener(x, {"tags": tags(x)}) for x in listeners]
    pool_docs = []
    for pool in pools:
        members = [r for r in rows if isinstance(r, m.Member) and r.pool_id == pool.id]
        monitor = next((r for r in rows if isinstance(r, m.HealthMonitor) and r.pool_id == pool.id), None)
        pool_doc = views.pool(pool, {"tags": tags(pool), "members": ids(members),
                                     "listeners": [x.id for x in listeners if x.default_pool_id == pool.id],
                                     "healthmonitor_id": monitor.id if monitor else None})
        pool_doc["members"] = [views.member(x, {"tags": tags(x)}) for x in members]
        pool_doc["healthmonitor"] = views.healthmonitor(monitor, {"tags": tags(monitor)}) if monitor else None
        pool_docs.append(pool_doc)
    document["pools"] = pool_docs
    return document


@router.put("/lbaas/loadbalancers/{lb_id}", openapi_extra=openapi.request_body(KIND.name, s.LoadBalancerUpdate))
def update_loadbalancer(lb_id: str, request: Request, ctx: Context = Depends(deps.context),
                        document: Any = Depends(deps.body)) -> dict[str, Any]:
    body = s.parse(document, KIND.name, s.LoadBalancerUpdate)
    with changes.change(deps.state(request), ctx, lb_id) as (session, lb):
        changes.set_fields(lb, body, skip=("tags", "vip_qos_policy_id"))
        resources.set_tags(session, lb.id, body.tags)
        session.flush()
        response = KIND.render_one(session, lb)
    return {KIND.name: response}


@router.delete("/lbaas/loadbalancers/{lb_id}", status_code=204,
               openapi_extra=openapi.query(cascade={"type": "boolean"}))
def delete_loadbalancer(lb_id: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    cascade = resources.bool_param(deps.params(request), "cascade")
    with changes.change(deps.state(request), ctx, lb_id, c.PENDING_DELETE) as (session, _lb):
        if cascade:
            lifecycle.mark_graph_deleting(session, lb_id)
        else:
            _refuse_if_children(session, lb_id)
    return Response(status_code=204)


def _refuse_if_children(session: Session, lb_id: str) -> None:
    for model, label in ((m.Listener, "listeners"), (m.Pool, "pools")):
        if session.scalar(select(model.id).where(model.load_balancer_id == lb_id).limit(1)):
            raise BadRequest(f"Cannot delete Load Balancer {lb_id}: it still has {label}. "
                             "Delete them first or use ?cascade=true.")


@router.put("/lbaas/loadbalancers/{lb_id}/failover", status_code=202)
def failover_loadbalancer(lb_id: str, request: Request, ctx: Context = Depends(deps.context)) -> Response:
    """Converge the load balancer again from the database (admin only)."""
    ctx.require_admin()
    with changes.change(deps.state(request), ctx, lb_id):
        pass
    return Response(status_code=202)


@router.get("/lbaas/loadbalancers/{lb_id}/status")
@router.get("/lbaas/loadbalancers/{lb_id}/statuses")
def status_tree(lb_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    with deps.state(request).reading() as session:
        lb = resources.get(session, KIND, lb_id, ctx)
        return {"statuses": {"loadbalancer": _tree(session, lb)}}


def _statuses(obj: Any, **extra: Any) -> dict[str, Any]:
    return {"id": obj.id, "name": obj.name, "provisioning_status": obj.provisioning_status,
            "operating_status": obj.operating_status, **extra}


def _tree(session: Session, lb: m.LoadBalancer) -> dict[str, Any]:
    pools = {p.id: p for p in session.scalars(select(m.Pool).where(m.Pool.load_balancer_id == lb.id))}
    members: dict[str, list[m.Member]] = {}
    for member in session.scalars(select(m.Member).where(m.Member.pool_id.in_(list(pools)))
                                  .order_by(m.Member.created_at, m.Member.id)):
        members.setdefault(member.pool_id, []).append(member)
    monitors = {hm.pool_id: hm for hm in session.scalars(
        select(m.HealthMonitor).where(m.HealthMonitor.pool_id.in_(list(pools))))}

    def pool_doc(pool: m.Pool) -> dict[str, Any]:
        doc = _statuses(pool, members=[_statuses(x, address=x.address, protocol_port=x.protocol_port)
                                       for x in members.get(pool.id, [])])
        if pool.id in monitors:
            hm = monitors[pool.id]
            doc["health_monitor"] = _statuses(hm, type=hm.type)
        return doc

    listeners = list(session.scalars(select(m.Listener).where(m.Listener.load_balancer_id == lb.id)
                                     .order_by(m.Listener.created_at, m.Listener.id)))
    used = {x.default_pool_id for x in listeners}
    return _statuses(lb, listeners=[
        _statuses(x, pools=[pool_doc(pools[x.default_pool_id])] if x.default_pool_id in pools else [])
        for x in listeners
    ], pools=[pool_doc(p) for pid, p in pools.items() if pid not in used])


@router.get("/lbaas/loadbalancers/{lb_id}/stats")
def loadbalancer_stats(lb_id: str, request: Request, ctx: Context = Depends(deps.context)) -> dict[str, Any]:
    with deps.state(request).reading() as session:
        return {"stats": views.stats(resources.get(session, KIND, lb_id, ctx).stats)}
