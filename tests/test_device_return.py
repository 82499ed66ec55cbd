"""Devices that fail and come back, with real processes: ``lbaas server`` and
``lbaas agent`` on PostgreSQL and RabbitMQ, ``lbaas device`` appliances running
HAProxy, back ends on loopback.  A load balancer put in ERROR while its
appliance was away returns to ACTIVE by itself; an agent started before its
appliance waits for it, heartbeating."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lbaas import constants as c
from lbaas.agent.drivers.base import DeviceError, DeviceRejected
from lbaas.agent.drivers.haproxy import HAProxyDriver
from lbaas.testing.cluster import Cluster, wait_lb
from tests.appliance.helpers import TOKEN, Backend, DeviceService, fetch, kill_haproxy, loadbalancer, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(temp_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    db = temp_database("postgresql", migrate=False)
    cluster = Cluster(str(tmp_path_factory.mktemp("devret")), db.url, environment="devret",
                      device_driver="haproxy", agent_down_time=6.0, report_interval=0.5)
    try:
        cluster.device_options = cluster.start_device("device-1")
        yield cluster.start_all(["server-1"], ["ret-1"])
    finally:
        cluster.stop()


@pytest.fixture
def backends() -> Iterator[list[Backend]]:
    made = [Backend(f"b{i}") for i in range(1, 3)]
    yield made
    for backend in made:
        backend.stop()


def agent_doc(cluster: Cluster, host: str) -> dict:
    with cluster.client() as client:
        return next(a for a in client.get("/v2.0/agents").json()["agents"] if a["host"] == host)


def device_state(cluster: Cluster, host: str) -> str:
    return agent_doc(cluster, host)["configurations"].get("device_state")


def create(client: httpx.Client, member: Backend, port: int) -> dict:
    body = {"loadbalancer": {"vip_subnet_id": "cluster", "listeners": [{
        "protocol": "HTTP", "protocol_port": port, "default_pool": {
            "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
            "members": [{"address": member.address, "protocol_port": member.port}]}}]}}
    response = client.post("/v2/lbaas/loadbalancers", json=body)
    assert response.status_code == 201, response.text
    return wait_lb(client, response.json()["loadbalancer"]["id"], timeout=30)


def test_loadbalancer_in_error_while_the_appliance_was_away_heals_by_itself(
        cluster: Cluster, backends: list[Backend]) -> None:
    with cluster.client() as client:
        lb = create(client, backends[0], 8301)
        url = f"http://{lb['vip_address']}:8301/"
        assert fetch(url).text == "b1"
        cluster.stop_device_service("device-1")
        assert fetch(url).text == "b1"              # HAProxy itself goes on serving
        pool_id = lb["pools"][0]["id"]
        added = client.post(f"/v2/lbaas/pools/{pool_id}/members", json={"member": {
            "address": backends[1].address, "protocol_port": backends[1].port}})
        assert added.status_code == 201, added.text
        failed = wait_lb(client, lb["id"], "ERROR", timeout=20)
        assert "device unavailable" in failed["status_reason"] and "unreachable" in failed["status_reason"]
        wait_for(lambda: device_state(cluster, "ret-1") == "down", timeout=10, what="device_state down")
        assert agent_doc(cluster, "ret-1")["alive"]
        # Back: no API call but reads from here on.
        cluster.start_device("device-1")
        healed = wait_lb(client, lb["id"], "ACTIVE", timeout=20)
        assert healed["status_reason"] is None
        member = client.get(f"/v2/lbaas/pools/{pool_id}/members/{added.json()['member']['id']}").json()["member"]
        assert member["provisioning_status"] == "ACTIVE"
        wait_for(lambda: {fetch(url).text for _ in range(4)} == {"b1", "b2"}, timeout=15,
                 what="traffic on the member added while the appliance was away")
        assert device_state(cluster, "ret-1") == "up"


def test_agent_started_before_its_appliance_waits_then_serves(cluster: Cluster, backends: list[Backend]) -> None:
    first_agent_options = cluster.device_options
    cluster.device_options = cluster.device_options_for("device-2")   # not started yet
    try:
        cluster.start_agent("late-1")
    finally:
        cluster.device_options = first_agent_options
    cluster.wait_agents(["late-1"])                 # registered: device "unknown", then "down"
    wait_for(lambda: device_state(cluster, "late-1") == "down", timeout=10, what="device_state down")
    assert "unreachable" in agent_doc(cluster, "late-1")["configurations"]["device_error"]
    time.sleep(3)                                   # several retries with backoff
    assert cluster.agents["late-1"].poll() is None and agent_doc(cluster, "late-1")["alive"]
    cluster.start_device("device-2")
    wait_for(lambda: device_state(cluster, "late-1") == "up", timeout=10, what="device_state up")
    with cluster.client() as client:                # new work may go there now
        ret_1 = agent_doc(cluster, "ret-1")["id"]
        client.put(f"/v2.0/agents/{ret_1}", json={"agent": {"admin_state_up": False}})
        try:
            lb = create(client, backends[0], 8302)
        finally:
            client.put(f"/v2.0/agents/{ret_1}", json={"agent": {"admin_state_up": True}})
    assert cluster.hosting_agent(lb["id"]) == "late-1"
    assert fetch(f"http://{lb['vip_address']}:8302/").text == "b1"
    with open(f"{cluster.workdir}/agent-late-1.log", encoding="utf-8") as handle:
        log = handle.read().splitlines()
    # One line when the wait began, one when it ended: not one per retry.
    assert len([line for line in log if " WARNING " in line]) == 1, log
    assert len([line for line in log if "device of agent late-1 is ready" in line]) == 1, log
    assert not [line for line in log if "Traceback" in line], log


def test_driver_tells_a_refused_document_from_an_appliance_that_is_away(backends: list[Backend]) -> None:
    state_dir = tempfile.mkdtemp(prefix="lbd", dir="/tmp")
    device = DeviceService(state_dir).start()
    driver = HAProxyDriver({"devices": device.url, "device_token": TOKEN, "timeout": "30"})
    try:
        assert driver.probe() == {"loadbalancers": 0, "capacity_score": 0.0}
        udp = loadbalancer([])
        udp["listeners"][0]["protocol"] = "UDP"
        with pytest.raises(DeviceRejected, match="400"):
            driver.converge(udp)
        device.stop()
        started = time.monotonic()
        with pytest.raises(DeviceError) as away:
            driver.probe()
        assert not isinstance(away.value, DeviceRejected) and "unreachable" in str(away.value)
        assert time.monotonic() - started < c.DEVICE_PROBE_TIMEOUT + 1
        with pytest.raises(DeviceError) as failed:
            driver.converge(loadbalancer([]))
        assert not isinstance(failed.value, DeviceRejected)
    finally:
        driver.close()
        device.stop()
        kill_haproxy(state_dir)
