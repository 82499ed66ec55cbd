"""Prometheus metrics: every metric of every lbaas process is defined here, once,
named ``lbaas_...``, on this process's ``REGISTRY``.

Counters and histograms are updated where things happen (the API's requests,
dispatch, sweeps, status updates, converges, broker reconnects). What the
database knows (load balancers by status, the oldest pending change, agents
alive or dead) is never counted per request: ``DatabaseCollector`` computes it
with a few aggregate queries when scraped, so a scrape costs the same for ten
load balancers or a million.

Exposition:

- server: ``GET /metrics`` on the API (``[api] metrics_enabled``, default true),
  without authentication, like a health check: it shows counts and agent host
  names, never a tenant's objects; keep it behind your network policy, or turn
  it off.
- agent: ``[agent] metrics_port`` (0, the default, is off) on
  ``[agent] metrics_host``; an all-in-one shares the server's registry, so the
  API's /metrics shows its agents too.
- appliance: ``GET /metrics`` on its management API, with its token like every
  other route (lbaas.appliance.service).

Updating a metric must not raise: these calls sit on paths that must go on.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, ProcessCollector,
                               generate_latest, start_http_server)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, event, func, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lbaas import constants as c
from lbaas.config import ConfigError
from lbaas.db.clock import naive_utc

if TYPE_CHECKING:
    from fastapi import FastAPI

    from lbaas.db.session import Database
    from lbaas.scheduler import Scheduler

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)

# --- server: API ---------------------------------------------------------------------
# Labelled with the route's template as its router declares it (/lbaas/loadbalancers/{lb_id},
# the same under /v2 and /v2.0), never the path: ids in labels would make a series per object.
UNMATCHED = "unmatched"
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
API_REQUESTS = Counter("lbaas_api_requests", "API requests answered, by route template, method and status.",
                       ("route", "method", "status"), registry=REGISTRY)
API_LATENCY = Histogram("lbaas_api_request_duration_seconds", "Time to answer an API request.",
                        ("route", "method"), registry=REGISTRY,
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))

# --- server: controller --------------------------------------------------------------
DISPATCHES = Counter("lbaas_dispatches", "Converge casts sent to agents.", ("environment",), registry=REGISTRY)
DISPATCH_FAILURES = Counter("lbaas_dispatch_failures", "Dispatches that failed (the pending sweep retries them).",
                            ("environment",), registry=REGISTRY)
REDISPATCHES = Counter("lbaas_redispatches", "Changes the pending sweep dispatched again.", registry=REGISTRY)
PENDING_GIVEN_UP = Counter("lbaas_pending_given_up", "Changes the pending sweep put in ERROR after pending_max_age.",
                           registry=REGISTRY)
STATUS_UPDATES = Counter("lbaas_status_updates", "Status updates from agents, by outcome (stale: older than "
                         "the database's revision, ignored).", ("outcome",), registry=REGISTRY)

# --- messaging -----------------------------------------------------------------------
BROKER_RECONNECTS = Counter("lbaas_broker_reconnects", "Lost broker connections (consumers and publishers) "
                            "that were retried.", ("role",), registry=REGISTRY)
DATABASE_RECONNECTS = Counter("lbaas_database_reconnects", "Database connections dropped as broken (the pool "
                              "opens new ones).", registry=REGISTRY)
REDELIVERIES = Counter("lbaas_message_redeliveries", "Handler runs that failed on a transient error (the "
                       "database away) and were retried.", registry=REGISTRY)
DEAD_LETTERS = Counter("lbaas_dead_letters", "Messages the broker dead-lettered after too many deliveries "
                       "(poison messages); logged and dropped.", ("method",), registry=REGISTRY)

# --- agent ---------------------------------------------------------------------------
CONVERGE_SECONDS = Histogram("lbaas_agent_converge_duration_seconds", "Time a device driver took to converge "
                             "or delete a load balancer.", ("driver", "outcome"), registry=REGISTRY,
                             buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0))
DEVICE_ERRORS = Counter("lbaas_agent_device_errors", "Converges that failed, by driver and kind "
                        "(rejected: the device refused the document; device: it did not answer).",
                        ("driver", "kind"), registry=REGISTRY)

# --- appliance -----------------------------------------------------------------------
APPLIANCE_APPLIES = Counter("lbaas_appliance_applies", "Load balancer documents the appliance applied, by "
                            "outcome (how it applied them, or failed).", ("outcome",), registry=REGISTRY)
APPLIANCE_RESTARTS = Counter("lbaas_appliance_haproxy_restarts", "Dead HAProxy processes the watchdog started "
                             "again.", registry=REGISTRY)


def exposition(registry: CollectorRegistry = REGISTRY) -> Response:
    """The registry in Prometheus' text format."""
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


# --- scrape-time collectors ----------------------------------------------------------

class Forward(Collector):
    """Another registry's metrics, so one registry can serve this process's and more."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()


class DatabaseCollector(Collector):
    """Load balancers and agents as the database sees them, computed at scrape time
    with aggregate queries (cost independent of the number of load balancers, bar the
    per-agent gauges, one series per agent)."""

    def __init__(self, db: Database, scheduler: Scheduler) -> None:
        self.db = db
        self.scheduler = scheduler  # liveness as the scheduler judges it

    def describe(self) -> Iterable[Metric]:
        return []  # computed from the database: do not query at registration

    def collect(self) -> Iterator[Metric]:
        from lbaas.db import models as m  # not at import time: agents and appliances never load it
        with self.db.reading() as session:
            now = self.scheduler.clock.now(session)
            yield self._loadbalancers(session.execute(
                select(m.LoadBalancer.provider, m.LoadBalancer.provisioning_status,
                       m.LoadBalancer.operating_status, func.count())
                .group_by(m.LoadBalancer.provider, m.LoadBalancer.provisioning_status,
                          m.LoadBalancer.operating_status)).all())
            yield self._oldest_pending(now, session.execute(
                select(m.LoadBalancer.provider, func.min(m.LoadBalancer.pending_since))
                .where(m.LoadBalancer.provisioning_status.in_(sorted(c.PENDING_STATUSES)))
                .group_by(m.LoadBalancer.provider)).all())
            alive = m.Agent.heartbeat_at >= self.scheduler.cutoff(session)
            yield from self._agents(session.execute(
                select(m.Agent.environment, m.Agent.group, m.Agent.host, case((alive, 1), else_=0),
                       m.Agent.loadbalancer_count, m.Agent.capacity_score)).all())

    @staticmethod
    def _loadbalancers(rows: Iterable[Any]) -> Metric:
        family = GaugeMetricFamily("lbaas_loadbalancers", "Load balancers by environment (provider), "
                                   "provisioning and operating status.",
                                   labels=("environment", "provisioning_status", "operating_status"))
        for provider, provisioning, operating, count in rows:
            family.add_metric((provider, provisioning, operating), count)
        return family

    @staticmethod
    def _oldest_pending(now: dt.datetime, rows: Iterable[Any]) -> Metric:
        family = GaugeMetricFamily("lbaas_oldest_pending_change_age_seconds", "Age of the oldest change "
                                   "still PENDING, per environment (absent: none pending).",
                                   labels=("environment",))
        for provider, oldest in rows:
            if oldest is not None:
                family.add_metric((provider,), max((now - naive_utc(oldest)).total_seconds(), 0.0))
        return family

    @staticmethod
    def _agents(rows: Iterable[Any]) -> Iterator[Metric]:
        counts = GaugeMetricFamily("lbaas_agents", "Agents by environment, group and liveness.",
                                   labels=("environment", "group", "state"))
        load = GaugeMetricFamily("lbaas_agent_loadbalancers", "Load balancers bound to each agent.",
                                 labels=("environment", "group", "host"))
        score = GaugeMetricFamily("lbaas_agent_capacity_score", "Each agent's capacity score "
                                  "(1.0: full).", labels=("environment", "group", "host"))
        tally: dict[tuple[str, str, str], int] = {}
        for environment, group, host, up, bound, capacity in rows:
            state = "alive" if up else "dead"
            for other in ("alive", "dead"):  # both series exist, so "0 alive" is a value, not a gap
                tally.setdefault((environment, str(group), other), 0)
            tally[(environment, str(group), state)] += 1
            load.add_metric((environment, str(group), host), bound)
            score.add_metric((environment, str(group), host), capacity)
        for labels, count in sorted(tally.items()):
            counts.add_metric(labels, count)
        return iter((counts, load, score))


class HeldCollector(Collector):
    """The number of load balancers an appliance holds, asked at scrape time."""

    def __init__(self, held: Callable[[], int]) -> None:
        self.held = held

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("lbaas_appliance_loadbalancers", "Load balancers this appliance holds.",
                                value=self.held())


def appliance_registry(held: Callable[[], int]) -> CollectorRegistry:
    """What an appliance's /metrics shows: this process's metrics and what it holds."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Forward(REGISTRY))
    registry.register(HeldCollector(held))
    return registry


def server_registry(db: Database, scheduler: Scheduler) -> CollectorRegistry:
    """What a server's /metrics shows: this process's metrics and the database's."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Forward(REGISTRY))
    registry.register(DatabaseCollector(db, scheduler))
    return registry


# --- the API's requests ----------------------------------------------------------------

class RequestMetrics:
    """ASGI middleware counting requests and their latency by route template.
    The template is read from the scope after routing (FastAPI puts the matched
    route there); a request no route matched counts as ``unmatched``, and a method
    outside HTTP's usual ones as ``other``: no label ever holds a caller's string."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"] if scope["method"] in _METHODS else "other"  # a tenant string too
            API_REQUESTS.labels(route, method, str(status)).inc()
            API_LATENCY.labels(route, method).observe(time.perf_counter() - started)


def watch_database(db: Database) -> None:
    """Count the connections ``db``'s pools throw away as broken (a lost server, a failover)."""
    for engine in {db.engine, db.read_engine}:
        if not event.contains(engine, "invalidate", _invalidated):
            event.listen(engine, "invalidate", _invalidated)


def _invalidated(_connection: Any, _record: Any, exception: BaseException | None) -> None:
    if exception is not None:   # None: a deliberate invalidation, not a broken connection
        DATABASE_RECONNECTS.inc()


def install(app: FastAPI, db: Database, scheduler: Scheduler, path: str = "/metrics") -> None:
    """Count the app's requests and serve ``path`` (FastAPI ``app``)."""
    registry = server_registry(db, scheduler)
    app.add_middleware(RequestMetrics)

    def metrics(_request: Request) -> Response:
        return exposition(registry)

    app.add_api_route(path, metrics, methods=["GET"], include_in_schema=False)


# --- the agent's listener --------------------------------------------------------------

class Listener:
    """A process part (start/stop) serving ``REGISTRY`` on host:port over HTTP."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry = REGISTRY) -> None:
        self.host, self.port, self.registry = host, port, registry
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self._server, self._thread = start_http_server(self.port, self.host, self.registry)
        except OSError as exc:  # one line, as a command's refusal should be
            raise ConfigError(f"cannot serve metrics on {self.host}:{self.port}: {exc.strerror}") from None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
