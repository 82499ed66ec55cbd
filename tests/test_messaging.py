"""Tests of lbaas.messaging against kombu's in-memory transport and a real
RabbitMQ (a private vhost on 127.0.0.1:5672, started if it is not running)."""

from __future__ import annotations

import collections
import queue
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kombu
import pytest
from kombu.exceptions import OperationalError

from lbaas import metrics
from lbaas.constants import DEAD_LETTER_QUEUE, EXCHANGE
from lbaas.messaging import Broker, CallTimeout, QueuePolicy, RemoteError, Requeue, node_urls, safe_url

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0  # s to wait for something that should happen well before


def _rabbitmqctl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True,
                          timeout=120, check=check)


def _start_rabbitmq() -> None:
    subprocess.run(["rabbitmq-server", "-detached"], check=True, timeout=60)
    deadline = time.monotonic() + 120
    # await_startup fails until the node has registered; keep asking.
    while _rabbitmqctl("await_startup", check=False).returncode != 0:
        assert time.monotonic() < deadline, "RabbitMQ did not start"
        time.sleep(1)


@pytest.fixture(scope="session")
def rabbit_vhost() -> Iterator[str]:
    """A vhost of its own for this test run, deleted at the end."""
    if _rabbitmqctl("-q", "status", check=False).returncode != 0:
        _start_rabbitmq()
    vhost = f"lbaas-test-{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield vhost
    _rabbitmqctl("delete_vhost", vhost, check=False)


def _rabbit_url(vhost: str) -> str:
    return f"rabbit://guest:guest@127.0.0.1:5672/{vhost}"


@pytest.fixture(params=["memory", "rabbit"])
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return _rabbit_url(request.getfixturevalue("rabbit_vhost"))


@pytest.fixture
def make_broker(url: str) -> Iterator[Callable[..., Broker]]:
    made: list[Broker] = []

    def make(**kwargs: Any) -> Broker:
        kwargs.setdefault("requeue_delay", 0.1)
        made.append(Broker(url, **kwargs))
        return made[-1]

    yield make
    for broker in made:
        broker.close()


@pytest.fixture
def qname() -> str:
    return f"lbaas.test.{uuid.uuid4().hex}"


def _recorder() -> tuple[queue.Queue[Any], Callable[..., str]]:
    seen: queue.Queue[Any] = queue.Queue()

    def record(**args: Any) -> str:
        seen.put(args)
        return "ok"

    return seen, record


def _echo(x: Any) -> Any:
    return x


def _fail(why: str) -> None:
    raise ValueError(why)


# --- cast --------------------------------------------------------------------

def test_cast_is_delivered(make_broker, qname):
    broker = make_broker()
    seen, record = _recorder()
    broker.serve([qname], {"record": record})
    broker.cast(qname, "record", n=1, who="me")
    assert seen.get(timeout=WAIT) == {"n": 1, "who": "me"}


def test_cast_before_consumer_starts_is_kept(make_broker, qname):
    sender, server = make_broker(), make_broker()
    sender.cast(qname, "record", n=7)
    seen, record = _recorder()
    server.serve([qname], {"record": record})
    assert seen.get(timeout=WAIT) == {"n": 7}


# --- call --------------------------------------------------------------------

def test_call_returns_result(make_broker, qname):
    server, client = make_broker(), make_broker()
    server.serve([qname], {"echo": _echo})
    assert client.call(qname, "echo", x={"a": [1, 2]}) == {"a": [1, 2]}


def test_a_newer_peers_unknown_arguments_are_ignored_a_missing_one_is_not(make_broker, qname):
    server, client = make_broker(), make_broker()
    server.serve([qname], {"echo": _echo})
    # A field added by a later version (e.g. an optional request_id) must not break this one.
    assert client.call(qname, "echo", x=7, request_id="req-1") == 7
    with pytest.raises(RemoteError, match="TypeError"):
        client.call(qname, "echo", y=7)


def test_call_without_consumer_times_out(make_broker, qname):
    broker = make_broker()
    started = time.monotonic()
    with pytest.raises(CallTimeout, match=rf"no reply from {qname} to 'ping' within 1.0 s"):
        broker.call(qname, "ping", timeout=1)
    assert time.monotonic() - started < 4


def test_handler_exception_becomes_remote_error(make_broker, qname):
    broker = make_broker()
    consumer = broker.serve([qname], {"fail": _fail})
    with pytest.raises(RemoteError) as caught:
        broker.call(qname, "fail", why="disk on fire", timeout=5)
    assert (caught.value.exc_type, caught.value.message) == ("ValueError", "disk on fire")
    assert consumer.alive


def test_bad_messages_are_dropped_and_consumer_goes_on(make_broker, qname, url):
    broker = make_broker()
    seen, record = _recorder()
    consumer = broker.serve([qname], {"record": record})
    raw = [(b"\x00not json", "application/octet-stream"), (b"[1, 2]", "application/json"),
           (b'{"args": {}}', "application/json"),
           (b'{"method": "record", "args": [1]}', "application/json")]
    with kombu.Connection(url.replace("rabbit://", "amqp://")) as conn:
        producer = conn.Producer()
        for body, content_type in raw:
            producer.publish(body, exchange=EXCHANGE, routing_key=qname,
                             content_type=content_type, content_encoding="binary")
    broker.cast(qname, "no_such_method", x=1)
    with pytest.raises(RemoteError) as caught:
        broker.call(qname, "no_such_method", timeout=5)
    assert caught.value.exc_type == "UnknownMethod"
    broker.cast(qname, "record", good=True)
    assert seen.get(timeout=WAIT) == {"good": True}
    assert seen.empty() and consumer.alive


# --- consumers -----------------------------------------------------------------

def test_two_consumers_share_a_queue(make_broker, qname):
    got: dict[str, list[int]] = collections.defaultdict(list)
    done = threading.Semaphore(0)
    # Each consumer's first message waits for the other's: neither can drain
    # the queue alone however the threads are scheduled, but both must take part.
    both_started = threading.Barrier(2)

    def handler_for(name: str) -> Callable[..., None]:
        def take(i: int) -> None:
            got[name].append(i)
            try:
                if len(got[name]) == 1:
                    both_started.wait(timeout=WAIT)
            finally:
                done.release()
        return take

    for name in ("a", "b"):
        make_broker().serve([qname], {"take": handler_for(name)}, prefetch=2)
    sender = make_broker()
    for i in range(40):
        sender.cast(qname, "take", i=i)
    for _ in range(40):
        assert done.acquire(timeout=WAIT)
    assert sorted(got["a"] + got["b"]) == list(range(40))
    assert got["a"] and got["b"]


class DatabaseDown(Exception):
    pass


@pytest.mark.parametrize("failure", [Requeue("later"), DatabaseDown("db")], ids=["Requeue", "transient"])
def test_failed_message_is_redelivered(make_broker, qname, failure):
    attempts: list[int] = []

    def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 1:
            raise failure
        return x * 2

    server, client = make_broker(transient=(DatabaseDown,)), make_broker()
    server.serve([qname], {"flaky": flaky})
    assert client.call(qname, "flaky", x=21, timeout=WAIT) == 42
    assert attempts == [21, 21]


def test_concurrent_calls_get_their_own_answers(make_broker, qname):
    make_broker().serve([qname], {"echo": _echo})
    client = make_broker()

    def caller(t: int) -> list[Any]:
        return [client.call(qname, "echo", x=[t, i], timeout=WAIT) for i in range(10)]

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(caller, range(20)))
    assert results == [[[t, i] for i in range(10)] for t in range(20)]


def test_close_is_idempotent(make_broker, qname):
    broker = make_broker()
    consumer = broker.serve([qname], {"echo": _echo})
    assert broker.call(qname, "echo", x=1, timeout=WAIT) == 1
    broker.close()
    broker.close()
    consumer.stop()
    assert not consumer.alive
    with pytest.raises(RuntimeError):
        broker.cast(qname, "echo", x=1)


# --- RabbitMQ only -------------------------------------------------------------

def test_survives_forced_connection_close(rabbit_vhost, qname):
    server, client = Broker(_rabbit_url(rabbit_vhost)), Broker(_rabbit_url(rabbit_vhost))
    try:
        seen, record = _recorder()
        consumer = server.serve([qname], {"record": record, "echo": _echo})
        assert client.call(qname, "echo", x="before", timeout=WAIT) == "before"
        client.cast(qname, "record", n=1)
        assert seen.get(timeout=WAIT) == {"n": 1}

        _rabbitmqctl("close_all_connections", "-p", rabbit_vhost, "test")
        time.sleep(1.5)  # let the consumer and reply listener notice and reconnect

        client.cast(qname, "record", n=2)  # its pooled connection is dead: retried
        assert seen.get(timeout=WAIT) == {"n": 2}
        assert client.call(qname, "echo", x="after", timeout=WAIT) == "after"
        assert consumer.alive
    finally:
        client.close()
        server.close()


def test_slow_handler_keeps_its_connection(rabbit_vhost, qname):
    """Heartbeats go on while a handler outlasts them: no redelivery."""
    runs: list[float] = []

    def slow() -> str:
        runs.append(time.monotonic())
        time.sleep(6)  # RabbitMQ drops a connection silent for 2 heartbeats (4 s)
        return "done"

    server = Broker(_rabbit_url(rabbit_vhost), heartbeat=2)
    client = Broker(_rabbit_url(rabbit_vhost), heartbeat=2)
    try:
        server.serve([qname], {"slow": slow})
        assert client.call(qname, "slow", timeout=WAIT) == "done"
        time.sleep(0.5)  # a redelivery would start the handler again by now
        assert len(runs) == 1
    finally:
        client.close()
        server.close()


# --- no broker -----------------------------------------------------------------

def test_unreachable_broker_is_bounded(qname):
    broker = Broker("rabbit://guest:secret@127.0.0.1:1/none", retry_timeout=1)
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError, match=r"guest:\*\*\*\*@") as caught:
            broker.cast(qname, "ping")
        assert "secret" not in str(caught.value)
        with pytest.raises(CallTimeout):
            broker.call(qname, "ping", timeout=1)
        assert time.monotonic() - started < 4
    finally:
        broker.close()


def test_safe_url_masks_password():
    assert safe_url("rabbit://lb:s3cr3t@mq:5672/prod") == "rabbit://lb:****@mq:5672/prod"
    assert safe_url("amqp://mq:5672/") == "amqp://mq:5672/"
    assert safe_url("memory://") == "memory://"
    assert "pw" not in safe_url("amqp://a:pw@h1:5672;amqp://b:pw@h2:5672")


# --- a cluster's several nodes, quorum queues, dead letters ------------------------

def test_node_urls_split_an_openstack_cluster_url():
    assert node_urls("rabbit://u:p@h1:5672,u:q@h2:5673/vh?ssl=1") == [
        "amqp://u:p@h1:5672/vh?ssl=1", "amqp://u:q@h2:5673/vh?ssl=1"]
    # A node given without credentials takes the first node's.
    assert node_urls("rabbit://u:p@h1,h2/") == ["amqp://u:p@h1/", "amqp://u:p@h2/"]
    assert node_urls("amqp://h1") == ["amqp://h1"]
    assert node_urls("memory://") == ["memory://"]


def test_safe_url_masks_every_nodes_password():
    assert safe_url("rabbit://a:one@h1:5672,b:two@h2:5673/v") == "rabbit://a:****@h1:5672,b:****@h2:5673/v"


def test_a_dead_first_node_is_skipped_for_the_next(rabbit_vhost, qname):
    """The first node refuses connections: consumers, casts and calls go to the second."""
    cluster_url = f"rabbit://guest:guest@127.0.0.1:1,guest:guest@127.0.0.1:5672/{rabbit_vhost}"
    server, client = Broker(cluster_url), Broker(cluster_url)
    try:
        seen, record = _recorder()
        server.serve([qname], {"record": record, "echo": _echo})
        client.cast(qname, "record", n=1)
        assert seen.get(timeout=WAIT) == {"n": 1}
        assert client.call(qname, "echo", x="via node 2", timeout=WAIT) == "via node 2"
    finally:
        client.close()
        server.close()


def _queue_types(vhost: str) -> dict[str, str]:
    listed = _rabbitmqctl("-q", "list_queues", "-p", vhost, "name", "type", "--no-table-headers").stdout
    return dict(line.split() for line in listed.splitlines() if line.strip())


def test_quorum_queues_dead_letter_a_poison_message(rabbit_vhost, qname):
    """A message rejected more often than the delivery limit goes to the dead-letter
    queue, where a server logs, counts and drops it; nothing loops forever."""
    policy = QueuePolicy(quorum=True, delivery_limit=2)
    broker = Broker(_rabbit_url(rabbit_vhost), queues=policy)
    conn = kombu.Connection(_rabbit_url(rabbit_vhost).replace("rabbit://", "amqp://"))
    before = metrics.DEAD_LETTERS.labels("converge")._value.get()
    try:
        broker.cast(qname, "converge", loadbalancer_id="lb-poison")
        assert _queue_types(rabbit_vhost)[qname] == "quorum"
        assert _queue_types(rabbit_vhost)[DEAD_LETTER_QUEUE] == "quorum"
        rejected = 0
        with conn.SimpleQueue(broker._queue(qname)) as poison:
            while True:  # a consumer that always fails: reject and requeue
                try:
                    message = poison.get(timeout=2)
                except queue.Empty:
                    break
                message.reject(requeue=True)
                rejected += 1
        assert rejected == policy.delivery_limit + 1
        assert broker.serve_dead_letters() is not None
        deadline = time.monotonic() + WAIT
        while metrics.DEAD_LETTERS.labels("converge")._value.get() == before:
            assert time.monotonic() < deadline, "the dead letter was not counted"
            time.sleep(0.05)
    finally:
        conn.release()
        broker.close()
    assert Broker(_rabbit_url(rabbit_vhost)).serve_dead_letters() is None  # classic: nothing to serve
