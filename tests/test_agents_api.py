"""The agents API and the pending sweep, on a whole control plane in one
process (SQLite, the in-memory broker, noop devices) with short intervals."""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lbaas import config as cfg
from lbaas import constants as c
from lbaas import service
from lbaas.api.auth import create_token
from lbaas.controller.service import Controller
from lbaas.db import models as m
from lbaas.db.session import Database
from lbaas.testing.polling import free_port, wait_for

DOWN = 1.5


class Plane:
    def __init__(self, tmp: str, environment: str, database: str | None = None) -> None:
        port = free_port()
        token_file = f"{tmp}/tokens.json"
        self.token = create_token(token_file, "admin", "admin")
        self.config = cfg.load(overrides={
            "DEFAULT": {"transport_url": "memory://"},
            "database": {"connection": database or f"sqlite:///{tmp}/db.sqlite"},
            "api": {"bind_port": port, "token_file": token_file},
            "controller": {"environments": environment, "agent_down_time": DOWN, "pending_timeout": 1,
                           "pending_max_age": 4, "sweep_interval": 0.3, "rpc_timeout": 2},
            "agent": {"environment_prefix": environment, "report_interval": 0.3},
            "vip_subnets": {"net": "127.0.96.0/20"}})
        db = Database(self.config.database.connection)
        db.upgrade()
        self.controller = Controller(self.config, db)
        state = service.api_state(self.config, db, self.controller.providers)
        self.controller.start()
        self.server = service.api_server(state, self.controller.scheduler)
        self.server.start()
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
        self.server.stop()
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


# --- devices that fail and come back ----------------------------------------------------

def agent_doc(plane: Plane, host: str) -> dict:
    return next(a for a in plane.client.get("/v2.0/agents").json()["agents"] if a["host"] == host)


def test_heartbeat_goes_on_while_the_device_is_down_and_new_work_goes_elsewhere(plane: Plane) -> None:
    plane.start_agent("a1")
    plane.wait_alive("a1", True)
    first = plane.create("steady")
    plane.wait(first)
    plane.agents["a1"].driver.available = False
    down = wait_for(lambda: (doc := agent_doc(plane, "a1"))["configurations"]["device_state"] == "down" and doc,
                    what="device_state down")
    assert "unreachable" in down["configurations"]["device_error"]
    time.sleep(DOWN * 2)
    assert agent_doc(plane, "a1")["alive"]          # heartbeats never waited on the device
    waiting = plane.create("newcomer")
    time.sleep(0.5)
    assert "device answers" in plane.lb(waiting)["status_reason"]
    plane.start_agent("a2")
    assert plane.wait(waiting)["provisioning_status"] == "ACTIVE"   # the pending sweep places it
    assert plane.hosting(waiting) == "a2" and plane.hosting(plane.create("steady")) == "a2"
    plane.agents["a1"].driver.available = True
    wait_for(lambda: agent_doc(plane, "a1")["configurations"]["device_state"] == "up", what="device_state up")
    assert agent_doc(plane, "a1")["configurations"]["device_error"] is None


def test_device_failure_heals_without_a_user_change(plane: Plane) -> None:
    plane.start_agent("a1")
    plane.wait_alive("a1", True)
    lb_id = plane.create("heal")
    plane.wait(lb_id)
    driver = plane.agents["a1"].driver
    driver.available = False
    assert plane.client.put(f"/v2/lbaas/loadbalancers/{lb_id}",
                            json={"loadbalancer": {"name": "while-down"}}).status_code == 200
    failed = plane.wait(lb_id, "ERROR")
    assert "device unavailable" in failed["status_reason"]
    started = time.monotonic()
    driver.available = True
    healed = plane.wait(lb_id, "ACTIVE")
    # Far sooner than the resync interval (300 s): the device's return starts a pass.
    assert time.monotonic() - started < 5 and healed["status_reason"] is None
    assert driver.list_loadbalancers()[lb_id] == 2 and driver._held[lb_id]["name"] == "while-down"


def test_rejected_configuration_stays_in_error_and_is_not_retried(plane: Plane) -> None:
    plane.start_agent("a1")
    plane.wait_alive("a1", True)
    lb_id = plane.create("picky")
    before = plane.wait(lb_id)
    agent = plane.agents["a1"]
    agent.driver.rejecting = True
    assert plane.client.put(f"/v2/lbaas/loadbalancers/{lb_id}",
                            json={"loadbalancer": {"name": "refused"}}).status_code == 200
    failed = plane.wait(lb_id, "ERROR")
    assert "rejected by the device" in failed["status_reason"]
    # Even with a device that would now accept it, neither a resync nor the
    # device's return converges it again: it waits for the user's next change.
    agent.driver.rejecting = False
    agent.resync()
    agent.driver.available = False
    wait_for(lambda: not agent.health.up, what="device down")
    agent.driver.available = True
    wait_for(lambda: agent.health.up, what="device up")
    time.sleep(0.5)
    assert agent.driver.list_loadbalancers()[lb_id] == 1 and agent.driver._held[lb_id]["name"] == before["name"]
    assert plane.lb(lb_id)["provisioning_status"] == "ERROR"
    assert plane.client.put(f"/v2/lbaas/loadbalancers/{lb_id}",
                            json={"loadbalancer": {"name": "accepted"}}).status_code == 200
    assert plane.wait(lb_id)["name"] == "accepted"


def test_agent_started_before_its_device_waits_heartbeats_and_then_serves(plane: Plane) -> None:
    agent = service.make_agent(plane.config, plane.controller.broker, host="early", driver="noop")
    agent.driver.available = False
    agent.start()                                   # does not raise, does not exit
    plane.agents["early"] = agent
    plane.wait_alive("early", True)
    wait_for(lambda: agent_doc(plane, "early")["configurations"]["device_state"] == "down", what="device_state down")
    lb_id = plane.create("patient")
    time.sleep(0.5)
    assert plane.lb(lb_id)["provisioning_status"] == "PENDING_CREATE"
    agent.driver.available = True
    plane.wait(lb_id)
    assert agent.driver.list_loadbalancers() == {lb_id: 1}


def test_a_device_outage_logs_one_warning_and_one_recovery(plane: Plane, caplog: pytest.LogCaptureFixture) -> None:
    plane.start_agent("a1")
    plane.wait_alive("a1", True)
    plane.wait(plane.create("noisy"))
    agent = plane.agents["a1"]
    caplog.clear()
    caplog.set_level("DEBUG", logger="lbaas.agent")
    agent.driver.available = False
    time.sleep(2.0)                                 # several report intervals of 0.3 s
    agent.driver.available = True
    wait_for(lambda: agent.health.up, what="device up")
    time.sleep(0.5)
    mine = [r for r in caplog.records if r.name.startswith("lbaas.agent")]
    warnings = [r for r in mine if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "down" in warnings[0].getMessage(), [r.getMessage() for r in warnings]
    assert len([r for r in mine if r.levelname == "INFO" and "answers" in r.getMessage()]) == 1
    assert len([r for r in mine if r.levelname == "DEBUG" and "still down" in r.getMessage()]) >= 2
    assert not [r for r in mine if r.exc_info]


def test_an_agent_whose_host_was_taken_over_stops(plane: Plane) -> None:
    plane.start_agent("a1")
    plane.wait_alive("a1", True)
    agent = plane.agents["a1"]
    env = agent.settings.environment
    taken = plane.controller.handlers.report_state(host="a1", environment=env, start_flag=True,
                                                   instance_id="successor", exclusive=False)
    assert taken == {"accepted": True, "accepts_batches": True}
    assert wait_for(lambda: agent.stopping.is_set(), what="the displaced agent to stop")
    assert "successor" in agent.refusal and "no longer serves host a1" in agent.refusal
    time.sleep(1.0)                                 # it sends no more heartbeats: no flapping
    with plane.controller.handlers.db.reading() as session:
        assert session.query(m.Agent).filter_by(host="a1").one().instance_id == "successor"


def test_heartbeat_does_not_wait_on_a_device_that_hangs(plane: Plane) -> None:
    # A device that accepts connections and never answers (the listen backlog
    # completes the handshake); the driver would wait 60 s per request.
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    try:
        options = {"devices": f"http://127.0.0.1:{hung.getsockname()[1]}", "device_token": "t", "timeout": "60"}
        agent = service.make_agent(plane.config, plane.controller.broker, options, host="stuck", driver="haproxy")
        agent.start()
        plane.agents["stuck"] = agent
        plane.wait_alive("stuck", True)
        down = wait_for(lambda: (doc := agent_doc(plane, "stuck"))["configurations"]["device_state"] == "down"
                        and doc, what="device_state down", timeout=c.DEVICE_PROBE_TIMEOUT + 5)
        assert "timed out" in down["configurations"]["device_error"]
        for _ in range(int(DOWN * 2 / 0.3)):        # heartbeats every 0.3 s go on meanwhile
            assert agent_doc(plane, "stuck")["alive"]
            time.sleep(0.3)
    finally:
        hung.close()
