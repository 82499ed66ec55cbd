"""The agent: heartbeat, its own task queue, resync, statistics.

An agent never reads the database.  A cast says "converge load balancer X"
(with the revision that prompted it); the agent asks a server for X's
desired state now, converges its device to it and reports the revision it
reached.  Duplicate, late or reordered casts therefore do no harm.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any

from lbaas import constants as c
from lbaas.devices.base import DeviceDriver, DeviceError
from lbaas.messaging import Broker, CallTimeout, RemoteError

LOG = logging.getLogger(__name__)


class AgentSettings:
    """The agent's slice of the configuration."""

    def __init__(self, host: str, environment: str, group: int = 1, report_interval: float = 10.0,
                 resync_interval: float = 300.0, stats_interval: float = 10.0, rpc_timeout: float = 10.0,
                 workers: int = 4) -> None:
        self.host = host
        self.environment = environment
        self.group = group
        self.report_interval = report_interval
        self.resync_interval = resync_interval
        self.stats_interval = stats_interval
        self.rpc_timeout = rpc_timeout
        self.workers = workers


class Agent:
    def __init__(self, settings: AgentSettings, broker: Broker, driver: DeviceDriver) -> None:
        self.settings = settings
        self.broker = broker
        self.driver = driver
        self.controller = c.controller_queue(settings.environment)
        self.queue = c.agent_queue(settings.environment, settings.host)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._consumers: list[Any] = []
        self._locks: dict[str, threading.Lock] = collections.defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self.inventory: dict[str, Any] = {}
        self._last_stats: dict[str, dict[str, Any]] = {}
        # What this agent reports statistics for: its bound load balancers and
        # those it converged for a dead peer.  Devices may be shared, so the
        # device's whole inventory is not ours to report.
        self._owned: set[str] = set()

    # --- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Verify the device (raises DeviceNotReady), then start serving."""
        self.inventory = self.driver.verify()
        self.report_state(start_flag=True)
        # Several consumers on the one queue: load balancers converge in
        # parallel, while the per-load-balancer lock keeps each one serial.
        self._consumers = [self.broker.serve([self.queue], {"converge": self.converge},
                                             name=f"agent-{self.settings.host}-{i}")
                           for i in range(max(1, self.settings.workers))]
        for name, interval, job in (("heartbeat", self.settings.report_interval, self.report_state),
                                    ("resync", self.settings.resync_interval, self.resync),
                                    ("stats", self.settings.stats_interval, self.report_stats)):
            thread = threading.Thread(target=self._every, args=(interval, job, name == "resync"),
                                      name=f"{name}-{self.settings.host}", daemon=True)
            thread.start()
            self._threads.append(thread)
        LOG.info("agent %s serving %s", self.settings.host, self.queue)

    def stop(self) -> None:
        self._stop.set()
        for consumer in self._consumers:
            consumer.stop()
        for thread in self._threads:
            thread.join(timeout=5)

    def _every(self, interval: float, job: Any, now: bool) -> None:
        if now and not self._stop.is_set():
            self._safely(job)
        while not self._stop.wait(interval):
            self._safely(job)

    @staticmethod
    def _safely(job: Any) -> None:
        try:
            job()
        except Exception:
            LOG.exception("periodic %s failed; it runs again next interval", getattr(job, "__name__", job))

    # --- state reports ----------------------------------------------------------

    def report_state(self, start_flag: bool = False) -> None:
        held = self.driver.list_loadbalancers()
        self.broker.cast(self.controller, "report_state", host=self.settings.host,
                         environment=self.settings.environment, group=self.settings.group,
                         device_driver=self.driver.name, capacity_score=self.driver.capacity_score(),
                         start_flag=start_flag,
                         configurations={**self.inventory, "loadbalancers": len(held),
                                         "report_interval": self.settings.report_interval})

    # --- converging -------------------------------------------------------------

    def _lock(self, lb_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks[lb_id]

    def converge(self, loadbalancer_id: str, revision: int | None = None) -> None:
        """Make the device match the server's desired state of one load balancer."""
        # Fetch under the lock: two converges of one load balancer must not
        # apply an older desired state after a newer one.
        with self._lock(loadbalancer_id):
            desired = self.broker.call(self.controller, "get_loadbalancer", loadbalancer_id=loadbalancer_id,
                                       timeout=self.settings.rpc_timeout)
            self._apply(desired)

    def _apply(self, desired: dict[str, Any]) -> None:
        lb_id, revision = desired["id"], desired["revision"]
        try:
            if desired["deleted"]:
                self.driver.delete(lb_id)
                self._owned.discard(lb_id)
            else:
                self.driver.converge(desired)
                self._owned.add(lb_id)
        except DeviceError as exc:
            LOG.error("load balancer %s revision %s failed on the device: %s", lb_id, revision, exc)
            if revision is not None:
                self._report(lb_id, revision, error=str(exc))
            return
        if revision is not None:
            status = None if desired["deleted"] else self.driver.status(lb_id)
            self._report(lb_id, revision, operating=to_operating(status) if status else None)

    def _report(self, lb_id: str, revision: int, **fields: Any) -> None:
        self.broker.cast(self.controller, "update_status", loadbalancer_id=lb_id, revision=revision, **fields)

    # --- resync -----------------------------------------------------------------

    def resync(self) -> None:
        """Converge every load balancer bound here; remove what no longer exists."""
        try:
            bound = self.broker.call(self.controller, "get_bound_loadbalancers", host=self.settings.host,
                                     environment=self.settings.environment, timeout=self.settings.rpc_timeout)
        except (CallTimeout, RemoteError) as exc:
            LOG.warning("resync postponed: %s", exc)
            return
        held = self.driver.list_loadbalancers()
        self._owned = {entry["id"] for entry in bound} | (self._owned & set(held))
        for entry in bound:
            if held.get(entry["id"]) != entry["revision"]:
                self._safely(lambda lb_id=entry["id"]: self.converge(lb_id))
        self.remove_orphans(set(held) - {entry["id"] for entry in bound})

    def remove_orphans(self, candidates: set[str]) -> None:
        """Delete device load balancers that exist nowhere in the database.

        Candidates bound to a peer agent (devices may be shared) still exist
        and are left alone."""
        if not candidates:
            return
        existing = set(self.broker.call(self.controller, "filter_existing", loadbalancer_ids=sorted(candidates),
                                        timeout=self.settings.rpc_timeout))
        for lb_id in candidates - existing:
            LOG.info("removing orphan load balancer %s from the device", lb_id)
            with self._lock(lb_id):
                self.driver.delete(lb_id)

    # --- statistics -------------------------------------------------------------

    def report_stats(self) -> None:
        """One message per load balancer whose statuses or counters changed."""
        held = set(self.driver.list_loadbalancers()) & self._owned
        for lb_id in held:
            status = self.driver.status(lb_id)
            if status is None:
                continue
            report = {"stats": status.get("stats", {}), "listener_stats": status.get("listener_stats", {}),
                      "operating": to_operating(status)}
            if self._last_stats.get(lb_id) == report:
                continue
            self.broker.cast(self.controller, "update_stats", loadbalancer_id=lb_id, **report)
            self._last_stats[lb_id] = report
        for gone in set(self._last_stats) - set(held):
            del self._last_stats[gone]


def to_operating(status: dict[str, Any]) -> dict[str, Any]:
    """A device's status document -> ``{"loadbalancer": s, "listeners": {id: s}, ...}``."""
    pools = status.get("pools", [])
    return {
        "loadbalancer": status.get("operating_status"),
        "listeners": {x["id"]: x["operating_status"] for x in status.get("listeners", [])},
        "pools": {p["id"]: p["operating_status"] for p in pools},
        "members": {x["id"]: x["operating_status"] for p in pools for x in p.get("members", [])},
    }
