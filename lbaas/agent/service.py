"""The agent: heartbeat, its own task queue, resync, statistics.

An agent never reads the database.  A cast says "converge load balancer X"
(with the revision that prompted it); the agent asks a server for X's
desired state now, converges its device to it and reports the revision it
reached.  Duplicate, late or reordered casts therefore do no harm.

The fast path: a cast may carry the desired state its change was made from
(``wire.Converge.desired``).  The agent applies it without asking a server
only when it is well formed, at the cast's revision, not a deletion, newer
than any revision this agent began to apply and newer than what its device
holds, which must hold the load balancer already; whenever in doubt
(anything else, or the device does not answer) it fetches as above.  A stale
cast therefore never moves a device backwards nor brings back a deleted load
balancer.  Agents older than the field drop it (``messaging._accepted``).

Contracts:

- One host, one agent.  ``start`` registers with a server by an RPC call
  carrying a fresh instance id and raises ``AgentRefused`` while another
  live agent serves the same host; a heartbeat refused later (another
  instance took the host over) stops this agent (``refusal`` says why).
  ``stop`` tells a server, so that a restart takes over at once.
- The heartbeat never waits on the device.  A watcher thread looks at the
  device (``verify`` until it passes, then a short ``probe`` every report
  interval, ``verify`` again after an outage) and every converge tells
  ``health`` what it saw; the heartbeat reports that (``device_state``,
  ``device_error``).  An agent started before its device keeps
  heartbeating and retries with backoff.
- Failures say their kind: a device that could not be reached or failed
  (``error_kind`` device) is converged again as soon as it answers (the
  down -> up transition starts a resync pass at once); a configuration the
  device refused (``error_kind`` rejected) is never retried by itself.
- Periodic jobs run from ``runtime.Timer``s (failures logged once per state change).
- Status reports leave through an outbox (``StatusOutbox``) and one sender thread:
  reports that finished close together go as one ``UpdateStatuses`` once a
  server's answer said it takes them (``accepts_batches``), else one
  ``UpdateStatus`` each; ``stop`` sends what is waiting.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

from kombu.exceptions import OperationalError

from lbaas import constants as c
from lbaas import metrics, wire
from lbaas.agent.health import DeviceHealth
from lbaas.api import request_id as request_ids
from lbaas.agent.drivers.base import DeviceDriver, DeviceError, DeviceNotReady, DeviceRejected
from lbaas.messaging import Broker, CallTimeout, RemoteError, stop_all
from lbaas.runtime import JobLog, Timer

LOG = logging.getLogger(__name__)

# First delay between retries of a device or server that does not answer yet; it doubles up
# to the report interval, so a device that comes up is seen within one interval.
FIRST_RETRY = 0.5
# The most status reports one UpdateStatuses carries.
STATUS_BATCH = 50
# Seconds ``stop`` waits for the status sender to hand over what is waiting (a cast in
# flight may retry through a broker outage for the broker's retry timeout, 30 s by default).
STATUS_FLUSH_WAIT = 60.0


class AgentRefused(Exception):
    """A server refused this agent: another agent serves its host (the message says which)."""


class AgentSettings:
    """The agent's slice of the configuration.

    ``exclusive``: refuse to start while another agent serves the host (off
    only where the broker is in-process and no other process can be one)."""

    def __init__(self, host: str, environment: str, group: int = 1, report_interval: float = 10.0,
                 resync_interval: float = 300.0, stats_interval: float = 10.0, rpc_timeout: float = 10.0,
                 workers: int = 4, exclusive: bool = True) -> None:
        self.host = host
        self.environment = environment
        self.group = group
        self.report_interval = report_interval
        self.resync_interval = resync_interval
        self.stats_interval = stats_interval
        self.rpc_timeout = rpc_timeout
        self.workers = workers
        self.exclusive = exclusive


class Agent:
    def __init__(self, settings: AgentSettings, broker: Broker, driver: DeviceDriver) -> None:
        self.settings = settings
        self.broker = broker
        self.driver = driver
        self.controller = c.controller_queue(settings.environment)
        self.queue = c.agent_queue(settings.environment, settings.host)
        self.instance_id = uuid.uuid4().hex
        self.health = DeviceHealth()
        self.stopping = threading.Event()
        self.refusal: str | None = None     # why a server made this agent stop
        self._timers = self._make_timers(settings)
        self._retries = _backoff(settings.report_interval)
        self._consumers: list[Any] = []
        self._locks: dict[str, threading.Lock] = collections.defaultdict(threading.Lock)
        self._locks_guard = threading.Lock()
        self._stop_guard = threading.Lock()
        self._registered = self._stopped = self._device_seen = False
        self.inventory: wire.Inventory = {}
        self._device_report = wire.Probe(loadbalancers=0, capacity_score=0.0)
        self._last_stats: dict[str, wire.DeviceReport] = {}
        # What this agent reports statistics for: its bound load balancers and
        # those it converged for a dead peer.  Devices may be shared, so the
        # device's whole inventory is not ours to report.
        self._owned: set[str] = set()
        # The highest revision this agent began to apply, per load balancer: a device may have
        # taken part of it (or report the lowest of its members'), so older carried states wait.
        self._tried: dict[str, int] = {}
        # Whether the servers take UpdateStatuses: only once an answer said so (older servers don't).
        self._batches = False
        self._statuses = StatusOutbox(f"status-{settings.host}", self._cast, lambda: self._batches,
                                      settings.report_interval)

    # --- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Register (raises ``AgentRefused``; waits while no server answers), then serve.
        The device is looked at in the background, never here."""
        self._register()
        if self.stopping.is_set():
            return
        self._statuses.start()
        # Several consumers on the one queue: load balancers converge in
        # parallel, while the per-load-balancer lock keeps each one serial.
        self._consumers = [self.broker.serve([self.queue], {wire.Converge.method: self.converge},
                                             name=f"agent-{self.settings.host}-{i}")
                           for i in range(max(1, self.settings.workers))]
        for timer in self._timers.values():
            timer.start()
        LOG.info("agent %s serving %s (instance %s)", self.settings.host, self.queue, self.instance_id)

    def stop(self) -> None:
        """Stop serving and tell a server this instance is gone. Idempotent."""
        with self._stop_guard:
            if self._stopped:
                return
            self._stopped = True
        self.stopping.set()
        self._stop_consumers()
        for timer in self._timers.values():
            timer.stop()
        self._statuses.close()  # after the converges that could still report
        if self._registered and self.refusal is None:
            try:
                self._cast(wire.AgentStopped(host=self.settings.host, environment=self.settings.environment,
                                             instance_id=self.instance_id))
            except Exception as exc:  # the row then frees itself after agent_down_time
                LOG.warning("could not tell a server that agent %s stopped: %s", self.settings.host, exc)
        self.driver.close()  # a device service's stop would otherwise wait on our idle connections
        LOG.info("agent %s stopped", self.settings.host)

    def _stop_consumers(self) -> None:
        consumers, self._consumers = self._consumers, []
        stop_all(consumers)

    def _make_timers(self, s: AgentSettings) -> dict[str, Timer]:
        """The periodic jobs, in start order; each ends when the agent stops.  The device
        is looked at first and at once; a failed resync is tried again a report interval later."""
        def timer(name: str, interval: float | Callable[[], float], job: Callable[[], None],
                  **options: Any) -> Timer:
            return Timer(f"{name}-{s.host}", interval, job, until=self.stopping, log=LOG, **options)
        return {"device": timer("device", self._device_delay, self.check_device, run_at_start=True),
                "heartbeat": timer("heartbeat", s.report_interval, self.heartbeat),
                "resync": timer("resync", s.resync_interval, self.resync, retry=s.report_interval),
                "stats": timer("stats", s.stats_interval, self.report_stats)}

    # --- registration and heartbeat ---------------------------------------------

    def _register(self) -> None:
        """The start report, as a call: a server answers whether this agent may serve its
        host.  Retries with backoff while no server answers (until ``stop``)."""
        log = JobLog("registration", LOG)
        for delay in _backoff(self.settings.report_interval):
            try:
                answer = self._call(self._state(start_flag=True))
            except (CallTimeout, RemoteError) as exc:
                log.failed(exc)
                if self.stopping.wait(delay):
                    return
                continue
            log.succeeded()
            if isinstance(answer, dict) and not answer.get("accepted", True):
                raise AgentRefused(answer.get("reason") or "a server refused this agent")
            self._heard(answer)
            self._registered = True
            return

    def heartbeat(self) -> None:
        """One state report, as a call: never touches the device.  Raises ``CallTimeout``
        or ``RemoteError``; a refusal (another instance owns the host) stops this agent."""
        answer = self._call(self._state())
        if isinstance(answer, dict) and not answer.get("accepted", True):
            self.refusal = answer.get("reason") or "a server refused this agent's heartbeat"
            LOG.error("agent %s stops serving: %s", self.settings.host, self.refusal)
            self.stopping.set()
            self._stop_consumers()
            return
        self._heard(answer)

    def _heard(self, answer: Any) -> None:
        """What an accepting answer says of the server: whether it takes ``UpdateStatuses``
        (the latest answer decides: an older server's lacks the field)."""
        batches = isinstance(answer, dict) and answer.get("accepts_batches") is True
        if batches != self._batches:
            LOG.info("agent %s sends status reports %s", self.settings.host,
                     "in batches" if batches else "one by one (a server does not take batches)")
        self._batches = batches

    def _state(self, start_flag: bool = False) -> wire.ReportState:
        """The report: what the agent last knew of its device, never a fresh look."""
        report = self._device_report
        # health.report() holds the device_* keys; the probe's count is newer than the inventory's.
        configurations = cast(wire.Configurations, {**self.inventory, **self.health.report(),
                                                    "loadbalancers": report["loadbalancers"],
                                                    "report_interval": self.settings.report_interval})
        return wire.ReportState(host=self.settings.host, environment=self.settings.environment,
                                group=self.settings.group, device_driver=self.driver.name,
                                configurations=configurations, capacity_score=report["capacity_score"],
                                start_flag=start_flag, instance_id=self.instance_id,
                                exclusive=self.settings.exclusive)

    def _call(self, message: wire.Message) -> Any:
        """A call to a server; raises ``CallTimeout`` or ``RemoteError``."""
        return self.broker.call(self.controller, message.method, timeout=self.settings.rpc_timeout,
                                **message.args())

    def _cast(self, message: wire.Message) -> None:
        self.broker.cast(self.controller, message.method, **message.args())

    # --- the device -------------------------------------------------------------

    def _device_delay(self) -> float:
        """Seconds to the next look at the device: the report interval while it is up;
        sooner while it is down (backoff from FIRST_RETRY up to the report interval)."""
        if self.health.up:
            self._retries = _backoff(self.settings.report_interval)
            return self.settings.report_interval
        return next(self._retries)

    def check_device(self) -> None:
        """One look: ``verify`` while the device is not known up (it may have been replaced
        during an outage), else the short ``probe``.  Must not raise."""
        try:
            if not self.health.up:
                self.inventory = self.driver.verify()
                self.health.verified = True
            report = self.driver.probe()
        except (DeviceError, DeviceNotReady) as exc:
            self._device_down(str(exc))
            return
        except Exception as exc:  # a driver's bug must not end the watcher
            self._device_down(f"{type(exc).__name__}: {exc}")
            return
        self._device_report = report
        self._device_up()

    def _device_up(self) -> None:
        if self.health.answered():
            LOG.info("device of agent %s %s", self.settings.host,
                     "answers again; converging what it missed" if self._device_seen else "is ready")
            self._device_seen = True
            self._timers["resync"].wake()
            self._timers["heartbeat"].wake()

    def _device_down(self, reason: str) -> None:
        if self.health.failed(reason):
            LOG.warning("device of agent %s is down: %s; retrying with backoff, the heartbeat goes on",
                        self.settings.host, reason)
            self._timers["heartbeat"].wake()
        else:
            LOG.debug("device of agent %s still down: %s", self.settings.host, reason)

    def _device_ready(self) -> None:
        """Raise ``DeviceError`` unless the device passed ``verify`` (waiting briefly for
        the first look, which runs at start)."""
        if not self.health.verified:
            self.health.checked.wait(self.settings.rpc_timeout)
        if not self.health.verified:
            raise DeviceError(f"device not ready: {self.health.error or 'not looked at yet'}")

    # --- converging -------------------------------------------------------------

    def _lock(self, lb_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks[lb_id]

    def converge(self, loadbalancer_id: str, revision: int | None = None, request_id: str | None = None,
                 desired: wire.Present | None = None) -> None:
        """Make the device match the desired state of one load balancer: the carried ``desired``
        when it may be applied as it is (``_applicable``), else the server's, fetched now.  Log
        lines and the status cast name ``request_id``, the API request that made the change."""
        # Decide and fetch under the lock: two converges of one load balancer must not
        # apply an older desired state after a newer one.
        with request_ids.bound(request_id), self._lock(loadbalancer_id):
            carried = self._applicable(loadbalancer_id, revision, desired)
            state = carried or self._call(wire.GetLoadBalancer(loadbalancer_id=loadbalancer_id))
            LOG.info("load balancer %s revision %s: %s on agent %s (%s desired state)", state["id"],
                     state["revision"], "deleting" if state["deleted"] else "converging", self.settings.host,
                     "carried" if carried else "fetched")
            self._apply(state)

    def _applicable(self, lb_id: str, revision: int | None, desired: wire.Present | None) -> wire.Present | None:
        """``desired`` if it may be applied without asking a server (see the module's
        docstring); None when the agent is in doubt and fetches."""
        if desired is None or revision is None or not well_formed(desired, lb_id, revision):
            return None
        if revision <= self._tried.get(lb_id, -1):
            return None
        try:
            held = self.driver.list_loadbalancers().get(lb_id)
        except DeviceError:
            return None
        return desired if held is not None and held < revision else None

    def _apply(self, desired: wire.DesiredState) -> None:
        lb_id, revision = desired["id"], desired["revision"]
        if desired["deleted"]:
            self._tried.pop(lb_id, None)
        elif revision is not None:
            self._tried[lb_id] = max(revision, self._tried.get(lb_id, revision))
        started = time.perf_counter()
        try:
            self._device_ready()
            if desired["deleted"]:
                self.driver.delete(lb_id)
                self._owned.discard(lb_id)
            else:
                self.driver.converge(desired)
                self._owned.add(lb_id)
        except DeviceError as exc:
            self._observe(started, "error")
            self._failed(lb_id, revision, exc)
            return
        self._observe(started, "deleted" if desired["deleted"] else "converged")
        self._device_up()
        if revision is not None:
            operating = None if desired["deleted"] else self._operating(lb_id)
            LOG.info("load balancer %s revision %s: %s", lb_id, revision,
                     "deleted" if desired["deleted"] else "converged")
            self._statuses.put(wire.UpdateStatus(loadbalancer_id=lb_id, revision=revision, operating=operating,
                                                 request_id=request_ids.current()))

    def _observe(self, started: float, outcome: str) -> None:
        metrics.CONVERGE_SECONDS.labels(self.driver.name, outcome).observe(time.perf_counter() - started)

    def _failed(self, lb_id: str, revision: int | None, exc: DeviceError) -> None:
        """Record and report a failed converge or delete, with its kind."""
        rejected = isinstance(exc, DeviceRejected)
        if rejected:
            self._device_up()  # it answered: the document is at fault
            reason, kind = f"rejected by the device: {exc}", c.ERROR_KIND_REJECTED
        else:
            self._device_down(str(exc))
            reason, kind = f"device unavailable (converged again once it answers): {exc}", c.ERROR_KIND_DEVICE
        metrics.DEVICE_ERRORS.labels(self.driver.name, kind).inc()
        LOG.error("load balancer %s revision %s failed: %s", lb_id, revision, reason)
        if revision is not None:
            self._statuses.put(wire.UpdateStatus(loadbalancer_id=lb_id, revision=revision, error=reason,
                                                 error_kind=kind, request_id=request_ids.current()))

    def _operating(self, lb_id: str) -> wire.OperatingReport | None:
        """The device's operating statuses; None when it cannot say (the change itself worked)."""
        try:
            report = self.driver.report(lb_id)
        except DeviceError as exc:
            LOG.warning("no status for load balancer %s: %s", lb_id, exc)
            return None
        return None if report is None else report["operating"]

    # --- resync -----------------------------------------------------------------

    def resync(self) -> None:
        """Converge every bound load balancer that needs it; remove what no longer exists.
        Waits while the device is down: its recovery starts a pass at once."""
        if not self.health.up:
            LOG.debug("resync of agent %s waits: device %s", self.settings.host, self.health.state)
            return
        bound: list[wire.Bound] = self._call(wire.GetBoundLoadBalancers(host=self.settings.host,
                                                                        environment=self.settings.environment))
        held = self.driver.list_loadbalancers()
        self._owned = {entry["id"] for entry in bound} | (self._owned & set(held))
        for entry in bound:
            if needs_converge(entry, held.get(entry["id"])):
                self._converge_quietly(entry["id"])
        self.remove_orphans(set(held) - {entry["id"] for entry in bound})

    def _converge_quietly(self, lb_id: str) -> None:
        try:
            self.converge(lb_id)
        except (CallTimeout, RemoteError) as exc:
            LOG.warning("resync of load balancer %s postponed: %s", lb_id, exc)

    def remove_orphans(self, candidates: set[str]) -> None:
        """Delete device load balancers that exist nowhere in the database.

        Candidates bound to a peer agent (devices may be shared) still exist
        and are left alone."""
        if not candidates:
            return
        existing = set(self._call(wire.FilterExisting(loadbalancer_ids=sorted(candidates))))
        for lb_id in candidates - existing:
            LOG.info("removing orphan load balancer %s from the device", lb_id)
            with self._lock(lb_id):
                self.driver.delete(lb_id)

    # --- statistics -------------------------------------------------------------

    def report_stats(self) -> None:
        """One message per load balancer whose statuses or counters changed."""
        if not self.health.up:
            return
        held = set(self.driver.list_loadbalancers()) & self._owned
        for lb_id in held:
            report = self.driver.report(lb_id)
            if report is None or self._last_stats.get(lb_id) == report:
                continue
            self._cast(wire.UpdateStats(loadbalancer_id=lb_id, **report))
            self._last_stats[lb_id] = report
        for gone in set(self._last_stats) - set(held):
            del self._last_stats[gone]


class StatusOutbox:
    """Status reports on their way to a server, sent by one thread of their own.

    ``put`` never waits on the broker.  The thread takes the first waiting report and every
    other one already waiting (at most STATUS_BATCH), never waiting for more, so a report
    leaves no later than it would alone; several go as one ``UpdateStatuses`` when
    ``batches()``, else each as its ``UpdateStatus``.  ``send`` retries as any cast does
    (``Broker.cast``: backoff until the broker's retry timeout); should it still fail, the
    reports wait, in order, and are sent again after a backoff (FIRST_RETRY doubling up to
    ``retry``): a broker outage loses none while the agent runs.  ``close`` sends what is
    waiting, trying once, then ends the thread; a report put after it is sent at once.
    Reports nobody could send are logged: the servers' sweeps re-dispatch the changes.
    """

    def __init__(self, name: str, send: Callable[[wire.Message], None], batches: Callable[[], bool],
                 retry: float) -> None:
        self.name = name
        self._send = send
        self._batches = batches
        self._retry = retry
        self._waiting: collections.deque[wire.UpdateStatus] = collections.deque()
        self._ready = threading.Condition()
        self._closing = False
        self._log = JobLog(name, LOG)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, report: wire.UpdateStatus) -> None:
        with self._ready:
            self._waiting.append(report)
            self._ready.notify()
            closed = self._closing
        if closed:
            self._run()

    def close(self, timeout: float = STATUS_FLUSH_WAIT) -> None:
        """Send what is waiting and end the thread (at most ``timeout`` s).  Idempotent."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                LOG.warning("%s: still sending status reports after %.0f s; not waiting", self.name, timeout)
        else:  # never started: the caller sends
            self._run()

    def _run(self) -> None:
        delays = _backoff(self._retry)
        while batch := self._take():
            if self._deliver(batch):
                delays = _backoff(self._retry)
                continue
            with self._ready:
                if self._closing:
                    self._abandon()
                    return
                self._ready.wait_for(lambda: self._closing, next(delays))

    def _take(self) -> list[wire.UpdateStatus]:
        """The first waiting report and those waiting behind it (waits for the first);
        nothing once closing and nothing waits."""
        with self._ready:
            self._ready.wait_for(lambda: self._waiting or self._closing)
            size = min(len(self._waiting), STATUS_BATCH if self._batches() else 1)
            return [self._waiting.popleft() for _ in range(size)]

    def _deliver(self, batch: list[wire.UpdateStatus]) -> bool:
        """One cast of ``batch``; False when the broker stayed away (the batch waits again)."""
        message: wire.Message = batch[0] if len(batch) == 1 else wire.UpdateStatuses(
            reports=[cast(wire.StatusReport, report.args()) for report in batch])
        try:
            self._send(message)
        except OperationalError as exc:
            self._log.failed(exc)
            with self._ready:
                self._waiting.extendleft(reversed(batch))
            return False
        except Exception:  # not the broker's absence: sending it again would fail again
            LOG.exception("%s: status reports of load balancers %s dropped", self.name,
                          ", ".join(report.loadbalancer_id for report in batch))
        else:
            self._log.succeeded()
        return True

    def _abandon(self) -> None:
        """Called holding the lock."""
        LOG.error("%s: %d status reports not sent (the broker is away); the servers' sweeps "
                  "converge their load balancers again", self.name, len(self._waiting))
        self._waiting.clear()


def needs_converge(entry: wire.Bound, held_revision: int | None) -> bool:
    """Whether resync converges a bound load balancer (``entry`` as
    ``get_bound_loadbalancers`` returns it) whose device holds ``held_revision``."""
    if entry.get("status") == c.ERROR:
        kind = entry.get("error_kind")
        if kind == c.ERROR_KIND_REJECTED:
            return False  # the same document would be refused again: it waits for a change
        if kind == c.ERROR_KIND_DEVICE:
            return True   # the device may hold it and have failed to say so: converge again
    return held_revision != entry["revision"]


def well_formed(desired: object, lb_id: str, revision: int) -> bool:
    """Whether a carried ``desired`` is a present load balancer's state, of ``lb_id`` at ``revision``,
    with every key a ``wire.Present`` requires (a server of another version may send less)."""
    return (isinstance(desired, dict) and wire.Present.__required_keys__ <= desired.keys()
            and desired["id"] == lb_id and desired["revision"] == revision and desired["deleted"] is False
            and isinstance(desired["listeners"], list) and isinstance(desired["pools"], list))


def _backoff(largest: float) -> Iterator[float]:
    """FIRST_RETRY, doubling, at most ``largest`` (and never below FIRST_RETRY)."""
    return (min(FIRST_RETRY * 2 ** min(n, 20), max(largest, FIRST_RETRY)) for n in itertools.count())
