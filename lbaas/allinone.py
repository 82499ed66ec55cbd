"""``lbaas all-in-one``: a server, two agents (host-a, host-b) and, where
HAProxy is installed, a device service, in one process on SQLite and the
in-memory broker.  Made for a first look and for development.

Built from the parts of the other processes, started in this order and
stopped in reverse: the controller, the device service, the agents, the API,
then the banner (printed once everything serves)."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
from typing import Any

from cryptography.fernet import Fernet

from lbaas import config as cfg
from lbaas import service
from lbaas.agent.service import Agent
from lbaas.api import tokens
from lbaas.controller.service import Controller
from lbaas.runtime import Hook, HttpServer, Part, Process

LOG = logging.getLogger(__name__)

ENVIRONMENT = "default"
# Where the local key store's Barbican v1 API answers (lbaas.api.routes.secrets).
KEY_MANAGER_PATH = "/key-manager/v1"
VIP_SUBNET = ("loopback", "127.0.100.0/24")
AGENT_HOSTS = ("host-a", "host-b")


def settings(files: list[str]) -> cfg.Config:
    """The configuration from ``files`` with the embedded defaults filled in."""
    config = cfg.load(files)
    state_dir = os.path.abspath(config.default.state_dir)
    overrides: dict[str, dict[str, Any]] = {
        "DEFAULT": {"transport_url": "memory://", "state_dir": state_dir},
        "controller": {"environments": ENVIRONMENT},
        "agent": {"environment_prefix": ENVIRONMENT},
    }
    if config.database.connection == cfg.default_of("database", "connection"):
        overrides["database"] = {"connection": f"sqlite:///{state_dir}/lbaas.sqlite"}
    if config.api.token_file == cfg.default_of("api", "token_file"):
        overrides["api"] = {"token_file": os.path.join(state_dir, "tokens.json")}
    if not config.vip_subnets:
        overrides["vip_subnets"] = {VIP_SUBNET[0]: VIP_SUBNET[1]}
    if config.certificates.backend == "local" and not config.certificates.encryption_key:
        overrides["certificates"] = {"encryption_key": encryption_key(state_dir)}
    return cfg.load(files, overrides)


def encryption_key(state_dir: str) -> str:
    """The local key store's key, made on first start and kept in
    ``<state_dir>/encryption.key``, mode 0600 (secrets stored with it need it back)."""
    path = os.path.join(state_dir, "encryption.key")
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except FileNotFoundError:
        pass
    os.makedirs(state_dir, exist_ok=True)
    key = Fernet.generate_key().decode("ascii")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key


def admin_token(path: str) -> str:
    """The all-in-one's admin token, made on first start and kept beside the token file
    (which holds only its hash) in ``<token file>.admin``, mode 0600."""
    kept = f"{path}.admin"
    try:
        with open(kept, encoding="utf-8") as handle:
            token = handle.read().strip()
        parts = tokens.split(token)
        if parts and parts[0] in tokens.read(path):
            return token
    except FileNotFoundError:
        pass
    token = tokens.create(path, "admin", "admin")
    with open(os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token


def run(files: list[str], demo: bool = False, data_plane: str = "auto") -> int:
    config = settings(files)
    os.makedirs(config.default.state_dir, exist_ok=True)
    db = service.Database(config.database.connection)
    db.upgrade()
    token = admin_token(config.api.token_file)
    key_manager = service.make_key_manager(config, db)
    controller = Controller(config, db, key_manager=key_manager)
    device, options = embedded_device(config) if data_plane != "noop" else (None, {})
    if data_plane == "haproxy" and device is None:
        print("lbaas all-in-one: --data-plane haproxy, but HAProxy is not installed", file=sys.stderr)
        return 3
    agents = make_agents(config, controller, options)
    state = service.api_state(config, db, controller.providers, key_manager)
    api = service.api_server(state, controller.scheduler)
    url = f"http://{config.api.bind_host}:{config.api.bind_port}"

    def announce() -> None:
        print(banner(url, token, config, device is not None), flush=True)
        if demo:
            from lbaas import demo as demo_module
            threading.Thread(target=demo_module.run, args=(url, token), daemon=True).start()

    parts: list[Part] = [controller, *([device] if device else []), *agents, api, Hook(start=announce)]
    Process("all-in-one", parts, on_hangup=[lambda: service.reread_files(state)]).run()
    return 0


def embedded_device(config: cfg.Config) -> tuple[HttpServer | None, dict[str, str]]:
    """The HAProxy device service for this process and the driver options reaching
    it, if HAProxy is installed."""
    if shutil.which("haproxy") is None:
        LOG.warning("HAProxy is not installed: the agents use the noop driver (no traffic flows); "
                    "'make run' installs it")
        return None, {}
    from lbaas.appliance.service import embedded
    return embedded(os.path.join(config.default.state_dir, "device"))


def make_agents(config: cfg.Config, controller: Controller, options: dict[str, str]) -> list[Agent]:
    """One agent per host of AGENT_HOSTS, on the controller's in-process broker."""
    driver = "haproxy" if options else "noop"
    return [service.make_agent(config, controller.broker, options, host=host, driver=driver)
            for host in AGENT_HOSTS]


def banner(url: str, token: str, config: cfg.Config, haproxy: bool) -> str:
    subnet = next(iter(config.vip_subnets))
    key_manager = url + KEY_MANAGER_PATH if config.certificates.backend == "local" \
        else config.certificates.barbican_endpoint + "/v1"
    return f"""
lbaas all-in-one is serving {url}  (data plane: {"HAProxy" if haproxy else "noop, no traffic"})
state: {config.default.state_dir}

Talk to it with the openstack CLI: put this in ~/.config/openstack/clouds.yaml

clouds:
  lbaas:
    auth_type: admin_token
    auth:
      token: {token}
      # a service without an override of its own uses this: the key manager, whose
      # `openstack secret` commands ignore key_manager_endpoint_override
      endpoint: {key_manager}
    load_balancer_endpoint_override: {url}
    network_endpoint_override: {url}
    key_manager_endpoint_override: {key_manager}

then:
  export OS_CLOUD=lbaas
  openstack loadbalancer create --name lb1 --vip-subnet-id {subnet} --wait
  openstack loadbalancer list
  openstack secret store --name server-cert --payload-content-type application/octet-stream \\
    --payload-content-encoding base64 --payload "$(base64 -w0 < server.p12)"

or with curl:
  curl -H 'X-Auth-Token: {token}' {url}/v2/lbaas/loadbalancers
"""


if __name__ == "__main__":
    sys.exit(run([]))
