"""What a server does with the messages on ``lbaas.controller.<env>``.

Every handler is idempotent (messages are delivered at least once) and
commits before it returns (the message is acked after).  Database outages
raise, and the message is delivered again later.

One host, one agent: an agent process has a random instance id.  Its start
report (``start_flag``, sent as a call) claims the row of (environment,
host); a server refuses it while another instance of that row heartbeats
(within ``agent_down_time`` by the database's clock) and accepts it when the
other is silent or stopped cleanly (``agent_stopped`` clears the instance).
A later report from an instance that no longer owns the row is refused, so
two agents never take turns on one row; the refused agent stops.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas import keys, metrics, wire
from lbaas.api import request_id as request_ids
from lbaas.controller.desired import desired_state
from lbaas.db import lifecycle
from lbaas.db import models as m
from lbaas.db.session import Database, affected
from lbaas.db.clock import db_now_expression
from lbaas.errors import BadRequest
from lbaas.scheduler import Scheduler

LOG = logging.getLogger(__name__)

ACCEPTED = wire.Answer(accepted=True, accepts_batches=True)
HOST_TAKEN = ("another agent is already serving host {host} in environment {env} (heartbeat {age:.0f}s ago, "
              "started at {started:%Y-%m-%d %H:%M:%S} UTC); give this agent another [agent] host")
DISPLACED = ("agent instance {instance} no longer serves host {host} in environment {env}: "
             "{owner} took it over")
LOADBALANCERS, LISTENERS, AGENTS = (lifecycle.table(model) for model in (m.LoadBalancer, m.Listener, m.Agent))
# Agent attributes whose column has another name.
AGENT_COLUMNS = {"group": "environment_group"}
# Built once, not per call: the hot handlers' statements.
_LISTENER_STATS = (update(LISTENERS).where(LISTENERS.c.id == bindparam("listener_id"))
                   .values(stats=bindparam("new_stats", type_=LISTENERS.c.stats.type)))


class ControllerHandlers:
    def __init__(self, db: Database, scheduler: Scheduler, key_manager: keys.KeyManager) -> None:
        self.db = db
        self.scheduler = scheduler
        self.key_manager = key_manager

    def handlers(self) -> dict[str, Callable[..., Any]]:
        """Method name -> handler; each takes the fields of its ``wire`` message."""
        return {wire.ReportState.method: self.report_state, wire.AgentStopped.method: self.agent_stopped,
                wire.GetLoadBalancer.method: self.get_loadbalancer,
                wire.GetBoundLoadBalancers.method: self.get_bound_loadbalancers,
                wire.FilterExisting.method: self.filter_existing, wire.UpdateStatus.method: self.update_status,
                wire.UpdateStatuses.method: self.update_statuses, wire.UpdateStats.method: self.update_stats}

    def report_state(self, host: str, environment: str, group: int = 1, device_driver: str = "noop",
                     configurations: wire.Configurations | None = None, capacity_score: float = 0.0,
                     start_flag: bool = False, instance_id: str | None = None,
                     exclusive: bool = True) -> wire.Answer:
        """An agent's state report, stamped with the database's clock.

        Returns ``{"accepted": True}``, or ``{"accepted": False, "reason": ...}``
        when another instance serves ``host`` (see the module's docstring).
        ``exclusive=False`` (agents on an in-process broker) always takes over."""
        configurations = configurations or {}
        values: dict[str, Any] = {"heartbeat_at": db_now_expression(self.db.dialect), "group": group,
                                  "device_driver": device_driver, "configurations": configurations,
                                  "capacity_score": capacity_score,
                                  "device_up": configurations.get("device_state") != c.DEVICE_STATE_DOWN}
        with self.db.transaction() as session:
            if not start_flag and self._beat(session, host, environment, instance_id, values):
                return ACCEPTED
            agent = session.scalars(select(m.Agent).where(m.Agent.environment == environment,
                                                          m.Agent.host == host).with_for_update()).first()
            if agent is None:
                session.add(m.Agent(host=host, environment=environment, started_at=values["heartbeat_at"],
                                    created_at=values["heartbeat_at"], instance_id=instance_id, **values))
                LOG.info("new agent %s in environment %s (group %s)", host, environment, group)
                return ACCEPTED
            if start_flag:
                refusal = None if not exclusive else self._start_refusal(session, agent, instance_id)
                values.update(started_at=values["heartbeat_at"], instance_id=instance_id)
            else:
                refusal = self._beat_refusal(agent, instance_id)
            if refusal is not None:
                LOG.warning("agent report refused: %s", refusal)
                return wire.Answer(accepted=False, reason=refusal)
            _log_device_change(agent, values["device_up"], configurations)
            session.execute(update(m.Agent).where(m.Agent.id == agent.id).values(**values))
        return ACCEPTED

    @staticmethod
    def _beat(session: Session, host: str, environment: str, instance_id: str | None,
              values: dict[str, Any]) -> bool:
        """A heartbeat as one test-and-set UPDATE: true when the row is this instance's
        (or the agent predates instance ids) and its device did not change state, the
        common case; otherwise the caller reads the row and decides (refusal, log line)."""
        where = [AGENTS.c.environment == environment, AGENTS.c.host == host,
                 AGENTS.c.device_up == values["device_up"]]
        if instance_id is not None:
            where.append(AGENTS.c.instance_id == instance_id)
        columns = {AGENT_COLUMNS.get(name, name): value for name, value in values.items()}
        return affected(session.execute(update(AGENTS).where(*where).values(columns))) == 1

    def _start_refusal(self, session: Session, agent: m.Agent, instance_id: str | None) -> str | None:
        """Why a starting instance may not have ``agent``'s row; None when it may."""
        if agent.instance_id is None or agent.instance_id == instance_id:
            return None
        if agent.heartbeat_at < self.scheduler.cutoff(session):
            LOG.info("agent %s (%s) restarted: instance %s takes over from %s, silent since %s", agent.host,
                     agent.environment, instance_id, agent.instance_id, agent.heartbeat_at)
            return None
        age = max(0.0, (self.scheduler.clock.now(session) - agent.heartbeat_at).total_seconds())
        return HOST_TAKEN.format(host=agent.host, env=agent.environment, age=age, started=agent.started_at)

    @staticmethod
    def _beat_refusal(agent: m.Agent, instance_id: str | None) -> str | None:
        """Why a heartbeat may not update ``agent``'s row; None when it may.  Agents
        without an instance id (older versions) are not refused."""
        if instance_id is None or agent.instance_id == instance_id:
            return None
        owner = f"instance {agent.instance_id}" if agent.instance_id else "nobody (it stopped)"
        return DISPLACED.format(instance=instance_id, host=agent.host, env=agent.environment, owner=owner)

    def agent_stopped(self, host: str, environment: str, instance_id: str) -> None:
        """An agent stopped cleanly: its host is free for the next start at once."""
        with self.db.transaction() as session:
            cleared = affected(session.execute(
                update(m.Agent).where(m.Agent.environment == environment, m.Agent.host == host,
                                      m.Agent.instance_id == instance_id)
                .values(instance_id=None).execution_options(synchronize_session=False)))
        if cleared:
            LOG.info("agent %s (%s) stopped", host, environment)

    def get_loadbalancer(self, loadbalancer_id: str) -> wire.DesiredState:
        """The desired state; a certificate that no longer resolves (deleted, expired) ends
        the change in ERROR saying which, and the agent gets an error instead of a document."""
        with self.db.reading() as session:
            try:
                return desired_state(session, loadbalancer_id, self.key_manager)
            except BadRequest as exc:
                revision = session.scalar(select(m.LoadBalancer.revision).where(
                    m.LoadBalancer.id == loadbalancer_id))
                failure = exc
        if revision is not None:
            with self.db.transaction() as session:
                lifecycle.complete(session, loadbalancer_id, revision, error=failure.message,
                                   error_kind=c.ERROR_KIND_REJECTED)
        raise failure

    def get_bound_loadbalancers(self, host: str, environment: str) -> list[wire.Bound]:
        """Every load balancer bound to the agent on ``host``: id, revision,
        provisioning status and, in ERROR, why (``error_kind``)."""
        with self.db.reading() as session:
            rows = session.execute(
                select(m.LoadBalancer.id, m.LoadBalancer.revision, m.LoadBalancer.provisioning_status,
                       m.LoadBalancer.error_kind)
                .join(m.Binding, m.Binding.loadbalancer_id == m.LoadBalancer.id)
                .join(m.Agent, m.Agent.id == m.Binding.agent_id)
                .where(m.Agent.host == host, m.Agent.environment == environment))
            return [wire.Bound(id=ident, revision=revision, status=status, error_kind=kind)
                    for ident, revision, status, kind in rows]

    def filter_existing(self, loadbalancer_ids: list[str]) -> list[str]:
        """Those of the ids that still exist (an agent removes the others from its devices)."""
        with self.db.reading() as session:
            return list(session.scalars(select(m.LoadBalancer.id).where(m.LoadBalancer.id.in_(loadbalancer_ids))))

    def update_status(self, loadbalancer_id: str, revision: int, error: str | None = None,
                      operating: wire.OperatingReport | None = None, error_kind: str | None = None,
                      request_id: str | None = None) -> str:
        """The outcome of one converge (``lifecycle.complete``); returns what happened."""
        report = wire.StatusReport(loadbalancer_id=loadbalancer_id, revision=revision, error=error,
                                   operating=operating, error_kind=error_kind, request_id=request_id)
        return self._complete([report])[0]

    def update_statuses(self, reports: list[wire.StatusReport]) -> list[str]:
        """The outcomes of several converges, as ``update_status`` each, in one transaction;
        what happened to each, in the order of the well-formed reports (a malformed one is
        logged and left out).  Should the batch fail for another reason than the database
        being away, each report is applied on its own, so one bad report costs only itself."""
        valid = [report for report in map(_status_report, reports if isinstance(reports, list) else [reports])
                 if report is not None]
        try:
            return self._complete(valid)
        except _transient_errors():
            raise   # the message is delivered again; applying a report twice is harmless
        except Exception:
            if len(valid) < 2:
                raise
            LOG.exception("a batch of %d status reports failed; applying them one by one", len(valid))
        return [self._complete_alone(report) for report in valid]

    def _complete_alone(self, report: wire.StatusReport) -> str:
        try:
            return self._complete([report])[0]
        except _transient_errors():
            raise
        except Exception:
            LOG.exception("status of load balancer %s at revision %s could not be applied",
                          report["loadbalancer_id"], report["revision"])
            return "failed"

    def _complete(self, reports: list[wire.StatusReport]) -> list[str]:
        """Apply ``reports`` in one transaction; their outcomes, in their order.  The rows are
        locked first, all in one statement and in the order of their ids, and the reports applied
        in that order: two servers applying overlapping batches then wait for each other instead
        of deadlocking, also on the agent rows a deletion updates (locked only after them)."""
        ordered = sorted(range(len(reports)), key=lambda i: reports[i]["loadbalancer_id"])  # stable
        outcomes = [""] * len(reports)
        with self.db.transaction() as session:
            locked = lifecycle.lock_all(session, (report["loadbalancer_id"] for report in reports))
            seen: set[str] = set()
            for i in ordered:
                lb_id = reports[i]["loadbalancer_id"]
                # A second report of one load balancer reads the row the first one wrote.
                row = lifecycle.lock(session, lb_id) if lb_id in seen else locked.get(lb_id)
                seen.add(lb_id)
                outcomes[i] = _complete_locked(session, reports[i], row)
        for report, outcome in zip(reports, outcomes):
            # The line names the API request that made the change (``request_id``).
            with request_ids.bound(report["request_id"]):
                LOG.info("status of load balancer %s at revision %s: %s", report["loadbalancer_id"],
                         report["revision"], outcome)
            metrics.STATUS_UPDATES.labels(outcome).inc()
        return outcomes

    def update_stats(self, loadbalancer_id: str, stats: wire.Counters,
                     listener_stats: dict[str, wire.Counters] | None = None,
                     operating: wire.OperatingReport | None = None) -> None:
        """Counters and operating statuses: only what differs from the stored values is
        written, so a report that changes nothing costs two reads (or one)."""
        with self.db.transaction() as session:
            lb = lifecycle.lock(session, loadbalancer_id, with_stats=True)
            if lb is None:
                return
            changed = {"stats": dict(stats)} if dict(stats) != lb.stats else {}  # the JSON column: a plain dict
            operating = operating if lb.provisioning_status not in c.PENDING_STATUSES else None
            if listener_stats or operating:
                children = lifecycle.read_children(session, lb.id, with_stats=True)
                _write_listener_stats(session, children[m.Listener], listener_stats or {})
                if operating:
                    lifecycle.apply_operating(session, lb, operating, children, lb_values=changed)
                    return
            if changed:
                session.execute(update(LOADBALANCERS).where(LOADBALANCERS.c.id == lb.id).values(changed))


def _complete_locked(session: Session, report: wire.StatusReport, row: Any) -> str:
    """One report's outcome on its row, locked by this transaction (None: the load balancer is gone)."""
    with request_ids.bound(report["request_id"]):   # lifecycle's lines name the request too
        return lifecycle.complete_locked(session, row, report["revision"], error=report["error"],
                                         operating=report["operating"], error_kind=report["error_kind"])


def _status_report(raw: object) -> wire.StatusReport | None:
    """``raw`` as a ``StatusReport`` (fields a newer agent added are dropped), or None, logged,
    when it is not one: a malformed report must not fail the others of its batch."""
    optional = ("error", "error_kind", "request_id")
    if (isinstance(raw, dict) and isinstance(raw.get("loadbalancer_id"), str)
            and type(raw.get("revision")) is int and isinstance(raw.get("operating") or {}, dict)
            and all(isinstance(raw.get(key), str | None) for key in optional)):
        return wire.StatusReport(loadbalancer_id=raw["loadbalancer_id"], revision=raw["revision"],
                                 error=raw.get("error"), operating=raw.get("operating") or None,
                                 error_kind=raw.get("error_kind"), request_id=raw.get("request_id"))
    LOG.warning("dropping a malformed status report: %.200r", raw)
    return None


def _transient_errors() -> tuple[type[BaseException], ...]:
    """The database errors after which a message is delivered again (the controller's)."""
    from lbaas.controller.service import database_errors  # it imports this module
    return database_errors()


def _write_listener_stats(session: Session, listeners: list[lifecycle.Child],
                          reported: dict[str, wire.Counters]) -> None:
    """The counters of this load balancer's listeners that changed, in one executemany."""
    changed = [{"listener_id": row.id, "new_stats": dict(reported[row.id])} for row in listeners
               if row.id in reported and dict(reported[row.id]) != row.stats]
    if changed:
        session.execute(_LISTENER_STATS, changed)


def _log_device_change(agent: m.Agent, device_up: bool, configurations: wire.Configurations) -> None:
    """Log once (under the row lock) when an agent's device goes down or comes back."""
    if device_up == agent.device_up:
        return
    if device_up:
        LOG.info("agent %s (%s): its device answers again", agent.host, agent.environment)
    else:
        LOG.warning("agent %s (%s): its device is down (%s); no new load balancers go there",
                    agent.host, agent.environment, configurations.get("device_error"))
