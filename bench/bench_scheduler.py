"""4. Scheduler decision time with 1,000 and 100,000 bound load balancers,
50 agents, 1,000 projects (PostgreSQL and SQLite).

Agents, load balancers and bindings are bulk-inserted (bench/seed.py) as
the scheduler would have placed them: each project on one agent (tenant
affinity), one binding in twenty elsewhere; agent-00 is dead (heartbeat two
days old) and keeps its bindings.  Then, each decision in its own
transaction, rolled back afterwards, many times:

- place, existing project: ``Scheduler.place`` for a new load balancer of a
  project that already has load balancers (the affinity path);
- place, new project: ``Scheduler.place`` for a project never seen (lock row
  insert + least-loaded agent);
- route, dead agent: ``Scheduler.route`` for a load balancer bound to the
  dead agent (binding read, liveness check, affinity among live agents,
  least loaded).

The new load balancer row is inserted (untimed) before ``place`` so that
the binding's foreign key holds; the timed part is the call itself,
including the flush of the binding it adds.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from bench import seed
from bench.common import Result, median, summary_ms, temp_database
from lbaas.db import models as m
from lbaas.db.session import Database
from lbaas.scheduler import Scheduler

NAME = "scheduler"
BACKENDS = ("postgresql", "sqlite")
SIZES = (1000, 100000)
AGENTS = 50
ENV = "bench"


def _new_lb(project: str) -> m.LoadBalancer:
    return m.LoadBalancer(id=str(uuid.uuid4()), project_id=project, provider=ENV, name="new",
                          provisioning_status="PENDING_CREATE", operating_status="OFFLINE",
                          vip_address=f"172.16.{random.randrange(256)}.{random.randrange(256)}",
                          vip_subnet_id="bench", revision=1, created_at=m.utcnow())


def _time_decision(db: Database, scheduler: Scheduler, kind: str, arg: Any) -> tuple[float, Any]:
    session = db.sessions()
    try:
        if kind == "route":
            lb = session.get(m.LoadBalancer, arg)
            t0 = time.perf_counter()
            agent = scheduler.route(session, lb)
            elapsed = time.perf_counter() - t0
        else:
            lb = _new_lb(arg)
            session.add(lb)
            session.flush()
            t0 = time.perf_counter()
            agent = scheduler.place(session, lb)
            elapsed = time.perf_counter() - t0
        return elapsed, agent.host if agent is not None else None
    finally:
        session.rollback()
        session.close()


def measure(db: Database, lbs: list[tuple[str, str]], dead_agent: str, bound: dict[str, str],
            rounds: int, reps: int) -> dict[str, Any]:
    scheduler = Scheduler(agent_down_time=3600)
    rng = random.Random(5)
    projects = sorted({p for _, p in lbs})
    on_dead = [lb for lb, _ in lbs if bound[lb] == dead_agent]
    cases = {
        "place, existing project": lambda: rng.choice(projects),
        "place, new project": lambda: f"new-project-{uuid.uuid4().hex[:12]}",
        "route, dead agent": lambda: rng.choice(on_dead),
    }
    out: dict[str, Any] = {}
    for name, pick in cases.items():
        kind = "route" if name.startswith("route") else "place"
        for _ in range(20):  # warm-up: statement caches, connections, the database clock
            _time_decision(db, scheduler, kind, pick())
        per_round, chosen = [], set()
        for _ in range(rounds):
            times = []
            for _ in range(reps):
                elapsed, host = _time_decision(db, scheduler, kind, pick())
                times.append(elapsed)
                chosen.add(host)
            per_round.append(summary_ms(times))
        if kind == "route" and None in chosen:
            raise RuntimeError("route found no live agent")
        out[name] = {"rounds": per_round, "p50": median(r["p50"] for r in per_round),
                     "p95": median(r["p95"] for r in per_round), "p99": median(r["p99"] for r in per_round),
                     "agents_chosen": len(chosen)}
    return out


def run(quick: bool = False) -> Result:
    result = Result(NAME, quick)
    rounds, reps = (1, 50) if quick else (3, 200)
    sizes = (1000, 20000) if quick else SIZES
    for backend in BACKENDS:
        tmp, _ = temp_database(backend)
        db = Database(tmp.url)
        try:
            agent_ids = seed.agents(db.engine, AGENTS, ENV, dead=1)
            dead = agent_ids[0]
            lbs: list[tuple[str, str]] = []
            bound: dict[str, str] = {}
            figures: dict[int, Any] = {}
            seeding = []
            for size in sizes:
                t0 = time.perf_counter()
                info = seed.loadbalancers(db.engine, size - len(lbs), start=len(lbs), provider=ENV,
                                          children=False, seed=1)
                rows = [(lb, p) for lb, p in info["ids"]]
                counts = seed.bindings(db.engine, rows, agent_ids, ENV, seed=len(lbs))
                for (lb, project), agent in zip(rows, _agents_of(db, [lb for lb, _ in rows])):
                    bound[lb] = agent
                lbs += rows
                if backend == "postgresql":  # autovacuum would; lbaas never ANALYZEs SQLite
                    seed.analyze(db.engine)
                seeding.append({"load_balancers": len(rows), "seconds": time.perf_counter() - t0,
                                "on_dead_agent": counts[dead]})
                figures[size] = measure(db, lbs, dead, bound, rounds, reps)
            result.details[backend] = {"seeding": seeding, "figures": figures}
            small, large = sizes
            for case in figures[small]:
                a, b = figures[small][case], figures[large][case]
                label = f"{backend} {case}"
                result.add(label, f"p50 at {small:,}", a["p50"], "ms", p95=a["p95"])
                result.add(label, f"p50 at {large:,}", b["p50"], "ms", p95=b["p95"], p99=b["p99"])
                ratio = b["p50"] / a["p50"]
                result.add(label, f"ratio {large // 1000}k / {small // 1000}k", ratio, "x",
                           target="<= 1.5x", met=ratio <= 1.5)
        finally:
            db.dispose()
            tmp.drop()
    result.note(f"{AGENTS} agents (one dead), ~1,000 projects; each decision in its own transaction, "
                f"rolled back; {rounds} rounds x {reps} decisions, median of per-round p50")
    return result


def _agents_of(db: Database, lb_ids: list[str]) -> list[str]:
    from sqlalchemy import select
    found: dict[str, str] = {}
    with db.engine.connect() as conn:
        for start in range(0, len(lb_ids), 5000):
            chunk = lb_ids[start:start + 5000]
            found.update(conn.execute(select(m.Binding.loadbalancer_id, m.Binding.agent_id)
                                      .where(m.Binding.loadbalancer_id.in_(chunk))).all())
    return [found[i] for i in lb_ids]
