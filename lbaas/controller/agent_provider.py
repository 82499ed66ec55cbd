"""The agent-backed provider: one per environment.

``placed`` binds a new load balancer in the creating transaction;
``dispatch`` routes the change to an agent (the bound one, else a live
peer) and casts "converge X at revision R" to that agent's queue.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.controller.provider import Provider
from lbaas.db import models as m
from lbaas.db.session import Database
from lbaas.messaging import Broker
from lbaas.scheduler import Scheduler

LOG = logging.getLogger(__name__)

WAITING = "waiting for an active agent in environment {env}"


class AgentProvider(Provider):
    def __init__(self, environment: str, db: Database, broker: Broker, scheduler: Scheduler) -> None:
        self.name = environment
        self.description = f"Agents of environment {environment}"
        self.db = db
        self.broker = broker
        self.scheduler = scheduler

    def placed(self, session: Session, lb: m.LoadBalancer) -> None:
        if self.scheduler.place(session, lb) is None:
            lb.status_reason = WAITING.format(env=self.name)

    def dispatch(self, lb_id: str, revision: int) -> None:
        try:
            with self.db.transaction() as session:
                lb = session.get(m.LoadBalancer, lb_id)
                if lb is None:
                    return
                agent = self.scheduler.route(session, lb)
                if agent is None:
                    lb.status_reason = WAITING.format(env=self.name)
                    LOG.warning("load balancer %s: %s", lb_id, lb.status_reason)
                    return
                host = agent.host
            self.broker.cast(c.agent_queue(self.name, host), "converge", loadbalancer_id=lb_id, revision=revision)
        except Exception:  # the pending sweep dispatches again
            LOG.exception("could not dispatch load balancer %s revision %s", lb_id, revision)
