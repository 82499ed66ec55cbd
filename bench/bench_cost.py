"""Per-change cost profile (issue 14): what one change costs, before anything is cut.

Change kinds: a one-POST graph (load balancer + listener + pool + 2 members +
monitor), a member add, a load balancer rename (PUT name), a status report
(``UpdateStatus`` handled by a server), a heartbeat (``ReportState`` handled)
and a statistics report (``UpdateStats`` handled, one per change that alters
what the agent reports).

In-process part (``measure_inprocess``): a server (controller + API) and one
agent (noop driver, its own Broker) are built in this process as
``lbaas.service`` builds them, on a fresh PostgreSQL database and either a
RabbitMQ vhost of their own or ``memory://``.  One client makes the changes one
after the other; each change is a window that ends when the server has handled
the ``UpdateStatus`` that completes it (no polling, so nothing else runs).  Per
window it counts:

- SQL statements (a ``before_cursor_execute`` event on the engine), commits,
  rollbacks and pool checkouts (each a pre-ping round trip on PostgreSQL),
  keyed by the thread's role (``api``: the HTTP loop and its threadpool,
  including the dispatch after the commit; ``consumer``: the controller
  queue's consumers; ``agent``; ``sweeper``) and by the handler running
  (``get_loadbalancer``, ``update_status``...);
- messages published (``Broker._publish`` wrapped here): cast, call or reply,
  by method;
- CPU by role, from ``/proc/self/task/<tid>/schedstat`` (nanoseconds);
- wall time from the request to the completion.

Statement, commit and message counts are deterministic: the tables print the
most common per-change value and flag a spread.  Background work (heartbeats
and sweeps) is tagged and left out of a change's counts.

Multi-process part (``measure_cluster``): 1 ``lbaas server`` + 1 ``lbaas
agent`` (lbaas.testing.cluster, default intervals) on PostgreSQL + RabbitMQ:
CPU per change per process from ``/proc/<pid>/stat``, wall p50 (a database
observer, no API polls), and the idle CPU of the pair over 10 s.

Profile part (``profile_load``, ``--profile``): bench_cluster's deployment (2
servers + 4 agents) under 20 clients of one-POST graphs, then of member adds,
30 s each, one server sampled by py-spy (GIL holder); the top-10 functions
and areas, and the PostgreSQL sessions opened (``pg_stat_database.sessions``).

``--json`` prints the document; ``--budget`` writes ``bench/cost_budget.json``
(statements and CPU per change) for the guard of part 3.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (ROOT, UNLIMITED_API, UNLIMITED_QUOTAS, DbObserver, Result, client, expect, free_port,
                          median, proc_cpu_seconds, summary_ms, temp_database)
from bench.bench_cluster import ClusterDeployment, drive, graph_body, one_post, db_waiter
from lbaas.constants import REPLY_EXCHANGE, REPLY_QUEUE_PREFIX

NAME = "cost"
ENVIRONMENT = "cost"
SUBNET = "cost"
CLUSTER_SUBNET = "cluster"  # the VIP subnet lbaas.testing.cluster configures
PROJECT = "cost-project"
BUDGET = ROOT / "bench" / "cost_budget.json"
PROFILE_REPORT = Path("/tmp/cost-profile.md")
WARM_UP = 2         # changes of a kind made before its measured ones
IDLE_SECONDS = 5.0  # how long the in-process deployment's idle CPU is measured
CHANGES = ("graph", "member_add", "lb_rename", "status_report", "heartbeat", "stats_report")
# The handlers whose work belongs to a change (the others are background work).
CHANGE_HANDLERS = ("", "converge", "get_loadbalancer", "update_status", "report_state", "update_stats")


# --- who does the work -------------------------------------------------------------

def role_of(thread_name: str) -> str:
    """The part of the system a thread of the in-process deployment belongs to."""
    if thread_name == "API" or thread_name.startswith("AnyIO worker"):
        return "api"
    if thread_name.startswith("controller-"):
        return "consumer"
    if thread_name == "sweeper":
        return "sweeper"
    if thread_name.startswith(("agent-", "heartbeat-", "resync-", "stats-", "device-", REPLY_QUEUE_PREFIX)):
        return "agent"  # the server never calls, so every reply listener is the agent's
    if thread_name == "MainThread":
        return "client"
    return "other"


def thread_cpu_ns() -> dict[int, tuple[str, int]]:
    """Each live thread's CPU so far: native id -> (role, ns), from schedstat."""
    out = {}
    for thread in threading.enumerate():
        tid = thread.native_id
        if tid is None:
            continue
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as handle:
                out[tid] = (role_of(thread.name), int(handle.read().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
    return out


def cpu_delta_ms(before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]]) -> dict[str, float]:
    """CPU ms by role between two ``thread_cpu_ns`` readings (a new thread counts from 0)."""
    out: dict[str, float] = collections.defaultdict(float)
    for tid, (role, ns) in after.items():
        out[role] += (ns - before.get(tid, (role, 0))[1]) / 1e6
    return dict(out)


class Meter:
    """Counters keyed (what, role, tag): statements, commits, rollbacks, checkouts and
    messages; ``tag`` is the handler running in the thread ('' outside one)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.handler_cost: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)  # cpu, wall
        self._lock = threading.Lock()
        self._local = threading.local()
        self._done: collections.Counter[tuple[str, str]] = collections.Counter()  # (method, lb id)
        self._done_changed = threading.Condition()

    @property
    def tag(self) -> str:
        return getattr(self._local, "tag", "")

    def count(self, what: str, tag: str | None = None) -> None:
        key = (what, role_of(threading.current_thread().name), self.tag if tag is None else tag)
        with self._lock:
            self.counts[key] += 1

    def snapshot(self) -> collections.Counter[tuple[str, str, str]]:
        with self._lock:
            return collections.Counter(self.counts)

    def attach(self, engine: Any) -> None:
        from sqlalchemy import event
        event.listen(engine, "before_cursor_execute", lambda *_a, **_k: self.count("statements"))
        event.listen(engine, "commit", lambda _conn: self.count("commits"))
        event.listen(engine, "rollback", lambda _conn: self.count("rollbacks"))
        event.listen(engine.pool, "checkout", lambda *_a: self.count("checkouts"))

    def measured(self, method: str, handler: Callable[..., Any]) -> Callable[..., Any]:
        """``handler`` tagging its thread's work with ``method``, timing itself and
        announcing each load balancer it finished (``done``)."""
        @functools.wraps(handler)  # keeps the signature the consumer filters arguments by
        def run(*args: Any, **kwargs: Any) -> Any:
            outer, self._local.tag = self.tag, method
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return handler(*args, **kwargs)
            finally:
                self.handler_cost[method].append((time.thread_time() - cpu, time.perf_counter() - wall))
                self._local.tag = outer
                with self._done_changed:
                    self._done[(method, str(kwargs.get("loadbalancer_id")))] += 1
                    self._done_changed.notify_all()
        return run

    def done(self, method: str, lb_id: str) -> int:
        with self._done_changed:
            return self._done[(method, lb_id)]

    def wait_done(self, method: str, lb_id: str, more_than: int, timeout: float = 30) -> None:
        with self._done_changed:
            if not self._done_changed.wait_for(lambda: self._done[(method, lb_id)] > more_than, timeout):
                raise TimeoutError(f"{method} of {lb_id} not handled within {timeout} s")


@contextmanager
def counting_messages(meter: Meter) -> Iterator[None]:
    """Count every publish by kind (cast, call, reply) and method while the block runs."""
    from lbaas.messaging import Broker
    original = Broker._publish

    def publish(broker: Broker, exchange: Any, routing_key: str, body: bytes, **options: Any) -> None:
        if exchange.name == REPLY_EXCHANGE:
            kind = "reply"  # sent after the handler returned: its method is the call's
        else:
            kind = f"{'call' if 'reply_to' in options else 'cast'}:{orjson.loads(body).get('method')}"
        meter.count("messages", kind)
        original(broker, exchange, routing_key, body, **options)

    setattr(Broker, "_publish", publish)
    try:
        yield
    finally:
        setattr(Broker, "_publish", original)


# --- the in-process deployment ------------------------------------------------------

class InProcess:
    """A server (controller + API) and one agent in this process, counted by a Meter."""

    def __init__(self, transport: str, meter: Meter) -> None:
        from cryptography.fernet import Fernet
        from lbaas import config as cfg
        from lbaas import service
        from lbaas.api.auth import create_token
        from lbaas.controller.service import Controller
        from lbaas.runtime import Hook, Process
        self.transport = transport
        self.db, self.workdir = temp_database("postgresql")
        self.vhost = None
        url = "memory://"
        if transport == "rabbit":
            from lbaas.testing.cluster import RABBIT, rabbitmqctl
            self.vhost = f"lbaas-cost-{os.getpid()}"
            rabbitmqctl("add_vhost", self.vhost)
            rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
            url = f"{RABBIT}/{self.vhost}"
        token_file = os.path.join(self.workdir, "tokens.json")
        self.token = create_token(token_file, "admin", "admin")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        path = os.path.join(self.workdir, "cost.ini")
        with open(path, "w", encoding="utf-8") as handle:
            # Heartbeats and stats only when the benchmark asks (long intervals, a long down time).
            handle.write(f"""[DEFAULT]
transport_url = {url}
log_file = {self.workdir}/server.log

[api]
bind_port = {port}
token_file = {token_file}
{UNLIMITED_API}

[database]
connection = {self.db.url}

[certificates]
encryption_key = {Fernet.generate_key().decode()}

[controller]
environments = {ENVIRONMENT}
agent_down_time = 3600

[agent]
host = host-1
environment_prefix = {ENVIRONMENT}
report_interval = 600
stats_interval = 3600

[vip_subnets]
{SUBNET} = 10.0.0.0/8

{UNLIMITED_QUOTAS}
""")
        config = cfg.load([path])
        service.setup_logging(config)  # INFO to a file, as a server logs
        db = service.open_database(config)
        meter.attach(db.engine)
        key_manager = service.make_key_manager(config, db)
        controller = Controller(config, db, key_manager=key_manager)
        handlers = {name: meter.measured(name, h) for name, h in controller.handlers.handlers().items()}
        setattr(controller.handlers, "handlers", lambda: handlers)
        state = service.api_state(config, db, controller.providers, key_manager)
        api = service.api_server(state, controller.scheduler)
        self.agent = service.make_agent(config, driver="noop")
        setattr(self.agent, "converge", meter.measured("converge", self.agent.converge))
        self.database = db
        # The agent's own Broker closes last, as in ``lbaas agent``.
        self.process = Process("cost", [Hook(stop=self.agent.broker.close), controller, api, self.agent])
        try:
            self.process.start()
        except BaseException:
            self.stop()
            raise

    def in_agent_thread(self, name: str, job: Callable[[], None]) -> None:
        """Run ``job`` as the agent's timer of that name would (its work counts as the agent's)."""
        thread = threading.Thread(target=job, name=f"{name}-bench", daemon=True)
        thread.start()
        thread.join()

    def stop(self) -> None:
        self.process.stop()
        logging.getLogger().handlers.clear()  # the log file goes with the work directory
        if getattr(self, "database", None) is not None:
            self.database.dispose()
        if self.vhost:
            from lbaas.testing.cluster import rabbitmqctl
            try:
                rabbitmqctl("delete_vhost", self.vhost)
            except subprocess.SubprocessError:
                pass
        self.db.drop()
        shutil.rmtree(self.workdir, ignore_errors=True)


class Window:
    """One change: counters, CPU by role and wall time from its start to its end."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.counts0, self.cpu0, self.t0 = meter.snapshot(), thread_cpu_ns(), time.perf_counter()

    def close(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.t0
        cpu = cpu_delta_ms(self.cpu0, thread_cpu_ns())
        delta = self.meter.snapshot() - self.counts0
        return {"wall_ms": wall * 1000, "cpu_ms": cpu,
                "counts": {"|".join(key): n for key, n in delta.items()}}


def change_counts(window: dict[str, Any]) -> dict[str, int]:
    """A window's counts that belong to the change: by what and role, then by handler."""
    out: collections.Counter[str] = collections.Counter()
    for key, n in window["counts"].items():
        what, role, tag = key.split("|")
        if what == "messages":
            out[f"messages|{tag}"] += n
            out["messages|total"] += n
            continue
        if tag not in CHANGE_HANDLERS or role in ("sweeper", "other"):
            continue
        out[f"{what}|{role}"] += n
        out[f"{what}|total"] += n
        if tag:
            out[f"{what}|{role}:{tag}"] += n
    return dict(out)


def aggregate(windows: list[dict[str, Any]], idle_ms_per_s: dict[str, float]) -> dict[str, Any]:
    """Per-change figures of one kind: the most common count (and its spread), mean CPU by
    role (also less what the role burns idle over the window's wall time), wall."""
    per = [change_counts(w) for w in windows]
    keys = sorted({k for p in per for k in p})
    counts = {}
    for key in keys:
        values = [p.get(key, 0) for p in per]
        counts[key] = {"mode": statistics.mode(values), "min": min(values), "max": max(values)}
    roles = sorted({r for w in windows for r in w["cpu_ms"]})
    cpu = {role: statistics.fmean(w["cpu_ms"].get(role, 0.0) for w in windows) for role in roles}
    cpu["server"] = cpu.get("api", 0.0) + cpu.get("consumer", 0.0)
    wall_s = statistics.fmean(w["wall_ms"] for w in windows) / 1000
    busy = {role: max(0.0, cpu.get(role, 0.0) - idle_ms_per_s.get(role, 0.0) * wall_s)
            for role in ("api", "consumer", "agent")}
    busy["server"] = busy["api"] + busy["consumer"]
    return {"n": len(windows), "counts": counts, "cpu_ms": cpu, "cpu_ms_above_idle": busy,
            "wall_ms": summary_ms([w["wall_ms"] / 1000 for w in windows])}


def measure_inprocess(transport: str, n: int) -> dict[str, Any]:
    """Every change kind ``n`` times on an in-process server + agent; per-change figures."""
    meter = Meter()
    with counting_messages(meter):
        dep = InProcess(transport, meter)
        try:
            return _changes(dep, meter, n)
        finally:
            dep.stop()


def _changes(dep: InProcess, meter: Meter, n: int) -> dict[str, Any]:
    windows: dict[str, list[dict[str, Any]]] = {kind: [] for kind in CHANGES}
    time.sleep(2)  # start-up work (registration, the first resync) ends
    idle = Window(meter)
    time.sleep(IDLE_SECONDS)
    idle_ms_per_s = {role: ms / IDLE_SECONDS for role, ms in idle.close()["cpu_ms"].items()}
    with client(dep.url, dep.token) as http:
        def await_change(lb_id: str, before: int) -> None:
            meter.wait_done("update_status", lb_id, before)
            meter.wait_done("converge", lb_id, before)

        def make_graph() -> tuple[str, str]:
            lb = expect(http.post("/v2/lbaas/loadbalancers", json=graph_body(SUBNET, PROJECT)))["loadbalancer"]
            await_change(lb["id"], 0)
            return lb["id"], lb["pools"][0]["id"]

        for _ in range(3):  # warm-up: connections, caches, the threadpool
            make_graph()
        for _ in range(n):
            window = Window(meter)
            make_graph()
            windows["graph"].append(window.close())
        lb_id, pool_id = make_graph()
        for i in range(-WARM_UP, n):  # the first ones (i < 0) only warm the paths up
            before, stats_before = meter.done("update_status", lb_id), meter.done("update_stats", lb_id)
            window = Window(meter)
            expect(http.post(f"/v2/lbaas/pools/{pool_id}/members",
                             json={"member": {"address": "192.0.2.20", "protocol_port": 1000 + i}}))
            await_change(lb_id, before)
            member_add = window.close()
            window = Window(meter)
            dep.in_agent_thread("stats", dep.agent.report_stats)
            meter.wait_done("update_stats", lb_id, stats_before)
            stats_report = window.close()
            if i >= 0:
                windows["member_add"].append(member_add)
                # The status report of this change on its own (the server's handler, timed inside).
                windows["status_report"].append(_handler_window(meter, "update_status", member_add))
                windows["stats_report"].append(stats_report)
        for i in range(-WARM_UP, n):
            before = meter.done("update_status", lb_id)
            window = Window(meter)
            expect(http.put(f"/v2/lbaas/loadbalancers/{lb_id}", json={"loadbalancer": {"name": f"renamed-{i}"}}),
                   200)
            await_change(lb_id, before)
            if i >= 0:
                windows["lb_rename"].append(window.close())
        for i in range(-WARM_UP, n):
            window = Window(meter)
            dep.in_agent_thread("heartbeat", dep.agent.heartbeat)
            if i >= 0:
                windows["heartbeat"].append(window.close())
    return {"transport": dep.transport, "idle_ms_per_s": idle_ms_per_s,
            "changes": {kind: aggregate(w, idle_ms_per_s) for kind, w in windows.items()},
            "handlers_ms": {method: {"cpu_p50": 1000 * median(c for c, _ in costs),
                                     "wall_p50": 1000 * median(w for _, w in costs), "n": len(costs)}
                            for method, costs in meter.handler_cost.items()}}


def _handler_window(meter: Meter, method: str, change: dict[str, Any]) -> dict[str, Any]:
    """The part of a change's window done by one server handler: its counts and the
    message that carried it, and its CPU and wall time as the handler timed them."""
    counts = {key: n for key, n in change["counts"].items() if key.split("|")[2] in (method, f"cast:{method}")}
    cpu, wall = meter.handler_cost[method][-1]
    return {"wall_ms": wall * 1000, "cpu_ms": {"consumer": cpu * 1000}, "counts": counts}


# --- the multi-process deployment ----------------------------------------------------

def measure_cluster(n: int) -> dict[str, Any]:
    """1 server + 1 agent as processes (default intervals): idle CPU over 10 s, then CPU per
    change per process and wall p50 for one client."""
    db, workdir = temp_database("postgresql")
    cluster = _DefaultIntervals(workdir, db.url, ENVIRONMENT)
    observer = None
    try:
        url = cluster.start_server("server-1")
        cluster.start_agent("host-1")
        cluster.wait_agents(["host-1"])
        server, agent = cluster.servers["server-1"]["proc"].pid, cluster.agents["host-1"].pid
        observer = DbObserver(db.url)
        time.sleep(2)  # let start-up work (registration, first resync) finish
        idle = _cpu_over(lambda: time.sleep(10), server, agent)
        out: dict[str, Any] = {"idle_ms_per_s": {k: v / idle["seconds"] for k, v in idle.items()
                                                 if k != "seconds"}}
        with client(url, cluster.token) as http:
            out.update(_cluster_changes(http, observer, server, agent, n))
        return out
    finally:
        if observer is not None:
            observer.stop()
        cluster.stop()
        db.drop()
        shutil.rmtree(workdir, ignore_errors=True)


class _DefaultIntervals:
    """lbaas.testing.cluster.Cluster with the default heartbeat, stats, resync and sweep
    intervals (the tests shorten them; an operator's processes run these)."""

    SHORTENED = ("sweep_interval", "report_interval", "stats_interval", "resync_interval", "agent_down_time",
                 "pending_timeout")

    def __new__(cls, workdir: str, db_url: str, environment: str) -> Any:
        from lbaas.testing.cluster import Cluster
        cluster = Cluster(workdir, db_url, environment, extra=UNLIMITED_QUOTAS)
        write = cluster._write

        def defaults(name: str, text: str) -> str:
            kept = [line for line in text.splitlines() if line.split("=")[0].strip() not in cls.SHORTENED]
            return write(name, "\n".join(kept) + "\n")

        setattr(cluster, "_write", defaults)
        return cluster


def _cpu_over(work: Callable[[], Any], server: int, agent: int) -> dict[str, float]:
    """CPU ms of the server and agent processes while ``work`` runs, and its seconds."""
    s0, a0, t0 = proc_cpu_seconds(server), proc_cpu_seconds(agent), time.monotonic()
    work()
    return {"server": 1000 * (proc_cpu_seconds(server) - s0), "agent": 1000 * (proc_cpu_seconds(agent) - a0),
            "seconds": time.monotonic() - t0}


def _cluster_changes(http: Any, observer: DbObserver, server: int, agent: int, n: int) -> dict[str, Any]:
    def graph() -> dict[str, Any]:
        lb = expect(http.post("/v2/lbaas/loadbalancers", json=graph_body(CLUSTER_SUBNET, PROJECT)))["loadbalancer"]
        observer.wait(lb["id"])
        return lb

    def timed(kinds: str, step: Callable[[int], None]) -> dict[str, Any]:
        walls: list[float] = []

        def all_steps() -> None:
            for i in range(n):
                t0 = time.monotonic()
                step(i)
                walls.append(time.monotonic() - t0)
        cpu = _cpu_over(all_steps, server, agent)
        return {"kind": kinds, "cpu_ms": {"server": cpu["server"] / n, "agent": cpu["agent"] / n},
                "wall_ms": summary_ms(walls)}

    for _ in range(3):
        graph()
    lb = graph()
    pool = lb["pools"][0]["id"]

    def member(i: int) -> None:
        expect(http.post(f"/v2/lbaas/pools/{pool}/members",
                         json={"member": {"address": "192.0.2.20", "protocol_port": 1000 + i}}))
        observer.wait(lb["id"])

    def rename(i: int) -> None:
        expect(http.put(f"/v2/lbaas/loadbalancers/{lb['id']}", json={"loadbalancer": {"name": f"r{i}"}}), 200)
        observer.wait(lb["id"])

    def new_graph(_i: int) -> None:
        graph()

    return {"changes": {"graph": timed("graph", new_graph),
                        "member_add": timed("member_add", member), "lb_rename": timed("lb_rename", rename)}}


# --- profiling under load ---------------------------------------------------------------

def member_adds(http: Any, dep: Any, project: str, record: dict[str, list], wait: Any) -> None:
    """bench_cluster's work function for member adds: the first call makes the client's graph."""
    if not record["pool"]:
        lb = expect(http.post("/v2/lbaas/loadbalancers", json=graph_body(dep.subnet, project)))["loadbalancer"]
        wait(http, lb["id"])
        record["pool"].extend([lb["pools"][0]["id"], lb["id"]])
    pool, lb_id = record["pool"]
    t0 = time.monotonic()
    expect(http.post(f"/v2/lbaas/pools/{pool}/members",
                     json={"member": {"address": "192.0.2.30", "protocol_port": 1000 + len(record["graph"])}}))
    done, _ = wait(http, lb_id)
    record["graph"].append(done - t0)


def profile_load(seconds: float = 30, clients: int = 20) -> dict[str, Any]:
    """20 clients of one-POST graphs, then of member adds, on bench_cluster's deployment,
    one server sampled by py-spy; PostgreSQL sessions opened during the graph run."""
    dep = ClusterDeployment()
    observer = DbObserver(dep.db_url)
    out: dict[str, Any] = {}
    try:
        drive(dep, one_post, 4, 3, 20, db_waiter(observer))  # warm-up
        works: tuple[tuple[str, Callable[..., None]], ...] = (("graphs", one_post), ("member_adds", member_adds))
        for name, work in works:
            sessions0 = _pg_sessions(dep.db.name)
            load = functools.partial(_drive_with_pool, dep, work, clients, seconds, observer)
            samples, result = _sampled(dep.server_pids[0], seconds, load)
            out[name] = {"changes_per_s": result["graphs_per_s"], "changes": result["graphs"],
                         "seconds": result["seconds"], "cpu_ms_per_change": result["cpu_ms_per_graph"],
                         "latency_ms": result["graph_ms"], "profile": samples,
                         "pg_sessions_opened": _pg_sessions(dep.db.name) - sessions0}
    finally:
        observer.stop()
        dep.stop()
    return out


def _drive_with_pool(dep: Any, work: Any, clients: int, seconds: float, observer: DbObserver) -> dict[str, Any]:
    """bench_cluster's drive, each client's record holding a "pool" entry for ``member_adds``."""
    def with_pool(http: Any, d: Any, project: str, record: dict[str, list], wait: Any) -> None:
        record.setdefault("pool", [])
        work(http, d, project, record, wait)
    return drive(dep, with_pool, clients, 10_000, seconds, db_waiter(observer))


def _sampled(pid: int, seconds: float, load: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``load`` while py-spy samples ``pid`` (GIL holder only) for ``seconds``."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    raw = tempfile.mktemp(prefix="cost-profile-", suffix=".txt", dir="/tmp")  # kept for the lead
    proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
                             "--gil", "--format", "raw", "--output", raw, "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        result = load()
        proc.wait(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=30)
    try:
        stacks = Path(raw).read_text(encoding="utf-8").splitlines()
    except OSError:
        return {"error": (proc.stderr.read().decode() if proc.stderr else "")[-500:]}, result
    return {**top_costs(stacks), "raw": raw}, result


# Areas a sample is charged to: the first whose marker is in any of its frames.
AREAS = (("dispatch (route + cast after commit)", "AgentProvider.dispatch"),
         ("update_status (completion)", "ControllerHandlers.update_status"),
         ("get_loadbalancer (desired state)", "ControllerHandlers.get_loadbalancer"),
         ("update_stats", "ControllerHandlers.update_stats"),
         ("report_state (heartbeat)", "ControllerHandlers.report_state"),
         ("publish/reply (kombu producer)", "Broker._publish"),
         ("API change (POST/PUT: validate, write, commit)", "lbaas/services/"),
         ("API other (auth, routes, views)", "lbaas/api/"), ("sweeps", "lbaas/controller/sweeps.py"),
         ("kombu/amqp loops", "kombu/"), ("HTTP (uvicorn/h11/starlette/fastapi/anyio)", "uvicorn/"),
         ("HTTP (uvicorn/h11/starlette/fastapi/anyio)", "starlette/"),
         ("HTTP (uvicorn/h11/starlette/fastapi/anyio)", "anyio/"))


def top_costs(lines: list[str], top: int = 10) -> dict[str, Any]:
    """py-spy raw (collapsed) stacks -> the top functions by own samples and by samples
    under them (lbaas only), and the areas, as % of all samples."""
    own: collections.Counter[str] = collections.Counter()
    under: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            if "lbaas/" in frame:
                under[frame] += n
        areas[_area(frames)] += n

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100.0 * k / max(total, 1), 1)) for name, k in counter.most_common(top)]
    return {"samples": total, "own": share(own), "inclusive_lbaas": share(under), "areas": share(areas)}


def _frame(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``file path from the package:func``."""
    func, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lbaas/", "python3.11/"):
        if marker in path:
            path = ("lbaas/" if marker == "/lbaas/" else "") + path.split(marker, 1)[1]
            break
    return f"{path}:{func}"


def _area(frames: list[str]) -> str:
    for name, marker in AREAS:
        if any(marker in frame for frame in frames):
            return name
    return f"other ({frames[0]})"


def _pg_sessions(database: str) -> int:
    """Sessions ever opened to ``database`` (pg_stat_database.sessions), read in a fresh session."""
    query = f"SELECT pg_stat_force_next_flush(); SELECT sessions FROM pg_stat_database WHERE datname = '{database}'"
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", query], capture_output=True,
                         text=True, timeout=30)
    values = [line for line in out.stdout.split() if line.strip().isdigit()]
    return int(values[-1]) if values else -1


# --- output -------------------------------------------------------------------------------

def budget(inprocess: dict[str, Any]) -> dict[str, Any]:
    """What part 3's guard compares with: statements (total, API, consumer) and CPU per change."""
    out: dict[str, Any] = {}
    for kind, figures in inprocess["changes"].items():
        counts = figures["counts"]
        out[kind] = {"statements": counts.get("statements|total", {}).get("mode", 0),
                     "statements_api": counts.get("statements|api", {}).get("mode", 0),
                     "statements_consumer": counts.get("statements|consumer", {}).get("mode", 0),
                     "commits": counts.get("commits|total", {}).get("mode", 0),
                     "messages": counts.get("messages|total", {}).get("mode", 0),
                     "cpu_ms_server": round(figures["cpu_ms"].get("server", 0.0), 2),
                     "cpu_ms_agent": round(figures["cpu_ms"].get("agent", 0.0), 2)}
    return out


TOLERANCE = 0.20  # a figure may rise this much over the budget before the guard fails
GUARDED = ("statements", "statements_api", "statements_consumer", "commits", "messages", "cpu_ms_server")


def over_budget(measured: dict[str, Any], recorded: dict[str, Any]) -> list[str]:
    """One line per guarded figure that rose more than TOLERANCE over the recorded budget."""
    over = []
    for kind, limits in recorded.items():
        for name in GUARDED:
            allowed, now = limits.get(name), measured.get(kind, {}).get(name)
            if allowed is not None and now is not None and now > allowed * (1 + TOLERANCE):
                over.append(f"{kind}: {name} {now} > budget {allowed} + {TOLERANCE:.0%}")
    return over


def table(document: dict[str, Any]) -> str:
    """Per change kind: statements and transactions by role, messages, CPU and wall."""
    lines = []
    for transport, data in document["inprocess"].items():
        lines += [f"in-process, PostgreSQL + {transport} (one client; counts are per change, mode [min-max])",
                  "| change | SQL api | SQL consumer | SQL total | commits | rollbacks | checkouts | messages "
                  "| CPU ms api | CPU ms consumer | CPU ms agent | wall p50 ms |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for kind, f in data["changes"].items():
            c, cpu = f["counts"], f["cpu_ms"]
            lines.append(f"| {kind} | {_count(c, 'statements|api')} | {_count(c, 'statements|consumer')} "
                         f"| {_count(c, 'statements|total')} | {_count(c, 'commits|total')} "
                         f"| {_count(c, 'rollbacks|total')} | {_count(c, 'checkouts|total')} "
                         f"| {_count(c, 'messages|total')} | {cpu.get('api', 0):.2f} | {cpu.get('consumer', 0):.2f} "
                         f"| {cpu.get('agent', 0):.2f} | {f['wall_ms'].get('p50', float('nan')):.1f} |")
        lines.append("")
        lines.append("by handler / message (mode per change): " + "; ".join(
            f"{kind}: " + ", ".join(f"{k} {v['mode']}" for k, v in f["counts"].items() if ":" in k)
            for kind, f in data["changes"].items()))
        lines.append("")
    cluster = document.get("cluster")
    if cluster:
        lines += ["multi-process: 1 server + 1 agent (default intervals), one client, DB observer",
                  "| change | server CPU ms | agent CPU ms | wall p50 ms |", "|---|---|---|---|"]
        for kind, f in cluster["changes"].items():
            lines.append(f"| {kind} | {f['cpu_ms']['server']:.1f} | {f['cpu_ms']['agent']:.1f} "
                         f"| {f['wall_ms']['p50']:.1f} |")
        idle = cluster["idle_ms_per_s"]
        lines.append(f"idle: server {idle['server']:.1f} ms/s, agent {idle['agent']:.1f} ms/s")
    return "\n".join(lines)


def _count(counts: dict[str, Any], key: str) -> str:
    c = counts.get(key)
    if c is None:
        return "0"
    return str(c["mode"]) if c["min"] == c["max"] else f"{c['mode']} [{c['min']}-{c['max']}]"


def profile_markdown(profile: dict[str, Any]) -> str:
    lines = ["# Per-change cost profile: py-spy --gil on one server (2 servers + 4 agents, 20 clients, 30 s)", ""]
    for name, run in profile.items():
        p = run["profile"]
        lines += [f"## {name}: {run['changes_per_s']:.1f} changes/s, {run['changes']} changes, "
                  f"PostgreSQL sessions opened {run['pg_sessions_opened']}, "
                  f"CPU ms per change {json.dumps({k: round(v, 1) for k, v in run['cpu_ms_per_change'].items()})}",
                  "", f"samples (GIL held): {p.get('samples')}", ""]
        if "error" in p:
            lines += [f"py-spy failed: {p['error']}", ""]
            continue
        for title, key in (("areas", "areas"), ("own time (leaf function)", "own"),
                           ("inclusive, lbaas functions", "inclusive_lbaas")):
            lines += [f"### top 10 by {title}", "", "| % | function / area |", "|---|---|"]
            lines += [f"| {pct} | `{name_}` |" for name_, pct in p[key]]
            lines.append("")
    return "\n".join(lines)


def run(quick: bool = False, profile: bool = False, transports: tuple[str, ...] = ("rabbit", "memory")) -> Result:
    """The whole profile as a bench/run.py result (rows: statements and CPU per change)."""
    n = 5 if quick else 30
    result = Result(NAME, quick)
    document: dict[str, Any] = {"inprocess": {t: measure_inprocess(t, n) for t in transports},
                                "cluster": measure_cluster(n)}
    if profile:
        document["profile"] = profile_load(10 if quick else 30)
        PROFILE_REPORT.write_text(profile_markdown(document["profile"]) + "\n", encoding="utf-8")
    result.details = document
    for transport, data in document["inprocess"].items():
        for kind, f in data["changes"].items():
            counts = f["counts"]
            result.add(f"{kind}, in-process {transport}", "SQL statements per change",
                       counts.get("statements|total", {}).get("mode", 0), "",
                       api=counts.get("statements|api", {}).get("mode", 0),
                       consumer=counts.get("statements|consumer", {}).get("mode", 0))
            result.add(f"{kind}, in-process {transport}", "server CPU per change", f["cpu_ms"]["server"], "ms")
    for kind, f in document["cluster"]["changes"].items():
        result.add(f"{kind}, 1 server + 1 agent", "server CPU per change", f["cpu_ms"]["server"], "ms",
                   agent=f["cpu_ms"]["agent"], wall_p50=f["wall_ms"]["p50"])
    result.note("counts: most common per-change value; see details for spreads and per-handler figures")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 changes of each kind instead of 30")
    parser.add_argument("--json", action="store_true", help="print the whole document as JSON")
    parser.add_argument("--profile", action="store_true", help="also profile 20 clients under py-spy (2 x 30 s)")
    parser.add_argument("--budget", action="store_true", help=f"write {BUDGET.relative_to(ROOT)} from this run")
    parser.add_argument("--check", action="store_true",
                        help=f"fail (exit 1) when a figure rises more than {TOLERANCE * 100:.0f}%% over {BUDGET.name}")
    parser.add_argument("--transport", action="append", choices=("rabbit", "memory"),
                        help="in-process transports (default both)")
    args = parser.parse_args(argv)
    result = run(args.quick, args.profile, tuple(args.transport or ("rabbit", "memory")))
    result.finish()
    path = result.save()
    document = result.document()
    if args.budget:
        figures = document["details"]["inprocess"]
        transport = "rabbit" if "rabbit" in figures else next(iter(figures))
        BUDGET.write_text(json.dumps({"commit": document["commit"], "transport": transport,
                                      "changes": budget(figures[transport])}, indent=1) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(document, indent=1, default=str))
    else:
        print(table(document["details"]))
        print(f"({path.relative_to(ROOT)})")
    if args.check:
        recorded = json.loads(BUDGET.read_text(encoding="utf-8"))
        measured = budget(document["details"]["inprocess"][recorded["transport"]])
        over = over_budget(measured, recorded["changes"])
        for line in over:
            print(f"OVER BUDGET: {line}", file=sys.stderr)
        if over:
            return 1
        print(f"within budget ({BUDGET.relative_to(ROOT)}, +{TOLERANCE:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
