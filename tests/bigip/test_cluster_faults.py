"""Redundant bigip agents in front of one BIG-IP, as F5's agent-redundancy design has them:
two ``lbaas server`` and three ``lbaas agent`` processes of one environment on PostgreSQL and
RabbitMQ, every agent declaring onto the same BIG-IP emulator (HTTPS, in this process).

Every kind of object changed through its own API call reaches the device.  Faults through
the whole path: an agent killed while its declaration is in flight (a peer finishes it,
declared once), a declaration the device refuses (its message reaches the API), the device
going away and coming back (heartbeats go on, nothing stays PENDING, everything converges by
itself), tokens revoked mid-run, and orphan removal kept to the environment."""

from __future__ import annotations

import glob
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lbaas.agent.drivers import as3
from lbaas.agent.drivers.bigip import BigIPDriver
from lbaas.testing.bigip import BigIPEmulator
from lbaas.testing.cluster import Cluster, wait_lb
from lbaas.testing.polling import wait_for
from tests.bigip.desired import listener, loadbalancer
from tests.test_device_return import agent_doc, device_state

pytestmark = pytest.mark.integration
ENVIRONMENT = "shared"
NEIGHBOUR = "neighbour"   # another environment on the same device
HOSTS = ["shared-1", "shared-2", "shared-3"]
PASSWORD = "s3cret-shared"
DECLARE = "/mgmt/shared/appsvcs/declare"
TASK_TIMEOUT = 4.0        # bigip_task_timeout: how long an agent tries a device that is away


@pytest.fixture(scope="module")
def emulator() -> Iterator[BigIPEmulator]:
    with BigIPEmulator(password=PASSWORD) as device:
        yield device


def driver_options(emulator: BigIPEmulator, environment: str) -> dict[str, str]:
    return {"bigip_hosts": emulator.url, "bigip_username": "admin", "bigip_password": PASSWORD,
            "bigip_ca_file": str(emulator.certificate), "bigip_task_timeout": f"{TASK_TIMEOUT:g}",
            "environment": environment}


@pytest.fixture(scope="module")
def cluster(temp_database: Any, tmp_path_factory: pytest.TempPathFactory,
            emulator: BigIPEmulator) -> Iterator[Cluster]:
    db = temp_database("postgresql", migrate=False)
    options = {k: v for k, v in driver_options(emulator, ENVIRONMENT).items() if k != "environment"}
    cluster = Cluster(str(tmp_path_factory.mktemp("bigip-shared")), db.url, environment=ENVIRONMENT,
                      device_driver="bigip", device_options=options, agent_down_time=3.0,
                      report_interval=0.5, pending_timeout=2.0)
    try:
        yield cluster.start_all(["server-1", "server-2"], HOSTS)
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def all_running(cluster: Cluster, emulator: BigIPEmulator) -> None:
    """Each test starts with every agent up and its device answering, tasks quick."""
    emulator.come_back()
    emulator.task_duration = 0.0
    for host in HOSTS:
        if host not in cluster.agents:
            cluster.start_agent(host)
    cluster.wait_agents(HOSTS)
    wait_for(lambda: all(device_state(cluster, h) == "up" for h in HOSTS), timeout=20,
             what="every agent's device up")


@pytest.fixture
def neighbour(emulator: BigIPEmulator) -> Iterator[BigIPDriver]:
    """A driver of another environment declaring onto the same device."""
    driver = BigIPDriver(driver_options(emulator, NEIGHBOUR))
    yield driver
    driver.close()


def create(cluster: Cluster, project: str, port: int, server: str = "server-1", **fields: Any) -> dict:
    body = {"loadbalancer": {"vip_subnet_id": "cluster", "project_id": project, **fields, "listeners": [{
        "protocol": "HTTP", "protocol_port": port, "default_pool": {
            "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
            "members": [{"address": "192.0.2.60", "protocol_port": 8080}]}}]}}
    with cluster.client(server) as client:
        response = client.post("/v2/lbaas/loadbalancers", json=body)
    assert response.status_code == 201, response.text
    return response.json()["loadbalancer"]


def revision_in(content: dict | None, lb_id: str) -> int | None:
    """The load balancer's revision in a tenant's content (None: not there)."""
    name = as3.app_name(lb_id)
    application = (content or {}).get(name)
    held = as3.held(name, application) if application else None
    return held[1] if held else None


def held_revision(emulator: BigIPEmulator, project: str, lb_id: str) -> int | None:
    return revision_in(emulator.declaration(as3.tenant_name(ENVIRONMENT, project)), lb_id)


def declared_revisions(emulator: BigIPEmulator, project: str, lb_id: str) -> list[int | None]:
    """The load balancer's revision in every content its tenant was given, in order."""
    return [revision_in(content, lb_id) for content in emulator.history(as3.tenant_name(ENVIRONMENT, project))]


def rename(cluster: Cluster, lb_id: str, name: str, server: str = "server-1") -> None:
    with cluster.client(server) as client:
        response = client.put(f"/v2/lbaas/loadbalancers/{lb_id}", json={"loadbalancer": {"name": name}})
    assert response.status_code == 200, response.text


# --- one device, redundant agents --------------------------------------------------------

def test_agents_of_one_environment_share_the_device_each_project_in_its_tenant(
        cluster: Cluster, emulator: BigIPEmulator) -> None:
    projects = ["tenant-a", "tenant-b", "tenant-c", "tenant-a"]
    made = [create(cluster, project, 8100 + i, server=f"server-{1 + i % 2}") for i, project in enumerate(projects)]
    with cluster.client("server-2") as client:
        for lb in made:
            wait_lb(client, lb["id"], timeout=30)
    assert len({cluster.hosting_agent(lb["id"]) for lb in made}) >= 2   # several agents, one device
    for project in set(projects):
        tenant = as3.tenant_name(ENVIRONMENT, project)
        apps = set(as3.applications(emulator.declaration(tenant) or {}))
        assert apps == {as3.app_name(lb["id"]) for lb, p in zip(made, projects) if p == project}, tenant
    # A change through the other server lands through whichever agent holds the binding.
    rename(cluster, made[0]["id"], "renamed", server="server-2")
    with cluster.client() as client:
        assert wait_lb(client, made[0]["id"], timeout=20)["name"] == "renamed"
    assert held_revision(emulator, "tenant-a", made[0]["id"]) == 2


def test_objects_changed_one_by_one_reach_the_device(cluster: Cluster, emulator: BigIPEmulator) -> None:
    """Listener, pool, member and monitor through their own API calls, each confirmed."""
    tenant = as3.tenant_name(ENVIRONMENT, "piecewise")
    with cluster.client() as client:
        response = client.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {
            "vip_subnet_id": "cluster", "project_id": "piecewise"}})
        lb_id = response.json()["loadbalancer"]["id"]
        app = as3.app_name(lb_id)

        def step(method: str, path: str, body: dict | None = None) -> dict:
            answer = client.request(method, path, json=body)
            assert answer.status_code in (200, 201, 204), answer.text
            wait_lb(client, lb_id, timeout=20)
            return answer.json() if answer.content else {}

        def objects() -> dict:
            return (emulator.declaration(tenant) or {}).get(app) or {}

        wait_lb(client, lb_id, timeout=30)
        listener_id = step("POST", "/v2/lbaas/listeners", {"listener": {
            "loadbalancer_id": lb_id, "protocol": "HTTP", "protocol_port": 8160}})["listener"]["id"]
        pool_id = step("POST", "/v2/lbaas/pools", {"pool": {
            "listener_id": listener_id, "protocol": "HTTP", "lb_algorithm": "LEAST_CONNECTIONS"}})["pool"]["id"]
        member_id = step("POST", f"/v2/lbaas/pools/{pool_id}/members", {"member": {
            "address": "192.0.2.61", "protocol_port": 8080, "weight": 7}})["member"]["id"]
        step("POST", "/v2/lbaas/healthmonitors", {"healthmonitor": {
            "pool_id": pool_id, "type": "TCP", "delay": 3, "timeout": 2, "max_retries": 2}})
        pool_key = "p_" + pool_id.replace("-", "")
        assert objects()[pool_key]["members"][0]["ratio"] == 7 and objects()[pool_key]["monitors"]
        assert objects()[pool_key]["loadBalancingMode"] == "ratio-least-connections-member"
        step("PUT", f"/v2/lbaas/pools/{pool_id}/members/{member_id}", {"member": {"weight": 3}})
        assert objects()[pool_key]["members"][0]["ratio"] == 3
        step("DELETE", f"/v2/lbaas/pools/{pool_id}/members/{member_id}")
        assert objects()[pool_key]["members"] == []
        step("DELETE", f"/v2/lbaas/listeners/{listener_id}")
        assert "l_" + listener_id.replace("-", "") not in objects()
        assert client.delete(f"/v2/lbaas/loadbalancers/{lb_id}?cascade=true").status_code == 204
        wait_lb(client, lb_id, "DELETED", timeout=20)
    assert tenant not in emulator.tenants()


def test_tokens_revoked_mid_run_are_replaced_by_a_new_login(cluster: Cluster, emulator: BigIPEmulator) -> None:
    lb = create(cluster, "tokens", 8110)
    with cluster.client() as client:
        wait_lb(client, lb["id"], timeout=30)
        logins = emulator.calls("/mgmt/shared/authn/login", method="POST")
        emulator.expire_tokens()
        rename(cluster, lb["id"], "after-expiry")
        assert wait_lb(client, lb["id"], timeout=20)["name"] == "after-expiry"
    assert held_revision(emulator, "tokens", lb["id"]) == 2
    assert emulator.calls("/mgmt/shared/authn/login", method="POST") > logins


# --- faults -------------------------------------------------------------------------------

def test_a_declaration_the_device_refuses_reaches_status_reason(
        cluster: Cluster, emulator: BigIPEmulator, neighbour: BigIPDriver) -> None:
    # Another environment already listens on the address and port: only the device can know.
    taken: Any = loadbalancer(project_id="elsewhere", vip_address="127.0.200.7")
    taken["listeners"] = [listener(taken["pools"][0], port=8120)]
    neighbour.converge(taken)
    lb = create(cluster, "clash", 8120, vip_address="127.0.200.7")
    with cluster.client() as client:
        failed = wait_lb(client, lb["id"], "ERROR", timeout=30)
        reason = failed["status_reason"] or ""
        assert "rejected by the device" in reason and "illegally shares destination address" in reason, reason
        assert as3.tenant_name(ENVIRONMENT, "clash") in reason
        assert client.delete(f"/v2/lbaas/loadbalancers/{lb['id']}?cascade=true").status_code == 204
        wait_lb(client, lb["id"], "DELETED", timeout=20)
    assert neighbour.list_loadbalancers() == {taken["id"]: 1}
    neighbour.delete(taken["id"])


def test_agent_killed_mid_change_a_peer_finishes_it_declared_once(
        cluster: Cluster, emulator: BigIPEmulator) -> None:
    lb = create(cluster, "killed", 8130)
    with cluster.client() as client:
        wait_lb(client, lb["id"], timeout=30)
        bound = cluster.hosting_agent(lb["id"])
        emulator.task_duration = 2.5     # the declaration stays in flight while the agent dies
        posted = emulator.calls(DECLARE, method="POST")
        rename(cluster, lb["id"], "finished-by-a-peer")
        wait_for(lambda: emulator.calls(DECLARE, method="POST") > posted, timeout=10,
                 what="the bound agent's declaration")
        cluster.kill_agent(bound)
        in_flight = client.get(f"/v2/lbaas/loadbalancers/{lb['id']}").json()["loadbalancer"]
        assert in_flight["provisioning_status"] == "PENDING_UPDATE"
        done = wait_lb(client, lb["id"], timeout=cluster.agent_down_time + cluster.pending_timeout + 20)
    assert done["name"] == "finished-by-a-peer"
    assert cluster.hosting_agent(lb["id"]) == bound                 # the binding stays
    assert held_revision(emulator, "killed", lb["id"]) == 2
    assert declared_revisions(emulator, "killed", lb["id"]) == [1, 2]   # each revision applied once


def test_device_away_heartbeats_go_on_nothing_stays_pending_and_it_converges_by_itself(
        cluster: Cluster, emulator: BigIPEmulator) -> None:
    lb = create(cluster, "away", 8140)
    with cluster.client() as client:
        wait_lb(client, lb["id"], timeout=30)
        bound = cluster.hosting_agent(lb["id"])
        emulator.go_away()
        gone = time.monotonic()
        wait_for(lambda: all(device_state(cluster, h) == "down" for h in HOSTS), timeout=10,
                 what="every agent reporting its device down")
        assert "unreachable" in (agent_doc(cluster, bound)["configurations"]["device_error"] or "")
        rename(cluster, lb["id"], "made-while-away")
        failed = wait_lb(client, lb["id"], "ERROR", timeout=TASK_TIMEOUT + cluster.pending_timeout + 15)
        assert "device unavailable" in (failed["status_reason"] or ""), failed
        # Longer than agent_down_time without a device: the agents are alive all the same.
        time.sleep(max(0.0, cluster.agent_down_time + 1 - (time.monotonic() - gone)))
        assert cluster.agents_alive() == {h: True for h in HOSTS}
        emulator.come_back()                              # no API call from here on but reads
        healed = wait_lb(client, lb["id"], timeout=20)
    assert healed["name"] == "made-while-away" and healed["status_reason"] is None
    assert held_revision(emulator, "away", lb["id"]) == 2
    wait_for(lambda: all(device_state(cluster, h) == "up" for h in HOSTS), timeout=10, what="devices up")


def test_orphan_removal_keeps_to_the_environments_prefix(
        cluster: Cluster, emulator: BigIPEmulator, neighbour: BigIPDriver) -> None:
    live = create(cluster, "orphans", 8150)
    with cluster.client() as client:
        wait_lb(client, live["id"], timeout=30)
    ours = BigIPDriver(driver_options(emulator, ENVIRONMENT))
    try:
        stale: Any = loadbalancer(project_id="orphans")      # ours, but in no database
        ours.converge(stale)
        theirs: Any = loadbalancer(project_id="orphans")     # the other environment's own
        neighbour.converge(theirs)
        # A restarted agent converges and cleans at once (its device answers: a resync pass).
        host = cluster.hosting_agent(live["id"])
        assert cluster.stop_agent(host) == 0
        cluster.start_agent(host)
        wait_for(lambda: stale["id"] not in ours.list_loadbalancers(), timeout=20,
                 what="the stale application removed at resync")
        assert live["id"] in ours.list_loadbalancers()
        assert neighbour.list_loadbalancers() == {theirs["id"]: 1}
    finally:
        ours.close()
    neighbour.delete(theirs["id"])


def test_the_password_never_reaches_a_log(cluster: Cluster) -> None:
    for path in glob.glob(f"{cluster.workdir}/*.log"):
        assert PASSWORD not in open(path, encoding="utf-8", errors="replace").read(), path
