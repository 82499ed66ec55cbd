"""Fixtures of the HA tests: a private RabbitMQ cluster, a private PostgreSQL
primary + standby (``lbaas.testing.ha``), and ``SteadyLoad``, client threads
that create and rename load balancers over every server while a test breaks
something, then check that nothing accepted was lost, applied twice or left
pending.

Every back end here is private: a test may stop, kill or promote any of it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from lbaas.testing.cluster import Cluster, wait_lb
from lbaas.testing.ha import PostgresPair, RabbitCluster

__all__ = ["HOSTS", "REFUSED", "SERVERS", "SteadyLoad", "settle_bound"]

SERVERS = ["server-1", "server-2"]
HOSTS = ["host-1", "host-2", "host-3"]
# What a write may be answered during a fault: done, busy (the load balancer is
# still PENDING), or refused for now. Anything else (a 500) is a bug.
REFUSED = 503
ACCEPTED = (200, 201, 202)
ANSWERS = {*ACCEPTED, 409, REFUSED}
# A write whose outcome the client cannot know: no answer, or refused after it may have committed.
UNKNOWN = (REFUSED, "transport")


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    """A private 3-node RabbitMQ cluster."""
    cluster = RabbitCluster(str(tmp_path_factory.mktemp("rabbit")))
    print(f"RabbitMQ cluster of 3 started in {cluster.startup_seconds:.1f} s")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresPair]:
    """A private PostgreSQL primary with a synchronous streaming standby."""
    pair = PostgresPair(str(tmp_path_factory.mktemp("postgres")))
    print(f"PostgreSQL primary + standby started in {pair.startup_seconds:.1f} s")
    try:
        yield pair
    finally:
        pair.stop()


@dataclass
class History:
    """The writes to one load balancer, in the order its one client thread made them:
    (name, answer) with answer an HTTP status or "transport" (no answer)."""

    project: str
    writes: list[tuple[str, int | str]] = field(default_factory=list)

    def possible_names(self) -> set[str]:
        """The name it may end with: the last accepted one, or one written after it
        whose outcome is unknown (no answer, or a refusal that may have committed)."""
        last = max(i for i, (_, answer) in enumerate(self.writes) if answer in ACCEPTED)
        return {name for i, (name, answer) in enumerate(self.writes)
                if i == last or (i > last and answer in UNKNOWN)}


class SteadyLoad:
    """``threads`` clients, each on a project of its own, alternating between the
    ``servers``: each creates load balancers (up to ``per_thread``) and renames
    them, every write with a name never used before, until ``stop``."""

    def __init__(self, cluster: Cluster, tag: str, servers: list[str] = SERVERS, threads: int = 4,
                 per_thread: int = 6, pause: float = 0.05) -> None:
        self.cluster = cluster
        self.servers = servers
        self.per_thread = per_thread
        self.pause = pause
        self.projects = [f"{tag}-{i}" for i in range(threads)]
        self.answers: Counter[int | str] = Counter()
        self.accepted_at: list[float] = []               # monotonic times of 2xx answers
        self.histories: dict[str, History] = {}          # by load balancer id
        self.unknown_creates: Counter[str] = Counter()   # by project: creates that may have happened
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), name=f"load-{i}") for i in range(threads)]

    def start(self) -> "SteadyLoad":
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def accepted_after(self, moment: float) -> int:
        return sum(1 for at in self.accepted_at if at > moment)

    def _run(self, index: int) -> None:
        project = self.projects[index]
        owned: list[str] = []   # this thread's load balancers: no other thread writes to them
        clients = [self.cluster.client(server) for server in self.servers]
        clients = clients[index % 2:] + clients[:index % 2]   # the threads start on different servers
        try:
            for seq in itertools.count():
                if self._stopping.is_set():
                    return
                name, client = f"{project}-w{seq}", clients[seq % len(clients)]
                if len(owned) < self.per_thread and seq % 3 == 0:
                    self._create(client, project, name, owned)
                elif owned:
                    self._rename(client, owned[seq % len(owned)], name)
                self._stopping.wait(self.pause)
        finally:
            for client in clients:
                client.close()

    def _send(self, send: Callable[[], httpx.Response]) -> tuple[int | str, httpx.Response | None]:
        try:
            response: httpx.Response | None = send()
        except httpx.HTTPError:   # no answer: the write may or may not have happened
            response = None
        answer: int | str = "transport" if response is None else response.status_code
        with self._lock:
            self.answers[answer] += 1
            if answer in ACCEPTED:
                self.accepted_at.append(time.monotonic())
        return answer, response

    def _create(self, client: httpx.Client, project: str, name: str, owned: list[str]) -> None:
        answer, response = self._send(lambda: client.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {
            "vip_subnet_id": "cluster", "project_id": project, "name": name}}))
        with self._lock:
            if response is not None and answer in ACCEPTED:
                owned.append(response.json()["loadbalancer"]["id"])
                self.histories[owned[-1]] = History(project, [(name, answer)])
            elif answer in UNKNOWN:
                self.unknown_creates[project] += 1

    def _rename(self, client: httpx.Client, lb_id: str, name: str) -> None:
        answer, _ = self._send(lambda: client.put(f"/v2/lbaas/loadbalancers/{lb_id}",
                                                  json={"loadbalancer": {"name": name}}))
        with self._lock:
            self.histories[lb_id].writes.append((name, answer))

    def summary(self) -> str:
        return (f"{sum(self.answers.values())} writes {dict(self.answers)}, "
                f"{len(self.histories)} load balancers created")

    # --- after the load -----------------------------------------------------------------

    def check(self, settle: float) -> None:
        """Every answer is one of ``ANSWERS``; every accepted write reached ACTIVE
        within ``settle`` s with its name (none applied twice, none lost); each project
        holds its accepted creates and at most the unknown ones besides; nothing is
        left PENDING or in ERROR."""
        assert set(self.answers) <= {*ANSWERS, "transport"}, self.answers
        assert self.histories, f"no create was accepted: {self.answers}"
        deadline = time.monotonic() + settle
        with self.cluster.client() as client:
            for lb_id, history in self.histories.items():
                lb = wait_lb(client, lb_id, timeout=max(1.0, deadline - time.monotonic()))
                assert lb["name"] in history.possible_names(), (lb_id, lb["name"], history.writes)
            for project in self.projects:
                self._check_project(client, project)

    def _check_project(self, client: httpx.Client, project: str) -> None:
        listed = client.get("/v2/lbaas/loadbalancers", params={"project_id": project, "limit": 1000})
        assert listed.status_code == 200, listed.text
        lbs = {lb["id"]: lb["provisioning_status"] for lb in listed.json()["loadbalancers"]}
        accepted = {lb_id for lb_id, history in self.histories.items() if history.project == project}
        assert accepted <= set(lbs), accepted - set(lbs)
        assert len(lbs) - len(accepted) <= self.unknown_creates[project], (project, lbs, accepted)
        stuck = {lb_id: status for lb_id, status in lbs.items() if status != "ACTIVE"}
        assert not stuck, stuck


def settle_bound(cluster: Cluster) -> float:
    """How long a change may take to finish after a fault is over: an agent may be
    judged dead meanwhile and the pending sweep re-dispatches, with room for a slow machine."""
    return cluster.agent_down_time + 3 * cluster.pending_timeout + 45.0

