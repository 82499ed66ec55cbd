"""RPC over AMQP with kombu: fire-and-forget casts, request/reply calls and
competing consumers.

Wire format: a JSON body ``{"method": str, "args": {...}}``; a reply is
``{"result": ...}`` or ``{"error": {"type": str, "message": str}}``, matched
to its call by the ``correlation_id`` property and routed by ``reply_to``.

Threads: kombu connections are not thread-safe, so every consumer and the
reply listener own a connection, and publishers borrow one from a pool.

A cluster: ``rabbit://u:p@h1:5672,u:p@h2:5673/vhost`` names several nodes;
every new connection goes to the node that last worked, and a connection
that fails moves every later one on to the next node.  With a
``QueuePolicy(quorum=True)`` the durable queues are quorum queues
(replicated): a message redelivered more than ``delivery_limit`` times is
dead-lettered to ``DEAD_LETTER_QUEUE``, where ``Broker.serve_dead_letters``
logs and counts it instead of letting it loop.  Reply queues stay exclusive
and transient.  A handler that fails on a transient error (the database is
away) is retried in place, holding its message, so an outage does not use
up the delivery limit.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any

import orjson
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.exceptions import OperationalError
from kombu.messaging import Consumer as KombuConsumer

from lbaas import metrics
from lbaas.constants import DEAD_LETTER_EXCHANGE, DEAD_LETTER_QUEUE, EXCHANGE, REPLY_EXCHANGE, REPLY_QUEUE_PREFIX

if TYPE_CHECKING:
    from lbaas.config import Config

__all__ = ["Broker", "CallTimeout", "broker_for", "Consumer", "Handler", "QueuePolicy", "RemoteError", "Requeue",
           "node_urls", "safe_url", "stop_all"]

log = logging.getLogger(__name__)

Handler = Callable[..., Any]

_POLL = 0.05            # s a loop blocks in drain_events while it holds unacked work: bounds ack latency
_IDLE_POLL = 0.5        # s it blocks when idle (a delivery wakes it at once): bounds stop latency, idle CPU
_MEMORY_POLL = 0.01     # s between polls of the in-memory transport (it cannot block)
_BACKOFF = (0.5, 10.0)  # first and largest reconnect/retry delay, s
_STABLE = 10.0          # s a connection must have lived for the backoff to start over
_SERVE_WAIT = 5.0       # s serve() waits for the first consume before returning anyway
_WAKE = object()        # put in a consumer's inbox to end its worker's wait at once
_HOLD = 60.0            # s a handler failing on transient errors keeps its message before requeueing it
# The in-memory transport creates queues and exchanges with unlocked
# check-then-set; two threads declaring the same one could lose messages.
_MEMORY_DECLARE_LOCK = threading.Lock()


class RemoteError(Exception):
    """The peer's handler raised; ``exc_type`` and ``message`` describe it."""

    def __init__(self, exc_type: str, message: str) -> None:
        super().__init__(f"{exc_type}: {message}")
        self.exc_type = exc_type
        self.message = message


class CallTimeout(Exception):
    """No reply arrived within the call's timeout."""


class Requeue(Exception):
    """Raised by a handler to have its message redelivered later."""


@dataclass(frozen=True)
class QueuePolicy:
    """How the durable (controller and agent) queues are declared."""
    quorum: bool = False       # replicated quorum queues instead of classic ones
    delivery_limit: int = 10   # quorum only: deliveries before a message is dead-lettered


def safe_url(url: str) -> str:
    """``url`` with every password replaced by ``****``; for logs. Must not raise."""
    return re.sub(r"(://|,)([^:/@;,]*):[^@/]*@", r"\1\2:****@", str(url))


def node_urls(url: str) -> list[str]:
    """One kombu URL per node of an OpenStack-style transport URL.

    ``rabbit://u:p@h1:5672,u:p@h2:5673/vhost?x=y`` names two nodes of one
    cluster sharing the vhost and query; a node without credentials takes
    the first node's.  ``rabbit://`` is what kombu calls ``amqp://``.
    """
    scheme, _, rest = url.partition("://")
    scheme = "amqp" if scheme == "rabbit" else scheme
    if scheme == "memory":
        return [url]
    rest, query_sep, query = rest.partition("?")
    nodes, path_sep, path = rest.partition("/")
    hosts = nodes.split(",")
    credentials = hosts[0].rpartition("@")[0]
    tail = path_sep + path + query_sep + query
    return [f"{scheme}://{host if '@' in host or not credentials else credentials + '@' + host}{tail}"
            for host in hosts]


class _Nodes:
    """The nodes of a cluster and the one new connections go to."""

    def __init__(self, url: str) -> None:
        self.urls = node_urls(url)
        self._current = 0

    def current(self) -> str:
        return self.urls[self._current]

    def failed(self, url: str) -> None:
        """``url`` did not answer: move on, unless another thread already did."""
        index = self.urls.index(url) if url in self.urls else -1
        if index == self._current and len(self.urls) > 1:  # a benign race: at worst one node is skipped
            self._current = (index + 1) % len(self.urls)
            log.warning("broker node %s is unreachable; moving to %s", safe_url(url),
                        safe_url(self.urls[self._current]))


def _backoff() -> Iterator[float]:
    first, largest = _BACKOFF
    return (min(first * 2 ** n, largest) for n in itertools.count())


def _error(exc_type: str, message: str) -> dict[str, Any]:
    return {"error": {"type": exc_type, "message": message}}


def _request(method: str, args: dict[str, Any]) -> bytes:
    """A request body: JSON by orjson (about 10x the standard library's speed both ways)."""
    return orjson.dumps({"method": method, "args": args})


def _parse_request(body: bytes | str) -> tuple[str, dict[str, Any]] | None:
    """``(method, args)`` of a request body, or None if it is malformed."""
    try:
        request = orjson.loads(body)
    except (TypeError, ValueError):
        return None
    if not isinstance(request, dict):
        return None
    method, args = request.get("method"), request.get("args", {})
    if not isinstance(method, str) or not isinstance(args, dict):
        return None
    return method, args


def _unpack_reply(body: bytes | str) -> Any:
    """The result carried by a reply body; raises RemoteError for an error reply."""
    try:
        reply = orjson.loads(body)
        if "result" in reply:
            return reply["result"]
        error = reply["error"]
        raise RemoteError(str(error["type"]), str(error["message"]))
    except (TypeError, ValueError, KeyError) as exc:
        raise RemoteError("MalformedReply", f"cannot read reply: {exc}") from None


def _close_quietly(conn: Connection) -> None:
    try:
        conn.release()
    except Exception:  # a dead socket may fail to close; nothing is left to free
        conn.collect()


def _drain(queue: SimpleQueue[Any]) -> Iterator[Any]:
    """What is in ``queue`` now, without waiting."""
    while True:
        try:
            yield queue.get_nowait()
        except Empty:
            return


def _poll(conn: Connection, timeout: float) -> None:
    """Wait up to ``timeout`` s for deliveries and keep AMQP heartbeats flowing."""
    try:
        conn.drain_events(timeout=timeout)
    except TimeoutError:
        pass
    conn.heartbeat_check()


class _NodeConnection(Connection):
    """A kombu connection that remembers which node of the cluster it was made for."""
    node: str = ""


class _ConnectionPool:
    """Idle publishing connections; each is lent to one thread at a time."""

    def __init__(self, factory: Callable[[], _NodeConnection]) -> None:
        self._factory = factory
        self._idle: list[_NodeConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    def acquire(self) -> _NodeConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._factory()

    def release(self, conn: _NodeConnection) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(conn)
                return
        _close_quietly(conn)

    def clear(self, *, close: bool = False) -> None:
        """Close the idle connections; with ``close``, also those released later."""
        with self._lock:
            self._closed, idle, self._idle = self._closed or close, self._idle, []
        for conn in idle:
            _close_quietly(conn)


class _Session:
    """A daemon thread that runs ``session(conn)`` on fresh connections,
    reconnecting with backoff, until ``stopping`` is set."""

    def __init__(self, broker: Broker, name: str) -> None:
        self.broker = broker
        self.name = name
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def session(self, conn: Connection) -> None:
        raise NotImplementedError

    @property
    def idle_poll(self) -> float:
        """How long the loop blocks when idle. The in-memory transport cannot block (it polls
        every _MEMORY_POLL anyway), so there a long wait would only slow stops down."""
        return _POLL if self.broker._memory else _IDLE_POLL

    def _run(self) -> None:
        delays = _backoff()
        while not self.stopping.is_set():
            url = self.broker._nodes.current()
            conn, started = self.broker._connection(self.broker.heartbeat, url), time.monotonic()
            try:
                conn.ensure_connection(max_retries=0)
                self.session(conn)
            except Exception as exc:  # whatever broke, this thread must go on
                self.broker._nodes.failed(url)
                if time.monotonic() - started > _STABLE:
                    delays = _backoff()
                delay, expected = next(delays), (OperationalError, *conn.connection_errors,
                                                 *conn.channel_errors)
                if not self.stopping.is_set():
                    metrics.BROKER_RECONNECTS.labels("consumer").inc()
                    log.warning("%s: no connection to %s (%s); retrying in %.1f s", self.name, safe_url(
                        url), exc, delay, exc_info=not isinstance(exc, expected))
                self.stopping.wait(delay)
            finally:
                _close_quietly(conn)


class _ReplyListener(_Session):
    """Consumes this Broker's reply queue and completes the waiting calls."""

    def __init__(self, broker: Broker) -> None:
        self.queue_name = f"{REPLY_QUEUE_PREFIX}{uuid.uuid4().hex}"
        super().__init__(broker, self.queue_name)
        self.ready = threading.Event()  # set while the reply queue is consumed
        self._waiters: dict[str, Future[bytes | str]] = {}  # dict ops are atomic

    def expect(self, correlation_id: str) -> Future[bytes | str]:
        future: Future[bytes | str] = Future()
        self._waiters[correlation_id] = future
        return future

    def forget(self, correlation_id: str) -> None:
        self._waiters.pop(correlation_id, None)

    def session(self, conn: Connection) -> None:
        channel = conn.channel()
        queue = Queue(self.queue_name, self.broker._reply_exchange, routing_key=self.queue_name,
                            exclusive=True, auto_delete=True, durable=False)
        with self.broker._declaring():
            consumer = KombuConsumer(channel, [queue], no_ack=True, on_message=self._on_reply)
        consumer.consume()
        self.ready.set()
        try:
            while not self.stopping.is_set():
                _poll(conn, self.idle_poll)
            queue(channel).delete()  # the in-memory transport never auto-deletes
        finally:
            self.ready.clear()

    def _on_reply(self, message: Any) -> None:
        future = self._waiters.pop(message.properties.get("correlation_id"), None)
        if future is None:
            log.debug("%s: dropping a reply nobody waits for", self.name)
        else:
            future.set_result(message.body)


class Consumer(_Session):
    """Serves requests from durable queues; made and started by Broker.serve().

    The connection thread receives, acks and keeps heartbeats going while a
    worker thread runs the handlers one at a time, in delivery order, so a
    slow handler does not get the connection closed for missed heartbeats.
    """

    def __init__(self, broker: Broker, queues: Sequence[Queue], handlers: Mapping[str, Handler],
                 prefetch: int, name: str) -> None:
        super().__init__(broker, name or "consumer:" + ",".join(q.name for q in queues))
        self._queues = list(queues)
        self._handlers = dict(handlers)
        self._prefetch = prefetch
        self._inbox: SimpleQueue[Any] = SimpleQueue()              # delivered, not handled
        self._outbox: SimpleQueue[tuple[Any, bool]] = SimpleQueue()  # handled: (message, requeue)
        self._grace = 5.0
        self._unsettled = 0  # delivered on this connection, not yet acked or requeued
        self.consuming = threading.Event()
        self._worker = threading.Thread(target=self._work, name=f"{self.name}:worker", daemon=True)

    def _start(self) -> None:
        self._worker.start()
        self.thread.start()

    def request_stop(self, timeout: float = 5.0) -> None:
        """Ask the threads to stop, without waiting (``stop`` waits)."""
        self._grace = timeout
        self.stopping.set()
        self._inbox.put(_WAKE)  # the worker need not wait out its poll

    def stop(self, timeout: float = 5.0) -> None:
        """Stop consuming; waits up to about ``timeout`` for a running handler.
        Unhandled prefetched messages go back to the queue. Idempotent."""
        self.request_stop(timeout)
        if self.thread.is_alive():
            self.thread.join(timeout + 1.0)
        if self.thread.is_alive():
            log.warning("%s: did not stop within %.1f s", self.name, timeout)

    @property
    def alive(self) -> bool:
        """True while both the connection and the worker thread run."""
        return self.thread.is_alive() and self._worker.is_alive()

    def session(self, conn: Connection) -> None:
        channel = conn.channel()
        channel.basic_qos(0, self._prefetch, False)
        with self.broker._declaring():
            for queue in self.broker._support_queues():
                queue(channel).declare()
            consumer = KombuConsumer(channel, self._queues, on_message=self._receive,
                                      on_decode_error=self._on_decode_error)
        consumer.consume()
        self.consuming.set()
        self._unsettled = 0
        try:
            while not self.stopping.is_set():
                self._settle(channel)
                _poll(conn, _POLL if self._unsettled else self.idle_poll)
        except Exception:
            self._clear_inbox(None)  # the broker redelivers what this channel held
            raise
        self._worker.join(self._grace)
        self._settle(channel)
        self._clear_inbox(channel)

    def _receive(self, message: Any) -> None:
        self._unsettled += 1  # the connection thread alone counts: no lock
        self._inbox.put(message)

    def _settle(self, channel: Any) -> None:
        """Ack or requeue what the worker finished (only the connection thread may)."""
        for message, requeue in _drain(self._outbox):
            if message.channel is not channel:
                continue  # received on a lost connection: the broker redelivers it
            self._unsettled -= 1
            if requeue:
                message.reject(requeue=True)
            else:
                message.ack()

    def _clear_inbox(self, channel: Any) -> None:
        # The in-memory transport drops unacked messages on close: hand them back.
        for message in _drain(self._inbox):
            if message is not _WAKE and channel is not None and message.channel is channel:
                message.reject(requeue=True)

    def _on_decode_error(self, message: Any, exc: Exception) -> None:
        log.warning("%s: dropping undecodable message: %s", self.name, exc)
        message.ack()

    def _work(self) -> None:
        while not self.stopping.is_set():
            try:
                message = self._inbox.get(timeout=_IDLE_POLL)
            except Empty:
                continue
            if message is _WAKE:
                continue
            try:
                requeue = self._handle(message)
            except Exception:  # a bug here must not kill the worker
                log.exception("%s: failed to process a message; dropping it", self.name)
                requeue = False
            self._outbox.put((message, requeue))

    def _handle(self, message: Any) -> bool:
        """Run the handler and send any reply; True means requeue the message.

        A transient failure is retried here, every ``requeue_delay`` s, for up
        to _HOLD s: requeueing at once would spin through an outage and, on a
        quorum queue, spend the delivery limit meant for poison messages."""
        reply, hold_until = self._dispatch(message), time.monotonic() + _HOLD
        while reply is None:
            metrics.REDELIVERIES.inc()
            if self.stopping.wait(self.broker._requeue_delay) or time.monotonic() > hold_until:
                return True
            reply = self._dispatch(message)
        reply_to = message.properties.get("reply_to")
        if reply_to:
            self.broker._reply(reply_to, message.properties.get("correlation_id"), reply)
        return False

    def _dispatch(self, message: Any) -> dict[str, Any] | None:
        """The reply to ``message``, or None to requeue it."""
        request = _parse_request(message.body)
        if request is None:
            log.warning("%s: dropping malformed message %.200r", self.name, message.body)
            return _error("MalformedMessage", "body is not {'method': str, 'args': dict} JSON")
        method, args = request
        handler = self._handlers.get(method)
        if handler is None:
            log.warning("%s: no handler for method %r; dropping the message", self.name, method)
            return _error("UnknownMethod", f"no handler for {method!r}")
        try:
            return {"result": handler(**_accepted(handler, args))}
        except self.broker._requeue_on as exc:
            log.warning("%s: %s will be retried: %r", self.name, method, exc)
            return None
        except Exception as exc:
            log.exception("%s: handler for %r failed", self.name, method)
            return _error(type(exc).__name__, str(exc))


class _DeadLetters(Consumer):
    """Logs and counts what the broker dead-lettered, then lets it go: running
    it again is what made it a poison message (the sweeps re-dispatch any
    change it carried)."""

    def _dispatch(self, message: Any) -> dict[str, Any] | None:
        request = _parse_request(message.body)
        method, args = request if request is not None else ("(malformed)", {})
        death = (message.headers or {}).get("x-death") or [{}]
        if death[0].get("reason") == "expired":  # an RPC nobody waits for any more: not poison
            log.debug("dropping expired %s from queue %s", method, death[0].get("queue", "?"))
            return _error("Expired", f"{method} expired")
        metrics.DEAD_LETTERS.labels(method).inc()
        # Ids only: the arguments may hold a desired state and its keys.
        log.error("dead letter: %s from queue %s (%s) dropped; load balancer %s", method,
                  death[0].get("queue", "?"), death[0].get("reason", "?"),
                  args.get("loadbalancer_id", "-"))
        return _error("DeadLettered", f"{method} was delivered too often and dropped")


class Broker:
    """Connections to one message broker, for casting, calling and serving.

    ``url``: ``amqp://`` or ``rabbit://user:pass@host:5672/vhost`` (several
    comma-separated ``user:pass@host:port`` for a cluster), or ``memory://``
    (kombu's in-process transport, shared by every Broker in the process).
    Nothing connects until first used. ``retry_timeout`` bounds how long a
    publish retries across a broker outage; a handler's transient failure is
    retried every ``requeue_delay`` s; ``queues`` says how durable queues are
    declared (the in-memory transport ignores it).
    """

    def __init__(self, url: str, *, heartbeat: float = 30.0,
                 transient: tuple[type[BaseException], ...] = (),
                 retry_timeout: float = 30.0, requeue_delay: float = 1.0,
                 queues: QueuePolicy = QueuePolicy()) -> None:
        self.url = url
        self._nodes = _Nodes(url)
        self.heartbeat = heartbeat
        self.transient = tuple(transient)
        self._requeue_on: tuple[type[BaseException], ...] = (Requeue, *self.transient)
        self._retry_timeout = retry_timeout
        self._requeue_delay = requeue_delay
        self._memory = self.url.startswith("memory://")
        self._queue_arguments = ({"x-queue-type": "quorum", "x-delivery-limit": queues.delivery_limit,
                                  "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE}
                                 if queues.quorum and not self._memory else None)
        self._exchange = Exchange(EXCHANGE, "topic", durable=True)
        self._reply_exchange = Exchange(REPLY_EXCHANGE, "direct", durable=True)
        # Publishing connections run no loop that could answer heartbeats;
        # publisher confirms with a timeout detect a dead one instead.
        self._pool = _ConnectionPool(lambda: self._connection(0))
        self._lock = threading.Lock()
        self._consumers: list[Consumer] = []
        self._listener: _ReplyListener | None = None
        self._closed = False

    def cast(self, queue: str, method: str, **args: Any) -> None:
        """Send ``method(**args)`` to ``queue`` without waiting for it to run.

        The queue is declared durable and the message persistent, so it waits
        for a consumer. Raises kombu's OperationalError if the broker stays
        unreachable for ``retry_timeout`` s, TypeError if ``args`` are not JSON.
        """
        self._check_open()
        self._publish(self._exchange, queue, _request(method, args),
                      declare=[*self._support_queues(), self._queue(queue)], delivery_mode=2,
                      deadline=time.monotonic() + self._retry_timeout)

    def call(self, queue: str, method: str, *, timeout: float = 10.0, **args: Any) -> Any:
        """Run ``method(**args)`` on a consumer of ``queue`` and return its result.

        Raises RemoteError if the handler raised, CallTimeout if no reply came
        within ``timeout`` s (never waits longer). Thread-safe. The request
        expires in the queue after ``timeout``: nobody would read the answer.
        """
        self._check_open()
        deadline = time.monotonic() + timeout
        listener = self._replies()
        correlation_id = uuid.uuid4().hex
        future = listener.expect(correlation_id)
        try:
            if not listener.ready.wait(timeout):
                raise TimeoutError
            self._publish(self._exchange, queue, _request(method, args),
                          declare=[*self._support_queues(), self._queue(queue)], delivery_mode=1,
                          deadline=deadline,
                          reply_to=listener.queue_name, correlation_id=correlation_id,
                          expiration=timeout)
            body = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except (TimeoutError, OperationalError):
            raise CallTimeout(f"no reply from {queue} to {method!r} within {float(timeout)} s") from None
        finally:
            listener.forget(correlation_id)
        return _unpack_reply(body)

    def serve(self, queues: Sequence[str], handlers: Mapping[str, Handler], *,
              prefetch: int = 16, name: str = "") -> Consumer:
        """Start a daemon Consumer running ``handlers[method](**args)`` for
        messages on ``queues``; returns once it consumes (or after a few
        seconds if the broker is down: it keeps trying in the background)."""
        return self._start_consumer(Consumer(self, [self._queue(q) for q in queues], handlers,
                                             prefetch, name))

    def serve_dead_letters(self) -> Consumer | None:
        """Start a consumer that logs, counts and drops dead-lettered messages;
        None when queues are classic (nothing is ever dead-lettered)."""
        if not self._queue_arguments:
            return None
        return self._start_consumer(_DeadLetters(self, self._support_queues(), {}, 16, "dead-letters"))

    def _start_consumer(self, consumer: Consumer) -> Consumer:
        self._check_open()
        with self._lock:
            self._consumers.append(consumer)
        consumer._start()
        consumer.consuming.wait(_SERVE_WAIT)
        return consumer

    def close(self) -> None:
        """Stop consumers and the reply listener and close connections. Idempotent."""
        with self._lock:
            self._closed = True
            consumers, self._consumers = self._consumers, []
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stopping.set()
        stop_all(consumers)
        if listener is not None:
            listener.thread.join(5.0)
        self._pool.clear(close=True)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("Broker is closed")

    def _connection(self, heartbeat: float, url: str | None = None) -> _NodeConnection:
        """A connection (not yet open) to ``url``, by default the current node."""
        options = {"polling_interval": _MEMORY_POLL} if self._memory else {"confirm_publish": True}
        conn = _NodeConnection(url or self._nodes.current(), heartbeat=heartbeat, transport_options=options)
        conn.node = url or self._nodes.current()  # which node to give up on if it fails
        return conn

    def _declaring(self) -> contextlib.AbstractContextManager[Any]:
        return _MEMORY_DECLARE_LOCK if self._memory else contextlib.nullcontext()

    def _queue(self, name: str) -> Queue:
        return Queue(name, self._exchange, routing_key=name, durable=True,
                     queue_arguments=self._queue_arguments)

    def _support_queues(self) -> list[Queue]:
        """Queues that must exist before any durable queue is used: the dead-letter
        queue (a dead letter sent to an exchange bound to nothing is lost)."""
        if not self._queue_arguments:
            return []
        return [Queue(DEAD_LETTER_QUEUE, Exchange(DEAD_LETTER_EXCHANGE, "fanout", durable=True),
                      routing_key=DEAD_LETTER_QUEUE, durable=True,
                      queue_arguments={"x-queue-type": "quorum"})]

    def _replies(self) -> _ReplyListener:
        with self._lock:
            if self._listener is None:
                self._listener = _ReplyListener(self)
                self._listener.thread.start()
            return self._listener

    def _reply(self, reply_to: str, correlation_id: str | None, reply: dict[str, Any]) -> None:
        """Publish ``reply`` to a caller. Must not raise: the caller times out instead."""
        try:
            body = orjson.dumps(reply)
        except TypeError as exc:  # orjson's encode error is one
            body = orjson.dumps(_error("TypeError", f"result is not JSON-serialisable: {exc}"))
        try:
            self._publish(self._reply_exchange, reply_to, body, declare=[self._reply_exchange],
                          delivery_mode=1, deadline=time.monotonic() + self._retry_timeout,
                          correlation_id=correlation_id)
        except Exception:
            log.exception("cannot send reply to %s", reply_to)

    def _publish(self, exchange: Exchange, routing_key: str, body: bytes, *,
                 deadline: float, declare: list[Any], **properties: Any) -> None:
        """Publish one JSON ``body``, retrying with backoff on connection loss until
        ``deadline``, then raising OperationalError."""
        delays = itertools.chain([0.0], _backoff())  # a stale pooled connection: retry at once
        while True:
            conn = self._pool.acquire()
            try:
                self._publish_once(conn, exchange, routing_key, body, deadline, declare, properties)
            except Exception as exc:
                _close_quietly(conn)  # its channel state is unknown now
                self._nodes.failed(conn.node)
                retryable = (OperationalError, *conn.recoverable_connection_errors,
                             *conn.recoverable_channel_errors)
                if not isinstance(exc, retryable):
                    raise
                self._pool.clear()  # the broker went away: the idle connections are dead too
                delay = next(delays)
                if time.monotonic() + delay >= deadline:
                    raise OperationalError(f"cannot publish to {routing_key} on "
                                           f"{safe_url(conn.node)}: {exc}") from exc
                metrics.BROKER_RECONNECTS.labels("publisher").inc()
                log.warning("publish to %s failed (%s); retrying in %.1f s", routing_key, exc, delay)
                time.sleep(delay)
            else:
                self._pool.release(conn)
                return

    def _publish_once(self, conn: _NodeConnection, exchange: Exchange, routing_key: str,
                      body: bytes, deadline: float, declare: list[Any], properties: dict[str, Any]) -> None:
        conn.ensure_connection(max_retries=0)
        wait = max(deadline - time.monotonic(), 0.1)
        with self._declaring():
            conn.Producer().publish(body, exchange=exchange, routing_key=routing_key,
                                    content_type="application/json", content_encoding="utf-8",
                                    declare=declare, timeout=wait, confirm_timeout=wait,
                                    **properties)


def stop_all(consumers: Sequence[Consumer]) -> None:
    """Stop ``consumers`` together: each waits out at most one poll, not one after another."""
    for consumer in consumers:
        consumer.request_stop()
    for consumer in consumers:
        consumer.stop()


def broker_for(config: Config, transient: tuple[type[BaseException], ...] = ()) -> Broker:
    """The Broker a process's configuration describes ([DEFAULT] transport_url, [messaging])."""
    queues = QueuePolicy(config.messaging.quorum_queues, config.messaging.delivery_limit)
    return Broker(config.default.transport_url, transient=transient, queues=queues)


def _accepted(handler: Callable[..., Any], args: dict[str, Any]) -> dict[str, Any]:
    """``args`` without the keywords ``handler`` does not take: a newer peer may send optional
    fields this version does not know (a tolerant reader makes rolling upgrades safe); a
    missing required one still fails in the handler."""
    names = _parameters(handler)
    if names is None:
        return args
    unknown = set(args) - names
    if unknown:
        log.debug("ignoring arguments %s this version does not know", ", ".join(sorted(unknown)))
    return {key: value for key, value in args.items() if key in names}


@functools.lru_cache(maxsize=256)
def _parameters(handler: Callable[..., Any]) -> frozenset[str] | None:
    """The keyword names ``handler`` takes; None when it takes ``**kwargs``."""
    parameters = inspect.signature(handler).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters)
