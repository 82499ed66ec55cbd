"""What a server does with the messages on ``lbaas.controller.<env>``.

Every handler is idempotent (messages are delivered at least once) and
commits before it returns (the message is acked after).  Database outages
raise, and the message is delivered again later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from lbaas.controller.desired import desired_state
from lbaas.db import lifecycle
from lbaas.db import models as m
from lbaas.db.session import Database
from lbaas.scheduler import Scheduler, db_now_expression

LOG = logging.getLogger(__name__)


class ControllerHandlers:
    def __init__(self, db: Database, scheduler: Scheduler) -> None:
        self.db = db
        self.scheduler = scheduler

    def handlers(self) -> dict[str, Callable[..., Any]]:
        return {"report_state": self.report_state, "get_loadbalancer": self.get_loadbalancer,
                "get_bound_loadbalancers": self.get_bound_loadbalancers,
                "filter_existing": self.filter_existing, "update_status": self.update_status,
                "update_stats": self.update_stats}

    def report_state(self, host: str, environment: str, group: int = 1, device_driver: str = "noop",
                     configurations: dict | None = None, capacity_score: float = 0.0,
                     start_flag: bool = False) -> None:
        """An agent's heartbeat: upsert its row, stamped with the database's clock."""
        with self.db.transaction() as session:
            now = db_now_expression(self.db.dialect)
            agent = session.scalars(select(m.Agent).where(m.Agent.environment == environment,
                                                          m.Agent.host == host).with_for_update()).first()
            if agent is None:
                session.add(m.Agent(host=host, environment=environment, group=group,
                                    device_driver=device_driver, configurations=configurations or {},
                                    capacity_score=capacity_score, heartbeat_at=now, started_at=now,
                                    created_at=now))
                LOG.info("new agent %s in environment %s (group %s)", host, environment, group)
                return
            values: dict[str, Any] = {"heartbeat_at": now, "group": group, "device_driver": device_driver,
                                      "configurations": configurations or {}, "capacity_score": capacity_score}
            if start_flag:
                values["started_at"] = now
            session.execute(update(m.Agent).where(m.Agent.id == agent.id).values(**values))

    def get_loadbalancer(self, loadbalancer_id: str) -> dict[str, Any]:
        with self.db.reading() as session:
            return desired_state(session, loadbalancer_id)

    def get_bound_loadbalancers(self, host: str, environment: str) -> list[dict[str, Any]]:
        """Every load balancer bound to the agent on ``host``, with its revision."""
        with self.db.reading() as session:
            rows = session.execute(
                select(m.LoadBalancer.id, m.LoadBalancer.revision)
                .join(m.Binding, m.Binding.loadbalancer_id == m.LoadBalancer.id)
                .join(m.Agent, m.Agent.id == m.Binding.agent_id)
                .where(m.Agent.host == host, m.Agent.environment == environment))
            return [{"id": ident, "revision": revision} for ident, revision in rows]

    def filter_existing(self, loadbalancer_ids: list[str]) -> list[str]:
        """Those of the ids that still exist (an agent removes the others from its devices)."""
        with self.db.reading() as session:
            return list(session.scalars(select(m.LoadBalancer.id).where(m.LoadBalancer.id.in_(loadbalancer_ids))))

    def update_status(self, loadbalancer_id: str, revision: int, error: str | None = None,
                      operating: dict | None = None) -> str:
        with self.db.transaction() as session:
            outcome = lifecycle.complete(session, loadbalancer_id, revision, error=error, operating=operating)
        LOG.debug("status of %s at revision %s: %s", loadbalancer_id, revision, outcome)
        return outcome

    def update_stats(self, loadbalancer_id: str, stats: dict, listener_stats: dict | None = None,
                     operating: dict | None = None) -> None:
        with self.db.transaction() as session:
            lb = session.get(m.LoadBalancer, loadbalancer_id, with_for_update=True)
            if lb is None:
                return
            lb.stats = stats
            for listener_id, values in (listener_stats or {}).items():
                session.execute(update(m.Listener).where(m.Listener.id == listener_id,
                                                         m.Listener.load_balancer_id == lb.id)
                                .values(stats=values))
            if operating and lb.provisioning_status not in ("PENDING_CREATE", "PENDING_UPDATE", "PENDING_DELETE"):
                lifecycle.apply_operating(session, lb, operating)
