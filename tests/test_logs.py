"""Logs: the request id follows a change from the API through the agent and back,
admin actions are audited, JSON lines, and SIGHUP (log files reopened, token and
policy files read again) on a real ``lbaas server`` process."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from cryptography.fernet import Fernet

from lbaas import constants as c
from lbaas import logs
from lbaas.api import request_id
from lbaas.runtime import Process
from lbaas.testing.polling import free_port, wait_for
from tests.test_agents_api import Plane
from tests.test_config import LBAAS, wait_for_http

T = TypeVar("T")


@pytest.fixture
def json_log(tmp_path: Path) -> Iterator[Path]:
    """The process's logging as ``lbaas ... --log-format json`` sets it up, into a file."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    path = tmp_path / "lbaas.log"
    logs.setup(log_file=str(path), log_format="json")
    yield path
    for handler in root.handlers:
        handler.close()
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[Plane]:
    plane = Plane(str(tmp_path), "env-logs")
    yield plane
    plane.stop()


def test_the_request_id_follows_the_change_to_the_agent_and_back(plane: Plane, json_log: Path) -> None:
    plane.start_agent("a1")
    plane.wait_alive("a1", True)
    created = plane.client.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {"vip_subnet_id": "net"}})
    assert created.status_code == 201, created.text
    rid, lb_id = created.headers["x-openstack-request-id"], created.json()["loadbalancer"]["id"]
    plane.wait(lb_id)

    def about_the_change() -> list[dict[str, Any]]:
        return [entry for entry in lines(json_log) if entry["request_id"] == rid]

    # The status cast is handled after the row turned ACTIVE: its line may come a moment later.
    found = wait_for(lambda: [e for e in about_the_change() if e["message"].startswith("status of")] and
                     about_the_change(), 5, 0.05, "the status line")
    by_logger = {(entry["logger"], entry["message"]) for entry in found}
    assert ("lbaas.agent.service",  # a create's desired state is always fetched, never carried
            f"load balancer {lb_id} revision 1: converging on agent a1 (fetched desired state)") in by_logger
    assert ("lbaas.agent.service", f"load balancer {lb_id} revision 1: converged") in by_logger
    assert ("lbaas.controller.handlers", f"status of load balancer {lb_id} at revision 1: active") in by_logger
    assert any(entry["logger"] == "lbaas.access" for entry in found)
    assert all(entry["time"].endswith("+00:00") and entry["level"] == "INFO" for entry in found)
    # Work nobody asked for through the API (heartbeats, sweeps) names no request.
    assert any(entry["request_id"] is None for entry in lines(json_log))
    assert request_id.current() is None


def test_admin_actions_are_audited_with_who_did_them(plane: Plane, json_log: Path) -> None:
    plane.start_agent("a1")
    plane.wait_alive("a1", True)
    agent_id = plane.agent_ids()["a1"]
    lb_id = plane.create("p1")
    plane.wait(lb_id)
    actions = [
        ("PUT", f"/v2.0/agents/{agent_id}", {"agent": {"admin_state_up": False}}, f"agent.disable target={agent_id}"),
        ("PUT", f"/v2.0/agents/{agent_id}", {"agent": {"admin_state_up": True}}, f"agent.enable target={agent_id}"),
        ("PUT", "/v2/lbaas/quotas/p1", {"quota": {"loadbalancer": 5}}, "quota.set target=p1 load_balancer=5"),
        ("DELETE", "/v2/lbaas/quotas/p1", None, "quota.reset target=p1"),
        ("PUT", f"/v2/lbaas/loadbalancers/{lb_id}/failover", None, f"loadbalancer.failover target={lb_id}"),
    ]
    for method, path, body, _ in actions:
        answer = plane.client.request(method, path, json=body)
        assert answer.status_code < 300, answer.text
    token_user = f"token-{plane.token.split('.')[0]}"
    audited = [entry["message"] for entry in lines(json_log) if entry["logger"] == "lbaas.audit"]
    assert audited == [f"audit: project=admin user={token_user} action={what}" for *_, what in actions]
    # A refused action is not one that was done.
    assert plane.client.delete(f"/v2.0/agents/{agent_id}").status_code == 409
    assert len([entry for entry in lines(json_log) if entry["logger"] == "lbaas.audit"]) == len(actions)


def test_json_lines_escape_what_a_message_carries(json_log: Path) -> None:
    log = logging.getLogger("lbaas.test")
    token = request_id.bind("req-1")
    try:
        log.warning("two\nlines %s", "and \"quotes\"")
    finally:
        request_id.unbind(token)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, second = lines(json_log)
    assert first == {"time": first["time"], "level": "WARNING", "logger": "lbaas.test",
                     "message": "two\nlines and \"quotes\"", "request_id": "req-1"}
    assert second["request_id"] is None and "ValueError: boom" in second["message"]
    assert len(json_log.read_text().splitlines()) == 2


# --- SIGHUP on a real server ----------------------------------------------------------

def test_sighup_reopens_the_log_file_and_rereads_token_and_policy_files(tmp_path: Path) -> None:
    port = free_port()
    write_policy(tmp_path, "@")  # anyone may list
    (tmp_path / "server.conf").write_text(
        f"[DEFAULT]\nlog_file = server.log\n[api]\nbind_port = {port}\ntoken_file = tokens.json\n"
        "policy_file = policy.yaml\n"
        "[database]\nconnection = sqlite:///lbaas.sqlite\n"
        f"[certificates]\nencryption_key = {Fernet.generate_key().decode()}\n")
    lbaas_command(tmp_path, "db upgrade")
    first = lbaas_command(tmp_path, "token create --project p1")
    server = subprocess.Popen([LBAAS, "server", "--config-file", "server.conf", "--log-format", "json"],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/v2/lbaas/loadbalancers"
    try:
        assert wait_for_http(url, server) == 401
        assert get(url, first).status_code == 200
        # A token and a rule written with the files' old mtimes: only a re-read finds them.
        second = unchanged_mtime(tmp_path / "tokens.json",
                                 lambda: lbaas_command(tmp_path, "token create --project p2"))
        unchanged_mtime(tmp_path / "policy.yaml", lambda: write_policy(tmp_path, "!"))  # nobody may list
        assert get(url, second).status_code == 401 and get(url, first).status_code == 200
        (tmp_path / "server.log").rename(tmp_path / "server.log.1")  # logrotate
        server.send_signal(signal.SIGHUP)
        wait_for(lambda: (tmp_path / "server.log").exists(), 10, 0.05, "the log file reopened")
        # Known now, and refused by the new rule.
        answer = wait_for(lambda: (r := get(url, second)).status_code == 403 and r, 10, 0.1, "the new files")
        assert get(url, first).status_code == 403 and server.poll() is None
        rid = answer.headers["x-openstack-request-id"]
        wait_for(lambda: rid in (tmp_path / "server.log").read_text(), 10, 0.05, "the access line")
        assert rid not in (tmp_path / "server.log.1").read_text()
        rotated, current = lines(tmp_path / "server.log.1"), lines(tmp_path / "server.log")
        assert any("lbaas server on" in entry["message"] for entry in rotated)
        assert any("SIGHUP" in entry["message"] for entry in current)
    finally:
        server.terminate()
        assert server.wait(timeout=15) == 0, server.communicate()[1]


def write_policy(folder: Path, rule: str) -> None:
    (folder / "policy.yaml").write_text(f'"os_load-balancer_api:loadbalancer:get_all": "{rule}"\n')


def unchanged_mtime(path: Path, change: Callable[[], T]) -> T:
    """``change()``'s result; ``path`` keeps the modification time it had before."""
    stamp = os.stat(path).st_mtime_ns
    result = change()
    os.utime(path, ns=(stamp, stamp))
    return result


def lbaas_command(cwd: Path, command: str) -> str:
    done = subprocess.run([LBAAS, *command.split(), "--config-file", "server.conf"], cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def get(url: str, token: str) -> httpx.Response:
    return httpx.get(url, headers={"X-Auth-Token": token}, timeout=5)


def test_the_device_logs_in_the_common_format_and_not_every_poll(tmp_path: Path) -> None:
    port, token = free_port(), Fernet.generate_key().decode()
    (tmp_path / "device.conf").write_text(
        f"[device]\ntoken = {token}\nbind_port = {port}\n"
        f"state_dir = {tmp_path / 'state'}\nhaproxy_bin = /usr/sbin/haproxy\n")
    device = subprocess.Popen([LBAAS, "device", "--config-file", "device.conf"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", device)
        for _ in range(3):  # an agent's polls
            polled = httpx.get(f"http://127.0.0.1:{port}/loadbalancers", headers={c.DEVICE_AUTH_HEADER: token})
            assert polled.status_code == 200, polled.text
    finally:
        device.terminate()
        assert device.wait(timeout=15) == 0
    logged = device.communicate()[1].splitlines()
    assert any(f"INFO lbaas.service [-] lbaas device on http://127.0.0.1:{port}" in line for line in logged)
    assert logged and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+ \[", line)
                          for line in logged), logged
    assert not [line for line in logged if "GET /loadbalancers" in line]


def test_a_failing_hangup_callable_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    def broken() -> None:
        raise OSError("unreadable")

    Process("p", [], on_hangup=[broken, lambda: ran.append("second")]).hangup()
    assert ran == ["second"]
    assert "p: SIGHUP: test_a_failing_hangup_callable_does_not_stop_the_others.<locals>.broken failed" \
        in caplog.text
