"""An availability zone across real processes (``lbaas server`` and three ``lbaas agent`` on
PostgreSQL and RabbitMQ): two agents in group 1, one in group 2.  A load balancer created in
the zone of group 2 is bound to that group's agent, and when that agent dies its work waits
for group 2 rather than moving to the live agents of group 1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lbaas.testing.cluster import Cluster, wait_lb

GROUP_1 = ["zone-g1-a", "zone-g1-b"]
GROUP_2 = "zone-g2"


@pytest.fixture(scope="module")
def cluster(temp_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    db = temp_database("postgresql", migrate=False)
    cluster = Cluster(str(tmp_path_factory.mktemp("zones")), db.url)
    try:
        cluster.start_server("server-1")
        for host in GROUP_1:
            cluster.start_agent(host, group=1)
        cluster.start_agent(GROUP_2, group=2)
        cluster.wait_agents([*GROUP_1, GROUP_2])
        yield cluster
    finally:
        cluster.stop()


def test_zone_binds_its_group_and_work_never_leaves_it(cluster: Cluster) -> None:
    with cluster.client() as client:
        response = client.post("/v2/lbaas/availabilityzoneprofiles", json={"availability_zone_profile": {
            "name": "rack-2", "provider_name": cluster.environment,
            "availability_zone_data": json.dumps({"group": 2})}})
        assert response.status_code == 201, response.text
        profile_id = response.json()["availability_zone_profile"]["id"]
        response = client.post("/v2/lbaas/availabilityzones", json={"availability_zone": {
            "name": "az2", "availability_zone_profile_id": profile_id}})
        assert response.status_code == 201, response.text

        response = client.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {
            "vip_subnet_id": "cluster", "availability_zone": "az2"}})
        assert response.status_code == 201, response.text
        lb_id = response.json()["loadbalancer"]["id"]
        wait_lb(client, lb_id)
        assert cluster.hosting_agent(lb_id) == GROUP_2

        cluster.kill_agent(GROUP_2)
        cluster.wait_agents([GROUP_2], alive=False)
        renamed = client.put(f"/v2/lbaas/loadbalancers/{lb_id}", json={"loadbalancer": {"name": "waits"}})
        assert renamed.status_code == 200, renamed.text
        # Past the pending sweep's re-dispatch, group 1 is alive and idle, and still not asked.
        time.sleep(cluster.pending_timeout + 3)
        lb = client.get(f"/v2/lbaas/loadbalancers/{lb_id}").json()["loadbalancer"]
        assert lb["provisioning_status"] == "PENDING_UPDATE"
        assert cluster.hosting_agent(lb_id) == GROUP_2

        cluster.start_agent(GROUP_2, group=2)
        cluster.wait_agents([GROUP_2])
        done = wait_lb(client, lb_id, timeout=cluster.pending_timeout + 30)
        assert (done["name"], cluster.hosting_agent(lb_id)) == ("waits", GROUP_2)
