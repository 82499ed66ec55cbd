"""Desired states of load balancers as a server sends them to a bigip agent (UUID ids)."""

from __future__ import annotations

import copy
import itertools
import uuid
from typing import Any

_VIPS = (f"10.{a}.{b}.10" for a in range(1, 250) for b in range(1, 250))


def new_id() -> str:
    return str(uuid.uuid4())


def member(address: str = "192.0.2.10", port: int = 8080, **extra: Any) -> dict:
    return {"id": new_id(), "name": "", "address": address, "protocol_port": port, "weight": 1,
            "backup": False, "admin_state_up": True, "monitor_address": None,
            "monitor_port": None, **extra}


def monitor(kind: str = "HTTP", **extra: Any) -> dict:
    return {"id": new_id(), "type": kind, "delay": 5, "timeout": 3, "max_retries": 2,
            "max_retries_down": 3, "http_method": "GET", "url_path": "/health",
            "expected_codes": "200", "http_version": None, "domain_name": None,
            "admin_state_up": True, **extra}


def pool(members: list[dict] | None = None, protocol: str = "HTTP", **extra: Any) -> dict:
    return {"id": new_id(), "name": "", "protocol": protocol, "lb_algorithm": "ROUND_ROBIN",
            "admin_state_up": True, "session_persistence": None,
            "members": members if members is not None else [member()], "healthmonitor": None,
            "tls": None, **extra}


def listener(default_pool: dict | None, protocol: str = "HTTP", port: int = 80, **extra: Any) -> dict:
    return {"id": new_id(), "name": "", "protocol": protocol, "protocol_port": port,
            "connection_limit": -1, "admin_state_up": True, "timeout_client_data": 50000,
            "timeout_member_connect": 5000, "timeout_member_data": 50000, "timeout_tcp_inspect": 0,
            "default_pool_id": default_pool["id"] if default_pool else None, "insert_headers": {},
            "allowed_cidrs": [], "l7policies": [], "tls": None, **extra}


_projects = itertools.count(1)


def loadbalancer(project_id: str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0", protocol: str = "HTTP",
                 pools: list[dict] | None = None, listeners: list[dict] | None = None,
                 **extra: Any) -> dict:
    """One listener on port 80 with its default pool of one member, unless given."""
    if pools is None:
        pools = [pool(protocol=protocol)]
    if listeners is None:
        listeners = [listener(pools[0], protocol=protocol)]
    return {"id": new_id(), "project_id": project_id, "revision": 1, "name": "lb",
            "admin_state_up": True, "vip_address": next(_VIPS), "listeners": listeners,
            "pools": pools, "provider": "east", "deleted": False, **extra}


def bump(desired: dict) -> dict:
    """The next revision (a copy)."""
    following = copy.deepcopy(desired)
    following["revision"] += 1
    return following
