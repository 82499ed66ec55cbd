"""2. List latency at 1,000 and at 100,000 load balancers (PostgreSQL and
SQLite), over HTTP against one ``lbaas server`` process.

Rows are bulk-inserted (bench/seed.py); PostgreSQL is then ANALYZEd, as
autovacuum would; SQLite is not, as nothing in lbaas runs ANALYZE on it
(statistics gathered at 1,000 rows and kept at 100,000 make SQLite scan
whole child tables: see BENCHMARKS.md).  The 1,000-row set
is measured, 99,000 more rows (same distribution, created_at interleaved
over the same year) are added, and the same requests are measured again:

- admin: ``GET /v2/lbaas/loadbalancers?limit=1000`` (first page, 1,000 rows);
- member: the same as a member of one project that owns 100 load balancers
  at both sizes (so both answers hold 100 rows);
- deep: admin, ``limit=1000&marker=<id>`` with the marker half-way through the
  table (at 1,000 rows the marker is the first row: 999 rows come back).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from bench import seed
from bench.common import Result, ServerProcess, expect, median_of, summary_ms, temp_database
from lbaas.db import models as m
from lbaas.db.session import Database

NAME = "list"
BACKENDS = ("postgresql", "sqlite")
SIZES = (1000, 100000)


def _marker(db: Database, total: int) -> str:
    position = max(0, min(total // 2, total - 1001))
    with db.engine.connect() as conn:
        return conn.scalar(select(m.LoadBalancer.id).order_by(m.LoadBalancer.created_at, m.LoadBalancer.id)
                           .offset(position).limit(1))


def measure(server: ServerProcess, db: Database, total: int, rounds: int, reps: int) -> dict[str, Any]:
    variants = {
        "admin": ("admin", {"limit": 1000}),
        "member": (seed.MEMBER_PROJECT, {"limit": 1000}),
        "deep": ("admin", {"limit": 1000, "marker": _marker(db, total)}),
    }
    out: dict[str, Any] = {}
    for name, (token, params) in variants.items():
        with server.client(token) as http:
            first = expect(http.get("/v2/lbaas/loadbalancers", params=params), 200)  # warm-up + row count
            expect(http.get("/v2/lbaas/loadbalancers", params=params), 200)
            rounds_out = []
            for _ in range(rounds):
                lat = []
                for _ in range(reps):
                    t = time.perf_counter()
                    response = http.get("/v2/lbaas/loadbalancers", params=params)  # whole body read
                    lat.append(time.perf_counter() - t)
                    if response.status_code != 200:
                        expect(response, 200)
                rounds_out.append(summary_ms(lat))
            out[name] = {"rows": len(first["loadbalancers"]), "bytes": len(response.content),
                         "rounds": rounds_out, "p50": median_of(rounds_out, "p50"),
                         "p95": median_of(rounds_out, "p95"), "p99": median_of(rounds_out, "p99")}
    return out


def run(quick: bool = False) -> Result:
    result = Result(NAME, quick)
    rounds, reps = (1, 5) if quick else (3, 10)
    sizes = (1000, 20000) if quick else SIZES
    for backend in BACKENDS:
        tmp, workdir = temp_database(backend)
        db = Database(tmp.url)
        server = None
        try:
            figures: dict[int, Any] = {}
            seeding = []
            done = 0
            for size in sizes:
                info = seed.loadbalancers(db.engine, size - done, start=done,
                                          member_project_lbs=seed.MEMBER_PROJECT_LBS if done == 0 else 0)
                seeding.append({"load_balancers": size - done, "rows": info["rows"], "seconds": info["seconds"]})
                done = size
                if backend == "postgresql":  # autovacuum would; lbaas never ANALYZEs SQLite (see notes)
                    seed.analyze(db.engine)
                if server is None:
                    server = ServerProcess(workdir, tmp.url, projects=(seed.MEMBER_PROJECT,))
                figures[size] = measure(server, db, size, rounds, reps)
            result.details[backend] = {"seeding": seeding, "figures": figures}
            small, large = sizes
            for variant in ("admin", "member", "deep"):
                a, b = figures[small][variant], figures[large][variant]
                case = f"{backend} {variant} ({b['rows']} rows)"
                result.add(case, f"p50 at {small:,}", a["p50"], "ms", rows=a["rows"], p95=a["p95"])
                page = variant != "member"
                result.add(case, f"p50 at {large:,}", b["p50"], "ms", rows=b["rows"], p95=b["p95"], p99=b["p99"],
                           target="< 100 ms" if page else None, met=(b["p50"] < 100) if page else None)
                result.add(case, f"p95 at {large:,}", b["p95"], "ms")
                ratio = b["p50"] / a["p50"]
                result.add(case, f"ratio {large // 1000}k / {small // 1000}k", ratio, "x",
                           target="<= 1.5x", met=ratio <= 1.5)
        finally:
            if server is not None:
                server.stop()
            db.dispose()
            tmp.drop()
    result.note("latency = one GET, whole body received (not decoded), keep-alive, admin or member token")
    result.note("member: a project with 100 load balancers at both sizes; deep: marker half-way in")
    result.note("PostgreSQL ANALYZEd after each bulk load; SQLite without statistics, as lbaas leaves it")
    return result
