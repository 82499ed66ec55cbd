"""1. API: one ``lbaas server`` process (noop provider, token auth), the
client in this process (httpx, keep-alive), on SQLite and PostgreSQL.

- creates/s, one client after the other (sequential) and 8 clients at once;
  "accepted" counts 201 answers, "completed" also waits until the noop
  provider has made every one ACTIVE (the server does both);
- GET one load balancer: p50/p95/p99;
- GET /v2/lbaas/loadbalancers?limit=1000 with the few thousand rows made.

Server CPU per request is read from /proc, so that the figures can be told
apart from this process's own (client) CPU use on the shared 2 cores.
"""

from __future__ import annotations

import random
import time
from typing import Any

from bench.common import (Result, ServerProcess, expect, median_of, own_cpu_seconds, run_threads,
                          summary_ms, temp_database)

NAME = "api"
BACKENDS = ("sqlite", "postgresql")
CONCURRENCY = 8


def _create(http: Any, i: int) -> str:
    body = {"loadbalancer": {"vip_subnet_id": "bench", "name": f"lb-{i}"}}
    return expect(http.post("/v2/lbaas/loadbalancers", json=body))["loadbalancer"]["id"]


def _drain(http: Any, timeout: float = 60) -> float:
    """Wait until no load balancer is PENDING_CREATE; returns when that was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = expect(http.get("/v2/lbaas/loadbalancers",
                               params={"provisioning_status": "PENDING_CREATE", "limit": 1, "fields": "id"}), 200)
        if not page["loadbalancers"]:
            return time.monotonic()
        time.sleep(0.01)
    raise TimeoutError("load balancers still PENDING_CREATE")


class Meter:
    """Wall time, server CPU and client CPU over one phase."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server

    def __enter__(self) -> "Meter":
        self.t0, self.s0, self.c0 = time.perf_counter(), self.server.cpu(), own_cpu_seconds()
        return self

    def __exit__(self, *_: Any) -> None:
        self.wall = time.perf_counter() - self.t0
        self.server_cpu = self.server.cpu() - self.s0
        self.client_cpu = own_cpu_seconds() - self.c0


def create_rounds(server: ServerProcess, ids: list[str], rounds: int, count: int, clients: int,
                  max_seconds: float) -> list[dict[str, float]]:
    out = []
    admin = server.client()
    for r in range(rounds):
        https = [server.client() for _ in range(clients)]
        per_client = count // clients
        latencies: list[list[float]] = [[] for _ in range(clients)]
        made: list[list[str]] = [[] for _ in range(clients)]

        def work(c: int) -> None:
            stop = time.perf_counter() + max_seconds
            for i in range(per_client):
                t = time.perf_counter()
                made[c].append(_create(https[c], r * 100000 + c * 10000 + i))
                latencies[c].append(time.perf_counter() - t)
                if time.perf_counter() > stop:
                    break

        with Meter(server) as meter:
            run_threads(clients, work)
        accepted_at = time.monotonic()
        done_at = _drain(admin)
        n = sum(len(x) for x in made)
        lat = summary_ms([x for lst in latencies for x in lst])
        out.append({"n": n, "seconds": meter.wall, "per_s": n / meter.wall,
                    "completed_per_s": n / (meter.wall + done_at - accepted_at),
                    "server_cpu_ms_per_req": 1000 * meter.server_cpu / n,
                    "client_cpu_ms_per_req": 1000 * meter.client_cpu / n,
                    "server_cpu_util": meter.server_cpu / meter.wall,
                    **{f"lat_{k}": v for k, v in lat.items() if k != "n"}})
        ids += [x for lst in made for x in lst]
        for h in https:
            h.close()
    admin.close()
    return out


def get_rounds(server: ServerProcess, ids: list[str], rounds: int, count: int) -> list[dict[str, float]]:
    out = []
    rng = random.Random(1)
    with server.client() as http:
        for _ in range(rounds):
            picks = [rng.choice(ids) for _ in range(count)]
            lat = []
            with Meter(server) as meter:
                for lb_id in picks:
                    t = time.perf_counter()
                    expect(http.get(f"/v2/lbaas/loadbalancers/{lb_id}"), 200)
                    lat.append(time.perf_counter() - t)
            out.append({**summary_ms(lat), "server_cpu_ms_per_req": 1000 * meter.server_cpu / count,
                        "client_cpu_ms_per_req": 1000 * meter.client_cpu / count})
    return out


def list_rounds(server: ServerProcess, rounds: int, count: int) -> list[dict[str, float]]:
    out = []
    with server.client() as http:
        rows = len(expect(http.get("/v2/lbaas/loadbalancers", params={"limit": 1000}), 200)["loadbalancers"])
        for _ in range(rounds):
            lat = []
            with Meter(server) as meter:
                for _ in range(count):
                    t = time.perf_counter()
                    expect(http.get("/v2/lbaas/loadbalancers", params={"limit": 1000}), 200)
                    lat.append(time.perf_counter() - t)
            out.append({**summary_ms(lat), "rows": rows, "server_cpu_ms_per_req": 1000 * meter.server_cpu / count})
    return out


def run(quick: bool = False) -> Result:
    result = Result(NAME, quick)
    rounds = 1 if quick else 3
    seq_n, con_n, get_n, list_n = (60, 160, 200, 5) if quick else (300, 800, 1000, 20)
    for backend in BACKENDS:
        db, workdir = temp_database(backend)
        server = ServerProcess(workdir, db.url)
        try:
            ids: list[str] = []
            create_rounds(server, ids, 1, 40, 1, 10)  # warm-up: imports, caches, connections
            get_rounds(server, ids, 1, 100)
            seq = create_rounds(server, ids, rounds, seq_n, 1, 10)
            con = create_rounds(server, ids, rounds, con_n, CONCURRENCY, 10)
            gets = get_rounds(server, ids, rounds, get_n)
            lists = list_rounds(server, rounds, list_n)
            result.details[backend] = {"sequential_create": seq, "concurrent_create": con, "get": gets,
                                       "list": lists, "rows_at_end": len(ids)}
            b = backend
            for label, data in (("sequential", seq), (f"{CONCURRENCY} clients", con)):
                rate = median_of(data, "per_s")
                result.add(f"{b} create, {label}", "accepted/s (median of rounds)", rate, "/s",
                           target=">= 200/s", met=rate >= 200)
                result.add(f"{b} create, {label}", "completed/s (until all ACTIVE)",
                           median_of(data, "completed_per_s"), "/s")
                result.add(f"{b} create, {label}", "POST p50",
                           median_of(data, "lat_p50"), "ms", p95=median_of(data, "lat_p95"))
                result.add(f"{b} create, {label}", "server CPU per create",
                           median_of(data, "server_cpu_ms_per_req"), "ms")
            p50, p95, p99 = (median_of(gets, k) for k in ("p50", "p95", "p99"))
            result.add(f"{b} GET one LB", "p50", p50, "ms", target="< 5 ms", met=p50 < 5)
            result.add(f"{b} GET one LB", "p95", p95, "ms")
            result.add(f"{b} GET one LB", "p99", p99, "ms")
            result.add(f"{b} GET one LB", "server CPU per GET", median_of(gets, "server_cpu_ms_per_req"), "ms")
            result.add(f"{b} list limit=1000 ({lists[0]['rows']} rows)", "p50",
                       median_of(lists, "p50"), "ms", p95=median_of(lists, "p95"))
        finally:
            server.stop()
            db.drop()
    result.note("server: `lbaas server` process, noop provider (noop_delay 0.05 s), auth on; client: httpx "
                "keep-alive in the bench process, on the same 2 cores")
    result.details["medians_note"] = "each figure is the median over rounds; latencies pooled per round"
    return result


