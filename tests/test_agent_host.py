"""One host, one agent: the server's decision on every database, then real
``lbaas agent`` processes on PostgreSQL and RabbitMQ (a second agent for a live
host exits 2; a restart after a crash or a clean stop takes over)."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lbaas.controller.handlers import ControllerHandlers
from lbaas.keys.local import LocalKeyManager, LocalStore
from lbaas.db import models as m
from lbaas.db.session import Database
from lbaas.scheduler import Scheduler
from lbaas.testing.cluster import Cluster

DOWN = 30.0
ENV = "hosts"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def handlers(request: pytest.FixtureRequest, temp_database: Any) -> Iterator[ControllerHandlers]:
    db = Database(temp_database(request.param).url)
    yield ControllerHandlers(db, Scheduler(DOWN), LocalKeyManager(LocalStore(db, None)))
    db.dispose()


def start(handlers: ControllerHandlers, instance: str, host: str = "h1", **extra: Any) -> dict:
    return handlers.report_state(host=host, environment=ENV, start_flag=True, instance_id=instance, **extra)


def beat(handlers: ControllerHandlers, instance: str, host: str = "h1", **extra: Any) -> dict:
    return handlers.report_state(host=host, environment=ENV, instance_id=instance, **extra)


def row(handlers: ControllerHandlers, host: str = "h1") -> m.Agent:
    with handlers.db.reading() as session:
        return session.query(m.Agent).filter_by(environment=ENV, host=host).one()


def test_a_live_host_is_refused_to_a_second_instance(handlers: ControllerHandlers) -> None:
    assert start(handlers, "first") == {"accepted": True, "accepts_batches": True}
    assert beat(handlers, "first") == {"accepted": True, "accepts_batches": True}
    refused = start(handlers, "second")
    assert refused["accepted"] is False
    assert re.fullmatch(r"another agent is already serving host h1 in environment hosts \(heartbeat \d+s ago, "
                        r"started at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\); give this agent another \[agent\] host",
                        refused["reason"]), refused["reason"]
    # The refused instance's heartbeats change nothing either; the owner's go on.
    assert beat(handlers, "second")["accepted"] is False
    assert beat(handlers, "first") == {"accepted": True, "accepts_batches": True}
    assert row(handlers).instance_id == "first"
    # A restart of the owner itself (same instance, e.g. a retried start) is fine.
    assert start(handlers, "first") == {"accepted": True, "accepts_batches": True}


def test_a_silent_owner_is_taken_over_and_cannot_come_back(handlers: ControllerHandlers) -> None:
    start(handlers, "crashed")
    with handlers.db.transaction() as session:
        agent = session.query(m.Agent).filter_by(host="h1").one()
        agent.heartbeat_at = agent.heartbeat_at - dt.timedelta(seconds=DOWN * 2)
    assert start(handlers, "restarted") == {"accepted": True, "accepts_batches": True}
    late = beat(handlers, "crashed")
    assert late["accepted"] is False and "instance restarted took it over" in late["reason"]
    assert beat(handlers, "restarted") == {"accepted": True, "accepts_batches": True}
    assert row(handlers).instance_id == "restarted"


def test_a_clean_stop_frees_the_host_at_once(handlers: ControllerHandlers) -> None:
    start(handlers, "old")
    handlers.agent_stopped(host="h1", environment=ENV, instance_id="someone-else")  # not the owner: ignored
    assert start(handlers, "new")["accepted"] is False
    handlers.agent_stopped(host="h1", environment=ENV, instance_id="old")
    assert row(handlers).instance_id is None
    assert beat(handlers, "old")["accepted"] is False   # a heartbeat that was in flight does not reclaim it
    assert start(handlers, "new") == {"accepted": True, "accepts_batches": True}
    assert row(handlers).instance_id == "new"


def test_hosts_and_environments_are_separate_and_in_process_agents_take_over(handlers: ControllerHandlers) -> None:
    start(handlers, "a")
    assert start(handlers, "b", host="h2") == {"accepted": True, "accepts_batches": True}
    assert handlers.report_state(host="h1", environment="other", start_flag=True, instance_id="c") == {"accepted": True, "accepts_batches": True}
    assert start(handlers, "d", exclusive=False) == {"accepted": True, "accepts_batches": True}
    assert row(handlers).instance_id == "d"


def test_the_reported_device_state_is_kept_for_the_scheduler(handlers: ControllerHandlers) -> None:
    start(handlers, "x", configurations={"device_state": "unknown"})
    assert row(handlers).device_up is True
    beat(handlers, "x", configurations={"device_state": "down", "device_error": "unreachable"})
    assert row(handlers).device_up is False
    beat(handlers, "x", configurations={"device_state": "up"})
    assert row(handlers).device_up is True


# --- real processes -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster(temp_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    db = temp_database("postgresql", migrate=False)
    cluster = Cluster(str(tmp_path_factory.mktemp("hosts")), db.url, environment="hosts",
                      agent_down_time=6.0, report_interval=0.5)
    try:
        yield cluster.start_all(["server-1"], [])
    finally:
        cluster.stop()


def agent_row(cluster: Cluster, host: str) -> dict:
    with cluster.client() as client:
        return next(a for a in client.get("/v2.0/agents").json()["agents"] if a["host"] == host)


def log_of(cluster: Cluster, name: str) -> str:
    with open(f"{cluster.workdir}/agent-{name}.log", encoding="utf-8") as handle:
        return handle.read()


def refused_by(cluster: Cluster, name: str, host: str) -> None:
    """Agent ``name`` exits 2 with the one line naming the live agent of ``host``."""
    assert cluster.agents[name].wait(timeout=30) == 2
    lines = [line for line in log_of(cluster, name).splitlines() if "already serving" in line]
    assert len(lines) == 1, log_of(cluster, name)
    assert re.fullmatch(rf"lbaas: another agent is already serving host {host} in environment hosts "
                        r"\(heartbeat \d+s ago, started at .+ UTC\); give this agent another \[agent\] host",
                        lines[0]), lines[0]


def runs(cluster: Cluster, name: str, host: str, seconds: float = 2.0) -> None:
    """Agent ``name`` keeps running and its host stays alive."""
    cluster.wait_agents([host])
    time.sleep(seconds)
    assert cluster.agents[name].poll() is None, log_of(cluster, name)
    assert agent_row(cluster, host)["alive"]


def test_one_host_one_agent_with_real_processes(cluster: Cluster) -> None:
    cluster.start_agent("h", name="first")
    cluster.wait_agents(["h"])
    first_started = agent_row(cluster, "h")["started_at"]
    cluster.start_agent("h", name="twin")
    refused_by(cluster, "twin", "h")
    assert cluster.agents["first"].poll() is None and agent_row(cluster, "h")["alive"]

    # A crash: the row stays claimed until agent_down_time has passed.
    cluster.kill_agent("first")
    cluster.start_agent("h", name="too-soon")
    refused_by(cluster, "too-soon", "h")
    cluster.wait_agents(["h"], alive=False)
    cluster.start_agent("h", name="after-crash")
    runs(cluster, "after-crash", "h")
    assert agent_row(cluster, "h")["started_at"] != first_started

    # A clean stop frees the host at once: the next agent starts while the
    # stopped one's last heartbeat is still fresh (well within agent_down_time).
    assert cluster.stop_agent("after-crash") == 0
    cluster.start_agent("h", name="after-stop")
    runs(cluster, "after-stop", "h", seconds=cluster.agent_down_time)
    assert "already serving" not in log_of(cluster, "after-stop")
