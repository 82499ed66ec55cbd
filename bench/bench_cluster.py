"""3. Full graphs through a real control plane, created by 1 and by 20
concurrent clients, waiting for ACTIVE.

A graph is a load balancer + HTTP listener + pool + 2 members + HTTP health
monitor, created either

- one-POST: as one fully populated ``POST /v2/lbaas/loadbalancers``, then
  waiting until ACTIVE; or
- step-by-step: LB, listener, pool, member, member, monitor, each POST
  followed by waiting until the load balancer is ACTIVE again (what
  ``openstack ... --wait`` does).  A "step" is one POST to ACTIVE.

Targets: one-POST >= 100 graphs/s with p99 < 250 ms at 20 clients; one step
p50 < 20 ms.  Two deployments:

- cluster: 2 ``lbaas server`` + 4 ``lbaas agent`` processes (noop driver) on
  PostgreSQL + RabbitMQ (lbaas/testing/cluster.py); clients alternate servers;
- all-in-one: ``lbaas all-in-one --data-plane noop`` (SQLite, memory://,
  two in-process agents; a /8 VIP subnet so that addresses never run out).

Two ways of seeing ACTIVE:

- API polls (the headline, as a client would): each client GETs its load
  balancer every 5 ms (after the previous answer), so a figure includes up
  to ~5 ms of polling delay plus one GET, and the polls load the servers;
- DB observer: one thread in this process reads the states of all awaited
  load balancers from the database every 5 ms (no API load): what the
  control plane can do when watching it is free.

CPU per graph is split by role (our servers and agents from /proc; all
PostgreSQL and RabbitMQ processes and this client process), to show where
the two cores go.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bench.common import (POLL, ROOT, UNLIMITED_API, UNLIMITED_QUOTAS, DbObserver, Result, client, expect, free_port, median, own_cpu_seconds,
                          pids_named, proc_cpu_seconds, run_threads, stop_process, summary_ms, temp_database,
                          wait_active, wait_http)

NAME = "cluster"
HOSTS = ["host-1", "host-2", "host-3", "host-4"]


def graph_body(subnet: str, project: str) -> dict[str, Any]:
    return {"loadbalancer": {
        "vip_subnet_id": subnet, "project_id": project, "name": "graph",
        "listeners": [{"protocol": "HTTP", "protocol_port": 80, "name": "web",
                       "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "name": "pool",
                                        "members": [{"address": "192.0.2.10", "protocol_port": 8080},
                                                    {"address": "192.0.2.11", "protocol_port": 8080}],
                                        "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 3,
                                                          "max_retries": 3, "url_path": "/health"}}}]}}


class Deployment:
    name: str
    subnet: str
    urls: list[str]
    token: str
    db_url: str
    server_pids: list[int]
    agent_pids: list[int]

    def stop(self) -> None:
        raise NotImplementedError


class ClusterDeployment(Deployment):
    name = "cluster"
    subnet = "cluster"

    def __init__(self) -> None:
        from lbaas.testing.cluster import Cluster
        self.db, workdir = temp_database("postgresql")
        self.workdir = workdir
        self.cluster = Cluster(workdir, self.db.url, extra=UNLIMITED_QUOTAS)  # admins are not write-limited
        try:
            self.urls = [self.cluster.start_server("server-1"), self.cluster.start_server("server-2")]
            for host in HOSTS:
                self.cluster.start_agent(host)
            self.cluster.wait_agents(HOSTS)
        except Exception:
            self.stop()
            raise
        self.token = self.cluster.token
        self.db_url = self.db.url
        self.server_pids = [s["proc"].pid for s in self.cluster.servers.values()]
        self.agent_pids = [p.pid for p in self.cluster.agents.values()]

    def stop(self) -> None:
        try:
            self.cluster.stop()
        finally:
            self.db.drop()


class AllInOneDeployment(Deployment):
    name = "all-in-one"
    subnet = "bench"

    def __init__(self) -> None:
        self.workdir = tempfile.mkdtemp(prefix="lbaas-bench-aio-")
        port = free_port()
        config = os.path.join(self.workdir, "aio.ini")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(f"""[DEFAULT]
state_dir = {self.workdir}/state
log_file = {self.workdir}/aio.log

[api]
bind_port = {port}
{UNLIMITED_API}

[vip_subnets]
bench = 10.0.0.0/8

{UNLIMITED_QUOTAS}
""")
        self.log = os.path.join(self.workdir, "aio.out")
        # --data-plane noop: no HAProxy device even where haproxy is installed.
        self.proc = subprocess.Popen([sys.executable, "-m", "lbaas.cli", "all-in-one", "--data-plane", "noop",
                                      "--config-file", config], cwd=str(ROOT), stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(url + "/", self.proc, "lbaas all-in-one", self.log)
            from lbaas.allinone import admin_token
            self.token = admin_token(os.path.join(self.workdir, "state", "tokens.json"))
            self._wait_agents(url)
        except Exception:
            self.stop()
            raise
        self.urls = [url]
        self.db_url = f"sqlite:///{self.workdir}/state/lbaas.sqlite"
        self.server_pids = [self.proc.pid]
        self.agent_pids = []

    def _wait_agents(self, url: str) -> None:
        deadline = time.monotonic() + 30
        with client(url, self.token) as http:
            while time.monotonic() < deadline:
                agents = http.get("/v2.0/agents").json().get("agents", [])
                if len(agents) >= 2 and all(a["alive"] for a in agents):
                    return
                time.sleep(0.1)
        raise RuntimeError(f"all-in-one agents not alive; see {self.log}")

    def stop(self) -> None:
        stop_process(self.proc)
        shutil.rmtree(os.path.join(self.workdir, "state"), ignore_errors=True)  # its SQLite database


# --- workloads --------------------------------------------------------------------

Waiter = Callable[[Any, str], "tuple[float, int]"]


def api_waiter(http: Any, lb_id: str) -> tuple[float, int]:
    return wait_active(http, lb_id)


def db_waiter(observer: DbObserver) -> Waiter:
    return lambda _http, lb_id: (observer.wait(lb_id), 0)


def one_post(http: Any, dep: Deployment, project: str, record: dict[str, list], wait: Waiter) -> None:
    t0 = time.monotonic()
    lb = expect(http.post("/v2/lbaas/loadbalancers", json=graph_body(dep.subnet, project)))["loadbalancer"]
    accepted = time.monotonic()
    done, polls = wait(http, lb["id"])
    record["graph"].append(done - t0)
    record["post"].append(accepted - t0)
    record["polls"].append(polls)


def step_by_step(http: Any, dep: Deployment, project: str, record: dict[str, list], wait: Waiter) -> None:
    g0 = time.monotonic()

    def step(path: str, body: dict[str, Any], lb_id: str | None = None) -> dict[str, Any]:
        t0 = time.monotonic()
        doc = expect(http.post(path, json=body))
        record["step_post"].append(time.monotonic() - t0)
        lb = lb_id or doc["loadbalancer"]["id"]
        done, polls = wait(http, lb)
        record["step"].append(done - t0)
        record["polls"].append(polls)
        return doc

    lb = step("/v2/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": dep.subnet, "project_id": project}})
    lb_id = lb["loadbalancer"]["id"]
    listener = step("/v2/lbaas/listeners", {"listener": {"loadbalancer_id": lb_id, "protocol": "HTTP",
                                                         "protocol_port": 80}}, lb_id)["listener"]
    pool = step("/v2/lbaas/pools", {"pool": {"listener_id": listener["id"], "protocol": "HTTP",
                                             "lb_algorithm": "ROUND_ROBIN"}}, lb_id)["pool"]
    for address in ("192.0.2.10", "192.0.2.11"):
        step(f"/v2/lbaas/pools/{pool['id']}/members", {"member": {"address": address, "protocol_port": 8080}},
             lb_id)
    step("/v2/lbaas/healthmonitors", {"healthmonitor": {"pool_id": pool["id"], "type": "HTTP", "delay": 5,
                                                        "timeout": 3, "max_retries": 3}}, lb_id)
    record["graph"].append(time.monotonic() - g0)


def drive(dep: Deployment, work: Callable[..., None], clients: int, per_client: int,
          max_seconds: float, wait: Waiter = api_waiter) -> dict[str, Any]:
    """``clients`` threads, each with its own keep-alive connection to one of
    the servers (alternating) and its own project, doing ``per_client``
    graphs or stopping after ``max_seconds``."""
    records = [{"graph": [], "post": [], "step": [], "step_post": [], "polls": []} for _ in range(clients)]
    cpu0 = _cpu(dep)

    def body(c: int) -> None:
        stop = time.monotonic() + max_seconds
        with client(dep.urls[c % len(dep.urls)], dep.token) as http:
            for _ in range(per_client):
                work(http, dep, f"bench-{c}", records[c], wait)
                if time.monotonic() > stop:
                    break

    t0 = time.monotonic()
    run_threads(clients, body)
    wall = time.monotonic() - t0
    cpu1 = _cpu(dep)
    merged = {k: [x for r in records for x in r[k]] for k in records[0]}
    graphs = len(merged["graph"])
    per_graph = {role: 1000 * (cpu1[role] - cpu0[role]) / max(graphs, 1) for role in cpu0}
    return {"clients": clients, "graphs": graphs, "seconds": wall, "graphs_per_s": graphs / wall,
            "graph_ms": summary_ms(merged["graph"]), "post_ms": summary_ms(merged["post"]),
            "step_ms": summary_ms(merged["step"]), "step_post_ms": summary_ms(merged["step_post"]),
            "steps_per_s": len(merged["step"]) / wall,
            "polls_per_graph": sum(merged["polls"]) / max(graphs, 1),
            "cpu_ms_per_graph": per_graph,
            "control_plane_cpu_s_per_graph": (per_graph["servers"] + per_graph["agents"]) / 1000}


def _cpu(dep: Deployment) -> dict[str, float]:
    """CPU seconds so far, by role: our servers and agents (the all-in-one
    counts as servers), and, read from /proc, PostgreSQL, RabbitMQ and this
    client process."""
    def total(pids: list[int]) -> float:
        return sum(v for v in (proc_cpu_seconds(p) for p in pids) if v == v)
    return {"servers": total(dep.server_pids), "agents": total(dep.agent_pids),
            "postgres": total(pids_named("postgres")), "rabbitmq": total(pids_named("beam.smp")),
            "client": own_cpu_seconds()}


def measure(dep: Deployment, quick: bool, rounds: int) -> dict[str, Any]:
    """Every (workload, clients, waiting) combination, ``rounds`` times."""
    plan = [  # (workload, clients, graphs per client, time cap per round, waiting)
        ("one_post", 1, 10 if quick else 40, 20, "api"),
        ("one_post", 20, 2 if quick else 5, 30, "api"),
        ("one_post", 20, 2 if quick else 5, 30, "db"),
        ("step", 1, 3 if quick else 12, 20, "api"),
        ("step", 1, 3 if quick else 12, 20, "db"),
        ("step", 20, 1, 30, "api"),
        ("step", 20, 1, 30, "db"),
    ]
    works = {"one_post": one_post, "step": step_by_step}
    observer = DbObserver(dep.db_url)
    try:
        drive(dep, one_post, 4, 3, 20)  # warm-up: every server, agent and connection
        drive(dep, step_by_step, 2, 1, 20, db_waiter(observer))
        out: dict[str, Any] = {}
        for mode, clients, per_client, cap, waiting in plan:
            wait = api_waiter if waiting == "api" else db_waiter(observer)
            out[f"{mode}@{clients}/{waiting}"] = [drive(dep, works[mode], clients, per_client, cap, wait)
                                                  for _ in range(rounds)]
        out["observer_reads"] = observer.reads
        return out
    finally:
        observer.stop()


def report(result: Result, dep_name: str, data: dict[str, Any]) -> None:
    def med(runs: list[dict], *path: str) -> float:
        values = []
        for r in runs:
            v: Any = r
            for p in path:
                v = v[p]
            values.append(v)
        return median(values)

    waits = {"api": "API polls", "db": "DB observer"}
    for key in ("one_post@1/api", "one_post@20/api", "one_post@20/db"):
        runs = data[key]
        clients, waiting = int(key.split("@")[1].split("/")[0]), key.split("/")[1]
        case = f"{dep_name} one-POST, {clients} client{'s' if clients > 1 else ''}, {waits[waiting]}"
        rate, p99 = med(runs, "graphs_per_s"), med(runs, "graph_ms", "p99")
        big = clients == 20
        result.add(case, "graphs/s", rate, "/s", target=">= 100/s" if big else None,
                   met=(rate >= 100) if big else None)
        result.add(case, "create->ACTIVE p50", med(runs, "graph_ms", "p50"), "ms")
        result.add(case, "create->ACTIVE p95", med(runs, "graph_ms", "p95"), "ms")
        result.add(case, "create->ACTIVE p99", p99, "ms", target="< 250 ms" if big else None,
                   met=(p99 < 250) if big else None)
        result.add(case, "POST answered p50", med(runs, "post_ms", "p50"), "ms")
        budget = {role: round(med(runs, "cpu_ms_per_graph", role), 1) for role in runs[0]["cpu_ms_per_graph"]}
        result.add(case, "CPU per graph, servers+agents", budget["servers"] + budget["agents"], "ms",
                   polls_per_graph=round(med(runs, "polls_per_graph"), 1), cpu_ms_per_graph=budget)
        result.add(case, "CPU per graph, everything", sum(budget.values()), "ms")
    for key in ("step@1/api", "step@1/db", "step@20/api", "step@20/db"):
        runs = data[key]
        clients, waiting = int(key.split("@")[1].split("/")[0]), key.split("/")[1]
        case = f"{dep_name} step-by-step, {clients} client{'s' if clients > 1 else ''}, {waits[waiting]}"
        p50 = med(runs, "step_ms", "p50")
        result.add(case, "one step p50", p50, "ms", target="< 20 ms", met=p50 < 20,
                   p95=med(runs, "step_ms", "p95"), p99=med(runs, "step_ms", "p99"))
        result.add(case, "POST answered p50", med(runs, "step_post_ms", "p50"), "ms")
        result.add(case, "graphs/s (6 steps each)", med(runs, "graphs_per_s"), "/s",
                   steps_per_s=med(runs, "steps_per_s"))


def run(quick: bool = False) -> Result:
    result = Result(NAME, quick)
    rounds = 1 if quick else 3
    for factory in (ClusterDeployment, AllInOneDeployment):
        dep = factory()
        try:
            data = measure(dep, quick, rounds)
            result.details[dep.name] = data
            report(result, dep.name, data)
        finally:
            dep.stop()
    result.note(f"API polls: ACTIVE seen by GET every {POLL * 1000:.0f} ms after the previous answer, per client; "
                "the polls add latency and load the servers")
    result.note(f"DB observer: one thread reads all awaited states from the database every {POLL * 1000:.0f} ms; "
                "no API load (shows the control plane without the cost of watching it)")
    result.note("cluster: 2 servers + 4 agents (noop driver), PostgreSQL + RabbitMQ; all-in-one: "
                "--data-plane noop, SQLite + memory://; clients on the same 2 cores")
    return result


