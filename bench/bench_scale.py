"""12. Scale simulation: 1,000 agents and 100,000 load balancers against two real servers.

Two ``lbaas server`` processes (``lbaas.testing.cluster``) on a private PostgreSQL database
and a RabbitMQ vhost of their own serve 10 environments; 1,000 simulated agents (100 per
environment, ``bench/simagents.py``, in one process of their own) register, heartbeat every
``report_interval`` spread evenly, and answer every converge as a noop agent does.  Then:

1. seed, before the agents start: their 1,000 rows, then 100,000 load balancers (a third with
   a listener, pool and two members; bench/seed.py) spread over ~1,000 projects and the 10
   environments, bound with core inserts to those rows (a project on one agent per
   environment, one in twenty elsewhere; ``agent.loadbalancer_count`` kept in step); the
   agents' start reports then take their rows over, as a restarted fleet's would;
2. ``idle`` s of heartbeats alone (server CPU and PostgreSQL commits per heartbeat); then a
   steady mix for ``duration`` s at ``rate`` API calls/s (creates, member adds, load balancer
   updates, GETs, lists; admin token, servers alternated): latency per kind and the time from
   each write's request to ACTIVE (read from the database by one observer every 20 ms), with
   the load it causes: heartbeats answered/s, PostgreSQL transactions and tuples/s
   (``pg_stat_database``; ``pg_stat_statements`` is not loaded on the shared server, so
   index + sequential scans/s from ``pg_stat_user_tables`` stand in for read statements), CPU
   of each server (``/proc/<pid>/stat``), messages/s on the broker (counted by the simulator:
   every message crosses it once), controller queue depth at the end;
3. kill ``kill_fraction`` of the agents of every environment at once (heartbeats and
   consumers stop) and change one load balancer on each of ``kill_changes`` of theirs right
   away: time until the servers declare them dead (the sweep flips ``alive_seen``) and until
   every change is ACTIVE (done by a live peer: the dead agents' consumers are gone);
4. in-process against the same database, servers still running: the scheduler's decisions
   (``Scheduler.place`` / ``route``, as benchmark 4), a heartbeat write (``report_state``),
   a status write (``update_status`` of a change), both sweeps, and one controller queue's
   throughput through ``lbaas.messaging`` (one publisher thread, one consumer).

``python -m bench.bench_scale [--quick] [--agents N] [--lbs N] [--duration S]``; ``--quick``:
100 agents, 5,000 load balancers, 15 s, shorter liveness settings (about two minutes on 2 busy cores).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import glob
import itertools
import random
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from sqlalchemy import create_engine, event, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bench import seed
from bench.common import (UNLIMITED_QUOTAS, DbObserver, Failed, Result, client, median, pids_named,
                          proc_cpu_seconds, summary_ms, temp_database)
from bench.simagents import SimulatorProcess, fleet
from lbaas import constants as c
from lbaas.controller.handlers import ControllerHandlers
from lbaas.controller.provider import NoopProvider, Provider
from lbaas.controller.sweeps import Sweeper
from lbaas.db import models as m
from lbaas.db.clock import db_now_expression
from lbaas.db.session import Database
from lbaas.keys.local import LocalKeyManager, LocalStore
from lbaas.messaging import Broker
from lbaas.scheduler import Scheduler
from lbaas.testing.cluster import Cluster

NAME = "scale"
ENVIRONMENTS = [f"scale-{i}" for i in range(10)]
SUBNET = "cluster"                  # the VIP subnet Cluster configures
MIX = (("create", 1), ("member add", 2), ("lb update", 2), ("get", 4), ("list", 1))
WRITES = ("create", "member add", "lb update")
OBSERVER_POLL = 0.02
DEAD_LINE = re.compile(r"agent (\S+) \(\S+\) is dead")


@dataclass(frozen=True)
class Settings:
    agents: int
    lbs: int
    duration: float
    rate: float = 20.0              # API calls/s in the steady mix
    report_interval: float = 10.0
    agent_down_time: float = 30.0
    pending_timeout: float = 10.0
    kill_fraction: float = 0.1
    kill_changes: int = 100
    reps: int = 200                 # per in-process measurement
    idle: float = 20.0              # s of heartbeats alone, before the mix


def settings(quick: bool, agents: int | None = None, lbs: int | None = None,
             duration: float | None = None) -> Settings:
    if quick:
        base = Settings(100, 5000, 15.0, report_interval=5.0, agent_down_time=12.0, pending_timeout=4.0,
                        kill_changes=20, reps=50, idle=8.0)
    else:
        base = Settings(1000, 100000, 60.0)
    return Settings(**{**asdict(base), **{k: v for k, v in (("agents", agents), ("lbs", lbs),
                                                            ("duration", duration)) if v is not None}})


# --- the deployment ----------------------------------------------------------------------

class Deployment:
    """Two servers, the simulated fleet and the seeded database; ``stop`` undoes it all."""

    def __init__(self, s: Settings, result: Result) -> None:
        self.s = s
        self.tmp, self.workdir = temp_database("postgresql")
        self.db = Database(self.tmp.url)
        self.stats_engine = create_engine(self.tmp.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        self.sim: SimulatorProcess | None = None
        self.cluster = Cluster(self.workdir, self.tmp.url, ",".join(ENVIRONMENTS),
                               agent_down_time=s.agent_down_time, report_interval=s.report_interval,
                               pending_timeout=s.pending_timeout, pending_max_age=600.0, extra=UNLIMITED_QUOTAS)
        try:
            self.urls = [self.cluster.start_server("server-1"), self.cluster.start_server("server-2")]
            self.lbs = self._seed(result)
            t0 = time.perf_counter()
            self.sim = SimulatorProcess(self.cluster.transport_url, ENVIRONMENTS, s.agents // len(ENVIRONMENTS),
                                        report_interval=s.report_interval, kill_fraction=s.kill_fraction,
                                        log_path=f"{self.workdir}/simagents.log")
            result.add("setup", "register the agents", time.perf_counter() - t0, "s", agents=s.agents)
            # Seeded rows aged while the seeding ran: the sweeps declared them dead before their agents started.
            self.dead_before = declared_dead(self.cluster)
        except Exception:
            self.stop()
            raise

    def _seed(self, result: Result) -> list[tuple[str, str, str]]:
        """The fleet's agent rows, then load balancers per environment bound to its agents;
        (id, project, environment) of each.  Before any agent runs: bulk binding inserts
        lock agent rows (foreign keys, counts) and would deadlock with heartbeats.  The
        agents' start reports then take their rows over (no instance owns them yet)."""
        t0 = time.perf_counter()
        per_env = self.s.lbs // len(ENVIRONMENTS)
        for env in ENVIRONMENTS:
            hosts = [a.host for a in fleet([env], self.s.agents // len(ENVIRONMENTS), self.s.kill_fraction)]
            seed.agents(self.db.engine, len(hosts), env, hosts=hosts)
        agents = self.agent_ids()
        seeded: list[tuple[str, str, str]] = []
        for k, env in enumerate(ENVIRONMENTS):
            info = seed.loadbalancers(self.db.engine, per_env, start=k * per_env, provider=env, seed=k)
            seed.bindings(self.db.engine, info["ids"], agents[env], env, seed=k)
            seeded += [(lb, project, env) for lb, project in info["ids"]]
        seed.analyze(self.db.engine)
        result.add("setup", "seed load balancers + bindings", time.perf_counter() - t0, "s", lbs=len(seeded))
        return seeded

    def agent_ids(self) -> dict[str, list[str]]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(select(m.Agent.environment, m.Agent.id).order_by(m.Agent.host)).all()
        found: dict[str, list[str]] = {env: [] for env in ENVIRONMENTS}
        for env, ident in rows:
            found[env].append(ident)
        if sum(map(len, found.values())) != self.s.agents:
            raise RuntimeError(f"{sum(map(len, found.values()))} agent rows, {self.s.agents} agents")
        return found

    def server_pids(self) -> list[int]:
        return [server["proc"].pid for server in self.cluster.servers.values()]

    def stop(self) -> None:
        try:
            if self.sim is not None:
                self.sim.stop()
            self.cluster.stop()
        finally:
            self.stats_engine.dispose()
            self.db.dispose()
            self.tmp.drop()


# --- load accounting -----------------------------------------------------------------

PG_COUNTERS = ("xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted", "tup_updated",
               "tup_deleted")


def load_sample(d: Deployment) -> dict[str, Any]:
    """Counters to subtract: PostgreSQL's for this database, CPU of servers and services, the fleet's."""
    assert d.sim is not None
    with d.stats_engine.connect() as conn:
        row = conn.execute(text(f"SELECT {', '.join(PG_COUNTERS)} FROM pg_stat_database "
                                "WHERE datname = current_database()")).one()
        scans = conn.execute(text("SELECT coalesce(sum(seq_scan), 0) + coalesce(sum(idx_scan), 0) "
                                  "FROM pg_stat_user_tables")).scalar_one()
    return {"wall": time.monotonic(), "pg": {**dict(zip(PG_COUNTERS, map(int, row))), "scans": int(scans)},
            "servers": [proc_cpu_seconds(pid) for pid in d.server_pids()],
            "postgres": _cpu_of("postgres"), "rabbitmq": _cpu_of("beam.smp"),
            "fleet": d.sim.command("stats")}


def _cpu_of(command: str) -> float:
    """CPU seconds of the processes named ``command`` (a backend that ended meanwhile is lost:
    approximate, and the shared servers serve others too)."""
    seconds = (proc_cpu_seconds(pid) for pid in pids_named(command))
    return sum(x for x in seconds if x == x)


def load_rates(a: dict[str, Any], b: dict[str, Any], own_xacts: int) -> dict[str, float]:
    """Per second between two samples; ``own_xacts``: this process's reads to leave out."""
    wall = b["wall"] - a["wall"]

    def count(name: str) -> int:
        return int(b["fleet"]["counts"].get(name, 0) - a["fleet"]["counts"].get(name, 0))

    pg = {key: (b["pg"][key] - a["pg"][key]) / wall for key in b["pg"]}
    pg["xact_commit"] -= own_xacts / wall
    converges = sum(count(f"converges_cohort_{n}") for n in (0, 1))
    to_controller = count("heartbeats") + count("heartbeat_failures") + converges + count("status_updates")
    return {"heartbeats": count("heartbeats") / wall, **{f"pg {key}": value for key, value in pg.items()},
            **{f"cpu server-{i + 1}": (y - x) / wall for i, (x, y) in enumerate(zip(a["servers"], b["servers"]))},
            "cpu postgres (shared server)": (b["postgres"] - a["postgres"]) / wall,
            "cpu rabbitmq (shared broker)": (b["rabbitmq"] - a["rabbitmq"]) / wall,
            "cpu simulator": (b["fleet"]["cpu_s"] - a["fleet"]["cpu_s"]) / wall,
            "msgs to controller queues": to_controller / wall,
            "msgs to agent queues": converges / wall,
            "msgs replies": (count("heartbeats") + converges) / wall}


def queue_depths(cluster: Cluster) -> dict[str, int]:
    """Messages waiting (ready + unacked) in the controller queues and in the agents' queues."""
    vhost = cluster.transport_url.rsplit("/", 1)[1]
    listing = subprocess.run(["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages"],
                             check=True, capture_output=True, text=True, timeout=120).stdout
    depths = {"controller": 0, "agents": 0}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            kind = "controller" if parts[0].startswith("lbaas.controller.") else "agents"
            depths[kind] += int(parts[1])
    return depths


# --- the steady mix ------------------------------------------------------------------

class Targets:
    """Seeded objects to change, each at most once (a second change while the first is
    pending would be a 409, measuring the client rather than the system)."""

    def __init__(self, d: Deployment, rng: random.Random) -> None:
        with d.db.engine.connect() as conn:
            pools = conn.execute(select(m.Pool.id, m.Pool.load_balancer_id)).all()
        self.rng = rng
        self.lbs = [(lb, project, env) for lb, project, env in d.lbs]
        rng.shuffle(self.lbs)
        self.pools = [(pool, lb) for pool, lb in pools]
        rng.shuffle(self.pools)
        self.changed: set[str] = set()
        self.addresses = (f"198.18.{n // 250}.{n % 250 + 1}" for n in itertools.count())
        self._lock = threading.Lock()

    def lb(self) -> tuple[str, str, str]:
        with self._lock:
            while self.lbs[-1][0] in self.changed:
                self.lbs.pop()
            chosen = self.lbs.pop()
            self.changed.add(chosen[0])
            return chosen

    def pool(self) -> tuple[str, str, str]:
        """A pool, its load balancer and a member address not used yet."""
        with self._lock:
            while self.pools[-1][1] in self.changed:
                self.pools.pop()
            pool, lb = self.pools.pop()
            self.changed.add(lb)
            return pool, lb, next(self.addresses)

    def any_lb(self) -> tuple[str, str, str]:
        return self.rng.choice(self.lbs)


class Mix:
    """One API call of a kind: (seconds, status code, load balancer to wait for or None)."""

    def __init__(self, d: Deployment, targets: Targets) -> None:
        self.urls = d.urls
        self.token = d.cluster.token
        self.targets = targets
        self.calls = itertools.count()
        self.local = threading.local()

    def http(self, url: str) -> httpx.Client:
        clients = getattr(self.local, "clients", None)
        if clients is None:
            clients = self.local.clients = {}
        if url not in clients:
            # Idle connections closed before the server's keep-alive timeout (5 s) can race a request.
            clients[url] = httpx.Client(base_url=url, headers={"X-Auth-Token": self.token}, timeout=60,
                                        limits=httpx.Limits(max_connections=1, keepalive_expiry=2.0))
        http: httpx.Client = clients[url]
        return http

    def call(self, kind: str) -> tuple[float, float, int, str | None]:
        """(started, seconds, status, load balancer changed)."""
        http = self.http(self.urls[next(self.calls) % len(self.urls)])
        method, path, body, lb_id = self.request(kind)
        started = time.monotonic()
        response = http.request(method, path, json=body)
        elapsed = time.monotonic() - started
        if kind == "create" and response.status_code == 201:
            lb_id = response.json()["loadbalancer"]["id"]
        return started, elapsed, response.status_code, lb_id if kind in WRITES else None

    def request(self, kind: str) -> tuple[str, str, dict[str, Any] | None, str | None]:
        if kind == "create":
            _, project, env = self.targets.any_lb()
            return "POST", "/v2/lbaas/loadbalancers", {"loadbalancer": {
                "vip_subnet_id": SUBNET, "project_id": project, "provider": env, "name": "scale"}}, None
        if kind == "member add":
            pool, lb, address = self.targets.pool()
            return "POST", f"/v2/lbaas/pools/{pool}/members", {"member": {
                "address": address, "protocol_port": 80}}, lb
        if kind == "lb update":
            lb, _, _ = self.targets.lb()
            return "PUT", f"/v2/lbaas/loadbalancers/{lb}", {"loadbalancer": {"name": "scale-updated"}}, lb
        if kind == "get":
            return "GET", f"/v2/lbaas/loadbalancers/{self.targets.any_lb()[0]}", None, None
        project = self.targets.any_lb()[1]
        return "GET", f"/v2/lbaas/loadbalancers?project_id={project}&limit=50", None, None


def idle(d: Deployment, result: Result, seconds: float) -> None:
    """Heartbeats (and sweeps) alone: what the fleet costs the servers and the database."""
    before = load_sample(d)
    time.sleep(seconds)
    rates = load_rates(before, load_sample(d), 0)
    beats = rates["heartbeats"]
    result.add("idle fleet", "heartbeats", beats, "/s", seconds=seconds)
    result.add("idle fleet", "server CPU per heartbeat (sweeps included)",
               sum(v for k, v in rates.items() if k.startswith("cpu server")) / beats * 1000.0, "ms")
    result.add("idle fleet", "PostgreSQL commits per heartbeat (sweeps included)", rates["pg xact_commit"] / beats, "x")
    result.add("idle fleet", "tuples updated/s", rates["pg tup_updated"], "/s")
    for name in ("cpu postgres (shared server)", "cpu rabbitmq (shared broker)", "cpu simulator"):
        result.add("idle fleet", name, rates[name], "cores")


def steady(d: Deployment, result: Result, observer: DbObserver) -> None:
    """The mix at a fixed rate for the duration, with the load it causes."""
    s, rng = d.s, random.Random(11)
    mix = Mix(d, Targets(d, rng))
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    samples: dict[str, list[float]] = {kind: [] for kind, _ in MIX}
    to_active: dict[str, list[float]] = {kind: [] for kind in WRITES}
    failures: list[str] = []

    def one(kind: str) -> None:
        try:
            started, elapsed, status, lb_id = mix.call(kind)
        except httpx.HTTPError as exc:
            failures.append(f"{kind}: {exc!r}")
            return
        if status >= 300:
            failures.append(f"{kind}: {status}")
            return
        samples[kind].append(elapsed)
        if lb_id is not None:
            try:
                to_active[kind].append(observer.wait(lb_id, timeout=120) - started)
            except Failed as exc:
                failures.append(str(exc))

    reads0 = observer.reads
    before = load_sample(d)
    with ThreadPoolExecutor(32, thread_name_prefix="mix") as pool:
        began = time.monotonic()
        for n in range(int(s.duration * s.rate)):
            time.sleep(max(0.0, began + n / s.rate - time.monotonic()))
            pool.submit(one, rng.choice(kinds))
        sent = time.monotonic()
        after = load_sample(d)
    _report_steady(result, samples, to_active, failures, load_rates(before, after, observer.reads - reads0),
                   after["fleet"]["latency_ms"], sent - began)
    for kind, depth in queue_depths(d.cluster).items():
        result.add("steady", f"messages waiting in {kind} queues at the end", depth, "msgs")
    result.details["fleet counts after steady phase"] = after["fleet"]["counts"]


def _report_steady(result: Result, samples: dict[str, list[float]], to_active: dict[str, list[float]],
                   failures: list[str], rates: dict[str, float], fleet_ms: dict[str, Any], wall: float) -> None:
    for kind, seconds in samples.items():
        stats = summary_ms(seconds)
        result.add(f"steady API {kind}", "latency p50", stats.get("p50", float("nan")), "ms",
                   p99=stats.get("p99", float("nan")), n=stats["n"])
    for kind, seconds in to_active.items():
        stats = summary_ms(seconds)
        result.add(f"steady {kind}", "request to ACTIVE p50", stats.get("p50", float("nan")), "ms",
                   p99=stats.get("p99", float("nan")), n=stats["n"])
    result.add("steady", "API calls failed", len(failures), "calls", target="0", met=not failures)
    result.details["steady failures"] = failures[:20]
    for name, value in rates.items():
        result.add("steady load", name, value, "/s" if not name.startswith("cpu") else "cores")
    for name in ("heartbeat", "fetch", "heartbeat_lag"):
        stats = fleet_ms.get(name, {"n": 0})
        result.add("steady fleet", f"{name} p50", stats.get("p50", float("nan")), "ms",
                   p99=stats.get("p99", float("nan")), n=stats["n"])
    result.details["steady wall s"] = wall


# --- the kill --------------------------------------------------------------------------

def kill(d: Deployment, result: Result, observer: DbObserver) -> list[str]:
    """Kill cohort 0 and change some of its load balancers at once; returns the dead hosts."""
    assert d.sim is not None
    doomed = [agent.host for agent in fleet(ENVIRONMENTS, d.s.agents // len(ENVIRONMENTS), d.s.kill_fraction)
              if agent.cohort == 0]
    targets = _bound_to(d, doomed, d.s.kill_changes)
    before = d.sim.command("stats")["counts"]
    answer = d.sim.command("kill")
    killed_at = time.monotonic() - (time.time() - answer["at"])
    if sorted(answer["hosts"]) != sorted(doomed):
        raise Failed("the simulator killed other agents than expected")
    dead_at = in_thread(lambda: _watch_dead(d, set(doomed)))
    with ThreadPoolExecutor(16, thread_name_prefix="kill") as changes:
        active = list(changes.map(lambda lb: _change_and_wait(d, observer, lb), targets))
    dead = dead_at.result()
    late = d.sim.command("stats")["counts"].get("converges_cohort_0", 0) - before.get("converges_cohort_0", 0)
    result.add("kill", "agents killed", len(doomed), "agents")
    result.add("kill", "declared dead: first", dead[0] - killed_at, "s", agent_down_time=d.s.agent_down_time)
    result.add("kill", "declared dead: all", dead[-1] - killed_at, "s")
    result.add("kill", "their changes ACTIVE: p50", median(t - killed_at for t in active), "s", n=len(active))
    result.add("kill", "their changes ACTIVE: all", max(active) - killed_at, "s",
               pending_timeout=d.s.pending_timeout)
    result.add("kill", "converges by killed agents after the kill", late, "converges", target="0", met=late == 0)
    now = declared_dead(d.cluster)
    flapped = {host for host, times in now.items() if times > d.dead_before.get(host, 0)} - set(doomed)
    result.add("kill", "live agents declared dead (steady + kill phases)", len(flapped), "agents", target="0",
               met=not flapped)
    return doomed


def declared_dead(cluster: Cluster) -> collections.Counter[str]:
    """How often the servers' sweeps declared each host dead so far (from their logs: the
    sweep logs each flip once)."""
    found: collections.Counter[str] = collections.Counter()
    for path in glob.glob(f"{cluster.workdir}/server-*.log"):
        with open(path, encoding="utf-8", errors="replace") as log:
            found.update(match.group(1) for match in map(DEAD_LINE.search, log) if match)
    return found


def in_thread(job: Callable[[], Any]) -> Future[Any]:
    """Run ``job`` in a daemon thread; its outcome as a future."""
    future: Future[Any] = Future()

    def body() -> None:
        try:
            future.set_result(job())
        except Exception as exc:  # handed to whoever asks for the result
            future.set_exception(exc)
    threading.Thread(target=body, daemon=True).start()
    return future


def _bound_to(d: Deployment, hosts: list[str], count: int) -> list[str]:
    """Up to ``count`` ACTIVE load balancers bound to ``hosts``, at random."""
    with d.db.engine.connect() as conn:
        rows = conn.execute(select(m.Binding.loadbalancer_id).join(m.Agent, m.Agent.id == m.Binding.agent_id)
                            .join(m.LoadBalancer, m.LoadBalancer.id == m.Binding.loadbalancer_id)
                            .where(m.Agent.host.in_(hosts),
                                   m.LoadBalancer.provisioning_status == c.ACTIVE)).scalars().all()
    return random.Random(3).sample(list(rows), min(count, len(rows)))


def _change_and_wait(d: Deployment, observer: DbObserver, lb_id: str) -> float:
    """Rename the load balancer; when it was seen ACTIVE again."""
    with client(d.urls[0], d.cluster.token) as http:
        response = http.put(f"/v2/lbaas/loadbalancers/{lb_id}", json={"loadbalancer": {"name": "after-kill"}})
    if response.status_code != 200:
        raise Failed(f"change after the kill: {response.status_code} {response.text[:200]}")
    return observer.wait(lb_id, timeout=d.s.agent_down_time + 4 * d.s.pending_timeout + 60)


def _watch_dead(d: Deployment, hosts: set[str]) -> list[float]:
    """The sorted times at which the sweep flipped each host's ``alive_seen``."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + d.s.agent_down_time * 3 + 60
    while len(seen) < len(hosts) and time.monotonic() < deadline:
        with d.stats_engine.connect() as conn:
            flipped = conn.execute(select(m.Agent.host).where(m.Agent.host.in_(sorted(hosts)),
                                                              m.Agent.alive_seen.is_(False))).scalars().all()
        now = time.monotonic()
        for host in flipped:
            seen.setdefault(host, now)
        time.sleep(0.1)
    if len(seen) < len(hosts):
        raise Failed(f"{len(hosts) - len(seen)} killed agents never declared dead")
    return sorted(seen.values())


# --- per-operation costs, in process ----------------------------------------------------

def timed(reps: int, prepare: Callable[[], Any], op: Callable[[Any], Any]) -> dict[str, float]:
    """``op(prepare())`` ``reps`` times, after 10 untimed; only ``op`` is timed: wall time
    (a summary in ms) and this thread's CPU (``cpu_ms``, the mean: the Python side of it)."""
    for _ in range(10):
        op(prepare())
    seconds, cpu = [], 0.0
    for _ in range(reps):
        arg = prepare()
        t0, c0 = time.perf_counter(), time.thread_time()
        op(arg)
        seconds.append(time.perf_counter() - t0)
        cpu += time.thread_time() - c0
    return {**summary_ms(seconds), "cpu_ms": cpu * 1000.0 / reps}


def scheduler_costs(d: Deployment, dead_hosts: list[str]) -> dict[str, dict[str, float]]:
    """Each decision in its own transaction, rolled back (a new row's insert untimed)."""
    scheduler = Scheduler(d.s.agent_down_time)
    rng = random.Random(5)
    on_dead = _bound_ids(d, dead_hosts)

    def decide(kind: str, arg: Any) -> float:
        with rolled_back(d.db) as session:
            if kind == "route":
                lb = session.get_one(m.LoadBalancer, arg)
            else:
                lb = m.LoadBalancer(id=str(uuid.uuid4()), project_id=arg[0], provider=arg[1], name="decision",
                                    provisioning_status=c.PENDING_CREATE, operating_status=c.OFFLINE,
                                    vip_address="172.16.0.1", vip_subnet_id=SUBNET, revision=1,
                                    created_at=m.utcnow())
                session.add(lb)
                session.flush()
            t0 = time.perf_counter()
            chosen = scheduler.route(session, lb) if kind == "route" else scheduler.place(session, lb)
            elapsed = time.perf_counter() - t0
        if chosen is None:
            raise Failed(f"{kind}: no agent chosen")
        return elapsed

    def run(kind: str, pick: Callable[[], Any]) -> dict[str, float]:
        for _ in range(10):  # warm-up: statement caches, connections, the database clock
            decide(kind, pick())
        return summary_ms([decide(kind, pick()) for _ in range(d.s.reps)])

    return {"place, existing project": run("place", lambda: rng.choice(d.lbs)[1:]),
            "place, new project": run("place", lambda: (f"new-{uuid.uuid4().hex[:12]}", rng.choice(ENVIRONMENTS))),
            "route, dead agent": run("route", lambda: rng.choice(on_dead))}


@contextlib.contextmanager
def rolled_back(db: Database) -> Iterator[Session]:
    """A session whose transaction is rolled back at the end."""
    session = db.sessions()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


def _bound_ids(d: Deployment, hosts: list[str]) -> list[str]:
    with d.db.engine.connect() as conn:
        return list(conn.execute(select(m.Binding.loadbalancer_id).join(m.Agent, m.Agent.id == m.Binding.agent_id)
                                 .where(m.Agent.host.in_(hosts))).scalars())


def write_costs(d: Deployment) -> dict[str, dict[str, float]]:
    """The handlers' own writes: a heartbeat (an existing agent's report) and a status update
    (the completion of a change: the load balancer is made PENDING_UPDATE untimed first)."""
    handlers = ControllerHandlers(d.db, Scheduler(d.s.agent_down_time), LocalKeyManager(LocalStore(d.db, None)))
    probe, instance = f"probe-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    handlers.report_state(probe, ENVIRONMENTS[0], start_flag=True, instance_id=instance)
    beat = timed(d.s.reps, lambda: None, lambda _: handlers.report_state(probe, ENVIRONMENTS[0], instance_id=instance))
    with d.db.transaction() as session:  # out of the way of new placements
        session.execute(update(m.Agent).where(m.Agent.host == probe).values(admin_state_up=False))
    lbs = iter(random.Random(7).sample([lb for lb, _, _ in d.lbs], d.s.reps + 10))
    status = timed(d.s.reps, lambda: _make_pending(d.db, next(lbs)),
                   lambda job: handlers.update_status(job[0], job[1]))
    return {"heartbeat write (report_state)": beat, "status write (update_status)": status}


def _make_pending(db: Database, lb_id: str) -> tuple[str, int]:
    with db.transaction() as session:
        lb = session.get_one(m.LoadBalancer, lb_id, with_for_update=True)
        lb.revision += 1
        lb.provisioning_status = c.PENDING_UPDATE
        lb.pending_since = session.scalar(select(db_now_expression(db.dialect)))
        return lb_id, lb.revision


def sweep_costs(d: Deployment) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Both sweeps over this database (nothing stale: the scan, not the re-dispatch), then the
    pending sweep with ``parked`` load balancers pending long (another provider's: fetched by
    the index scan, never dispatched), to show what its cost grows with; and its plan."""
    providers: dict[str, Provider] = {env: NoopProvider(d.db, 0.0) for env in ENVIRONMENTS}
    scheduler = Scheduler(d.s.agent_down_time)
    quiet = Sweeper(d.db, scheduler, providers, 86400.0, 86400.0, 1.0)
    eager = Sweeper(d.db, scheduler, providers, 0.0, 86400.0, 1.0)
    try:
        costs = {"agent liveness sweep": timed(d.s.reps, lambda: None, lambda _: quiet.agents()),
                 "pending sweep, none stale": timed(d.s.reps, lambda: None, lambda _: quiet.pending())}
        parked = [lb for lb, _, _ in d.lbs[: max(1, len(d.lbs) // 20)]]
        with _parked(d.db, parked):
            key = f"pending sweep, {len(parked):,} other-provider rows pending"
            costs[key] = timed(d.s.reps // 4, lambda: None, lambda _: eager.pending())
            plan = explain_first_select(d.db, eager.pending)
    finally:
        for provider in providers.values():
            provider.stop()
    return costs, {"pending sweep plan": plan, "parked": len(parked)}


class _parked:
    """Load balancers made PENDING_UPDATE an hour ago under provider ``parked``; restored after."""

    def __init__(self, db: Database, lb_ids: list[str]) -> None:
        self.db, self.lb_ids = db, lb_ids

    def __enter__(self) -> None:
        with self.db.engine.connect() as conn:
            now = conn.scalar(select(db_now_expression(self.db.dialect)))
        assert now is not None
        self._set(provider="parked", provisioning_status=c.PENDING_UPDATE, pending_since=now - dt.timedelta(hours=1))
        seed.analyze(self.db.engine)  # as autovacuum would: the planner knows how many are pending

    def __exit__(self, *_: Any) -> None:
        with self.db.engine.connect() as conn:
            providers = dict(conn.execute(select(m.Binding.loadbalancer_id, m.Binding.environment)
                                          .where(m.Binding.loadbalancer_id.in_(self.lb_ids))).all())
        for env in set(providers.values()):
            self._set([lb for lb, e in providers.items() if e == env], provider=env,
                      provisioning_status=c.ACTIVE, pending_since=None)

    def _set(self, lb_ids: list[str] | None = None, **values: Any) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(update(m.LoadBalancer).where(m.LoadBalancer.id.in_(lb_ids or self.lb_ids)).values(**values))


def explain_first_select(db: Database, step: Callable[[], None]) -> list[str]:
    """EXPLAIN ANALYZE of the first SELECT on load_balancer that ``step`` runs (caught on its way
    to the database, so the plan is of the sweep's own statement)."""
    caught: list[tuple[str, Any]] = []

    def catch(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if not caught and statement.lstrip().upper().startswith("SELECT") and "FROM load_balancer" in statement:
            caught.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", catch)
    try:
        step()
    finally:
        event.remove(db.engine, "before_cursor_execute", catch)
    if not caught:
        return []
    statement, parameters = caught[0]
    with db.engine.connect() as conn:
        cursor = conn.connection.cursor()
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) " + statement, parameters)
        return [row[0] for row in cursor.fetchall()]


def queue_ceiling(d: Deployment, messages: int) -> dict[str, float]:
    """One queue through ``lbaas.messaging``: casts/s from one thread (publisher confirms on),
    then the rate one consumer drains them with a handler that does nothing."""
    broker = Broker(d.cluster.transport_url)
    queue, drained = f"lbaas.controller.ceiling-{uuid.uuid4().hex[:6]}", threading.Event()
    seen = itertools.count(1)
    try:
        t0 = time.perf_counter()
        for n in range(messages):
            broker.cast(queue, "report_state", n=n)
        published = time.perf_counter() - t0
        t1 = time.perf_counter()
        broker.serve([queue], {"report_state": lambda n: drained.set() if next(seen) >= messages else None})
        drained.wait(120)
        consumed = time.perf_counter() - t1
    finally:
        broker.close()
    return {"casts/s, one thread": messages / published, "consumed/s, one consumer": messages / consumed}


def costs(d: Deployment, result: Result, dead_hosts: list[str]) -> None:
    sweeps, details = sweep_costs(d)
    for case, stats in {**scheduler_costs(d, dead_hosts), **write_costs(d), **sweeps}.items():
        result.add(f"cost: {case}", "p50", stats["p50"], "ms", p99=stats["p99"], n=stats["n"],
                   cpu_ms=stats.get("cpu_ms"))
    result.details.update(details)
    for metric, value in queue_ceiling(d, 2000 if d.s.reps > 100 else 500).items():
        result.add("cost: one queue (lbaas.messaging)", metric, value, "msgs/s")


# --- the benchmark ---------------------------------------------------------------------

def run(quick: bool = False, agents: int | None = None, lbs: int | None = None,
        duration: float | None = None) -> Result:
    s = settings(quick, agents, lbs, duration)
    result = Result(NAME, quick)
    result.details["settings"] = asdict(s)
    d = Deployment(s, result)
    observer = DbObserver(d.tmp.url, interval=OBSERVER_POLL)
    try:
        idle(d, result, s.idle)
        steady(d, result, observer)
        dead = kill(d, result, observer)
        costs(d, result, dead)
    finally:
        observer.stop()
        d.stop()
    result.note(f"{s.agents} simulated agents in {len(ENVIRONMENTS)} environments (one process), 2 lbaas servers "
                f"(4 controller consumers each), {s.lbs:,} seeded load balancers; report_interval "
                f"{s.report_interval:g} s, agent_down_time {s.agent_down_time:g} s, pending_timeout "
                f"{s.pending_timeout:g} s, sweep_interval 1 s; mix {s.rate:g} calls/s for {s.duration:g} s")
    result.note(f"request to ACTIVE read by a database observer every {OBSERVER_POLL * 1000:.0f} ms (adds up to "
                "that much); its reads are left out of the transaction rate")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--agents", type=int, help="simulated agents (a multiple of 10); default 1,000")
    parser.add_argument("--lbs", type=int, help="seeded load balancers; default 100,000")
    parser.add_argument("--duration", type=float, help="seconds of steady mix; default 60")
    args = parser.parse_args()
    outcome = run(quick=args.quick, agents=args.agents, lbs=args.lbs, duration=args.duration)
    outcome.finish()
    print(outcome.table())
    print(f"({outcome.save()})")
