"""Bulk rows written straight into the schema with SQLAlchemy core
(``executemany`` in batches), for the list and scheduler benchmarks.

Shape (realistic rather than uniform): ~1,000 projects; a load balancer
in three has a listener (HTTP 80) with a default pool of two members, one
in ten has a second listener (HTTPS 443) with a pool, half of the pools
have a health monitor, one in ten load balancers has tags.  created_at is
spread over a year, so the default sort (created_at, id) is meaningful.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Engine

from lbaas.db import models as m

PROJECTS = 1000
BATCH = 5000
MEMBER_PROJECT = "project-bench"   # the project whose member lists in the list benchmark
MEMBER_PROJECT_LBS = 100           # its load balancers, at every size
EPOCH = dt.datetime(2025, 1, 1)
YEAR_S = 365 * 24 * 3600


def project_name(i: int) -> str:
    return f"project-{i:04d}"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _batches(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start:start + BATCH]


def _insert(conn: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    for chunk in _batches(rows):
        conn.execute(insert(model), chunk)


def _common(rng: random.Random, project: str, created: dt.datetime) -> dict[str, Any]:
    return {"id": _uuid(rng), "project_id": project, "name": "", "description": "", "admin_state_up": True,
            "provisioning_status": "ACTIVE", "operating_status": "ONLINE", "created_at": created,
            "updated_at": None}


def loadbalancers(engine: Engine, count: int, *, start: int = 0, provider: str = "noop",
                  children: bool = True, member_project_lbs: int = 0, seed: int = 0,
                  project_of: Any = None) -> dict[str, Any]:
    """Insert ``count`` load balancers (numbered from ``start``, for unique
    VIPs); ``member_project_lbs`` of them belong to MEMBER_PROJECT, the rest
    to ``project_of(i)`` (default: spread over PROJECTS projects at random).
    Returns {"ids": [(id, project)], "seconds": s, "rows": n}."""
    rng = random.Random(seed * 7919 + start)
    t0 = time.perf_counter()
    lbs, listeners, pools, members, monitors, tags = [], [], [], [], [], []
    ids = []
    for n in range(count):
        i = start + n
        if n < member_project_lbs:
            project = MEMBER_PROJECT
        elif project_of is not None:
            project = project_of(i)
        else:
            project = project_name(rng.randrange(PROJECTS))
        created = EPOCH + dt.timedelta(seconds=rng.randrange(YEAR_S))
        vip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        row = {**_common(rng, project, created), "name": f"lb-{i}", "provider": provider, "vip_address": vip,
               "vip_subnet_id": "bench", "vip_network_id": "bench", "vip_port_id": None, "flavor_id": None,
               "availability_zone": None, "revision": 1, "pending_since": None, "status_reason": None,
               "stats": None}
        lbs.append(row)
        ids.append((row["id"], project))
        if rng.random() < 0.1:
            tags += [{"resource_id": row["id"], "tag": t} for t in rng.sample(["prod", "web", "db", "eu", "us"], 2)]
        if not children:
            continue
        ports = [80] if rng.random() < 1 / 3 else []
        if ports and rng.random() < 0.3:
            ports.append(443)
        for port in ports:
            pool = {**_common(rng, project, created), "load_balancer_id": row["id"],
                    "protocol": "HTTP" if port == 80 else "HTTPS", "lb_algorithm": "ROUND_ROBIN",
                    "session_persistence": None, "tls_enabled": False}
            pools.append(pool)
            listeners.append({**_common(rng, project, created), "load_balancer_id": row["id"],
                              "protocol": pool["protocol"], "protocol_port": port, "vip_address": vip,
                              "connection_limit": -1, "default_pool_id": pool["id"],
                              "timeout_client_data": 50000, "timeout_member_connect": 5000,
                              "timeout_member_data": 50000, "timeout_tcp_inspect": 0, "insert_headers": {},
                              "allowed_cidrs": None, "stats": None})
            for k in range(2):
                members.append({**_common(rng, project, created), "pool_id": pool["id"],
                                "address": f"192.168.{k}.{i & 255}", "protocol_port": 8080 + (i >> 8) % 100,
                                "weight": 1, "backup": False, "subnet_id": None, "monitor_address": None,
                                "monitor_port": None, "operating_status": "NO_MONITOR"})
            if rng.random() < 0.5:
                monitors.append({**_common(rng, project, created), "pool_id": pool["id"], "type": "HTTP",
                                 "delay": 5, "timeout": 3, "max_retries": 3, "max_retries_down": 3,
                                 "http_method": "GET", "url_path": "/", "expected_codes": "200",
                                 "http_version": None, "domain_name": None})
    with engine.begin() as conn:
        _insert(conn, m.LoadBalancer, lbs)
        _insert(conn, m.Pool, pools)
        _insert(conn, m.Listener, listeners)
        _insert(conn, m.Member, members)
        _insert(conn, m.HealthMonitor, monitors)
        _insert(conn, m.Tag, tags)
    rows = len(lbs) + len(pools) + len(listeners) + len(members) + len(monitors) + len(tags)
    return {"ids": ids, "seconds": time.perf_counter() - t0, "rows": rows}


def analyze(engine: Engine) -> None:
    """Refresh the planner's statistics, as autovacuum / a DBA would after a bulk load."""
    dialect = engine.dialect.name
    if dialect == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    elif dialect == "sqlite":
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    else:
        with engine.begin() as conn:
            for table in m.Base.metadata.sorted_tables:
                conn.execute(text(f"ANALYZE TABLE `{table.name}`"))


def agents(engine: Engine, count: int, environment: str, *, dead: int = 0,
           hosts: list[str] | None = None) -> list[str]:
    """``count`` agents, heartbeat now by the database's clock; the first
    ``dead`` of them with a heartbeat two days old.  Returns their ids.
    ``hosts``: their names (and random ids), else ``agent-00``, ``agent-01``..."""
    from lbaas.db.clock import db_now_expression
    with engine.begin() as conn:
        now = conn.scalar(select(db_now_expression(engine.dialect.name)))
    if isinstance(now, str):
        now = dt.datetime.fromisoformat(now)
    assert now is not None  # the clock always answers
    now = now.replace(tzinfo=None)
    rows: list[dict[str, Any]] = []
    for i in range(count):
        beat = now - dt.timedelta(days=2) if i < dead else now
        rows.append({"id": str(uuid.UUID(int=i + 1, version=4)) if hosts is None else str(uuid.uuid4()),
                     "host": f"agent-{i:02d}" if hosts is None else hosts[i],
                     "environment": environment, "group": 1, "device_driver": "noop", "admin_state_up": True,
                     "heartbeat_at": beat, "started_at": now - dt.timedelta(days=3),
                     "created_at": now - dt.timedelta(days=30), "configurations": {}, "capacity_score": 0.0,
                     "loadbalancer_count": 0, "alive_seen": i >= dead})
    with engine.begin() as conn:
        conn.execute(insert(m.Agent), rows)
    return [r["id"] for r in rows]


def bindings(engine: Engine, lbs: list[tuple[str, str]], agent_ids: list[str], environment: str,
             *, seed: int = 0) -> dict[str, int]:
    """Bind each load balancer to an agent as the scheduler would have:
    a project's load balancers on its agent (tenant affinity), one in
    twenty elsewhere (placed while its agent was full or down).  Keeps
    ``agent.loadbalancer_count`` in step.  Returns the counts per agent."""
    rng = random.Random(seed)
    home: dict[str, str] = {}
    counts = dict.fromkeys(agent_ids, 0)
    rows = []
    for lb_id, project in lbs:
        agent = home.setdefault(project, agent_ids[zlib.crc32(project.encode()) % len(agent_ids)])
        if rng.random() < 0.05:
            agent = rng.choice(agent_ids)
        counts[agent] += 1
        rows.append({"loadbalancer_id": lb_id, "agent_id": agent, "project_id": project,
                     "environment": environment})
    with engine.begin() as conn:
        _insert(conn, m.Binding, rows)
        for agent, count in counts.items():
            if count:
                conn.execute(update(m.Agent).where(m.Agent.id == agent)
                             .values(loadbalancer_count=m.Agent.loadbalancer_count + count))
    return counts
