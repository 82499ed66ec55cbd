"""The agents API and the pending sweep, on a whole control plane in one
process (SQLite, the in-memory broker, noop devices) with short intervals."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from lbaas import config as cfg
from lbaas import service
from lbaas.api.app import create_app
from lbaas.api.auth import create_token
from lbaas.db.session import Database
from tests.conftest import free_port

DOWN = 1.5


class Plane:
    def __init__(self, tmp: str, environment: str) -> None:
        port = free_port()
        token_file = f"{tmp}/tokens.json"
        self.token = create_token(token_file, "admin", "admin")
        self.config = cfg.load(overrides={
            "DEFAULT": {"transport_url": "memory://"},
            "database": {"connection": f"sqlite:///{tmp}/db.sqlite"},
            "api": {"bind_port": port, "token_file": token_file},
            "controller": {"environments": environment, "agent_down_time": DOWN, "pending_timeout": 1,
                           "pending_max_age": 4, "sweep_interval": 0.3, "rpc_timeout": 2},
            "agent": {"environment_prefix": environment, "report_interval": 0.3},
            "vip_subnets": {"net": "127.0.96.0/20"}})
        db = Database(self.config.database.connection)
        db.upgrade()
        self.controller = service.Controller(self.config, db)
        state = service.api_state(self.config, db, self.controller.providers)
        self.controller.start()
        self.server = uvicorn.Server(uvicorn.Config(create_app(state, self.controller.scheduler),
                                                    host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=self.server.run, daemon=True).start()
        while not self.server.started:
            time.sleep(0.02)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-Auth-Token": self.token})
        self.agents: dict[str, Any] = {}

    def start_agent(self, host: str) -> None:
        agent = service.make_agent(self.config, self.controller.broker, host=host, driver="noop")
        agent.start()
        self.agents[host] = agent

    def stop_agent(self, host: str) -> None:
        self.agents.pop(host).stop()

    def agent_ids(self) -> dict[str, str]:
        return {a["host"]: a["id"] for a in self.client.get("/v2.0/agents").json()["agents"]}

    def wait_alive(self, host: str, alive: bool) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            agents = {a["host"]: a["alive"] for a in self.client.get("/v2.0/agents").json()["agents"]}
            if agents.get(host) is alive:
                return
            time.sleep(0.1)
        raise AssertionError(f"{host} alive={alive} not reached")

    def create(self, project: str) -> str:
        response = self.client.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {
            "vip_subnet_id": "net", "project_id": project}})
        assert response.status_code == 201, response.text
        return response.json()["loadbalancer"]["id"]

    def lb(self, lb_id: str) -> dict:
        return self.client.get(f"/v2/lbaas/loadbalancers/{lb_id}").json()["loadbalancer"]

    def wait(self, lb_id: str, status: str = "ACTIVE", timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lb = self.lb(lb_id)
            if lb["provisioning_status"] == status:
                return lb
            time.sleep(0.05)
        raise AssertionError(f"{lb_id} did not reach {status}: {self.lb(lb_id)}")

    def hosting(self, lb_id: str) -> str:
        return self.client.get(f"/v2.0/lbaas/loadbalancers/{lb_id}/loadbalancer-hosting-agent").json()["agent"]["host"]

    def stop(self) -> None:
        for host in list(self.agents):
            self.stop_agent(host)
        self.server.should_exit = True
        self.controller.stop()


@pytest.fixture
def plane(tmp_path: Any, request: pytest.FixtureRequest) -> Iterator[Plane]:
    plane = Plane(str(tmp_path), f"env-{request.node.name[-20:].replace('[', '').replace(']', '')}")
    yield plane
    plane.stop()


def test_agents_list_show_update_and_filters(plane: Plane) -> None:
    plane.start_agent("a1")
    plane.start_agent("a2")
    plane.wait_alive("a2", True)
    ids = plane.agent_ids()
    agent = plane.client.get(f"/v2.0/agents/{ids['a1']}").json()["agent"]
    assert agent["alive"] and agent["admin_state_up"] and agent["configurations"]["report_interval"] == 0.3
    assert agent["heartbeat_timestamp"] and agent["started_at"]
    updated = plane.client.put(f"/v2.0/agents/{ids['a1']}", json={"agent": {"admin_state_up": False}})
    assert updated.status_code == 200 and updated.json()["agent"]["admin_state_up"] is False
    hosts = [a["host"] for a in plane.client.get("/v2.0/agents?admin_state_up=false").json()["agents"]]
    assert hosts == ["a1"]
    assert [a["host"] for a in plane.client.get("/v2.0/agents?host=a2").json()["agents"]] == ["a2"]
    # An agent that is administratively down gets no new load balancers.
    assert {plane.hosting(plane.create(f"p{i}")) for i in range(3)} == {"a2"}
    bad = plane.client.put(f"/v2.0/agents/{ids['a1']}", json={"agent": {"admin_state_up": "no"}})
    assert bad.status_code == 400
    member = create_token(plane.config.api.token_file, "p1", "member")
    assert plane.client.get("/v2.0/agents", headers={"X-Auth-Token": member}).status_code == 403


def test_delete_agent_with_loadbalancers_is_refused_then_rebound_when_dead(plane: Plane) -> None:
    for host in ("a1", "a2", "a3"):
        plane.start_agent(host)
    plane.wait_alive("a3", True)
    ids = plane.agent_ids()
    plane.client.put(f"/v2.0/agents/{ids['a2']}", json={"agent": {"admin_state_up": False}})
    plane.client.put(f"/v2.0/agents/{ids['a3']}", json={"agent": {"admin_state_up": False}})
    made = [plane.create(f"proj-{i}") for i in range(6)]
    for lb_id in made:
        plane.wait(lb_id)
    assert {plane.hosting(lb_id) for lb_id in made} == {"a1"}
    listed = plane.client.get(f"/v2.0/agents/{ids['a1']}/agent-loadbalancers").json()["loadbalancers"]
    assert sorted(lb["id"] for lb in listed) == sorted(made)
    for host in ("a2", "a3"):
        plane.client.put(f"/v2.0/agents/{ids[host]}", json={"agent": {"admin_state_up": True}})
    refused = plane.client.delete(f"/v2.0/agents/{ids['a1']}")
    assert refused.status_code == 409 and "6 load balancer" in refused.json()["faultstring"]
    alive = plane.client.delete(f"/v2.0/agents/{ids['a1']}?rebind=true")
    assert alive.status_code == 409 and "alive" in alive.json()["faultstring"]
    plane.stop_agent("a1")
    plane.wait_alive("a1", False)
    assert plane.client.delete(f"/v2.0/agents/{ids['a1']}?rebind=true").status_code == 204
    assert plane.client.get(f"/v2.0/agents/{ids['a1']}").status_code == 404
    spread = Counter(plane.hosting(lb_id) for lb_id in made)
    assert spread == {"a2": 3, "a3": 3}
    # The new owners converge them; later changes complete there.
    for lb_id in made:
        assert plane.client.put(f"/v2/lbaas/loadbalancers/{lb_id}",
                                json={"loadbalancer": {"name": "moved"}}).status_code == 200
    for lb_id in made:
        assert plane.wait(lb_id)["name"] == "moved"
        assert lb_id in plane.agents[plane.hosting(lb_id)].driver.list_loadbalancers()


def test_without_agents_a_change_waits_then_errors_with_a_reason(plane: Plane) -> None:
    lb_id = plane.create("lonely")
    time.sleep(0.5)
    waiting = plane.lb(lb_id)
    assert waiting["provisioning_status"] == "PENDING_CREATE"
    assert "waiting for an active agent" in waiting["status_reason"]
    failed = plane.wait(lb_id, "ERROR", timeout=15)
    assert "gave up" in failed["status_reason"] and "active agent" in failed["status_reason"]
    # ERROR is not a dead end: with an agent, the next change completes.
    plane.start_agent("late")
    plane.wait_alive("late", True)
    assert plane.client.put(f"/v2/lbaas/loadbalancers/{lb_id}", json={"loadbalancer": {"name": "x"}}).status_code == 200
    assert plane.wait(lb_id)["status_reason"] is None


def test_agent_resync_converges_bound_and_removes_orphans(plane: Plane) -> None:
    plane.start_agent("solo")
    plane.wait_alive("solo", True)
    lb_id = plane.create("sync")
    plane.wait(lb_id)
    agent = plane.agents["solo"]
    agent.driver.delete(lb_id)                                  # the device lost it
    agent.driver.converge({"id": "orphan", "revision": 1, "deleted": False})  # and holds a stranger
    agent.resync()
    held = agent.driver.list_loadbalancers()
    assert lb_id in held and "orphan" not in held
