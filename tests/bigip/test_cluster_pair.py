"""A BIG-IP pair failing over mid-change, through the whole path: API -> ``lbaas server`` ->
RabbitMQ -> ``lbaas agent`` (bigip driver, ``bigip_ha_mode = pair``) -> two BIG-IP
emulators in one sync-failover group (HTTPS, in this process), on PostgreSQL.

The change in flight on the member that stops being active completes on the new active
member, and the pair ends in sync, with no API call but reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lbaas.agent.drivers import as3
from lbaas.testing.bigip import BigIPPair
from lbaas.testing.cluster import Cluster, wait_lb
from lbaas.testing.polling import wait_for
from tests.test_device_return import device_state

pytestmark = pytest.mark.integration
ENVIRONMENT = "paired"
DECLARE = "/mgmt/shared/appsvcs/declare"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigIPPair]:
    with BigIPPair(cert_dir=str(tmp_path_factory.mktemp("pair-certs"))) as devices:
        yield devices


@pytest.fixture(scope="module")
def cluster(temp_database: Any, tmp_path_factory: pytest.TempPathFactory, pair: BigIPPair) -> Iterator[Cluster]:
    db = temp_database("postgresql", migrate=False)
    options = {"bigip_hosts": ",".join(m.url for m in pair.members), "bigip_ha_mode": "pair",
               "bigip_username": "admin", "bigip_password": "admin", "bigip_ca_file": str(pair.certificate),
               "bigip_task_timeout": "15"}
    cluster = Cluster(str(tmp_path_factory.mktemp("bigip-pair")), db.url, environment=ENVIRONMENT,
                      device_driver="bigip", device_options=options, report_interval=0.5)
    try:
        cluster.start_all(["server-1"], ["pair-agent-1"])
        wait_for(lambda: device_state(cluster, "pair-agent-1") == "up", timeout=20, what="the pair verified")
        yield cluster
    finally:
        cluster.stop()


def application(member: Any, lb_id: str) -> dict | None:
    tenant = as3.tenant_name(ENVIRONMENT, "admin")
    return (member.declaration(tenant) or {}).get(as3.app_name(lb_id))


def test_a_pair_failing_over_mid_change_completes_it_on_the_new_active(
        cluster: Cluster, pair: BigIPPair) -> None:
    with cluster.client() as client:
        response = client.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {
            "vip_subnet_id": "cluster", "listeners": [{"protocol": "TCP", "protocol_port": 8501}]}})
        assert response.status_code == 201, response.text
        lb_id = response.json()["loadbalancer"]["id"]
        wait_lb(client, lb_id, timeout=30)
        assert application(pair.active, lb_id) is not None and pair.in_sync()
        old_active = pair.active
        pair.set(task_duration=1.5)      # the change is in flight when the pair fails over
        posted = old_active.calls(DECLARE, method="POST")
        renamed = client.put(f"/v2/lbaas/loadbalancers/{lb_id}", json={"loadbalancer": {"name": "moved"}})
        assert renamed.status_code == 200, renamed.text
        wait_for(lambda: old_active.calls(DECLARE, method="POST") > posted, timeout=10,
                 what="the declaration on the active member")
        new_active = pair.failover()
        done = wait_lb(client, lb_id, timeout=30)
    pair.set(task_duration=0.0)
    assert done["name"] == "moved"
    held = application(new_active, lb_id)
    assert held is not None and as3.held(as3.app_name(lb_id), held) == (lb_id, 2)
    assert new_active.calls(DECLARE, method="POST") >= 1          # redone where it now counts
    assert pair.in_sync()
