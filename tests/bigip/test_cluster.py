"""The whole path onto a BIG-IP: API -> ``lbaas server`` -> RabbitMQ -> ``lbaas agent``
with the bigip driver -> the BIG-IP emulator (HTTPS, in this process), on PostgreSQL."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lbaas.agent.drivers import as3
from lbaas.testing.bigip import BigIPEmulator
from lbaas.testing.cluster import Cluster, wait_lb
from lbaas.testing.polling import wait_for

pytestmark = pytest.mark.integration
ENVIRONMENT = "bigip"


@pytest.fixture(scope="module")
def emulator() -> Iterator[BigIPEmulator]:
    with BigIPEmulator(password="s3cret-bigip") as device:
        yield device


@pytest.fixture(scope="module")
def cluster(temp_database: Any, tmp_path_factory: pytest.TempPathFactory,
            emulator: BigIPEmulator) -> Iterator[Cluster]:
    db = temp_database("postgresql", migrate=False)
    options = {"bigip_hosts": emulator.url, "bigip_username": "admin", "bigip_password": "s3cret-bigip",
               "bigip_ca_file": str(emulator.certificate), "bigip_task_timeout": "10"}
    cluster = Cluster(str(tmp_path_factory.mktemp("bigip")), db.url, environment=ENVIRONMENT,
                      device_driver="bigip", device_options=options)
    try:
        cluster.start_all(["server-1"], ["bigip-agent-1"])
        # The server caches what agents can do: ask it only once the agent has told.
        wait_for(lambda: "kinds" in agent_configurations(cluster).get("capabilities", {}),
                 timeout=20, what="the bigip agent's capabilities")
        yield cluster
    finally:
        cluster.stop()


def agent_configurations(cluster: Cluster) -> dict:
    with cluster.client() as client:
        agents = client.get("/v2.0/agents").json()["agents"]
    return agents[0]["configurations"] if agents else {}


def create(client: httpx.Client, port: int, pool: dict | None = None, **listener: Any) -> httpx.Response:
    body = {"loadbalancer": {"vip_subnet_id": "cluster", "listeners": [{
        "protocol": "HTTP", "protocol_port": port, **listener, "default_pool": {
            "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", **(pool or {}),
            "healthmonitor": {"type": "HTTP", "delay": 2, "timeout": 1, "max_retries": 1, "url_path": "/health"},
            "members": [{"address": "192.0.2.50", "protocol_port": 8080, "weight": 3}]}}]}}
    return client.post("/v2/lbaas/loadbalancers", json=body)


def test_a_load_balancer_reaches_the_bigip_and_goes(cluster: Cluster, emulator: BigIPEmulator) -> None:
    tenant = as3.tenant_name(ENVIRONMENT, "admin")
    with cluster.client() as client:
        response = create(client, 8201)
        assert response.status_code == 201, response.text
        lb = wait_lb(client, response.json()["loadbalancer"]["id"], timeout=30)
        app = (emulator.declaration(tenant) or {})[as3.app_name(lb["id"])]
        assert as3.held(as3.app_name(lb["id"]), app)[0] == lb["id"]
        wait_for(lambda: client.get(f"/v2/lbaas/loadbalancers/{lb['id']}/status").json()["statuses"]
                 ["loadbalancer"]["listeners"][0]["pools"][0]["members"][0]["operating_status"] == "ONLINE",
                 timeout=20, what="member status from the BIG-IP")
        assert client.delete(f"/v2/lbaas/loadbalancers/{lb['id']}?cascade=true").status_code == 204
        wait_lb(client, lb["id"], "DELETED", timeout=30)
    assert tenant not in emulator.tenants()


def test_what_the_bigip_cannot_do_is_refused_at_the_api(cluster: Cluster) -> None:
    with cluster.client() as client:
        refused = create(client, 8202, pool={"lb_algorithm": "SOURCE_IP"})
        assert refused.status_code == 400 and "does not support" in refused.text, refused.text
        refused = create(client, 8202, protocol="TERMINATED_HTTPS", default_tls_container_ref="http://127.0.0.1:1/v1/containers/x")
        assert refused.status_code == 400 and "protocol TERMINATED_HTTPS" in refused.text, refused.text
        response = create(client, 8202)
        lb = wait_lb(client, response.json()["loadbalancer"]["id"], timeout=30)
        policy = {"l7policy": {"listener_id": lb["listeners"][0]["id"], "action": "REJECT"}}
        refused = client.post("/v2/lbaas/l7policies", json=policy)
        assert refused.status_code == 400 and "l7policy" in refused.text, refused.text


def test_what_only_the_device_driver_can_refuse_ends_in_error_with_its_reason(cluster: Cluster) -> None:
    with cluster.client() as client:
        response = create(client, 8203, allowed_cidrs=["10.0.0.0/8"])
        assert response.status_code == 201, response.text
        lb = wait_lb(client, response.json()["loadbalancer"]["id"], "ERROR", timeout=30)
        assert "allowed_cidrs" in (lb.get("status_reason") or ""), lb


def test_the_password_never_reaches_a_log(cluster: Cluster) -> None:
    for path in glob.glob(f"{cluster.workdir}/*.log"):
        assert "s3cret-bigip" not in open(path, encoding="utf-8", errors="replace").read(), path
