"""A device driver without a device: state in memory, optional latency.

For the all-in-one without HAProxy, unit tests and control-plane
benchmarks.  Two fault knobs, set on the instance by tests: ``available``
(False: every call fails as an unreachable device would) and ``rejecting``
(True: every converge is refused as a device refuses a bad document).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from lbaas import constants as c
from lbaas.agent.drivers.base import DeviceDriver, DeviceError, DeviceNotReady, DeviceRejected


class NoopDriver(DeviceDriver):
    name = "noop"

    def __init__(self, options: Mapping[str, str]) -> None:
        self.latency = float(options.get("latency", 0))
        self.max_loadbalancers = int(options.get("max_loadbalancers", 0))
        self.available = True
        self.rejecting = False
        self._held: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _answer(self) -> None:
        if not self.available:
            raise DeviceError("noop device is unreachable (available = False)")

    def verify(self) -> dict:
        if not self.available:
            raise DeviceNotReady("noop device is unreachable (available = False)")
        return {"devices": 0, "loadbalancers": len(self._held)}

    def converge(self, desired: dict) -> None:
        time.sleep(self.latency)
        self._answer()
        if self.rejecting:
            raise DeviceRejected(f"noop device refuses load balancer {desired['id']} (rejecting = True)")
        with self._lock:
            self._held[desired["id"]] = desired

    def delete(self, loadbalancer_id: str) -> None:
        time.sleep(self.latency)
        self._answer()
        with self._lock:
            self._held.pop(loadbalancer_id, None)

    def list_loadbalancers(self) -> dict[str, int]:
        self._answer()
        with self._lock:
            return {ident: doc["revision"] for ident, doc in self._held.items()}

    def status(self, loadbalancer_id: str) -> dict | None:
        self._answer()
        with self._lock:
            desired = self._held.get(loadbalancer_id)
        if desired is None:
            return None
        pools = [{"id": p["id"], "operating_status": c.ONLINE if p["admin_state_up"] else c.OFFLINE,
                  "members": [{"id": x["id"], "operating_status": _member_status(x, p)} for x in p["members"]]}
                 for p in desired.get("pools", [])]
        return {"id": desired["id"], "revision": desired["revision"],
                "operating_status": c.ONLINE if desired["admin_state_up"] else c.OFFLINE,
                "listeners": [{"id": x["id"], "operating_status": c.ONLINE if x["admin_state_up"] else c.OFFLINE}
                              for x in desired.get("listeners", [])],
                "pools": pools,
                "stats": {"bytes_in": 0, "bytes_out": 0, "active_connections": 0, "total_connections": 0,
                          "request_errors": 0},
                "listener_stats": {}}

    def capacity_score(self) -> float:
        if not self.max_loadbalancers:
            return 0.0
        return len(self._held) / self.max_loadbalancers


def _member_status(member: dict, pool: dict) -> str:
    if not member["admin_state_up"]:
        return c.OFFLINE
    return c.ONLINE if pool.get("healthmonitor") else c.NO_MONITOR
