"""The operator commands (``lbaas agent ...``, ``lbaas loadbalancer agent``, ``lbaas status``)
run as the installed ``lbaas`` command against a whole control plane with agents, and the
agents API they rely on: an alive agent is not deleted, times are UTC with a zone on every
database."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lbaas.api.auth import create_token
from lbaas.testing.polling import wait_for
from tests.conftest import BACKENDS
from tests.test_agents_api import Plane, plane  # noqa: F401  (the fixture)

LBAAS = str(Path(sys.executable).parent / "lbaas")
UTC_SECOND = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def lbaas(plane: Plane, *argv: str, token: str | None = None, env: dict[str, str] | None = None,
          ok: bool = True) -> subprocess.CompletedProcess[str]:
    """The command, as an operator types it; the token from LBAAS_TOKEN unless given."""
    environ = {key: value for key, value in os.environ.items() if key not in ("LBAAS_TOKEN", "OS_AUTH_TOKEN")}
    environ.update(env if env is not None else {"LBAAS_TOKEN": plane.token})
    url = ["--url", str(plane.client.base_url)]
    command = [LBAAS, *argv, *url, *(["--token", token] if token else [])]
    result = subprocess.run(command, capture_output=True, text=True, env=environ, timeout=60)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def as_json(plane: Plane, *argv: str) -> Any:
    return json.loads(lbaas(plane, *argv, "-f", "json").stdout)


def row(table: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is ``first``."""
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in\n{table}")


def test_agent_commands_list_show_set_and_their_load_balancers(plane: Plane) -> None:
    plane.start_agent("a1")
    plane.start_agent("a2")
    plane.wait_alive("a2", True)
    ids = plane.agent_ids()
    table = lbaas(plane, "agent", "list").stdout
    assert row(table, "id")[:4] == ["id", "host", "environment", "alive"]
    assert row(table, ids["a1"])[1:4] == ["a1", plane.config.agent.environment_prefix, "True"]
    assert sorted(agent["host"] for agent in as_json(plane, "agent", "list")["agents"]) == ["a1", "a2"]
    shown = lbaas(plane, "agent", "show", "a1").stdout            # by host
    assert row(shown, "id")[1] == ids["a1"] and row(shown, "admin_state_up")[1] == "True"
    assert as_json(plane, "agent", "show", ids["a1"])["agent"]["host"] == "a1"   # by id
    assert as_json(plane, "agent", "set", "a1", "--disable")["agent"]["admin_state_up"] is False
    lb_id = plane.create("ops")
    plane.wait(lb_id)
    assert plane.hosting(lb_id) == "a2"
    hosted = lbaas(plane, "agent", "loadbalancers", "a2").stdout
    assert row(hosted, lb_id)[2:] == ["ops", plane.lb(lb_id)["vip_address"], "ACTIVE", "ONLINE"]
    assert [lb["id"] for lb in as_json(plane, "agent", "loadbalancers", "a1")["loadbalancers"]] == []
    assert row(lbaas(plane, "loadbalancer", "agent", lb_id).stdout, "host")[1] == "a2"
    assert as_json(plane, "loadbalancer", "agent", lb_id)["agent"]["id"] == ids["a2"]
    assert row(lbaas(plane, "agent", "set", "a1", "--enable").stdout, "admin_state_up")[1] == "True"


def test_agent_delete_refuses_an_alive_agent_then_rebinds_a_dead_one(plane: Plane) -> None:
    plane.start_agent("a1")
    plane.start_agent("a2")
    plane.wait_alive("a2", True)
    ids = plane.agent_ids()
    lbaas(plane, "agent", "set", "a2", "--disable")
    lb_id = plane.create("moving")
    plane.wait(lb_id)
    lbaas(plane, "agent", "set", "a2", "--enable")
    refused = lbaas(plane, "agent", "delete", "a1", "--rebind", ok=False)
    assert refused.returncode == 1 and refused.stderr.startswith("lbaas: 409 ") and "alive" in refused.stderr
    assert "Traceback" not in refused.stderr
    plane.stop_agent("a1")
    plane.wait_alive("a1", False)
    kept = lbaas(plane, "agent", "delete", ids["a1"], ok=False)
    assert kept.returncode == 1 and "409" in kept.stderr and "1 load balancer" in kept.stderr
    assert lbaas(plane, "agent", "delete", "a1", "--rebind").stdout.strip() == f"Deleted agent {ids['a1']}"
    assert plane.hosting(lb_id) == "a2"
    gone = lbaas(plane, "agent", "show", ids["a1"], ok=False)
    assert gone.returncode == 1 and gone.stderr.startswith("lbaas: 404 ")


def test_status_counts_agents_pending_and_error(plane: Plane) -> None:
    lb_id = plane.create("lonely")                      # no agent: it waits, then goes to ERROR
    waiting = as_json(plane, "status")["status"]
    assert waiting["loadbalancers"]["pending"] == 1 and waiting["loadbalancers"]["error"] == 0
    assert 0 <= waiting["loadbalancers"]["oldest_pending_age"] < 30
    assert waiting["environments"] == [] and waiting["agents"] == []
    plane.wait(lb_id, "ERROR", timeout=15)
    plane.start_agent("a1")
    plane.start_agent("a2")
    plane.wait_alive("a2", True)
    plane.wait(plane.create("placed"))
    plane.stop_agent("a1")
    plane.wait_alive("a1", False)
    status = as_json(plane, "status")["status"]
    environment = plane.config.agent.environment_prefix
    assert status["environments"] == [{"environment": environment, "agents": 2, "alive": 1, "dead": 1,
                                       "loadbalancers": 1}]
    assert {agent["host"]: agent["alive"] for agent in status["agents"]} == {"a1": False, "a2": True}
    assert status["loadbalancers"] == {"pending": 0, "error": 1, "oldest_pending_age": None}
    table = lbaas(plane, "status").stdout
    assert row(table, environment)[1:] == ["2", "1", "1", "1"]
    assert row(table, "a1")[2] == "False" and row(table, "a2")[2] == "True"
    assert row(table, "0")[1:] == ["1", "-"]                 # pending, error, oldest pending age


def test_tokens_from_the_environment_and_refusals(plane: Plane) -> None:
    assert as_json(plane, "status")["status"]["agents"] == []          # LBAAS_TOKEN
    via_os = lbaas(plane, "status", "-f", "json", env={"OS_AUTH_TOKEN": plane.token})
    assert json.loads(via_os.stdout)["status"]["loadbalancers"]["pending"] == 0
    missing = lbaas(plane, "agent", "list", env={}, ok=False)
    assert missing.returncode == 2 and "LBAAS_TOKEN" in missing.stderr
    member = create_token(plane.config.api.token_file, "p1", "member")
    forbidden = lbaas(plane, "status", token=member, ok=False)
    assert forbidden.returncode == 1 and forbidden.stderr.startswith("lbaas: 403 ")
    assert member not in forbidden.stderr + forbidden.stdout
    unknown = lbaas(plane, "loadbalancer", "agent", "no/such", ok=False)
    assert unknown.returncode == 1 and unknown.stderr.startswith("lbaas: 404 ")
    away = subprocess.run([LBAAS, "agent", "list", "--url", "http://127.0.0.1:9", "--token", "t"],
                          capture_output=True, text=True, timeout=60)
    assert away.returncode == 2 and away.stderr.count("\n") == 1 and "cannot reach" in away.stderr


@pytest.fixture(params=BACKENDS)
def plane_on(request: pytest.FixtureRequest, tmp_path: Any, temp_database: Any) -> Iterator[Plane]:
    """A control plane on SQLite, PostgreSQL and MariaDB in turn."""
    database = temp_database(request.param, migrate=False)
    on = Plane(str(tmp_path), f"env-{request.param}", database.url)
    yield on
    on.stop()


def test_alive_agent_is_not_deleted_and_times_are_utc_on_every_database(plane_on: Plane) -> None:
    lb_id = plane_on.create("early")                          # pending until an agent comes
    pending = plane_on.client.get("/v2/agents/status").json()["status"]["loadbalancers"]
    assert pending["pending"] == 1 and 0 <= pending["oldest_pending_age"] < 30
    plane_on.start_agent("a1")
    plane_on.wait_alive("a1", True)
    agent_id = plane_on.agent_ids()["a1"]
    refused = plane_on.client.delete(f"/v2.0/agents/{agent_id}")
    assert refused.status_code == 409 and "alive" in refused.json()["faultstring"]
    assert refused.json()["faultcode"] == "Client"
    agent = plane_on.client.get(f"/v2.0/agents/{agent_id}").json()["agent"]
    now = dt.datetime.now(dt.timezone.utc)
    times = {field: agent[field] for field in ("heartbeat_timestamp", "started_at", "created_at")}
    times["device_state_since"] = agent["configurations"]["device_state_since"]
    for field, value in times.items():
        assert UTC_SECOND.match(value), (field, value)
        assert abs(dt.datetime.fromisoformat(value.replace("Z", "+00:00")) - now) < dt.timedelta(seconds=60)
    status = plane_on.client.get("/v2/agents/status").json()["status"]
    assert status["environments"][0]["alive"] == 1
    plane_on.wait(lb_id)
    plane_on.stop_agent("a1")
    plane_on.wait_alive("a1", False)
    kept = plane_on.client.delete(f"/v2.0/agents/{agent_id}")
    assert kept.status_code == 409 and "still hosts 1 load balancer" in kept.json()["faultstring"]
    plane_on.start_agent("a2")
    plane_on.wait_alive("a2", True)
    assert plane_on.client.delete(f"/v2.0/agents/{agent_id}?rebind=true").status_code == 204
    assert plane_on.hosting(lb_id) == "a2"
    assert plane_on.client.get(f"/v2.0/agents/{agent_id}").status_code == 404
