"""A real cluster on this machine: ``lbaas server`` and ``lbaas agent``
processes on PostgreSQL and RabbitMQ, each with its own database and vhost.
Used by the multi-process tests and by the benchmarks.

RabbitMQ is reached at ``LBAAS_TEST_RABBIT`` and managed with ``rabbitmqctl``
(a vhost per cluster, deleted by ``stop``), unless the caller passes a
``transport_url`` of its own (a private cluster: ``lbaas.testing.ha``)."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
from cryptography.fernet import Fernet

from lbaas.api.auth import create_token
from lbaas.appliance import selfsigned
from lbaas.db.session import Database
from lbaas.testing.polling import free_port, wait_for

RABBIT = os.environ.get("LBAAS_TEST_RABBIT", "rabbit://guest:guest@127.0.0.1:5672")


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


class Cluster:
    """Servers and agents as separate processes; killed and restarted at will."""

    def __init__(self, workdir: str, db_url: str, environment: str = "cluster", *,
                 agent_down_time: float = 4.0, report_interval: float = 1.0, pending_timeout: float = 3.0,
                 pending_max_age: float = 120.0, device_options: dict[str, str] | None = None,
                 device_driver: str = "noop", extra: str = "", max_project_share: float = 1.0,
                 certificates: str = "", transport_url: str | None = None, messaging: str = "") -> None:
        """``transport_url``: a broker of the caller's (e.g. a private cluster) instead of
        a vhost of its own on the shared RabbitMQ; ``messaging``: config lines appended
        for servers and agents alike (e.g. a ``[messaging]`` section)."""
        self.workdir = workdir
        self.environment = environment
        self.vhost: str | None = None   # made here, so deleted by stop()
        if transport_url is None:
            self.vhost = f"lbaas-test-{uuid.uuid4().hex[:8]}"
            rabbitmqctl("add_vhost", self.vhost)
            rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
            transport_url = f"{RABBIT}/{self.vhost}"
        self.transport_url = transport_url
        self.messaging = messaging
        self.db_url = db_url
        # Shared by every server of the cluster: each must read what another stored.
        self.encryption_key = Fernet.generate_key().decode()
        Database(db_url).upgrade()
        self.token_file = os.path.join(workdir, "tokens.json")
        self.token = create_token(self.token_file, "admin", "admin")
        self.tokens = {"admin": self.token,
                       **{p: create_token(self.token_file, p, "member") for p in ("p1", "p2", "p3", "p4")}}
        self.agent_down_time = agent_down_time
        self.report_interval = report_interval
        self.pending_timeout = pending_timeout
        self.pending_max_age = pending_max_age
        self.device_options = device_options or {}
        self.device_driver = device_driver
        self.extra = extra
        self.certificates = certificates   # more [certificates] lines, e.g. a Barbican backend
        # 1.0: pure tenant affinity, which the multi-process tests of affinity rely on.
        self.max_project_share = max_project_share
        self.servers: dict[str, dict[str, Any]] = {}
        self.agents: dict[str, subprocess.Popen] = {}
        self.devices: dict[str, dict[str, Any]] = {}

    # --- configuration files ----------------------------------------------------

    def _common(self) -> str:
        return f"""[DEFAULT]
transport_url = {self.transport_url}
debug = false

[controller]
environments = {self.environment}
agent_down_time = {self.agent_down_time}
pending_timeout = {self.pending_timeout}
pending_max_age = {self.pending_max_age}
sweep_interval = 1
rpc_timeout = 5
max_project_share = {self.max_project_share}
{self.messaging}"""

    def _write(self, name: str, text: str) -> str:
        path = os.path.join(self.workdir, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return path

    # --- processes --------------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(os.path.join(self.workdir, f"{name}.log"), "ab")
        return subprocess.Popen([sys.executable, "-m", "lbaas.cli", *args], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def start_server(self, name: str, port: int | None = None) -> str:
        port = port or self.servers.get(name, {}).get("port") or free_port()
        path = self._write(f"{name}.ini", self._common() + f"""
[api]
bind_port = {port}
token_file = {self.token_file}

[database]
connection = {self.db_url}

[certificates]
encryption_key = {self.encryption_key}
{self.certificates}

[vip_subnets]
cluster = 127.0.128.0/17
{self.extra}
""")
        proc = self._spawn(name, ["server", "--config-file", path])
        url = f"http://127.0.0.1:{port}"
        self.servers[name] = {"proc": proc, "port": port, "url": url}
        self._wait(lambda: httpx.get(url + "/", timeout=1).status_code == 200, f"server {name}", proc)
        return url

    def start_agent(self, host: str, name: str | None = None, metrics_port: int = 0,
                    group: int = 1) -> subprocess.Popen:
        """An agent for ``host``; ``name`` (default: the host) keys it, so that a second
        agent may try the same host; ``metrics_port``: its Prometheus listener (0: none);
        ``group``: its environment_group_number."""
        name = name or host
        device = "\n".join(f"{k} = {v}" for k, v in self.device_options.items())
        path = self._write(f"agent-{name}.ini", self._common() + f"""
[agent]
host = {host}
environment_prefix = {self.environment}
environment_group_number = {group}
report_interval = {self.report_interval}
stats_interval = 2
resync_interval = 30
device_driver = {self.device_driver}
metrics_port = {metrics_port}

[device]
{device}
""")
        self.agents[name] = self._spawn(f"agent-{name}", ["agent", "--config-file", path])
        return self.agents[name]

    def start_all(self, servers: list[str], agents: list[str]) -> "Cluster":
        """Start servers and agents and wait until every agent is alive."""
        for name in servers:
            self.start_server(name)
        for host in agents:
            self.start_agent(host)
        self.wait_agents(agents)
        return self

    def device_options_for(self, name: str, token: str = "device-secret") -> dict[str, str]:
        """The haproxy driver options of device ``name``, before or after it starts."""
        if name not in self.devices:
            state_dir = os.path.join("/tmp", f"lbd-{uuid.uuid4().hex[:8]}")  # short: socket paths
            # HTTPS, as in production: desired states may hold private keys.
            cert, key = selfsigned.ensure(state_dir, "127.0.0.1")
            self.devices[name] = {"proc": None, "url": f"https://127.0.0.1:{free_port()}",
                                  "state_dir": state_dir, "cert": cert, "key": key}
        return {"devices": self.devices[name]["url"], "device_token": token,
                "ca_file": self.devices[name]["cert"]}

    def start_device(self, name: str, token: str = "device-secret") -> dict[str, str]:
        """An ``lbaas device`` process (again on the same port and state after
        ``stop_device_service``); returns the haproxy driver options that reach it."""
        self.device_options_for(name, token)
        url, state_dir = self.devices[name]["url"], self.devices[name]["state_dir"]
        port = int(url.rsplit(":", 1)[1])
        cert = self.devices[name]["cert"]
        path = self._write(f"{name}.ini", f"""[device]
bind_port = {port}
state_dir = {state_dir}
token = {token}
check_interval = 2
tls_cert = {cert}
tls_key = {self.devices[name]["key"]}
""")
        proc = self._spawn(name, ["device", "--config-file", path])
        self.devices[name]["proc"] = proc
        trust = ssl.create_default_context(cafile=cert)
        self._wait(lambda: httpx.get(url + "/", headers={"X-Auth-Token": token}, timeout=1,
                                     verify=trust).status_code == 200, f"device {name}", proc)
        return self.device_options_for(name, token)

    def kill_agent(self, host: str) -> None:
        self._kill(self.agents.pop(host))

    def stop_agent(self, name: str, timeout: float = 15) -> int:
        """SIGTERM (a clean stop); the exit code."""
        proc = self.agents.pop(name)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        return proc.wait(timeout=timeout)

    def stop_device_service(self, name: str) -> None:
        """Stop the appliance's management service only: its HAProxy processes keep serving."""
        proc = self.devices[name]["proc"]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)

    def kill_server(self, name: str) -> None:
        self._kill(self.servers[name]["proc"])

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def _wait(self, check: Any, what: str, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
        """Poll ``check`` until true; fail at once if ``proc`` exits meanwhile."""
        def ready() -> bool:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"{what} exited with {proc.returncode}; see {self.workdir}")
            return bool(check())
        wait_for(ready, timeout, 0.1, f"{what} (logs in {self.workdir})", ignore=(httpx.HTTPError,))

    # --- API helpers ------------------------------------------------------------

    def url(self, name: str | None = None) -> str:
        if name is None:
            name = next(n for n, s in self.servers.items() if s["proc"].poll() is None)
        return self.servers[name]["url"]

    def client(self, name: str | None = None, token: str = "admin") -> httpx.Client:
        return httpx.Client(base_url=self.url(name), headers={"X-Auth-Token": self.tokens.get(token, token)},
                            timeout=30)

    def agents_alive(self) -> dict[str, bool]:
        with self.client() as client:
            return {a["host"]: a["alive"] for a in client.get("/v2.0/agents").json()["agents"]}

    def wait_agents(self, hosts: list[str], alive: bool = True, timeout: float = 30) -> None:
        self._wait(lambda: all(self.agents_alive().get(h) is alive for h in hosts),
                   f"agents {hosts} alive={alive}", timeout=timeout)

    def hosting_agent(self, lb_id: str) -> str:
        with self.client() as client:
            return client.get(f"/v2.0/lbaas/loadbalancers/{lb_id}/loadbalancer-hosting-agent").json()["agent"]["host"]

    def stop(self) -> None:
        for device in self.devices.values():
            self._stop_device(device)
        for proc in [*self.agents.values(), *(s["proc"] for s in self.servers.values())]:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in [*self.agents.values(), *(s["proc"] for s in self.servers.values())]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if self.vhost is not None:
            try:
                rabbitmqctl("delete_vhost", self.vhost)
            except subprocess.SubprocessError:
                pass

    def _stop_device(self, device: dict[str, Any]) -> None:
        """Stop the service and the HAProxy processes it started (found by their state dir)."""
        if device["proc"] is not None and device["proc"].poll() is None:
            os.killpg(device["proc"].pid, signal.SIGTERM)
            device["proc"].wait(timeout=15)
        for pid_file in glob.glob(os.path.join(device["state_dir"], "*", "haproxy.pid")):
            try:
                os.kill(int(open(pid_file).read().split()[0]), signal.SIGTERM)
            except (OSError, ValueError):
                pass
        shutil.rmtree(device["state_dir"], ignore_errors=True)


def wait_lb(client: httpx.Client, lb_id: str, status: str = "ACTIVE", timeout: float = 60,
            headers: dict[str, str] | None = None) -> dict:
    """Poll until the load balancer reaches ``status`` (DELETED: 404)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            response = client.get(f"/v2/lbaas/loadbalancers/{lb_id}", headers=headers)
        except httpx.HTTPError:
            time.sleep(0.2)
            continue
        if status == "DELETED" and response.status_code == 404:
            return {}
        if response.status_code == 200:
            last = response.json()["loadbalancer"]
            if last["provisioning_status"] == status:
                return last
        time.sleep(0.02)
    raise AssertionError(f"load balancer {lb_id} did not reach {status}: {last}")
