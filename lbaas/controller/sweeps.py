"""Periodic sweeps, safe to run on every server at once.

- Agent liveness: transitions are logged once (a conditional UPDATE
  decides which server logs).
- Pending changes: a change PENDING longer than ``pending_timeout`` is
  dispatched again (to a live peer if the bound agent is dead); the server
  whose conditional UPDATE of ``pending_since`` matches does it.  Older
  than ``pending_max_age``: ERROR, with the reason.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas import metrics
from lbaas.controller.provider import Provider
from lbaas.db import lifecycle
from lbaas.db import models as m
from lbaas.db.session import Database, affected
from lbaas.runtime import JobLog, Timer
from lbaas.scheduler import Scheduler

LOG = logging.getLogger(__name__)
BATCH = 200


class Sweeper:
    """The sweeps, every ``interval`` seconds from a timer of their own (a part: start/stop)."""

    def __init__(self, db: Database, scheduler: Scheduler, providers: Mapping[str, Provider],
                 pending_timeout: float, pending_max_age: float, interval: float) -> None:
        self.db = db
        self.scheduler = scheduler
        self.providers = providers
        self.pending_timeout = dt.timedelta(seconds=pending_timeout)
        self.pending_max_age = dt.timedelta(seconds=pending_max_age)
        self.interval = interval
        self.timer = Timer("sweeper", interval, self.sweep_once, log=LOG)
        self._logs = {step: JobLog(f"sweep of {step}", LOG) for step in ("agents", "pending")}

    def start(self) -> None:
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def sweep_once(self) -> None:
        """One pass; must not raise.  A failing step does not keep the other from running;
        its failures are logged once per state change, as the timer's are."""
        for step in (self.agents, self.pending):
            log = self._logs[step.__name__]
            try:
                step()
            except Exception as exc:
                log.failed(exc)
            else:
                log.succeeded()

    def agents(self) -> None:
        with self.db.transaction() as session:
            cutoff = self.scheduler.cutoff(session)
            for agent in session.scalars(select(m.Agent).where(m.Agent.alive_seen.is_(True),
                                                               m.Agent.heartbeat_at < cutoff)):
                if self._flip(session, agent, alive=False):
                    LOG.warning("agent %s (%s) is dead: no heartbeat since %s; its load balancers' "
                                "work goes to live peers", agent.host, agent.environment, agent.heartbeat_at)
            for agent in session.scalars(select(m.Agent).where(m.Agent.alive_seen.is_(False),
                                                               m.Agent.heartbeat_at >= cutoff)):
                if self._flip(session, agent, alive=True):
                    LOG.info("agent %s (%s) is alive again", agent.host, agent.environment)

    @staticmethod
    def _flip(session: Session, agent: m.Agent, alive: bool) -> bool:
        result = session.execute(update(m.Agent).where(m.Agent.id == agent.id, m.Agent.alive_seen.is_(not alive))
                                 .values(alive_seen=alive).execution_options(synchronize_session=False))
        return affected(result) == 1

    def pending(self) -> None:
        """Re-dispatch or fail changes that have waited too long."""
        with self.db.transaction() as session:
            now = self.scheduler.clock.now(session)
            stale = list(session.execute(
                select(m.LoadBalancer.id, m.LoadBalancer.provider, m.LoadBalancer.revision,
                       m.LoadBalancer.pending_since, m.LoadBalancer.updated_at, m.LoadBalancer.created_at)
                .where(m.LoadBalancer.provisioning_status.in_(c.PENDING_STATUSES),
                       m.LoadBalancer.pending_since < now - self.pending_timeout,
                       m.LoadBalancer.provider.in_(list(self.providers)))
                .order_by(m.LoadBalancer.pending_since).limit(BATCH)))
        for lb_id, provider, revision, since, updated, created in stale:
            assert since is not None  # selected by pending_since < ...
            self._retry_or_fail(lb_id, self.providers[provider], revision, since, updated or created, now)

    def _retry_or_fail(self, lb_id: str, provider: Provider, revision: int, since: dt.datetime,
                       started: dt.datetime, now: dt.datetime) -> None:
        with self.db.transaction() as session:
            claimed = affected(session.execute(
                update(m.LoadBalancer).where(m.LoadBalancer.id == lb_id, m.LoadBalancer.pending_since == since,
                                             m.LoadBalancer.revision == revision)
                .values(pending_since=now).execution_options(synchronize_session=False))) == 1
            if not claimed:
                return  # another server took it, or it moved on
            if now - started > self.pending_max_age:
                lb = session.get_one(m.LoadBalancer, lb_id)  # the claim just matched it
                reason = lb.status_reason or "no agent completed the change"
                lifecycle.complete(session, lb_id, revision,
                                   error=f"gave up after {int(self.pending_max_age.total_seconds())} s: {reason}")
                metrics.PENDING_GIVEN_UP.inc()
                return
        LOG.info("load balancer %s still pending at revision %s: dispatching again", lb_id, revision)
        metrics.REDISPATCHES.inc()
        provider.dispatch(lb_id, revision)
