"""Status reports batched (issue 14): an agent sends the reports that are waiting together as
one ``UpdateStatuses``, which a server applies in one transaction, on every backend, with the
outcome of as many ``update_status`` calls; to a server whose answer does not say
``accepts_batches`` (an older one) it sends them one by one; nothing waiting is lost at stop.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kombu.exceptions import OperationalError
from sqlalchemy import event, select

from lbaas import constants as c
from lbaas import wire
from lbaas.agent.service import STATUS_BATCH, Agent, StatusOutbox
from lbaas.controller import handlers as handlers_module
from lbaas.db import lifecycle
from lbaas.db import models as m
from lbaas.testing.polling import wait_for
from tests.conftest import Api
from tests.test_agents_api import Plane
from tests.test_hot_handlers import handlers, member_added, statements


@contextmanager
def commits(api: Api) -> Iterator[list[None]]:
    """One entry per commit this thread makes while the block runs."""
    made: list[None] = []
    me = threading.get_ident()

    def count(_conn: Any) -> None:
        if threading.get_ident() == me:
            made.append(None)

    for engine in {api.db.engine, api.db.read_engine}:
        event.listen(engine, "commit", count)
    try:
        yield made
    finally:
        for engine in {api.db.engine, api.db.read_engine}:
            event.remove(engine, "commit", count)


def report(lb_id: str, revision: int, error: str | None = None, error_kind: str | None = None) -> wire.StatusReport:
    return wire.StatusReport(loadbalancer_id=lb_id, revision=revision, error=error, operating=None,
                             error_kind=error_kind, request_id=None)


def outcome(api: Api, lb_id: str) -> tuple[Any, ...]:
    """What a status wrote: the load balancer's statuses and its members'."""
    with api.db.reading() as session:
        lb = session.get_one(m.LoadBalancer, lb_id)
        members = session.execute(select(m.Member.provisioning_status, m.Member.operating_status)
                                  .join(m.Pool, m.Pool.id == m.Member.pool_id)
                                  .where(m.Pool.load_balancer_id == lb_id)
                                  .order_by(m.Member.provisioning_status, m.Member.operating_status)).all()
        return (lb.provisioning_status, lb.operating_status, lb.status_reason, lb.error_kind, lb.pending_since,
                [tuple(row) for row in members])


# --- the server -----------------------------------------------------------------------

Pending = Callable[[], tuple[str, str, int]]


@pytest.fixture
def pending(api: Api) -> Iterator[Pending]:
    """Factory: ``member_added`` (a load balancer whose member add awaits its status); the
    load balancers are removed after the test (the session's API has a quota per project)."""
    made: list[str] = []

    def make() -> tuple[str, str, int]:
        change = member_added(api)
        made.append(change[0])
        return change

    yield make
    with api.db.transaction() as session:
        for lb_id in made:
            lifecycle.delete_graph(session, lb_id)


FAILED: dict[str, Any] = {"error": "device unavailable", "error_kind": c.ERROR_KIND_DEVICE}


def test_a_batch_is_one_transaction_with_the_outcome_of_single_reports(api: Api, pending: Pending) -> None:
    count = 4
    batched = [pending() for _ in range(count)]
    singles = [pending() for _ in range(count)]
    server = handlers(api)

    reports = [report(lb_id, revision, **(FAILED if i == 0 else {}))
               for i, (lb_id, _, revision) in enumerate(batched)]
    with statements(api) as sent, commits(api) as committed:
        assert server.update_statuses(reports) == ["error", "active", "active", "active"]
    assert len(committed) == 1
    # The rows locked in one statement; then, as update_status, the children read and what changed written.
    assert sent[0] == "SELECT" and sent.count("SELECT") == 1 + count

    with statements(api) as single_sent, commits(api) as single_commits:
        outcomes = [server.update_status(lb_id, revision, **(FAILED if i == 0 else {}))
                    for i, (lb_id, _, revision) in enumerate(singles)]
    assert outcomes == ["error", "active", "active", "active"]
    assert len(single_commits) == count and len(single_sent) == len(sent) + count - 1
    for (batch_lb, _, _), (single_lb, _, _) in zip(batched, singles):
        assert outcome(api, batch_lb) == outcome(api, single_lb)

    with statements(api) as sent:   # the same batch again, and reordered: nothing is written
        assert server.update_statuses(reports[::-1]) == ["operating"] * count
    assert sent == ["SELECT"]   # the rows, locked: every report is a duplicate


def test_reports_of_one_load_balancer_apply_in_their_order(api: Api, pending: Pending) -> None:
    lb_id, _, revision = pending()
    failed, healed = report(lb_id, revision, **FAILED), report(lb_id, revision)
    assert handlers(api).update_statuses([failed, healed]) == ["error", "recovered"]
    assert outcome(api, lb_id)[0] == c.ACTIVE


def test_a_gone_or_malformed_report_does_not_fail_the_others(api: Api, pending: Pending) -> None:
    (first, _, first_revision), (second, _, second_revision) = pending(), pending()
    reports: list[Any] = [report(first, first_revision), report("no-such-load-balancer", 3),
                          {"loadbalancer_id": second, "revision": "two"}, "not a report",
                          {"loadbalancer_id": second, "revision": second_revision, "added_later": 1}]
    assert handlers(api).update_statuses(reports) == ["active", "gone", "active"]
    assert outcome(api, first)[0] == outcome(api, second)[0] == c.ACTIVE
    assert handlers(api).update_statuses("nonsense") == []   # type: ignore[arg-type]


def test_a_report_that_breaks_the_batch_costs_only_itself(api: Api, pending: Pending,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    (good, _, good_revision), (bad, _, bad_revision) = pending(), pending()
    complete = lifecycle.complete_locked

    def breaks_on_bad(session: Any, row: Any, revision: int, **fields: Any) -> str:
        if row is not None and row.id == bad:
            raise ValueError("a bug")
        return complete(session, row, revision, **fields)

    monkeypatch.setattr(lifecycle, "complete_locked", breaks_on_bad)
    assert handlers(api).update_statuses([report(bad, bad_revision), report(good, good_revision)]) == [
        "failed", "active"]
    assert outcome(api, good)[0] == c.ACTIVE and outcome(api, bad)[0] == c.PENDING_UPDATE


def test_overlapping_batches_in_opposite_orders_do_not_deadlock(api: Api, pending: Pending) -> None:
    lbs = [pending()[::2] for _ in range(3)]
    failures: list[BaseException] = []

    def apply(order: list[tuple[str, int]]) -> None:
        server = handlers(api)
        try:
            for _ in range(10):
                server.update_statuses([report(lb_id, revision) for lb_id, revision in order])
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=apply, args=(order,)) for order in (lbs, lbs[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures and all(outcome(api, lb_id)[0] == c.ACTIVE for lb_id, _ in lbs)


def test_a_status_report_has_exactly_update_status_fields() -> None:
    assert list(wire.StatusReport.__annotations__) == [f.name for f in dataclasses.fields(wire.UpdateStatus)]


# --- the agent's outbox -------------------------------------------------------------

class Server:
    """A stand-in for the broker's cast: records what was sent; ``hold`` keeps a send
    waiting until ``release``; ``failures`` sends fail as a broker that stayed away."""

    def __init__(self, batches: bool = True) -> None:
        self.sent: list[wire.Message] = []
        self.batches = batches
        self.failures = 0
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def send(self, message: wire.Message) -> None:
        self.entered.set()
        self.gate.wait(10)
        if self.failures:
            self.failures -= 1
            raise OperationalError("broker away")
        self.sent.append(message)

    def hold(self) -> None:
        self.gate.clear()
        self.entered.clear()

    def reports(self) -> list[tuple[str, int]]:
        """Every report sent, in order, whatever message carried it."""
        flat: list[tuple[str, int]] = []
        for message in self.sent:
            if isinstance(message, wire.UpdateStatuses):
                flat += [(r["loadbalancer_id"], r["revision"]) for r in message.reports]
            else:
                assert isinstance(message, wire.UpdateStatus)
                flat.append((message.loadbalancer_id, message.revision))
        return flat


def status(n: int) -> wire.UpdateStatus:
    return wire.UpdateStatus(loadbalancer_id=f"lb-{n:03d}", revision=n, request_id=f"req-{n}")


@contextmanager
def outbox(server: Server) -> Iterator[StatusOutbox]:
    box = StatusOutbox("status-test", server.send, lambda: server.batches, retry=0.05)
    box.start()
    try:
        yield box
    finally:
        server.gate.set()
        box.close(5)


def test_reports_waiting_together_go_as_one_batch() -> None:
    server = Server()
    with outbox(server) as box:
        server.hold()
        box.put(status(0))
        assert server.entered.wait(5)   # the first goes alone, at once: nothing was waiting behind it
        for n in range(1, STATUS_BATCH + 3):
            box.put(status(n))
        server.gate.set()
        wait_for(lambda: len(server.reports()) == STATUS_BATCH + 3, what="every report")
    kinds = [(type(message).__name__, len(getattr(message, "reports", [message]))) for message in server.sent]
    assert kinds == [("UpdateStatus", 1), ("UpdateStatuses", STATUS_BATCH), ("UpdateStatuses", 2)]
    assert server.reports() == [(f"lb-{n:03d}", n) for n in range(STATUS_BATCH + 3)]
    batch = server.sent[1]
    assert isinstance(batch, wire.UpdateStatuses) and batch.reports[0] == status(1).args()


def test_a_server_that_does_not_take_batches_gets_single_reports() -> None:
    server = Server(batches=False)
    with outbox(server) as box:
        server.hold()
        for n in range(5):
            box.put(status(n))
        server.gate.set()
        wait_for(lambda: len(server.sent) == 5, what="five reports")
    assert all(isinstance(message, wire.UpdateStatus) for message in server.sent)


def test_a_broker_outage_loses_no_report_and_keeps_their_order() -> None:
    server = Server()
    server.failures = 3
    with outbox(server) as box:
        for n in range(4):
            box.put(status(n))
        wait_for(lambda: len(server.reports()) == 4, what="the reports after the outage")
    assert server.reports() == [(f"lb-{n:03d}", n) for n in range(4)]


def test_close_sends_what_is_waiting() -> None:
    server = Server()
    box = StatusOutbox("status-test", server.send, lambda: True, retry=0.05)
    box.start()
    server.hold()
    box.put(status(0))
    assert server.entered.wait(5)
    for n in range(1, 4):
        box.put(status(n))
    closing = threading.Thread(target=box.close)
    closing.start()
    server.gate.set()
    closing.join(10)
    assert server.reports() == [(f"lb-{n:03d}", n) for n in range(4)]
    box.put(status(4))   # a converge that outlived the stop: sent at once, by its own thread
    assert server.reports()[-1] == ("lb-004", 4)


def test_at_close_a_broker_still_away_is_tried_once_then_given_up() -> None:
    server = Server()
    server.failures = 100
    box = StatusOutbox("status-test", server.send, lambda: True, retry=5.0)
    for n in range(3):
        box.put(status(n))
    box.close(5)   # never started: the caller tries
    assert server.failures == 99 and not server.sent


# --- an agent and a server --------------------------------------------------------

ENVIRONMENT = "batches"


@pytest.fixture
def plane(tmp_path: Any) -> Iterator[Plane]:
    plane = Plane(str(tmp_path), ENVIRONMENT)
    try:
        yield plane
    finally:
        plane.stop()


def traced_statuses(plane: Plane, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], threading.Event]:
    """The status methods the agent casts, and a gate that holds the next one until set."""
    sent: list[str] = []
    gate = threading.Event()
    gate.set()
    broker = plane.controller.broker
    cast = broker.cast

    def traced(queue: str, method: str, **args: Any) -> None:
        if method in (wire.UpdateStatus.method, wire.UpdateStatuses.method):
            gate.wait(10)
            sent.append(method)
        cast(queue, method, **args)

    monkeypatch.setattr(broker, "cast", traced)
    return sent, gate


def create_many(plane: Plane, count: int) -> list[str]:
    return [plane.create(f"project-{n}") for n in range(count)]


def test_an_agent_batches_for_a_server_that_says_so(plane: Plane, monkeypatch: pytest.MonkeyPatch) -> None:
    sent, gate = traced_statuses(plane, monkeypatch)
    plane.start_agent("a1")
    agent: Agent = plane.agents["a1"]
    assert agent._batches
    gate.clear()   # the first report waits in the cast; the others wait behind it in the outbox
    lbs = create_many(plane, 5)
    wait_for(lambda: len(agent._statuses._waiting) >= 2, what="reports waiting")
    gate.set()
    for lb_id in lbs:
        plane.wait(lb_id)
    # Those that waited behind the held cast left together. (The first may have gone alone or
    # with one that finished at the same instant; the sweeps may dispatch a change again while
    # its report waits, so there can be more than 5 reports.)
    assert wire.UpdateStatuses.method in sent, sent


def test_an_agent_sends_single_reports_to_an_older_server(plane: Plane, monkeypatch: pytest.MonkeyPatch) -> None:
    sent, gate = traced_statuses(plane, monkeypatch)
    monkeypatch.setattr(handlers_module, "ACCEPTED", wire.Answer(accepted=True))   # as an older server answers
    plane.start_agent("a1")
    agent: Agent = plane.agents["a1"]
    assert not agent._batches
    gate.clear()
    lbs = create_many(plane, 4)
    wait_for(lambda: len(agent._statuses._waiting) >= 2, what="reports waiting")
    gate.set()
    for lb_id in lbs:
        plane.wait(lb_id)
    assert len(sent) >= 4 and set(sent) == {wire.UpdateStatus.method}


def test_reports_waiting_at_stop_reach_the_server(plane: Plane, monkeypatch: pytest.MonkeyPatch) -> None:
    sent, gate = traced_statuses(plane, monkeypatch)
    plane.start_agent("a1")
    agent: Agent = plane.agents["a1"]
    gate.clear()
    lbs = create_many(plane, 3)
    wait_for(lambda: len(agent._statuses._waiting) >= 2, what="reports waiting")
    stopping = threading.Thread(target=plane.stop_agent, args=("a1",))
    stopping.start()
    gate.set()
    stopping.join(30)
    assert not stopping.is_alive()
    for lb_id in lbs:
        plane.wait(lb_id)
    assert wire.UpdateStatuses.method in sent
