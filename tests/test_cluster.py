"""Two ``lbaas server`` and three ``lbaas agent`` processes on real PostgreSQL
and RabbitMQ: spreading, affinity, fail-over, restarts; with the noop
driver, and with the bigip driver in front of one BIG-IP emulator. Broker faults
are in tests/ha (a private RabbitMQ cluster: the shared one is never restarted)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from lbaas.messaging import Broker
from lbaas.testing.bigip import BigIPEmulator
from lbaas.testing.cluster import Cluster, wait_lb

HOSTS = ["host-1", "host-2", "host-3"]


@pytest.fixture(scope="module", params=["postgresql", "mariadb", "postgresql+bigip"])
def cluster(request: pytest.FixtureRequest, temp_database: Any,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """``database[+bigip]``: the agents' driver is noop, or bigip with every agent in front
    of one BIG-IP emulator (started here)."""
    backend, _, driver = request.param.partition("+")
    db = temp_database(backend, migrate=False)
    with contextlib.ExitStack() as stack:
        options: dict[str, str] = {}
        if driver == "bigip":
            device = stack.enter_context(BigIPEmulator())
            options = {"bigip_hosts": device.url, "bigip_username": "admin", "bigip_password": "admin",
                       "bigip_ca_file": str(device.certificate)}
        cluster = Cluster(str(tmp_path_factory.mktemp("cluster")), db.url, device_driver=driver or "noop",
                          device_options=options)
        try:
            yield cluster.start_all(["server-1", "server-2"], HOSTS)
        finally:
            cluster.stop()


@pytest.fixture(autouse=True)
def all_running(cluster: Cluster) -> None:
    """Each test starts with both servers and all agents up."""
    for name in ("server-1", "server-2"):
        if cluster.servers[name]["proc"].poll() is not None:
            cluster.start_server(name)
    for host in HOSTS:
        if host not in cluster.agents:
            cluster.start_agent(host)
    cluster.wait_agents(HOSTS)


def create(cluster: Cluster, server: str, project: str, **fields: Any) -> dict:
    with cluster.client(server) as client:
        body = {"vip_subnet_id": "cluster", "project_id": project, **fields}
        response = client.post("/v2/lbaas/loadbalancers", json={"loadbalancer": body})
        assert response.status_code == 201, response.text
        return response.json()["loadbalancer"]


def test_new_loadbalancers_spread_over_agents(cluster: Cluster) -> None:
    made = [create(cluster, f"server-{1 + i % 2}", f"spread-{i}") for i in range(6)]
    with cluster.client() as client:
        for lb in made:
            wait_lb(client, lb["id"])
    hosts = Counter(cluster.hosting_agent(lb["id"]) for lb in made)
    assert set(hosts) == set(HOSTS), hosts


def test_project_stays_on_one_agent_even_when_two_servers_create_at_once(cluster: Cluster) -> None:
    barrier = threading.Barrier(8)
    made: list[dict] = []

    def run(i: int) -> None:
        barrier.wait()
        made.append(create(cluster, f"server-{1 + i % 2}", "affine-project"))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 8
    with cluster.client() as client:
        for lb in made:
            wait_lb(client, lb["id"])
    assert len({cluster.hosting_agent(lb["id"]) for lb in made}) == 1


def test_killed_agent_work_goes_to_peer_binding_unchanged_then_returns(cluster: Cluster) -> None:
    lb = create(cluster, "server-1", "failover")
    with cluster.client() as client:
        wait_lb(client, lb["id"])
        bound = cluster.hosting_agent(lb["id"])
        cluster.kill_agent(bound)
        # A change cast before the death is noticed sits in the dead agent's
        # queue; the pending sweep sends it to a peer once the agent is dead.
        assert client.put(f"/v2/lbaas/loadbalancers/{lb['id']}", json={"loadbalancer": {"name": "early"}}).status_code == 200
        cluster.wait_agents([bound], alive=False)
        done = wait_lb(client, lb["id"], timeout=cluster.agent_down_time + cluster.pending_timeout + 20)
        assert done["name"] == "early"
        # The next change goes straight to a live peer; the binding stays.
        assert client.put(f"/v2/lbaas/loadbalancers/{lb['id']}", json={"loadbalancer": {"name": "later"}}).status_code == 200
        assert wait_lb(client, lb["id"], timeout=15)["name"] == "later"
        assert cluster.hosting_agent(lb["id"]) == bound
        # Back from the dead: stale casts in its queue do no harm, and it takes its work again.
        cluster.start_agent(bound)
        cluster.wait_agents([bound])
        time.sleep(1.5)
        assert wait_lb(client, lb["id"])["name"] == "later"
        assert client.put(f"/v2/lbaas/loadbalancers/{lb['id']}", json={"loadbalancer": {"name": "home"}}).status_code == 200
        assert wait_lb(client, lb["id"], timeout=15)["name"] == "home"
        assert cluster.hosting_agent(lb["id"]) == bound
        # Each agent's load is what is bound to it, the peer's takeover notwithstanding.
        for agent in client.get("/v2.0/agents").json()["agents"]:
            hosted = client.get(f"/v2.0/agents/{agent['id']}/agent-loadbalancers").json()["loadbalancers"]
            assert agent["loadbalancer_count"] == len(hosted), agent["host"]


def _load(cluster: Cluster, servers: list[str], count: int, project: str) -> list[str]:
    """Create ``count`` load balancers round-robin over ``servers``; ids of the accepted ones."""
    accepted: list[str] = []
    for i in range(count):
        server = servers[i % len(servers)]
        try:
            with cluster.client(server) as client:
                response = client.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {
                    "vip_subnet_id": "cluster", "project_id": f"{project}-{i % 5}"}})
            if response.status_code == 201:
                accepted.append(response.json()["loadbalancer"]["id"])
        except Exception:  # the server was killed under us: the request may be lost, never half-done
            pass
    return accepted


def test_server_killed_mid_load_the_other_finishes(cluster: Cluster) -> None:
    accepted: list[str] = []
    loader = threading.Thread(target=lambda: accepted.extend(_load(cluster, ["server-1", "server-2"], 40, "kill")))
    loader.start()
    time.sleep(0.5)
    cluster.kill_server("server-1")
    loader.join()
    assert len(accepted) >= 20
    with cluster.client("server-2") as client:
        for lb_id in accepted:
            wait_lb(client, lb_id, timeout=60)


def _drop_connections(db_url: str, seconds: float) -> None:
    """Kill every connection to the cluster's database for a while: what a
    restart looks like to its clients."""
    from sqlalchemy import create_engine, text
    from lbaas.testing.databases import MYSQL_ADMIN, PG_ADMIN
    database = db_url.rsplit("/", 1)[1]
    mysql = db_url.startswith("mysql")
    engine = create_engine(f"{MYSQL_ADMIN}/mysql" if mysql else f"{PG_ADMIN}/postgres",
                           isolation_level="AUTOCOMMIT")
    deadline = time.monotonic() + seconds
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            if mysql:
                for (ident,) in conn.execute(text("SELECT id FROM information_schema.processlist "
                                                  "WHERE db = :db AND id <> CONNECTION_ID()"), {"db": database}):
                    try:
                        conn.execute(text(f"KILL {int(ident)}"))
                    except Exception:  # already gone
                        pass
            else:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": database})
            time.sleep(0.05)
    engine.dispose()


def test_database_outage_mid_load_loses_nothing(cluster: Cluster) -> None:
    accepted: list[str] = []
    codes: Counter = Counter()

    def load() -> None:
        for i in range(40):
            try:
                with cluster.client(f"server-{1 + i % 2}") as client:
                    response = client.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {
                        "vip_subnet_id": "cluster", "project_id": f"dbout-{i % 4}"}})
            except Exception:
                codes["transport"] += 1
                continue
            codes[response.status_code] += 1
            if response.status_code == 201:
                accepted.append(response.json()["loadbalancer"]["id"])

    loader = threading.Thread(target=load)
    loader.start()
    time.sleep(0.3)
    _drop_connections(cluster.db_url, 2.0)
    loader.join()
    assert set(codes) <= {201, 503, "transport"}, codes   # refused cleanly, never a 500
    assert accepted
    with cluster.client() as client:
        for lb_id in accepted:
            wait_lb(client, lb_id, timeout=90)


def test_duplicate_and_reordered_status_messages_change_nothing(cluster: Cluster) -> None:
    lb = create(cluster, "server-2", "dupes")
    with cluster.client() as client:
        first = wait_lb(client, lb["id"])
        assert client.put(f"/v2/lbaas/loadbalancers/{lb['id']}", json={"loadbalancer": {"name": "r2"}}).status_code == 200
        wait_lb(client, lb["id"])
        broker = Broker(cluster.transport_url)
        try:
            queue = f"lbaas.controller.{cluster.environment}"
            # An old revision reporting ERROR, then a duplicate of the current outcome.
            old = broker.call(queue, "update_status", loadbalancer_id=lb["id"], revision=1, error="late failure")
            assert old == "stale"
            current = client.get(f"/v2/lbaas/loadbalancers/{lb['id']}").json()["loadbalancer"]
            again = broker.call(queue, "update_status", loadbalancer_id=lb["id"], revision=2,
                                operating={"loadbalancer": "ONLINE"})
            assert again == "operating"
        finally:
            broker.close()
        after = client.get(f"/v2/lbaas/loadbalancers/{lb['id']}").json()["loadbalancer"]
        assert after["provisioning_status"] == "ACTIVE" and after["name"] == "r2"
        assert after["updated_at"] == current["updated_at"] and first["id"] == after["id"]
