"""The agent-backed provider: one per environment.

``route`` runs in the transaction of the change: it picks the agent (the
bound one, else a live peer; a new load balancer is bound there and then);
``dispatch`` casts "converge X at revision R" to that agent's queue after
the commit.

The cast of an update also carries the desired state it was made from
(``carried_state``), read after the commit, so that the agent need not ask
a server for it: only when it names no certificate (private keys never sit
in the durable agent queues) and its JSON is at most
``CARRIED_STATE_MAX_BYTES``.  Creates and deletes are never carried: an
agent applies a carried state only over an older revision its device holds
(``lbaas.agent.service``), so a stale cast cannot bring back a deleted load
balancer.  Failing to build it only costs the agent a fetch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas import keys, metrics, wire
from lbaas.api import request_id
from lbaas.controller.desired import desired_state
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
                message = wire.Converge(loadbalancer_id=lb_id, revision=revision, request_id=request_id.current(),
                                        desired=self._carried(lb_id, revision))
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

    def _carried(self, lb_id: str, revision: int) -> wire.Present | None:
        """``carried_state``; None (the agent fetches) when building it fails."""
        try:
            return carried_state(self.db, lb_id, revision)
        except Exception as exc:  # the cast still goes out: the agent asks a server instead
            LOG.warning("load balancer %s revision %s: desired state not carried: %s", lb_id, revision, exc)
            return None


class NamesCertificate(Exception):
    """The desired state being built names a certificate: it is not carried."""


class _NoKeys(keys.KeyManager):
    """Resolves nothing: building a desired state with it stops at the first certificate,
    so key material is never even loaded for a cast."""

    def certificate(self, ref: str, project_id: str) -> keys.Certificate:
        raise NamesCertificate()

    def ca_certificates(self, ref: str, project_id: str) -> str:
        raise NamesCertificate()

    def crl(self, ref: str, project_id: str) -> str:
        raise NamesCertificate()


def carried_state(db: Database, lb_id: str, revision: int) -> wire.Present | None:
    """The desired state the cast of the change at ``revision`` carries, or None (the agent
    fetches it): only an update's (a create's would not be used: no device holds the load
    balancer yet), still at ``revision``, naming no certificate, at most
    ``CARRIED_STATE_MAX_BYTES`` of JSON."""
    if revision == c.FIRST_REVISION:
        return None  # a create: decided without reading anything
    with db.reading() as session:
        try:
            desired = desired_state(session, lb_id, _NoKeys())
        except NamesCertificate:
            return None
    if desired["deleted"] is True or desired["revision"] != revision:
        return None  # a delete, or a newer change that makes its own cast
    return None if len(orjson.dumps(desired)) > c.CARRIED_STATE_MAX_BYTES else desired
