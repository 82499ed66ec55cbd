"""The whole path with real traffic: API -> server -> RabbitMQ -> agent ->
``lbaas device`` -> HAProxy -> back ends, all processes, loopback only."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lbaas.testing.cluster import Cluster, wait_lb
from tests.appliance.helpers import Backend, fetch, wait_for

HOSTS = ["dp-1", "dp-2"]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(temp_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    db = temp_database("postgresql", migrate=False)
    cluster = Cluster(str(tmp_path_factory.mktemp("dataplane")), db.url, environment="haproxy",
                      device_driver="haproxy")
    try:
        cluster.device_options = cluster.start_device("device-1")
        yield cluster.start_all(["server-1"], HOSTS)
    finally:
        cluster.stop()


@pytest.fixture
def backends() -> Iterator[list[Backend]]:
    made = [Backend(f"b{i}") for i in range(1, 4)]
    yield made
    for backend in made:
        backend.stop()


def create_graph(client: httpx.Client, members: list[Backend], port: int, **pool: Any) -> dict:
    body = {"loadbalancer": {"name": f"dp-{port}", "vip_subnet_id": "cluster", "listeners": [{
        "protocol": "HTTP", "protocol_port": port, "default_pool": {
            "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
            "healthmonitor": {"type": "HTTP", "delay": 1, "timeout": 1, "max_retries": 1, "max_retries_down": 1,
                              "url_path": "/health"},
            "members": [{"address": b.address, "protocol_port": b.port} for b in members], **pool}}]}}
    response = client.post("/v2/lbaas/loadbalancers", json=body)
    assert response.status_code == 201, response.text
    return wait_lb(client, response.json()["loadbalancer"]["id"], timeout=30)


def vip_url(lb: dict, port: int) -> str:
    return f"http://{lb['vip_address']}:{port}/"


def tree(client: httpx.Client, lb_id: str) -> dict:
    return client.get(f"/v2/lbaas/loadbalancers/{lb_id}/status").json()["statuses"]["loadbalancer"]


def test_traffic_is_balanced_and_stats_reach_the_api(cluster: Cluster, backends: list[Backend]) -> None:
    with cluster.client() as client:
        lb = create_graph(client, backends[:2], 8101)
        url = vip_url(lb, 8101)
        seen = [fetch(url).text for _ in range(6)]
        assert Counter(seen) == {"b1": 3, "b2": 3}, seen
        assert seen[0] != seen[1]
        wait_for(lambda: client.get(f"/v2/lbaas/loadbalancers/{lb['id']}/stats").json()["stats"]
                 ["total_connections"] >= 6, timeout=20, what="stats in the API")
        pool = tree(client, lb["id"])["listeners"][0]["pools"][0]
        assert {m["operating_status"] for m in pool["members"]} == {"ONLINE"}
        assert pool["health_monitor"]["operating_status"] == "ONLINE"


def test_killed_member_goes_offline_pool_degraded_and_traffic_moves(cluster: Cluster,
                                                                    backends: list[Backend]) -> None:
    with cluster.client() as client:
        lb = create_graph(client, backends[:2], 8102)
        url = vip_url(lb, 8102)
        backends[1].stop()

        def degraded() -> bool:
            status = tree(client, lb["id"])
            pool = status["listeners"][0]["pools"][0]
            members = {m["protocol_port"]: m["operating_status"] for m in pool["members"]}
            return (pool["operating_status"] == "DEGRADED" and members[backends[1].port] == "OFFLINE"
                    and members[backends[0].port] == "ONLINE" and status["operating_status"] == "DEGRADED")

        wait_for(degraded, timeout=30, what="member OFFLINE and pool DEGRADED in the status tree")
        assert {fetch(url).text for _ in range(6)} == {"b1"}


def test_member_added_under_load_loses_nothing(cluster: Cluster, backends: list[Backend]) -> None:
    with cluster.client() as client:
        lb = create_graph(client, backends[:1], 8103)
        url = vip_url(lb, 8103)
        results: Counter = Counter()
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(timeout=5) as http:
                while not stop.is_set():
                    try:
                        results[http.get(url).text] += 1
                    except httpx.HTTPError:
                        results["failed"] += 1

        loader = threading.Thread(target=load)
        loader.start()
        pool_id = lb["pools"][0]["id"]
        added = client.post(f"/v2/lbaas/pools/{pool_id}/members", json={"member": {
            "address": backends[2].address, "protocol_port": backends[2].port}})
        assert added.status_code == 201
        wait_lb(client, lb["id"])
        wait_for(lambda: results["b3"] > 5, timeout=15, what="traffic on the new member")
        member_id = added.json()["member"]["id"]
        assert client.delete(f"/v2/lbaas/pools/{pool_id}/members/{member_id}").status_code == 204
        wait_lb(client, lb["id"])
        before = results["b3"]
        time.sleep(0.5)
        stop.set()
        loader.join()
        assert results["failed"] == 0, results
        assert results["b3"] == before and results["b1"] > 20


def test_killed_agent_leaves_traffic_alone_and_a_peer_converges_the_same_device(
        cluster: Cluster, backends: list[Backend]) -> None:
    with cluster.client() as client:
        lb = create_graph(client, backends[:1], 8104)
        url = vip_url(lb, 8104)
        bound = cluster.hosting_agent(lb["id"])
        cluster.kill_agent(bound)
        assert {fetch(url).text for _ in range(5)} == {"b1"}
        cluster.wait_agents([bound], alive=False)
        assert {fetch(url).text for _ in range(5)} == {"b1"}
        pool_id = lb["pools"][0]["id"]
        added = client.post(f"/v2/lbaas/pools/{pool_id}/members", json={"member": {
            "address": backends[1].address, "protocol_port": backends[1].port}})
        assert added.status_code == 201
        wait_lb(client, lb["id"], timeout=20)
        assert cluster.hosting_agent(lb["id"]) == bound
        wait_for(lambda: "b2" in {fetch(url).text for _ in range(4)}, timeout=15, what="the peer's change")
        cluster.start_agent(bound)
        cluster.wait_agents([bound])


def test_what_haproxy_cannot_do_is_refused_for_this_provider(cluster: Cluster) -> None:
    with cluster.client() as client:
        wait_for(lambda: client.get("/v2/lbaas/providers").json()["providers"], what="providers")
        body = {"loadbalancer": {"vip_subnet_id": "cluster", "listeners": [{"protocol": "UDP", "protocol_port": 53}]}}
        refused = client.post("/v2/lbaas/loadbalancers", json=body)
        assert refused.status_code == 400, refused.text
        assert "haproxy" in refused.json()["faultstring"] and "UDP" in refused.json()["faultstring"]
        algorithm = {"loadbalancer": {"vip_subnet_id": "cluster", "listeners": [{
            "protocol": "UDP", "protocol_port": 53, "default_pool": {"protocol": "UDP", "lb_algorithm": "SOURCE_IP_PORT"}}]}}
        assert client.post("/v2/lbaas/loadbalancers", json=algorithm).status_code == 400


def test_l7_policies_route_reject_and_show_in_the_status_tree(cluster: Cluster,
                                                              backends: list[Backend]) -> None:
    """Through the API: /api goes to a second pool, /admin is refused, and the status
    tree shows the policies with their rules."""
    with cluster.client() as client:
        lb = create_graph(client, backends[:1], 8107)
        listener_id = lb["listeners"][0]["id"]
        api_pool = client.post("/v2/lbaas/pools", json={"pool": {
            "loadbalancer_id": lb["id"], "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}}).json()["pool"]
        wait_lb(client, lb["id"])
        client.post(f"/v2/lbaas/pools/{api_pool['id']}/members", json={"member": {
            "address": backends[2].address, "protocol_port": backends[2].port}})
        wait_lb(client, lb["id"])
        routed = client.post("/v2/lbaas/l7policies", json={"l7policy": {
            "listener_id": listener_id, "action": "REDIRECT_TO_POOL", "redirect_pool_id": api_pool["id"],
            "rules": [{"type": "PATH", "compare_type": "STARTS_WITH", "value": "/api"}]}})
        assert routed.status_code == 201, routed.text
        wait_lb(client, lb["id"])
        rejected = client.post("/v2/lbaas/l7policies", json={"l7policy": {
            "listener_id": listener_id, "action": "REJECT", "position": 1,
            "rules": [{"type": "PATH", "compare_type": "STARTS_WITH", "value": "/admin"}]}})
        assert rejected.status_code == 201, rejected.text
        wait_lb(client, lb["id"])
        url = vip_url(lb, 8107)
        assert {fetch(url + "api/x").text for _ in range(3)} == {"b3"}
        assert {fetch(url).text for _ in range(3)} == {"b1"}
        assert fetch(url + "admin").status_code == 403
        policies = tree(client, lb["id"])["listeners"][0]["l7policies"]
        assert {p["action"] for p in policies} == {"REDIRECT_TO_POOL", "REJECT"}
        assert all(p["provisioning_status"] == "ACTIVE" and len(p["rules"]) == 1 for p in policies)
        client.delete(f"/v2/lbaas/l7policies/{rejected.json()['l7policy']['id']}")
        wait_lb(client, lb["id"])
        assert fetch(url + "admin").text == "b1"
