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
from lbaas import constants as c
from lbaas import wire
from lbaas.agent.drivers.base import DeviceDriver, DeviceError, DeviceNotReady, DeviceRejected


class NoopDriver(DeviceDriver):
    name = "noop"

    def __init__(self, options: Mapping[str, str]) -> None:
        self.latency = float(options.get("latency", 0))
        self.max_loadbalancers = int(options.get("max_loadbalancers", 0))
        self.available = True
        self.rejecting = False
        self._held: dict[str, wire.Present] = {}
        self._lock = threading.Lock()

    def _answer(self) -> None:
        if not self.available:
            raise DeviceError("noop device is unreachable (available = False)")

    def verify(self) -> wire.Inventory:
        if not self.available:
            raise DeviceNotReady("noop device is unreachable (available = False)")
        return wire.Inventory(devices=0, loadbalancers=len(self._held))

    def converge(self, desired: wire.Present) -> None:
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

    def report(self, loadbalancer_id: str) -> wire.DeviceReport | None:
        """Everything that is up is ONLINE (members NO_MONITOR without a monitor); no traffic."""
        self._answer()
        with self._lock:
            desired = self._held.get(loadbalancer_id)
        if desired is None:
            return None
        pools = desired.get("pools", [])
        operating = wire.OperatingReport(
            loadbalancer=_up(desired["admin_state_up"]),
            listeners={x["id"]: _up(x["admin_state_up"]) for x in desired.get("listeners", [])},
            pools={p["id"]: _up(p["admin_state_up"]) for p in pools},
            members={x["id"]: _member_status(x, p) for p in pools for x in p["members"]},
            healthmonitors={})
        return wire.DeviceReport(operating=operating, stats=wire.zero_counters(), listener_stats={})

    def capacity_score(self) -> float:
        if not self.max_loadbalancers:
            return 0.0
        return len(self._held) / self.max_loadbalancers


def _up(admin_state_up: bool) -> str:
    return c.ONLINE if admin_state_up else c.OFFLINE


def _member_status(member: wire.Member, pool: wire.Pool) -> str:
    if not member["admin_state_up"]:
        return c.OFFLINE
    return c.ONLINE if pool.get("healthmonitor") else c.NO_MONITOR
