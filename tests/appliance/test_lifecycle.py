"""The device API over real HAProxy: runtime changes, hitless reloads, restarts, refusals."""

import copy
import http.client
import os
import signal
import socket
import threading
import time

import httpx
import pytest

import lbaas.appliance.process
import lbaas.appliance.render
from tests.appliance.helpers import (answers, bump, fetch, haproxy_pids, loadbalancer,
                                  member, monitor, uid, url_of, vip, wait_for)

pytestmark = [pytest.mark.integration]


def lb_ids(device) -> dict[str, int]:
    entries = device.client.get("/loadbalancers").json()["loadbalancers"]
    return {e["id"]: e["revision"] for e in entries}


# --- API basics -------------------------------------------------------------------------

def test_root_describes_the_device(device):
    info = device.client.get("/").json()

    assert info["version"] == lbaas.__version__
    assert info["haproxy_version"].startswith("2.")
    caps = info["capabilities"]
    assert {"HTTP", "HTTPS", "TCP", "PROXY"} <= set(caps["protocols"])
    assert set(caps["lb_algorithms"]) == {"ROUND_ROBIN", "LEAST_CONNECTIONS", "SOURCE_IP"}
    assert set(caps["session_persistence"]) == {"SOURCE_IP", "HTTP_COOKIE", "APP_COOKIE"}
    assert {"HTTP", "HTTPS", "TCP", "PING"} <= set(caps["health_monitors"])


@pytest.mark.parametrize("headers", [{}, {"X-Auth-Token": "wrong"}])
def test_token_required(device, headers):
    for method, path in (("GET", "/"), ("GET", "/loadbalancers"),
                         ("PUT", "/loadbalancers/x"), ("DELETE", "/loadbalancers/x")):
        response = httpx.request(method, device.url + path, headers=headers, json={})
        assert response.status_code == 401
        assert response.json()["faultcode"] == "Client"


def test_unknown_load_balancer(device):
    assert device.client.get("/loadbalancers/nope/status").status_code == 404
    assert device.client.delete("/loadbalancers/nope").status_code == 204


def _bad_documents(good: dict) -> list:
    def changed(path: str, value) -> dict:
        doc = copy.deepcopy(good)
        *parents, key = path.split(".")
        target = doc
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is KeyError:
            del target[key]
        else:
            target[key] = value
        return doc

    return [
        b"{not json", b"[1, 2]", b"\xff\xfe",
        changed("vip_address", KeyError),
        changed("vip_address", "not-an-ip"),
        changed("revision", "7"),
        changed("admin_state_up", "yes"),
        changed("listeners.0.protocol", "FTP"),
        changed("listeners.0.protocol", "UDP"),
        changed("listeners.0.protocol_port", 0),
        changed("listeners.0.protocol_port", 70000),
        changed("listeners.0.protocol_port", True),
        changed("listeners.0.default_pool_id", "missing-pool"),
        changed("pools.0.lb_algorithm", "RANDOM"),
        changed("pools.0.members", "a,b"),
        changed("pools.0.members.0.address", "localhost"),
        changed("pools.0.members.0.weight", 257),
        changed("pools.0.members.0.id", "../etc"),
        changed("pools.0.healthmonitor", {"type": "HTTP", "delay": 1, "timeout": 5,
                                          "max_retries": 1}),
        changed("pools.0.healthmonitor", {"type": "HTTP", "delay": 5, "timeout": 1,
                                          "max_retries": 1, "url_path": "/a b"}),
        changed("pools.0.session_persistence", {"type": "APP_COOKIE"}),
        changed("id", "another-id"),
    ]


def test_malformed_requests_change_nothing(device, backends):
    lb = loadbalancer([member(backends("a"))])
    device.apply(lb)
    config = device.folder(lb["id"]) / "haproxy.cfg"
    before = config.read_text()

    for bad in _bad_documents(bump(copy.deepcopy(lb))):
        if isinstance(bad, bytes):
            response = device.client.put(f"/loadbalancers/{lb['id']}", content=bad)
        else:
            response = device.client.put(f"/loadbalancers/{lb['id']}", json=bad)
        assert response.status_code == 400, (bad, response.text)
        fault = response.json()
        assert fault["faultcode"] == "Client" and fault["faultstring"], fault
        assert fault["debuginfo"] is None

    assert config.read_text() == before
    assert lb_ids(device) == {lb["id"]: 1}
    assert answers(url_of(lb), 2) == ["a", "a"]


def test_unknown_keys_are_ignored(device, backends):
    lb = loadbalancer([member(backends("a"))])
    lb["deleted"] = False
    lb["listeners"][0]["insert_headers"] = {}
    lb["pools"][0]["members"][0]["subnet_id"] = None

    assert device.apply(lb) == "started"
    assert device.client.get(f"/loadbalancers/{lb['id']}").json()["id"] == lb["id"]


def test_same_endpoint_for_two_load_balancers_conflicts(device, backends):
    first = loadbalancer([member(backends("a"))])
    device.apply(first)
    second = loadbalancer([], address=first["vip_address"],
                          port=first["listeners"][0]["protocol_port"])

    response = device.put(second)

    assert response.status_code == 409
    # The other load balancer is not named: the message may reach another project.
    assert "another load balancer" in response.json()["faultstring"]
    assert first["id"] not in response.text
    assert second["id"] not in lb_ids(device)


# --- changes ---------------------------------------------------------------------------

def test_idempotent_put_is_unchanged(device, backends):
    lb = loadbalancer([member(backends("a"))])
    assert device.apply(lb) == "started"
    pid = device.master_pid(lb["id"])

    assert device.apply(lb) == "unchanged"
    lb["name"] = "renamed"
    assert device.apply(bump(lb)) == "unchanged"
    assert lb_ids(device) == {lb["id"]: 2}
    assert device.master_pid(lb["id"]) == pid


def test_weight_and_admin_state_go_through_the_runtime_api(device, backends):
    a, b = backends("a"), backends("b")
    lb = loadbalancer([member(a), member(b)], healthmonitor=monitor())
    device.apply(lb)
    url = url_of(lb)
    members = lb["pools"][0]["members"]
    wait_for(lambda: device.status(lb["id"])["operating_status"] == "ONLINE", what="online")

    members[0]["weight"] = 0
    assert device.apply(bump(lb)) == "runtime"
    assert set(answers(url, 4)) == {"b"}

    members[0]["weight"] = 3
    members[1]["admin_state_up"] = False
    assert device.apply(bump(lb)) == "runtime"
    assert set(answers(url, 4)) == {"a"}
    status = device.status(lb["id"])
    assert [m["operating_status"] for m in status["pools"][0]["members"]] == ["ONLINE",
                                                                              "OFFLINE"]
    assert status["pools"][0]["operating_status"] == "ONLINE"  # admin-down is not a fault

    # The saved configuration matches, so a reload (or restart) keeps the runtime changes.
    config = (device.folder(lb["id"]) / "haproxy.cfg").read_text()
    assert "weight 3" in config and " disabled" in config
    lb["listeners"][0]["connection_limit"] = 1000
    assert device.apply(bump(lb)) == "reloaded"
    assert set(answers(url, 4)) == {"a"}

    members[1]["admin_state_up"] = True
    assert device.apply(bump(lb)) == "runtime"
    assert set(answers(url, 8)) == {"a", "b"}


@pytest.mark.parametrize("keep_alive", [False, True], ids=["new-connections", "keep-alive"])
def test_members_added_and_removed_under_load_lose_nothing(device, backends, keep_alive):
    """Reloads lose no request, whether clients open a connection per request
    or keep one open (a plain client that never retries)."""
    a, b, c = backends("a"), backends("b"), backends("c")
    lb = loadbalancer([member(a), member(b)])
    device.apply(lb)
    url = url_of(lb)
    done, results = threading.Event(), {"ok": 0, "failed": []}
    host, port = lb["vip_address"], lb["listeners"][0]["protocol_port"]

    def one(connection: http.client.HTTPConnection) -> None:
        connection.request("GET", "/", headers={} if keep_alive else {"Connection": "close"})
        response = connection.getresponse()
        response.read()
        if response.status == 200:
            results["ok"] += 1
        else:
            results["failed"].append(response.status)

    def load() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=10)
        while not done.is_set():
            try:
                one(connection)
            except (OSError, http.client.HTTPException) as exc:
                results["failed"].append(repr(exc))
                connection.close()
            if not keep_alive:
                connection.close()
            else:
                time.sleep(0.005)  # idle between requests, as real clients are, when reloads hit
        connection.close()

    def served_more(count: int = 50) -> None:
        target = results["ok"] + count
        wait_for(lambda: results["ok"] >= target or results["failed"], what="traffic")

    thread = threading.Thread(target=load)
    thread.start()
    try:
        served_more()
        pool = lb["pools"][0]
        changes = [
            lambda: pool["members"].append(member(c)),          # add
            lambda: pool["members"].pop(0),                      # remove a
            lambda: pool["members"].append(member(a)),          # add a back (new id)
            lambda: pool["members"].pop(0),                      # remove b
        ]
        for change in changes:
            change()
            assert device.apply(bump(lb)) == "reloaded"
            served_more()
    finally:
        done.set()
        thread.join(timeout=30)

    assert results["failed"] == []
    assert results["ok"] >= 250
    assert set(answers(url, 4)) == {"a", "c"}


def test_health_state_survives_a_reload(device, backends):
    """The saved server state keeps a dead member down in the new worker from its start."""
    a, b = backends("a"), backends("b")
    lb = loadbalancer([member(a), member(b)], healthmonitor=monitor())
    device.apply(lb)
    b.stop()
    wait_for(lambda: device.status(lb["id"])["pools"][0]["operating_status"] == "DEGRADED",
             what="pool degraded")
    state_file = device.folder(lb["id"]) / "server-state"

    lb["listeners"][0]["connection_limit"] = 500
    assert device.apply(bump(lb)) == "reloaded"

    assert "member_" in state_file.read_text()
    # Right away: without the saved state the new worker would start the member UP.
    status = device.status(lb["id"])
    assert [m["operating_status"] for m in status["pools"][0]["members"]] == ["ONLINE",
                                                                              "OFFLINE"]


def test_rejected_configuration_keeps_the_old_one(device, backends, monkeypatch):
    lb = loadbalancer([member(backends("a"))])
    device.apply(lb)
    config = device.folder(lb["id"]) / "haproxy.cfg"
    before, pid = config.read_text(), device.master_pid(lb["id"])
    real_render = lbaas.appliance.render.render

    def broken(*args, **kwargs) -> str:
        return real_render(*args, **kwargs) + "\nbackend broken\n    balance no-such-algo\n"

    monkeypatch.setattr(lbaas.appliance.render, "render", broken)
    lb["pools"][0]["members"].append(member(backends("b")))
    response = device.put(bump(lb))

    assert response.status_code == 422, response.text
    assert "balance" in response.json()["faultstring"]
    assert config.read_text() == before
    assert device.master_pid(lb["id"]) == pid
    assert lb_ids(device) == {lb["id"]: 1}
    assert answers(url_of(lb), 3) == ["a"] * 3

    monkeypatch.setattr(lbaas.appliance.render, "render", real_render)
    assert device.apply(lb) == "reloaded"
    assert set(answers(url_of(lb), 4)) == {"a", "b"}


def test_port_held_by_another_process(device, backends, monkeypatch):
    """Refused up front (409); and if HAProxy itself must find out, nothing is left over."""
    with socket.socket() as squatter:  # someone else holds the VIP port
        squatter.bind((vip(), 0))
        squatter.listen()
        lb = loadbalancer([member(backends("a"))], address=squatter.getsockname()[0],
                          port=squatter.getsockname()[1])

        refused = device.put(lb)
        monkeypatch.setattr(lbaas.appliance.process, "endpoint_in_use", lambda *_: False)
        failed = device.put(lb)

    assert refused.status_code == 409, refused.text
    assert "in use" in refused.json()["faultstring"]
    assert failed.status_code == 500, failed.text
    assert "bind" in failed.json()["faultstring"].lower()
    assert lb["id"] not in lb_ids(device)
    assert not device.folder(lb["id"]).exists()
    assert haproxy_pids(device.state_dir) == []


@pytest.mark.parametrize("wildcard", [False, True])
def test_port_shared_through_reuseport_is_refused(device, backends, wildcard):
    """A process listening with SO_REUSEPORT (as HAProxy does) would silently share the
    port and half its traffic: refused, on the exact address and on the wildcard one."""
    address = vip()
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        squatter.bind(("0.0.0.0" if wildcard else address, 0))
        squatter.listen()
        lb = loadbalancer([member(backends("a"))], address=address, port=squatter.getsockname()[1])
        refused = device.put(lb)
    assert refused.status_code == 409, refused.text
    assert haproxy_pids(device.state_dir) == []
    device.apply(lb)  # the squatter is gone: the same port is free
    assert answers(url_of(lb), 2) == ["a", "a"]
    device.apply(bump(lb))  # our own HAProxy on the port is not a conflict


def test_delete_stops_haproxy_and_frees_the_port(device, backends):
    lb = loadbalancer([member(backends("a"))])
    device.apply(lb)
    assert haproxy_pids(device.state_dir)

    assert device.client.delete(f"/loadbalancers/{lb['id']}").status_code == 204

    assert haproxy_pids(device.state_dir) == []
    assert not device.folder(lb["id"]).exists()
    with socket.socket() as sock:  # the listener's address:port is free again
        sock.bind((lb["vip_address"], lb["listeners"][0]["protocol_port"]))
    assert device.client.delete(f"/loadbalancers/{lb['id']}").status_code == 204
    assert device.client.get(f"/loadbalancers/{lb['id']}/status").status_code == 404


def test_admin_down_objects(device, backends):
    lb = loadbalancer([member(backends("a"))])
    lb["listeners"].append({**lb["listeners"][0], "id": uid("listener"),
                            "protocol_port": lb["listeners"][0]["protocol_port"] + 1,
                            "default_pool_id": None, "admin_state_up": False})
    device.apply(lb)
    status = device.status(lb["id"])
    assert [ln["operating_status"] for ln in status["listeners"]] == ["ONLINE", "OFFLINE"]
    assert status["operating_status"] == "ONLINE"

    lb["admin_state_up"] = False
    assert device.apply(bump(lb)) == "reloaded"
    status = device.status(lb["id"])
    assert status["operating_status"] == "OFFLINE"
    with pytest.raises(httpx.HTTPError):
        fetch(url_of(lb), timeout=2)


# --- restarts ---------------------------------------------------------------------------

def test_service_restart_adopts_running_haproxy(make_device, backends):
    device = make_device()
    lb = loadbalancer([member(backends("a")), member(backends("b"))])
    device.apply(lb)
    pid = device.master_pid(lb["id"])

    device.stop()
    assert set(answers(url_of(lb), 4)) == {"a", "b"}  # the data plane does not need us

    device.start()
    assert lb_ids(device) == {lb["id"]: 1}
    assert device.master_pid(lb["id"]) == pid
    assert device.apply(lb) == "unchanged"
    assert device.status(lb["id"])["operating_status"] == "ONLINE"


def test_service_restart_starts_dead_haproxy(make_device, backends):
    device = make_device()
    lb = loadbalancer([member(backends("a"))])
    device.apply(lb)
    device.stop()
    for pid in haproxy_pids(device.state_dir):
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not haproxy_pids(device.state_dir), what="haproxy killed")
    with pytest.raises(httpx.HTTPError):
        fetch(url_of(lb), timeout=2)

    device.start()

    assert answers(url_of(lb), 2) == ["a", "a"]
    assert lb_ids(device) == {lb["id"]: 1}


def test_unfinished_first_configuration_is_removed_on_start(make_device):
    device = make_device()
    device.stop()
    leftover = device.folder(uid("lb"))
    leftover.mkdir()
    (leftover / "haproxy.cfg").write_text("global\n")

    device.start()

    assert not leftover.exists()
    assert lb_ids(device) == {}


def test_watchdog_restarts_dead_haproxy(make_device, backends):
    device = make_device(check_interval=0.2)
    lb = loadbalancer([member(backends("a"))])
    device.apply(lb)
    old = device.master_pid(lb["id"])

    for pid in haproxy_pids(device.state_dir):
        os.kill(pid, signal.SIGKILL)

    def restarted() -> bool:
        try:
            return device.master_pid(lb["id"]) != old
        except (OSError, ValueError, IndexError):
            return False  # the pid file is being rewritten

    wait_for(restarted, what="a new haproxy")
    assert answers(url_of(lb), 2) == ["a", "a"]


def test_failed_reload_keeps_the_old_configuration(device, backends, monkeypatch):
    lb = loadbalancer([member(backends("a"))])
    device.apply(lb)
    config = device.folder(lb["id"]) / "haproxy.cfg"
    before = config.read_text()
    # Skip the up-front port check so that HAProxy itself fails the reload.
    monkeypatch.setattr(lbaas.appliance.process, "endpoint_in_use", lambda *_: False)
    with socket.socket() as squatter:  # the new listener's port is taken
        squatter.bind((lb["vip_address"], 0))
        squatter.listen()
        lb["listeners"].append({**lb["listeners"][0], "id": uid("listener"),
                                "protocol_port": squatter.getsockname()[1],
                                "default_pool_id": None})

        response = device.put(bump(lb))

    assert response.status_code == 500, response.text
    assert "previous one stays" in response.json()["faultstring"]
    assert config.read_text() == before
    assert lb_ids(device) == {lb["id"]: 1}
    assert answers(url_of(lb), 3) == ["a"] * 3
    lb["listeners"].pop()
    assert device.apply(lb) == "unchanged"
    assert device.status(lb["id"])["operating_status"] == "ONLINE"
