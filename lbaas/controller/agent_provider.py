"""The agent-backed provider: one per environment.

``route`` runs in the transaction of the change: it picks the agent (the
bound one, else a live peer; a new load balancer is bound there and then);
``dispatch`` casts "converge X at revision R" to that agent's queue after
the commit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas import metrics, wire
from lbaas.api import request_id
from lbaas.controller.provider import Provider, Unsupported
from lbaas.db import models as m
from lbaas.db.session import Database
from lbaas.messaging import Broker
from lbaas.scheduler import Scheduler

LOG = logging.getLogger(__name__)

WAITING = "waiting for an active agent in environment {env} (a new load balancer needs one whose device answers)"

# Which request field each reported capability list limits, per kind.
CAPABILITY_FIELDS = {
    "listener": (("protocol", "protocols"),),
    "pool": (("protocol", "protocols"), ("lb_algorithm", "lb_algorithms")),
    "healthmonitor": (("type", "health_monitors"),),
}
CAPABILITY_TTL = 10.0


GROUP = {"group": "The agent group (environment_group_number) that places and serves the load balancer."}


class AgentProvider(Provider):
    flavor_capabilities = GROUP
    availability_zone_capabilities = GROUP

    def __init__(self, environment: str, db: Database, broker: Broker, scheduler: Scheduler) -> None:
        self.name = environment
        self.description = f"Agents of environment {environment}"
        self.db = db
        self.broker = broker
        self.scheduler = scheduler
        self._cache: tuple[float, dict[str, list[str]]] = (-CAPABILITY_TTL, {})
        self._cache_lock = threading.Lock()

    def validate(self, kind: str, fields: Mapping[str, Any]) -> None:
        """Refuse what the environment's devices cannot do, as their agents report it."""
        capabilities = self.capabilities()
        if not capabilities:
            return
        kinds = capabilities.get("kinds")  # reported by drivers that lack some kinds of object
        if kinds is not None and kind not in kinds:
            raise Unsupported(f"{kind} objects; supported: {', '.join(kinds)}")
        for field, key in CAPABILITY_FIELDS.get(kind, ()):
            value = fields.get(field)
            if value is not None and key in capabilities and value not in capabilities[key]:
                raise Unsupported(f"{kind} {field} {value}; supported: {', '.join(capabilities[key])}")
        persistence = fields.get("session_persistence") or {}
        supported = capabilities.get("session_persistence")
        if persistence and supported is not None and persistence.get("type") not in supported:
            raise Unsupported(f"session persistence {persistence.get('type')}; supported: {', '.join(supported)}")

    def capabilities(self) -> dict[str, list[str]]:
        """What every agent of the environment can do (the intersection), cached briefly."""
        with self._cache_lock:
            stamp, cached = self._cache
            if time.monotonic() - stamp < CAPABILITY_TTL:
                return cached
        with self.db.reading() as session:
            reports = [conf.get("capabilities") for conf in session.scalars(
                select(m.Agent.configurations).where(m.Agent.environment == self.name))]
        merged: dict[str, list[str]] = {}
        for report in filter(None, reports):
            for key, values in report.items():
                merged[key] = [v for v in merged.get(key, values) if v in values]
        with self._cache_lock:
            self._cache = (time.monotonic(), merged)
        return merged

    def route(self, session: Session, lb: m.LoadBalancer) -> str | None:
        """The host of the agent that does this change (binding a new load
        balancer on the way); None, with the reason on the row, if none is active."""
        agent = self.scheduler.route(session, lb)
        if agent is None:
            lb.status_reason = WAITING.format(env=self.name)
            LOG.warning("load balancer %s: %s", lb.id, lb.status_reason)
            return None
        return agent.host

    def dispatch(self, lb_id: str, revision: int, target: str | None = None) -> None:
        try:
            if target is None:
                target = self._route_now(lb_id)
            if target is not None:
                # Sweeps and rebinds dispatch outside a request: no id then.
                message = wire.Converge(loadbalancer_id=lb_id, revision=revision, request_id=request_id.current())
                self.broker.cast(c.agent_queue(self.name, target), message.method, **message.args())
                LOG.info("load balancer %s revision %s: converge sent to agent %s", lb_id, revision, target)
                metrics.DISPATCHES.labels(self.name).inc()
        except Exception:  # the pending sweep dispatches again
            metrics.DISPATCH_FAILURES.labels(self.name).inc()
            LOG.exception("could not dispatch load balancer %s revision %s", lb_id, revision)

    def _route_now(self, lb_id: str) -> str | None:
        with self.db.transaction() as session:
            lb = session.get(m.LoadBalancer, lb_id)
            return None if lb is None else self.route(session, lb)
