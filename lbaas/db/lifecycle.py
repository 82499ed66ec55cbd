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

The end of a change and the statistics reports are a server's hot path, so
they are written in SQLAlchemy Core with statements built once: the load
balancer's row is locked and read (``lock``), its children read in one
query (``read_children``), and only rows whose statuses actually change are
written, one UPDATE per table and outcome.  Every writer of a child's
statuses holds the load balancer's row lock (or SQLite's one writer), so what
was read stays true until the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import BindParameter, String, Table, bindparam, delete, literal, null, select, union_all, update
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


def table(model: Any) -> Table:
    """The Core table of a model (typed as a Table, unlike ``__table__``)."""
    return m.Base.metadata.tables[model.__tablename__]


_LB = table(m.LoadBalancer)
_LISTENER, _POOL, _POLICY = table(m.Listener), table(m.Pool), table(m.L7Policy)


def pool_ids(lb_id: Any) -> Any:
    return select(_POOL.c.id).where(_POOL.c.load_balancer_id == lb_id)


def listener_ids(lb_id: Any) -> Any:
    return select(_LISTENER.c.id).where(_LISTENER.c.load_balancer_id == lb_id)


def l7policy_ids(lb_id: Any) -> Any:
    return select(_POLICY.c.id).where(_POLICY.c.listener_id.in_(listener_ids(lb_id)))


def _child_filters(lb_id: Any) -> dict[Any, Any]:
    """For each child model, the condition selecting this load balancer's rows
    (``lb_id``: an id, or a bind parameter in statements built once)."""
    pools = pool_ids(lb_id)
    return {
        m.Listener: _LISTENER.c.load_balancer_id == lb_id,
        m.Pool: _POOL.c.load_balancer_id == lb_id,
        m.Member: table(m.Member).c.pool_id.in_(pools),
        m.HealthMonitor: table(m.HealthMonitor).c.pool_id.in_(pools),
        m.L7Policy: _POLICY.c.listener_id.in_(listener_ids(lb_id)),
        m.L7Rule: table(m.L7Rule).c.l7policy_id.in_(l7policy_ids(lb_id)),
    }


def mark_graph_deleting(session: Session, lb_id: str) -> None:
    """Cascade delete: every child goes PENDING_DELETE with its load balancer."""
    for model, where in _child_filters(lb_id).items():
        session.execute(update(table(model)).where(where).values(provisioning_status=c.PENDING_DELETE))


# --- the load balancer's row and its children, read for an outcome ----------------

_LB_ID: BindParameter[str] = bindparam("lb_id", type_=String())
_LOCKED = select(_LB.c.id, _LB.c.revision, _LB.c.provisioning_status, _LB.c.error_kind, _LB.c.admin_state_up,
                 _LB.c.operating_status)
_LOCK = _LOCKED.where(_LB.c.id == _LB_ID).with_for_update()
_LOCK_WITH_STATS = _LOCK.add_columns(_LB.c.stats)
# PostgreSQL locks the rows after sorting them, InnoDB as it walks the primary key: both in id order.
_LOCK_ALL = (_LOCKED.where(_LB.c.id.in_(bindparam("lb_ids", expanding=True))).order_by(_LB.c.id)
             .with_for_update())


def lock(session: Session, lb_id: str, *, with_stats: bool = False) -> Any:
    """The load balancer's row, locked until the commit (its ``stats`` too if asked), or None."""
    return session.execute(_LOCK_WITH_STATS if with_stats else _LOCK, {"lb_id": lb_id}).first()


def lock_all(session: Session, lb_ids: Iterable[str]) -> dict[str, Any]:
    """The rows of those of the load balancers that exist, by id, locked until the commit, in
    one statement and in the order of their ids: two transactions locking overlapping sets
    this way wait for each other instead of deadlocking."""
    ids = sorted(set(lb_ids))
    return {row.id: row for row in session.execute(_LOCK_ALL, {"lb_ids": ids})} if ids else {}


# Children first when deleting: members and monitors of a pool that goes too, rules
# of a policy, policies of a listener.
CHILD_ORDER: tuple[type[m.Member | m.HealthMonitor | m.Pool | m.Listener | m.L7Policy | m.L7Rule], ...] = (
    m.L7Rule, m.L7Policy, m.Member, m.HealthMonitor, m.Pool, m.Listener)
# The column naming each kind's parent within the graph (the listener and pool have none).
PARENTS = {m.Member: "pool_id", m.HealthMonitor: "pool_id", m.L7Policy: "listener_id", m.L7Rule: "l7policy_id"}


class Child(NamedTuple):
    """One child row as ``read_children`` reads it (``stats``: a listener's, when asked)."""

    id: str
    provisioning_status: str
    admin_state_up: bool
    parent: str | None
    operating_status: str
    stats: dict | None


Children = dict[Any, list[Child]]


def _children_query(with_stats: bool) -> Any:
    filters = _child_filters(_LB_ID)
    parts = []
    # Listeners (the last kind) first: PostgreSQL types a union's column after its first
    # parts, and NULL stats before the listeners' JSON ones would make it text.
    for kind, model in reversed(list(enumerate(CHILD_ORDER))):
        t = table(model)
        parent = t.c[PARENTS[model]] if model in PARENTS else null()
        stats = t.c.stats if model is m.Listener and with_stats else null()
        parts.append(select(literal(kind).label("kind"), t.c.id, t.c.provisioning_status, t.c.admin_state_up,
                            parent.label("parent"), t.c.operating_status, stats.label("stats"))
                     .where(filters[model]))
    return union_all(*parts)


_CHILDREN = {False: _children_query(False), True: _children_query(True)}


def read_children(session: Session, lb_id: str, *, with_stats: bool = False) -> Children:
    """Every child of the load balancer, per model (``CHILD_ORDER``), read in one query."""
    children: Children = {model: [] for model in CHILD_ORDER}
    for kind, *row in session.execute(_CHILDREN[with_stats], {"lb_id": lb_id}):
        children[CHILD_ORDER[kind]].append(Child(*row))
    return children


# --- the outcome of a change ------------------------------------------------------

def complete(session: Session, lb_id: str, revision: int, *, error: str | None = None,
             operating: wire.OperatingReport | None = None, error_kind: str | None = None) -> str:
    """Apply the outcome of the change that reached ``revision``.

    ``error_kind`` (constants.ERROR_KIND_*) says why ``error`` happened.
    Returns what happened: ``gone``, ``stale``, ``deleted``, ``error``,
    ``active``, ``recovered`` (out of a device's ERROR) or ``operating``
    (only operating statuses refreshed).
    Must be called inside a transaction; idempotent.
    """
    return complete_locked(session, lock(session, lb_id), revision, error=error, operating=operating,
                           error_kind=error_kind)


def complete_locked(session: Session, lb: Any, revision: int, *, error: str | None = None,
                    operating: wire.OperatingReport | None = None, error_kind: str | None = None) -> str:
    """``complete`` for a row ``lock`` or ``lock_all`` read in this transaction (None: it is
    gone), and that nothing wrote since."""
    if lb is None:
        return "gone"
    if revision < lb.revision:
        return "stale"
    if not error and _heals(lb):
        _activate(session, lb, operating, promote=c.PENDING_STATUSES | {c.ERROR})
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
        delete_graph(session, lb.id)
        return "deleted"
    _activate(session, lb, operating)
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


def _heals(lb: Any) -> bool:
    """In ERROR only because its device failed: a success at this revision ends it."""
    return lb.provisioning_status == c.ERROR and lb.error_kind == c.ERROR_KIND_DEVICE


def _fail(session: Session, lb: Any, reason: str, kind: str | None = None) -> None:
    children = read_children(session, lb.id)
    failed = {model: {row.id: c.ERROR for row in rows if row.provisioning_status in c.PENDING_STATUSES}
              for model, rows in children.items()}
    write_children(session, children, provisioning=failed)
    session.execute(update(_LB).where(_LB.c.id == lb.id).values(
        provisioning_status=c.ERROR, status_reason=reason, error_kind=kind, pending_since=None))
    LOG.warning("load balancer %s revision %s failed: %s", lb.id, lb.revision, reason)


def _activate(session: Session, lb: Any, reported: wire.OperatingReport | None,
              promote: frozenset[str] = c.PENDING_STATUSES) -> None:
    """Delete the children on their way out, make the others in ``promote`` ACTIVE and
    write the operating statuses (``reported`` over the defaults).  Statements only for
    rows that need them: a load balancer without pending children costs two reads and
    the UPDATE of its own row."""
    children = read_children(session, lb.id)
    doomed = {model: [row.id for row in rows if row.provisioning_status == c.PENDING_DELETE]
              for model, rows in children.items()}
    for model in CHILD_ORDER:
        if doomed[model]:
            _delete_rows(session, model, doomed[model])
    gone: set[str] = set()
    for model in reversed(CHILD_ORDER):   # parents first: their children went with them
        gone.update(row.id for row in children[model]
                    if row.provisioning_status == c.PENDING_DELETE or row.parent in gone)
    remaining = {model: [row for row in rows if row.id not in gone] for model, rows in children.items()}
    promoted = {model: {row.id: c.ACTIVE for row in rows if row.provisioning_status in promote}
                for model, rows in remaining.items()}
    statuses = _merged(default_operating(lb, remaining), reported)
    write_children(session, remaining, provisioning=promoted,
                   operating={**_reported(statuses), **_l7_operating(remaining)})
    lb_status = statuses["loadbalancer"]
    session.execute(update(_LB).where(_LB.c.id == lb.id).values(
        provisioning_status=c.ACTIVE, pending_since=None, status_reason=None, error_kind=None,
        operating_status=lb_status if lb_status in c.OPERATING_STATUSES else lb.operating_status))


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


def delete_graph(session: Session, lb_id: str) -> None:
    """Remove the load balancer, its children, tags and binding."""
    pools = list(session.scalars(pool_ids(lb_id)))
    if pools:
        _delete_rows(session, m.Pool, pools)
    listeners = list(session.scalars(listener_ids(lb_id)))
    if listeners:
        _delete_rows(session, m.Listener, listeners)
    binding = table(m.Binding)
    agent_id = session.scalar(select(binding.c.agent_id).where(binding.c.loadbalancer_id == lb_id))
    if agent_id is not None:
        agents = table(m.Agent)
        session.execute(update(agents).where(agents.c.id == agent_id)
                        .values(loadbalancer_count=agents.c.loadbalancer_count - 1))
        session.execute(delete(binding).where(binding.c.loadbalancer_id == lb_id))
    session.execute(delete(m.Tag).where(m.Tag.resource_id == lb_id))
    session.execute(delete(_LB).where(_LB.c.id == lb_id))


# --- operating statuses -------------------------------------------------------------

OPERATING_KEYS: dict[wire.OperatingKind, Any] = {"listeners": m.Listener, "pools": m.Pool,
                                                  "members": m.Member, "healthmonitors": m.HealthMonitor}
# New statuses of children, per model: id -> status.
Statuses = dict[Any, dict[str, str]]


def default_operating(lb: Any, children: Children) -> wire.OperatingReport:
    """Operating statuses when a provider reports none (noop): everything
    that is up is ONLINE; members of unmonitored pools NO_MONITOR.
    ``lb``: its row; ``children``: as ``read_children`` reads them."""
    monitored = {row.parent for row in children[m.HealthMonitor]}

    def up(rows: list[Child]) -> dict[str, str]:
        return {row.id: c.ONLINE if row.admin_state_up else c.OFFLINE for row in rows}

    return wire.OperatingReport(
        loadbalancer=c.ONLINE if lb.admin_state_up else c.OFFLINE,
        listeners=up(children[m.Listener]), pools=up(children[m.Pool]),
        members={row.id: (c.OFFLINE if not row.admin_state_up else c.ONLINE if row.parent in monitored
                          else c.NO_MONITOR) for row in children[m.Member]},
        healthmonitors=up(children[m.HealthMonitor]))


def _reported(statuses: wire.OperatingReport) -> Statuses:
    """The valid statuses of a report (keys possibly missing from older agents), per model."""
    return {model: {ident: status for ident, status in (statuses.get(key) or {}).items()
                    if status in c.OPERATING_STATUSES}
            for key, model in OPERATING_KEYS.items()}


def _l7_operating(children: Children) -> Statuses:
    """L7 policies and rules are ONLINE when up, OFFLINE when not: devices report no
    figures for them, so the status follows admin_state_up (as Octavia's)."""
    return {model: {row.id: c.ONLINE if row.admin_state_up else c.OFFLINE for row in children[model]}
            for model in (m.L7Policy, m.L7Rule)}


def apply_operating(session: Session, lb: Any, statuses: wire.OperatingReport,
                    children: Children | None = None, lb_values: dict[str, Any] | None = None) -> None:
    """Write operating statuses (a ``wire.OperatingReport``, keys possibly missing from
    older agents) that differ from the stored ones.  ``lb``: its locked row (``lock``);
    ``children``: as ``read_children`` reads them, if already at hand; ``lb_values``:
    other columns of the load balancer's row to write in the same UPDATE.

    Ids that are not part of this load balancer are ignored.
    """
    write_children(session, read_children(session, lb.id) if children is None else children,
                   operating=_reported(statuses))
    values = dict(lb_values or {})
    status = statuses.get("loadbalancer")
    if status in c.OPERATING_STATUSES and status != lb.operating_status:
        values["operating_status"] = status
    if values:
        session.execute(update(_LB).where(_LB.c.id == lb.id).values(**values))


def write_children(session: Session, children: Children, *, provisioning: Statuses | None = None,
                   operating: Statuses | None = None) -> None:
    """Give ``children`` their new statuses where they differ from what was read: one
    UPDATE per table and pair of (provisioning, operating) statuses, none when nothing
    changes.  Ids of other load balancers' objects are never among ``children``."""
    for model, rows in children.items():
        new_provisioning = (provisioning or {}).get(model, {})
        new_operating = (operating or {}).get(model, {})
        if not (new_provisioning or new_operating):
            continue
        changed: dict[tuple[str, str], list[str]] = {}
        for row in rows:
            target = (new_provisioning.get(row.id, row.provisioning_status),
                      new_operating.get(row.id, row.operating_status))
            if target != (row.provisioning_status, row.operating_status):
                changed.setdefault(target, []).append(row.id)
        t = table(model)
        for (provisioning_status, operating_status), ids in changed.items():
            session.execute(update(t).where(t.c.id.in_(ids)).values(
                provisioning_status=provisioning_status, operating_status=operating_status))
