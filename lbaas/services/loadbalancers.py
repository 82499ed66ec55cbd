"""Load balancers: the (possibly fully populated) create, update, delete
and failover, each one change of the graph (``changes``), and the graph as
the status tree reads it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.api import resources
from lbaas.api import schemas as s
from lbaas.api.auth import Context
from lbaas.api.resources import LOADBALANCER
from lbaas.controller.provider import Provider
from lbaas.db import graph, lifecycle
from lbaas.db import models as m
from lbaas.errors import BadRequest, Conflict
from lbaas.services import Services, build, catalogue, changes, positions, quotas


def create(services: Services, ctx: Context, body: s.LoadBalancerCreate) -> tuple[m.LoadBalancer, graph.Graph]:
    """Create the load balancer and everything its body holds; its rows, in hand.  Its
    flavor and availability zone, if named, choose (and must agree with) its provider."""
    provider = services.provider(catalogue.provider_for(services, body))
    rows: list[Any] = []

    def begin(session: Session) -> m.LoadBalancer:
        rows.extend(_rows(session, services, ctx, body, provider))
        return rows[0]

    with changes.committed(services, begin) as (_session, lb):
        pass  # every row was written by ``begin``
    return lb, graph.of_rows(rows)


def _rows(session: Session, services: Services, ctx: Context, body: s.LoadBalancerCreate,
          provider: Provider) -> list[Any]:
    """Every row of a (possibly fully populated) load balancer, added to the session; its own first."""
    project_id = changes.owner(ctx, body)
    anywhere = ctx.is_admin and services.config.api.admin_vip_anywhere
    address, subnet_id = services.subnets.resolve(session, body.vip_address, body.vip_subnet_id, anywhere)
    lb = build.loadbalancer(services, provider, body, project_id, address, subnet_id)
    rows: list[Any] = [lb]
    ports: set[int] = set()
    for listener_body in body.listeners:
        rows += _listener_rows(session, services, provider, listener_body, lb, project_id, ports)
    for pool_body in body.pools:
        rows += build.pool_graph(session, services, provider, pool_body, lb.id, project_id)[1]
    quotas.check_rows(services, session, project_id, rows)
    for row in rows:
        session.add(row)
        session.flush()  # parents before children, for the foreign keys
    for row in rows:
        resources.tag_new(session, row.id, row._tags)
    return rows


def _listener_rows(session: Session, services: Services, provider: Provider, body: s.ListenerCreate,
                   lb: m.LoadBalancer, project_id: str, ports: set[int]) -> list[Any]:
    if body.protocol_port in ports:
        raise Conflict(f"Two listeners of the load balancer use port {body.protocol_port}.")
    ports.add(body.protocol_port)
    if body.default_pool_id is not None:
        raise BadRequest("In a fully populated load balancer, give the listener's default_pool, "
                         "not default_pool_id.")
    build.check_port_free(session, lb.vip_address, body.protocol_port)
    listener = build.listener(services, provider, body, lb, project_id)
    rows: list[Any] = []
    if body.default_pool is not None:
        build.check_protocols(body.protocol, body.default_pool.protocol)
        pool, rows = build.pool_graph(session, services, provider, body.default_pool, lb.id, project_id)
        listener.default_pool_id = pool.id
    return rows + [listener] + _policy_rows(session, services, provider, body, listener, project_id)


def _policy_rows(session: Session, services: Services, provider: Provider, body: s.ListenerCreate,
                 listener: m.Listener, project_id: str) -> list[Any]:
    """The L7 policies of a new listener with their rules (and redirect pools), numbered 1..n."""
    rows: list[Any] = []
    policies: list[m.L7Policy] = []
    for policy_body in body.l7policies:
        if policy_body.redirect_pool_id is not None:
            raise BadRequest("In a fully populated load balancer, give the L7 policy's redirect_pool, "
                             "not redirect_pool_id.")
        policy, made = build.l7policy_graph(session, services, provider, policy_body, listener, project_id)
        policies.append(policy)
        rows += made
    positions.number(policies)
    return rows


def update(services: Services, ctx: Context, lb_id: str, body: s.LoadBalancerUpdate) -> dict[str, Any]:
    with changes.change(services, ctx, lb_id) as (session, lb):
        changes.set_fields(lb, body, skip=("tags", "vip_qos_policy_id"))
        resources.set_tags(session, lb.id, body.tags)
        session.flush()
        document = LOADBALANCER.render_one(session, lb)
    return document


def delete(services: Services, ctx: Context, lb_id: str, cascade: bool) -> None:
    """Delete the load balancer; with ``cascade`` its whole graph, else only when it has no children."""
    with changes.change(services, ctx, lb_id, c.PENDING_DELETE) as (session, _lb):
        if cascade:
            lifecycle.mark_graph_deleting(session, lb_id)
        else:
            _refuse_if_children(session, lb_id)


def _refuse_if_children(session: Session, lb_id: str) -> None:
    for model, label in ((m.Listener, "listeners"), (m.Pool, "pools")):
        if session.scalar(select(model.id).where(model.load_balancer_id == lb_id).limit(1)):
            raise BadRequest(f"Cannot delete Load Balancer {lb_id}: it still has {label}. "
                             "Delete them first or use ?cascade=true.")


def failover(services: Services, ctx: Context, lb_id: str) -> None:
    """Converge the load balancer again from the database (the route authorized put_failover)."""
    with changes.change(services, ctx, lb_id):
        pass


def read_graph(services: Services, ctx: Context, lb_id: str) -> tuple[m.LoadBalancer, graph.Graph]:
    """A visible load balancer and its whole graph (objects on their way out included)."""
    with services.reading() as session:
        lb = resources.get(session, LOADBALANCER, lb_id, ctx)
        return lb, graph.read(session, lb_id)
