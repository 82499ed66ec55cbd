"""Simulated agents for the scale benchmark: many in one process, each speaking exactly the
messages of a real agent with the noop driver (``lbaas.agent.service.Agent``), built from
``lbaas.wire`` types.

What one simulated agent does, as the real one does:

- start: a ``ReportState`` call with ``start_flag`` (a refusal is an error here);
- every ``report_interval``: a ``ReportState`` call (the heartbeat).  The fleet's reports are
  spread evenly over the interval (agent k of N at phase k/N), so servers see a steady rate;
- a ``Converge`` cast on its queue ``lbaas.agent.<env>.<host>``: a ``GetLoadBalancer`` call, the
  noop driver's converge or delete, then an ``UpdateStatus`` cast with the desired state's
  revision, the driver's operating statuses and the cast's request id.

Not simulated (a real fleet adds them): resync (one ``GetBoundLoadBalancers`` call per agent
at start and every resync interval, 300 s by default, and converging what the device lacks),
statistics casts (``UpdateStats``, only for load balancers whose figures changed) and the
device watcher.  Devices are taken to hold their load balancers already: the steady state,
not a cold start.

Light: the agents of one environment form cohorts; a cohort's queues are consumed by
``workers`` kombu connections (``Broker.serve`` over all of them) and share one noop device,
so a fleet of 1,000 agents in 10 environments and 2 cohorts needs 20 consumers.  One thread
schedules every heartbeat; a pool of threads makes the calls (enough of them that slow
answers delay no report: a thread only waits on its reply, a publishing connection is
borrowed for the publish alone).  Cohort 0 of every environment
(``kill_fraction`` of its agents) can be killed at once: its heartbeats and consumers stop as
a crashed host's would (no ``AgentStopped``: a crash says nothing).

As a process (``python -m bench.simagents --help``) it prints one JSON line
``{"event": "ready", ...}`` once every agent is registered, then answers each command read
on stdin (``stats``, ``kill``, ``stop``) with one JSON line.  ``SimulatorProcess`` drives it.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import selectors
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

# lbaas.config first, as the real processes import it: lbaas.agent.drivers and lbaas.config
# import each other, and the cycle only resolves from this side.
from lbaas.config import OPTIONS
from lbaas import constants as c
from lbaas import wire
from lbaas.agent.drivers.noop import NoopDriver
from lbaas.agent.health import DeviceHealth
from lbaas.messaging import Broker, CallTimeout, Consumer, RemoteError

ROOT = Path(__file__).resolve().parent.parent
DRIVER = "noop"
REGISTER_THREADS, REGISTER_TRIES = 32, 5
# The real agent's defaults.
REPORT_INTERVAL, RPC_TIMEOUT = (next(o.default for o in OPTIONS[section] if o.name == name)
                                for section, name in (("agent", "report_interval"), ("controller", "rpc_timeout")))


@dataclass(frozen=True)
class SimAgent:
    host: str
    environment: str
    cohort: int                 # 0: the agents a kill takes down
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def queue(self) -> str:
        return c.agent_queue(self.environment, self.host)


def fleet(environments: Sequence[str], per_environment: int, kill_fraction: float) -> list[SimAgent]:
    """``per_environment`` agents in each environment (hosts ``<env>-agent-0000`` ...); the
    first ``kill_fraction`` of each environment's in cohort 0, so a kill leaves live peers
    in every environment."""
    doomed = round(per_environment * kill_fraction)
    return [SimAgent(f"{env}-agent-{i:04d}", env, 0 if i < doomed else 1)
            for env in environments for i in range(per_environment)]


class Counters:
    """What the fleet did: counts, and latency samples since the last ``snapshot``. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        self._samples: dict[str, list[float]] = collections.defaultdict(list)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def sample(self, name: str, seconds: float) -> None:
        with self._lock:
            self._samples[name].append(seconds)

    def snapshot(self) -> dict[str, Any]:
        """Counts since start; latencies (ms: n, p50, p99, max) since the previous snapshot."""
        with self._lock:
            counts, samples, self._samples = dict(self._counts), self._samples, collections.defaultdict(list)
        return {"counts": counts, "latency_ms": {name: _summary(values) for name, values in samples.items()}}


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000.0 for s in seconds)
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "p50": ms[len(ms) // 2], "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
            "max": ms[-1]}


class Cohort:
    """Agents of one environment that live and die together: one noop device (devices may be
    shared in a group) and the consumers of all their queues."""

    def __init__(self, broker: Broker, environment: str, number: int, agents: list[SimAgent],
                 counters: Counters, rpc_timeout: float, work: ThreadPoolExecutor) -> None:
        self.broker = broker
        self.work = work
        self.environment = environment
        self.number = number
        self.agents = agents
        self.counters = counters
        self.rpc_timeout = rpc_timeout
        self.controller = c.controller_queue(environment)
        self.device = NoopDriver({})
        self.health = DeviceHealth()
        self.health.answered()          # the device is up: the heartbeat says so
        self.alive = threading.Event()
        self.alive.set()
        self._consumers: list[Consumer] = []

    def serve(self, workers: int) -> None:
        queues = [agent.queue for agent in self.agents]
        self._consumers = [self.broker.serve(queues, {wire.Converge.method: self.received},
                                             name=f"sim-{self.environment}-{self.number}-{i}")
                           for i in range(workers)]

    def kill(self) -> None:
        """Stop heartbeats and consumers; what the queues hold stays there."""
        self.alive.clear()
        for consumer in self._consumers:
            consumer.stop(timeout=1.0)

    def report(self, agent: SimAgent, start_flag: bool, report_interval: float) -> wire.ReportState:
        """The real agent's report: inventory, device health, its load balancer count and interval."""
        configurations = cast(wire.Configurations, {**self.device.verify(), **self.health.report(),
                                                    "loadbalancers": len(self.device.list_loadbalancers()),
                                                    "report_interval": report_interval})
        return wire.ReportState(host=agent.host, environment=agent.environment, group=1, device_driver=DRIVER,
                                configurations=configurations, capacity_score=self.device.capacity_score(),
                                start_flag=start_flag, instance_id=agent.instance_id, exclusive=True)

    def call(self, message: wire.Message) -> Any:
        return self.broker.call(self.controller, message.method, timeout=self.rpc_timeout, **message.args())

    def received(self, loadbalancer_id: str, revision: int | None = None, request_id: str | None = None) -> None:
        """A ``Converge`` cast: handed to the fleet's workers at once.  One consumer serves a
        cohort's many queues, where each real agent has workers of its own: done in the
        consumer, a slow fetch for one agent would hold up all of them.  The message is thus
        acked before the converge ends; a killed cohort's converges in flight end unreported."""
        self.counters.add(f"converges_cohort_{self.number}")
        self.work.submit(self.converge, loadbalancer_id, request_id)

    def converge(self, loadbalancer_id: str, request_id: str | None) -> None:
        """The noop agent's converge: fetch the desired state, apply it, cast the outcome."""
        started = time.perf_counter()
        try:
            desired: wire.DesiredState = self.call(wire.GetLoadBalancer(loadbalancer_id=loadbalancer_id))
        except (CallTimeout, RemoteError):
            self.counters.add("fetch_failures")  # the real agent drops it too: the pending sweep retries
            return
        self.counters.sample("fetch", time.perf_counter() - started)
        if desired["deleted"]:
            self.device.delete(desired["id"])
        else:
            self.device.converge(desired)
        if desired["revision"] is None or not self.alive.is_set():
            return
        report = None if desired["deleted"] else self.device.report(desired["id"])
        status = wire.UpdateStatus(loadbalancer_id=desired["id"], revision=desired["revision"],
                                   operating=None if report is None else report["operating"], request_id=request_id)
        self.broker.cast(self.controller, status.method, **status.args())
        self.counters.add("status_updates")


class Fleet:
    """Simulated agents: registration, the heartbeat schedule, converges, and the kill."""

    def __init__(self, broker: Broker, agents: list[SimAgent], *, report_interval: float,
                 rpc_timeout: float = RPC_TIMEOUT, workers: int = 1, call_threads: int = 512) -> None:
        self.broker = broker
        self.agents = agents
        self.report_interval = report_interval
        self.workers = workers
        self.counters = Counters()
        groups: dict[tuple[str, int], list[SimAgent]] = collections.defaultdict(list)
        for agent in agents:
            groups[(agent.environment, agent.cohort)].append(agent)
        self._calls = ThreadPoolExecutor(call_threads, thread_name_prefix="sim-call")
        self._work = ThreadPoolExecutor(call_threads, thread_name_prefix="sim-converge")
        self.cohorts = {key: Cohort(broker, key[0], key[1], members, self.counters, rpc_timeout, self._work)
                        for key, members in groups.items()}
        self._stopping = threading.Event()
        self._schedule = threading.Thread(target=self._heartbeats, name="sim-heartbeats", daemon=True)

    def cohort(self, agent: SimAgent) -> Cohort:
        return self.cohorts[(agent.environment, agent.cohort)]

    def start(self) -> None:
        """Register every agent (raises on a refusal, or when a server does not answer within
        ``REGISTER_TRIES`` calls), then serve.  A few at a time: a cold start of the whole
        fleet at once is a storm of its own, not the steady state measured here."""
        with ThreadPoolExecutor(REGISTER_THREADS, thread_name_prefix="sim-register") as registering:
            for answer in registering.map(self._register, self.agents):
                if not answer.get("accepted", True):
                    raise RuntimeError(f"a server refused a simulated agent: {answer.get('reason')}")
        for cohort in self.cohorts.values():
            cohort.serve(self.workers)
        self._schedule.start()

    def _register(self, agent: SimAgent) -> wire.Answer:
        """The start report; retried while no server answers, as the real agent does."""
        cohort = self.cohort(agent)
        for attempt in range(REGISTER_TRIES):
            try:
                return cast(wire.Answer, cohort.call(cohort.report(agent, True, self.report_interval)))
            except CallTimeout:
                if attempt == REGISTER_TRIES - 1:
                    raise
                self.counters.add("registration_retries")
        raise AssertionError("unreachable")

    def _heartbeats(self) -> None:
        """Agent k of N beats at k/N of every interval; a late slot is sent at once and counted."""
        began, spacing = time.monotonic(), self.report_interval / len(self.agents)
        for tick in range(sys.maxsize):
            due = began + tick * spacing
            if self._stopping.wait(max(0.0, due - time.monotonic())):
                return
            agent = self.agents[tick % len(self.agents)]
            if self.cohort(agent).alive.is_set():
                self._calls.submit(self._beat, agent, due)

    def _beat(self, agent: SimAgent, due: float) -> None:
        cohort = self.cohort(agent)
        if not cohort.alive.is_set():
            return  # queued before the kill: a crashed host sends nothing more
        started = time.monotonic()
        self.counters.sample("heartbeat_lag", started - due)
        try:
            answer = cohort.call(cohort.report(agent, False, self.report_interval))
        except (CallTimeout, RemoteError):
            self.counters.add("heartbeat_failures")
            return
        self.counters.sample("heartbeat", time.monotonic() - started)
        self.counters.add("heartbeats" if answer.get("accepted", True) else "heartbeats_refused")

    def kill(self) -> list[str]:
        """Kill cohort 0 of every environment; the hosts killed."""
        doomed = [cohort for (_, number), cohort in self.cohorts.items() if number == 0]
        for cohort in doomed:
            cohort.alive.clear()    # heartbeats first: a crash stops everything at once
        for cohort in doomed:
            cohort.kill()
        return [agent.host for cohort in doomed for agent in cohort.agents]

    def stats(self) -> dict[str, Any]:
        return {**self.counters.snapshot(), "time": time.time(), "cpu_s": _own_cpu()}

    def stop(self) -> None:
        self._stopping.set()
        if self._schedule.is_alive():
            self._schedule.join(5)
        self._calls.shutdown(wait=False, cancel_futures=True)
        self._work.shutdown(wait=False, cancel_futures=True)
        self.broker.close()


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


# --- the process and its driver ---------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Simulated lbaas agents (see the module docstring).")
    parser.add_argument("--transport-url", required=True)
    parser.add_argument("--environments", required=True, help="comma-separated")
    parser.add_argument("--agents-per-environment", type=int, default=100)
    parser.add_argument("--report-interval", type=float, default=REPORT_INTERVAL)
    parser.add_argument("--kill-fraction", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=1, help="consumers per cohort")
    args = parser.parse_args(argv)
    agents = fleet(args.environments.split(","), args.agents_per_environment, args.kill_fraction)
    simulated = Fleet(Broker(args.transport_url), agents, report_interval=args.report_interval,
                      workers=args.workers)
    started = time.monotonic()
    try:
        simulated.start()
        _say({"event": "ready", "agents": len(agents), "register_s": time.monotonic() - started,
              "doomed": sum(1 for a in agents if a.cohort == 0)})
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                _say({"event": "stats", **simulated.stats()})
            elif command == "kill":
                at = time.time()
                _say({"event": "killed", "hosts": simulated.kill(), "at": at})
            elif command == "stop":
                break
            else:
                _say({"event": "error", "message": f"unknown command {command!r}"})
    finally:
        simulated.stop()
    return 0


def _say(document: dict[str, Any]) -> None:
    print(json.dumps(document), flush=True)


class SimulatorProcess:
    """``python -m bench.simagents`` in a process of its own, driven over stdin/stdout."""

    def __init__(self, transport_url: str, environments: Sequence[str], per_environment: int, *,
                 report_interval: float, kill_fraction: float, log_path: str, timeout: float = 300) -> None:
        argv = [sys.executable, "-m", "bench.simagents", "--transport-url", transport_url,
                "--environments", ",".join(environments), "--agents-per-environment", str(per_environment),
                "--report-interval", str(report_interval), "--kill-fraction", str(kill_fraction)]
        self.proc = subprocess.Popen(argv, cwd=str(ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(log_path, "ab"), text=True, start_new_session=True)
        self.log_path = log_path
        try:
            self.ready = self._read(timeout)
        except Exception:
            self.stop()
            raise

    def command(self, command: str, timeout: float = 60) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise TimeoutError(f"simulated agents silent for {timeout} s; see {self.log_path}")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"simulated agents exited with {self.proc.wait()}; see {self.log_path}")
        document: dict[str, Any] = json.loads(line)
        return document

    def stop(self) -> None:
        """Ask it to stop; kill it (by its own process group) if it does not."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("stop\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
