"""How a process runs: parts with start/stop, timers, one HTTP server.

Contracts:

- A ``Part`` has ``start()`` and ``stop()``.  ``start`` may raise (the process
  then does not run); ``stop`` must not raise and may be called once more, or
  for a part whose ``start`` never ran or failed.
- A ``Process`` starts its parts in the order given and stops them in the
  reverse order: what serves callers (an HTTP server) comes last, so it stops
  first, and what others lean on (a broker, a controller) stops last.  A part
  that fails to start stops the parts already started before the error goes on.
- ``Process.run`` is the main thread's: SIGTERM and SIGINT end it cleanly;
  SIGHUP reopens moved log files (``lbaas.logs``) and runs the process's
  ``on_hangup`` callables (re-reading files such as tokens and policy), never ends it.
- A ``Timer`` runs one periodic job in a thread of its own.  A job must not
  raise; the timer catches and logs anyway, once per state change
  (``JobLog``), so an outage costs two log lines, not one traceback per pass.
- ``HttpServer`` is the one place uvicorn is started: it binds in ``start``
  (so a taken port is an error there, in the caller's thread) and serves from
  a thread; or it serves a socket bound before (``listen``), shared by workers.
- ``run_workers`` forks worker processes that each run a whole process and
  keeps them running: one that dies is started again; SIGTERM and SIGINT end
  them all, SIGHUP is passed on.  It must run before any thread is started.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import uvicorn

from lbaas import logs
from lbaas.config import ConfigError

LOG = logging.getLogger(__name__)


class Part(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


class Hook:
    """A part made of callables: ``start`` (e.g. announcing the process once it
    serves) and ``stop`` (e.g. closing a broker); either may be left out."""

    def __init__(self, start: Callable[[], None] | None = None, stop: Callable[[], None] | None = None) -> None:
        self._start = start
        self._stop = stop

    def start(self) -> None:
        if self._start is not None:
            self._start()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()


class Process:
    """Parts started in order and stopped in reverse."""

    def __init__(self, name: str, parts: Sequence[Part], on_hangup: Sequence[Callable[[], None]] = ()) -> None:
        self.name = name
        self.parts = list(parts)
        self.on_hangup = list(on_hangup)
        self._started: list[Part] = []

    def start(self) -> None:
        for part in self.parts:
            try:
                part.start()
            except BaseException:
                self._started.append(part)  # a half-started part cleans up too
                self.stop()
                raise
            self._started.append(part)

    def stop(self) -> None:
        started, self._started = self._started, []
        for part in reversed(started):
            try:
                part.stop()
            except Exception:  # a part broke its contract: the others still stop
                LOG.exception("%s: stopping %s failed", self.name, type(part).__name__)

    def run(self, until: threading.Event | None = None) -> None:
        """Start, serve until SIGTERM/SIGINT or ``until`` is set, then stop (blocks).
        SIGHUP meanwhile runs ``hangup``."""
        until = until or threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: until.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: self.hangup())
        try:
            self.start()
            # Everything loaded at start-up lives as long as the process: keep it
            # out of the collector's way, so collections stay short under load.
            gc.freeze()
            until.wait()
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


    def hangup(self) -> None:
        """Reopen log files, then run each ``on_hangup`` callable; a failing one is logged
        and the others still run (a HUP must never end a serving process)."""
        logs.reopen()
        LOG.info("%s: SIGHUP: log files reopened, re-reading configured files", self.name)
        for callback in self.on_hangup:
            try:
                callback()
            except Exception:
                LOG.exception("%s: SIGHUP: %s failed", self.name, getattr(callback, "__qualname__", callback))


class JobLog:
    """Logs one periodic job's failures and recovery once per state change: the first
    failure one WARNING with the reason, repeats at DEBUG, the recovery one INFO."""

    def __init__(self, name: str, logger: logging.Logger = LOG) -> None:
        self.name = name
        self.failing = False
        self.log = logger

    def failed(self, reason: object) -> None:
        if self.failing:
            self.log.debug("periodic %s still failing: %s", self.name, reason)
            return
        self.failing = True
        self.log.warning("periodic %s failed: %s; retrying every interval, logging the recovery",
                         self.name, _describe(reason))

    def succeeded(self) -> None:
        if self.failing:
            self.failing = False
            self.log.info("periodic %s works again", self.name)


def _describe(reason: object) -> str:
    """An exception as ``Type: message`` (the type tells a bug from an outage)."""
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
    return str(reason)


class Timer:
    """Run ``job`` every ``interval`` seconds in a thread named ``name``.

    ``interval`` may be a function giving the next delay (a backoff); after a
    failure the next run comes in ``retry`` seconds when given.  ``run_at_start``
    runs the job at once, else after the first interval.  ``wake()`` runs it now.
    The timer also ends when ``until`` (its owner's stopping event) is set.
    """

    def __init__(self, name: str, interval: float | Callable[[], float], job: Callable[[], None], *,
                 retry: float | None = None, run_at_start: bool = False,
                 until: threading.Event | None = None, log: logging.Logger = LOG) -> None:
        self.name = name
        self.interval = interval
        self.job = job
        self.retry = retry
        self.run_at_start = run_at_start
        self.joblog = JobLog(getattr(job, "__name__", name), log)
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._until = until or self._stopped
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)

    def _ending(self) -> bool:
        return self._stopped.is_set() or self._until.is_set()

    def _run(self) -> None:
        delay = 0.0 if self.run_at_start else self._interval()
        while not self._ending():
            if delay:
                self._wake.wait(delay)
            self._wake.clear()
            if self._ending():
                return
            delay = self._interval() if self._run_once() or self.retry is None else self.retry

    def _run_once(self) -> bool:
        try:
            self.job()
        except Exception as exc:
            self.joblog.failed(exc)
            return False
        self.joblog.succeeded()
        return True

    def _interval(self) -> float:
        return self.interval() if callable(self.interval) else self.interval


class HttpServer:
    """An ASGI application served by uvicorn from a thread; ``options`` go to
    ``uvicorn.Config`` (log_level, ssl_certfile, timeout_graceful_shutdown...).

    ``start`` raises ConfigError when the address cannot be bound (one line, as the
    command's contract wants) and RuntimeError when the application does not start
    (its lifespan failed, or ``timeout`` passed)."""

    def __init__(self, name: str, app: Any, host: str, port: int, timeout: float | None = None,
                 *, sock: socket.socket | None = None, **options: Any) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.timeout = timeout
        self.sock = sock
        # uvicorn's own logging config would give its loggers handlers and formats of their
        # own: without it their records reach the root logger's (``lbaas.logs``) instead.
        options.setdefault("log_config", None)
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        sock = self.sock or listen(self.name, self.host, self.port)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                        name=self.name, daemon=True)
        self._thread.start()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while not self.server.started:
            if not self._thread.is_alive() or (deadline is not None and time.monotonic() > deadline):
                self.stop()
                sock.close()
                raise RuntimeError(f"the {self.name} on {self.host}:{self.port} did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)


def listen(name: str, host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port``; ConfigError (one line) when it cannot be bound."""
    try:
        return socket.create_server((host, port), family=_family(host))
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(f"the {name} cannot listen on {host}:{port}: {reason}") from None


_WORKER_MIN_LIFE = 5.0  # s: a worker that fails sooner is broken, not unlucky: give up


def run_workers(name: str, count: int, work: Callable[[], int]) -> int:
    """Fork ``count`` workers that each run ``work`` (returning an exit code) and keep
    them running until SIGTERM or SIGINT, which are passed on; so is SIGHUP. A worker
    that exits or is killed is started again, unless it failed by itself (a positive exit
    code) within _WORKER_MIN_LIFE s: then all stop and the exit code is 1. Returns 0 when
    every worker has ended."""
    children: dict[int, tuple[int, float]] = {}  # pid -> (slot, started)
    stopping = False

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:
            _run_worker(work)
        children[pid] = (slot, time.monotonic())

    def forward(sig: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = stopping or sig != signal.SIGHUP
        for pid in list(children):
            _signal_quietly(pid, sig)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    for slot in range(count):
        spawn(slot)
    LOG.info("%s: %d workers, pids %s", name, count, " ".join(map(str, children)))
    code = 0
    while children:
        pid, status = os.wait()
        status = os.waitstatus_to_exitcode(status)
        slot, started = children.pop(pid, (-1, 0.0))
        if slot < 0 or stopping:
            continue
        if status > 0 and time.monotonic() - started < _WORKER_MIN_LIFE:
            LOG.error("%s worker %d (pid %d) exited at once (code %d); stopping", name, slot, pid, status)
            code = 1
            forward(signal.SIGTERM, None)
            continue
        LOG.warning("%s worker %d (pid %d) exited (code %d); starting it again", name, slot, pid, status)
        spawn(slot)
    return code


def _run_worker(work: Callable[[], int]) -> None:
    """The child's side of a fork: run ``work`` and leave, never returning to the parent's code."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    code = 1
    try:
        code = work()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except ConfigError as exc:
        LOG.error("%s", exc)
    except BaseException:
        LOG.exception("worker failed")
    finally:
        logging.shutdown()
        os._exit(code)


def _signal_quietly(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:  # it has just exited; the wait loop collects it
        pass


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for servers that pick their own)."""
    with socket.socket(_family(host)) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
