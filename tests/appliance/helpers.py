"""Helpers of the device tests: back-end servers, an in-process device service, desired
state builders and a loopback HTTP client. All traffic stays on 127.0.0.0/8.
"""

import itertools
import os
import shutil
import signal
import ssl
import threading
from pathlib import Path

import httpx
import uvicorn

from lbaas.appliance.process import pid_alive
from lbaas.testing.backends import Backend  # noqa: F401  (the tests' back ends)
from lbaas.testing.polling import free_port, wait_for  # noqa: F401
from lbaas.appliance.service import DeviceConfig, create_app

TOKEN = "device-test-token"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


_VIPS = (f"127.0.{a}.{b}" for a in range(10, 250) for b in range(1, 255))
_ids = itertools.count(1)


def vip() -> str:
    """A loopback address no other test uses."""
    return next(_VIPS)


def uid(prefix: str) -> str:
    """A unique, readable id."""
    return f"{prefix}-{next(_ids):04d}"


# --- the device service ---------------------------------------------------------------

class DeviceService:
    """A device service in a thread of the test process; ``stop``/``start`` keep the
    state directory, like restarting the real service."""

    def __init__(self, state_dir: str, check_interval: float = 0.0,
                 tls: tuple[str, str] | None = None) -> None:
        self.state_dir = state_dir
        self.check_interval = check_interval
        self.tls = tls
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.client = self._new_client()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "DeviceService":
        config = DeviceConfig(token=TOKEN, bind_port=self.port, state_dir=self.state_dir,
                              haproxy_bin=HAPROXY, check_interval=self.check_interval)
        cert, key = self.tls or (None, None)
        self._server = uvicorn.Server(uvicorn.Config(
            create_app(config), host="127.0.0.1", port=self.port, log_level="warning",
            ssl_certfile=cert, ssl_keyfile=key, timeout_graceful_shutdown=5))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_for(lambda: self._server.started, what="device service start")
        return self

    def _new_client(self) -> httpx.Client:
        verify = ssl.create_default_context(cafile=self.tls[0]) if self.tls else True
        return httpx.Client(base_url=self.url, headers={"X-Auth-Token": TOKEN}, timeout=30,
                            verify=verify)

    def stop(self) -> None:
        # Idle keep-alive TLS connections would hold up the server's graceful shutdown.
        self.client.close()
        self.client = self._new_client()
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=30)
            self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def put(self, desired: dict) -> httpx.Response:
        return self.client.put(f"/loadbalancers/{desired['id']}", json=desired)

    def apply(self, desired: dict) -> str:
        """PUT ``desired``, require success, return how it was applied."""
        response = self.put(desired)
        assert response.status_code == 200, response.text
        return response.json()["applied"]

    def status(self, lb_id: str) -> dict:
        response = self.client.get(f"/loadbalancers/{lb_id}/status")
        assert response.status_code == 200, response.text
        return response.json()

    def folder(self, lb_id: str) -> Path:
        return Path(self.state_dir) / lb_id

    def master_pid(self, lb_id: str) -> int:
        return int((self.folder(lb_id) / "haproxy.pid").read_text().split()[0])


def haproxy_pids(state_dir: str) -> list[int]:
    """Live processes whose command line mentions ``state_dir`` (our HAProxy only)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if state_dir.encode() in cmdline and pid_alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def kill_haproxy(state_dir: str) -> None:
    for pid in haproxy_pids(state_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not haproxy_pids(state_dir), timeout=10, what="haproxy to die")


# --- desired-state builders ---------------------------------------------------------------

def member(backend: Backend, **extra) -> dict:
    return {"id": uid("member"), "name": backend.name, "address": backend.address,
            "protocol_port": backend.port, "weight": 1, "backup": False,
            "admin_state_up": True, "monitor_address": None, "monitor_port": None, **extra}


def monitor(kind: str = "HTTP", **extra) -> dict:
    """A fast health monitor (1 s interval, one failure marks a member down)."""
    return {"id": uid("hm"), "type": kind, "delay": 1, "timeout": 1, "max_retries": 1,
            "max_retries_down": 1, "http_method": "GET", "url_path": "/health",
            "expected_codes": "200", "admin_state_up": True, **extra}


def loadbalancer(members: list[dict], protocol: str = "HTTP", algorithm: str = "ROUND_ROBIN",
                 healthmonitor: dict | None = None, persistence: dict | None = None,
                 pool_protocol: str | None = None, address: str | None = None,
                 port: int | None = None) -> dict:
    """A load balancer with one listener and its default pool (the agent's document)."""
    address = address or vip()
    pool_id = uid("pool")
    return {
        "id": uid("lb"), "project_id": "p", "revision": 1, "name": "", "admin_state_up": True,
        "vip_address": address,
        "listeners": [{
            "id": uid("listener"), "name": "", "protocol": protocol,
            "protocol_port": port or free_port(address), "connection_limit": -1,
            "admin_state_up": True, "timeout_client_data": 50000,
            "timeout_member_connect": 5000, "timeout_member_data": 50000,
            "timeout_tcp_inspect": 0, "default_pool_id": pool_id}],
        "pools": [{
            "id": pool_id, "name": "", "protocol": pool_protocol or protocol,
            "lb_algorithm": algorithm, "admin_state_up": True,
            "session_persistence": persistence, "members": members,
            "healthmonitor": healthmonitor}],
    }


def url_of(desired: dict, scheme: str = "http") -> str:
    listener = desired["listeners"][0]
    return f"{scheme}://{desired['vip_address']}:{listener['protocol_port']}/"


def fetch(url: str, source: str | None = None, cookie: str | None = None,
          timeout: float = 5.0, headers: dict[str, str] | None = None) -> httpx.Response:
    """One GET on a fresh connection (optionally from loopback address ``source``), with
    extra ``headers``; redirects are not followed."""
    transport = httpx.HTTPTransport(local_address=source, verify=False)
    headers = {"Connection": "close", **(headers or {})}
    if cookie:
        headers["Cookie"] = cookie
    with httpx.Client(transport=transport, timeout=timeout) as client:
        return client.get(url, headers=headers)


def answers(url: str, count: int, **kwargs) -> list[str]:
    """The bodies of ``count`` sequential requests."""
    result = []
    for _ in range(count):
        response = fetch(url, **kwargs)
        assert response.status_code == 200, response.text
        result.append(response.text)
    return result


def bump(desired: dict) -> dict:
    """The next revision of ``desired`` (mutated in place and returned)."""
    desired["revision"] += 1
    return desired
