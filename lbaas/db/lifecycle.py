"""Provisioning lifecycle: test-and-set at the start of a change, and the
outcome of a change at its end.

A change starts with one conditional UPDATE of the load balancer row
(ACTIVE/ERROR -> PENDING_*, revision + 1).  The UPDATE itself takes the
row lock on PostgreSQL and MariaDB, and SQLite runs every write
transaction under BEGIN IMMEDIATE, so of two concurrent changes exactly
one matches the row; the other sees no row and answers 409.

A change ends when a provider reports the revision it reached: an older
revision is ignored, so duplicate, late and reordered reports are harmless.

A failure records its kind (``error_kind``).  A load balancer in ERROR
because its device failed heals: a later success at the same revision (the
agent converges it again once the device answers) makes it and its children
ACTIVE, without a user's change.  Any other ERROR stays until the next change.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, literal, null, select, union_all, update
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas import wire
from lbaas.errors import Immutable, NotFound
from lbaas.db import models as m
from lbaas.db.session import affected

LOG = logging.getLogger(__name__)


def begin_change(session: Session, lb_id: str, project_scope: str | None,
                 status: str = c.PENDING_UPDATE) -> m.LoadBalancer:
    """Move the load balancer to ``status`` and bump its revision, or raise
    NotFound / Immutable (409) when it is missing or already changing."""
    now = m.utcnow()
    stmt = (update(m.LoadBalancer)
            .where(m.LoadBalancer.id == lb_id,
                   m.LoadBalancer.provisioning_status.in_(c.MUTABLE_STATUSES))
            .values(provisioning_status=status, revision=m.LoadBalancer.revision + 1,
                    pending_since=now, updated_at=now, status_reason=None, error_kind=None)
            .execution_options(synchronize_session=False))
    if project_scope is not None:
        stmt = stmt.where(m.LoadBalancer.project_id == project_scope)
    if affected(session.execute(stmt)) == 0:
        lb = session.get(m.LoadBalancer, lb_id)
        if lb is None or (project_scope is not None and lb.project_id != project_scope):
            raise NotFound("Load Balancer", lb_id)
        raise Immutable("Load Balancer", lb_id)
    return session.get_one(m.LoadBalancer, lb_id, populate_existing=True)  # the UPDATE just matched it


def pool_ids(lb_id: str) -> Any:
    return select(m.Pool.id).where(m.Pool.load_balancer_id == lb_id)


def _child_filters(lb_id: str) -> dict[Any, Any]:
    """For each child model, the condition selecting this load balancer's rows."""
    pools = pool_ids(lb_id)
    policies = l7policy_ids(lb_id)
    return {
        m.Listener: m.Listener.load_balancer_id == lb_id,
        m.Pool: m.Pool.load_balancer_id == lb_id,
        m.Member: m.Member.pool_id.in_(pools),
        m.HealthMonitor: m.HealthMonitor.pool_id.in_(pools),
        m.L7Policy: m.L7Policy.listener_id.in_(listener_ids(lb_id)),
        m.L7Rule: m.L7Rule.l7policy_id.in_(policies),
    }


def listener_ids(lb_id: str) -> Any:
    return select(m.Listener.id).where(m.Listener.load_balancer_id == lb_id)


def l7policy_ids(lb_id: str) -> Any:
    return select(m.L7Policy.id).where(m.L7Policy.listener_id.in_(listener_ids(lb_id)))


def mark_graph_deleting(session: Session, lb_id: str) -> None:
    """Cascade delete: every child goes PENDING_DELETE with its load balancer."""
    for model, where in _child_filters(lb_id).items():
        session.execute(update(model).where(where).values(provisioning_status=c.PENDING_DELETE)
                        .execution_options(synchronize_session=False))


def complete(session: Session, lb_id: str, revision: int, *, error: str | None = None,
             operating: wire.OperatingReport | None = None, error_kind: str | None = None) -> str:
    """Apply the outcome of the change that reached ``revision``.

    ``error_kind`` (constants.ERROR_KIND_*) says why ``error`` happened.
    Returns what happened: ``gone``, ``stale``, ``deleted``, ``error``,
    ``active``, ``recovered`` (out of a device's ERROR) or ``operating``
    (only operating statuses refreshed).
    Must be called inside a transaction; idempotent.
    """
    lb = session.get(m.LoadBalancer, lb_id, with_for_update=True, populate_existing=True)
    if lb is None:
        return "gone"
    if revision < lb.revision:
        return "stale"
    if not error and _heals(lb):
        remaining = _activate(session, lb, promote=c.PENDING_STATUSES | {c.ERROR})
        apply_operating(session, lb, _merged(default_operating(session, lb, remaining), operating))
        _l7_operating(session, remaining)
        LOG.info("load balancer %s revision %s converged again after a device failure", lb.id, lb.revision)
        return "recovered"
    if lb.provisioning_status not in c.PENDING_STATUSES:
        if operating:
            apply_operating(session, lb, operating)
        return "operating"
    if error:
        _fail(session, lb, error, error_kind)
        return "error"
    if lb.provisioning_status == c.PENDING_DELETE:
        delete_graph(session, lb)
        return "deleted"
    remaining = _activate(session, lb)
    apply_operating(session, lb, _merged(default_operating(session, lb, remaining), operating))
    _l7_operating(session, remaining)
    return "active"


def _merged(defaults: wire.OperatingReport, reported: wire.OperatingReport | None) -> wire.OperatingReport:
    """What the device reported, and the defaults for what it did not
    (health monitors, objects it has no figures for yet)."""
    if not reported:
        return defaults
    merged = defaults.copy()
    merged["loadbalancer"] = reported.get("loadbalancer", defaults["loadbalancer"])
    for key in OPERATING_KEYS:
        if key in reported:
            merged[key] = {**defaults[key], **reported[key]}
    return merged


def _heals(lb: m.LoadBalancer) -> bool:
    """In ERROR only because its device failed: a success at this revision ends it."""
    return lb.provisioning_status == c.ERROR and lb.error_kind == c.ERROR_KIND_DEVICE


def _fail(session: Session, lb: m.LoadBalancer, reason: str, kind: str | None = None) -> None:
    for model, where in _child_filters(lb.id).items():
        session.execute(update(model).where(where, model.provisioning_status.in_(c.PENDING_STATUSES))
                        .values(provisioning_status=c.ERROR).execution_options(synchronize_session=False))
    lb.provisioning_status = c.ERROR
    lb.status_reason = reason
    lb.error_kind = kind
    lb.pending_since = None
    LOG.warning("load balancer %s revision %s failed: %s", lb.id, lb.revision, reason)


# Children first when deleting: members and monitors of a pool that goes too, rules
# of a policy, policies of a listener.
CHILD_ORDER: tuple[type[m.Member | m.HealthMonitor | m.Pool | m.Listener | m.L7Policy | m.L7Rule], ...] = (
    m.L7Rule, m.L7Policy, m.Member, m.HealthMonitor, m.Pool, m.Listener)


def _children(session: Session, lb_id: str) -> dict[Any, list[Any]]:
    """Every child of the load balancer, per model, as rows of (id,
    provisioning_status, admin_state_up, pool_id), read in one query."""
    filters = _child_filters(lb_id)
    parts = []
    for kind, model in enumerate(CHILD_ORDER):
        # Only a pool's children need their parent: they go when their pool goes.
        parent = model.pool_id if issubclass(model, (m.Member, m.HealthMonitor)) else null()
        parts.append(select(literal(kind).label("kind"), model.id, model.provisioning_status,
                            model.admin_state_up, parent.label("pool_id")).where(filters[model]))
    children: dict[Any, list[Any]] = {model: [] for model in CHILD_ORDER}
    for kind, *row in session.execute(union_all(*parts)):
        children[CHILD_ORDER[kind]].append(row)
    return children


def _activate(session: Session, lb: m.LoadBalancer,
              promote: frozenset[str] = c.PENDING_STATUSES) -> dict[Any, list[Any]]:
    """Delete the children on their way out, make the others in ``promote``
    ACTIVE; returns the children that remain.  Statements only for rows that
    need them: a load balancer without pending children costs one read."""
    children = _children(session, lb.id)
    doomed = {model: [row[0] for row in rows if row[1] == c.PENDING_DELETE] for model, rows in children.items()}
    for model in CHILD_ORDER:
        if doomed[model]:
            _delete_rows(session, model, doomed[model])
    gone_pools = set(doomed[m.Pool])  # their members and monitors went with them
    remaining = {model: [row for row in rows if row[1] != c.PENDING_DELETE and row[3] not in gone_pools]
                 for model, rows in children.items()}
    for model, rows in remaining.items():
        pending = [row[0] for row in rows if row[1] in promote]
        if pending:
            session.execute(update(model).where(model.id.in_(pending)).values(provisioning_status=c.ACTIVE)
                            .execution_options(synchronize_session=False))
    lb.provisioning_status = c.ACTIVE
    lb.pending_since = None
    lb.status_reason = None
    lb.error_kind = None
    return remaining


def _delete_rows(session: Session, model: Any, ids: list[str]) -> None:
    if model is m.Listener:
        _delete_rows(session, m.L7Policy, list(session.scalars(
            select(m.L7Policy.id).where(m.L7Policy.listener_id.in_(ids)))))
    if model is m.L7Policy and ids:
        rules = list(session.scalars(select(m.L7Rule.id).where(m.L7Rule.l7policy_id.in_(ids))))
        session.execute(delete(m.Tag).where(m.Tag.resource_id.in_(rules)))
        session.execute(delete(m.L7Rule).where(m.L7Rule.l7policy_id.in_(ids)))
    if model is m.Pool:
        session.execute(update(m.Listener).where(m.Listener.default_pool_id.in_(ids))
                        .values(default_pool_id=None).execution_options(synchronize_session=False))
        children = list(session.scalars(select(m.Member.id).where(m.Member.pool_id.in_(ids))))
        children += list(session.scalars(select(m.HealthMonitor.id).where(m.HealthMonitor.pool_id.in_(ids))))
        session.execute(delete(m.Tag).where(m.Tag.resource_id.in_(children)))
        session.execute(delete(m.Member).where(m.Member.pool_id.in_(ids)))
        session.execute(delete(m.HealthMonitor).where(m.HealthMonitor.pool_id.in_(ids)))
    session.execute(delete(m.Tag).where(m.Tag.resource_id.in_(ids)))
    session.execute(delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False))


def delete_graph(session: Session, lb: m.LoadBalancer) -> None:
    """Remove the load balancer, its children, tags and binding."""
    pools = list(session.scalars(pool_ids(lb.id)))
    if pools:
        _delete_rows(session, m.Pool, pools)
    listeners = list(session.scalars(select(m.Listener.id).where(m.Listener.load_balancer_id == lb.id)))
    if listeners:
        _delete_rows(session, m.Listener, listeners)
    binding = session.get(m.Binding, lb.id)
    if binding is not None:
        session.execute(update(m.Agent).where(m.Agent.id == binding.agent_id)
                        .values(loadbalancer_count=m.Agent.loadbalancer_count - 1))
        session.delete(binding)
    session.execute(delete(m.Tag).where(m.Tag.resource_id == lb.id))
    session.delete(lb)
    session.flush()


def default_operating(session: Session, lb: m.LoadBalancer,
                      children: dict[Any, list[Any]] | None = None) -> wire.OperatingReport:
    """Operating statuses when a provider reports none (noop): everything
    that is up is ONLINE; members of unmonitored pools NO_MONITOR.
    ``children``: rows as ``_children`` reads them, if already at hand."""
    if children is None:
        children = _children(session, lb.id)
    monitored = {pool for _ident, _status, _up, pool in children[m.HealthMonitor]}

    def up(rows: list[Any]) -> dict[str, str]:
        return {ident: c.ONLINE if is_up else c.OFFLINE for ident, _status, is_up, _pool in rows}

    return wire.OperatingReport(
        loadbalancer=c.ONLINE if lb.admin_state_up else c.OFFLINE,
        listeners=up(children[m.Listener]), pools=up(children[m.Pool]),
        members={ident: (c.OFFLINE if not is_up else c.ONLINE if pool in monitored else c.NO_MONITOR)
                 for ident, _status, is_up, pool in children[m.Member]},
        healthmonitors=up(children[m.HealthMonitor]))


OPERATING_KEYS: dict[wire.OperatingKind, Any] = {"listeners": m.Listener, "pools": m.Pool,
                                                  "members": m.Member, "healthmonitors": m.HealthMonitor}


def apply_operating(session: Session, lb: m.LoadBalancer, statuses: wire.OperatingReport) -> None:
    """Write operating statuses (a ``wire.OperatingReport``, keys possibly missing from older agents).

    Ids that are not part of this load balancer are ignored.
    """
    if statuses.get("loadbalancer") in c.OPERATING_STATUSES:
        lb.operating_status = statuses["loadbalancer"]
    filters = _child_filters(lb.id)
    for key, model in OPERATING_KEYS.items():
        by_status: dict[str, list[str]] = {}
        for ident, status in (statuses.get(key) or {}).items():
            if status in c.OPERATING_STATUSES:
                by_status.setdefault(status, []).append(ident)
        for status, ids in by_status.items():
            session.execute(update(model).where(filters[model], model.id.in_(ids),
                                                model.operating_status != status)
                            .values(operating_status=status).execution_options(synchronize_session=False))


def _l7_operating(session: Session, children: dict[Any, list[Any]]) -> None:
    """L7 policies and rules are ONLINE when up, OFFLINE when not: devices report no
    figures for them, so the status follows admin_state_up (as Octavia's)."""
    for model in (m.L7Policy, m.L7Rule):
        by_status: dict[str, list[str]] = {}
        for ident, _status, is_up, _parent in children[model]:
            by_status.setdefault(c.ONLINE if is_up else c.OFFLINE, []).append(ident)
        for status, ids in by_status.items():
            session.execute(update(model).where(model.id.in_(ids), model.operating_status != status)
                            .values(operating_status=status).execution_options(synchronize_session=False))
