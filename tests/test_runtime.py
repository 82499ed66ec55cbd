"""The lifecycle core: start order, reverse stop, timers that log once per state change."""

from __future__ import annotations

import logging
import threading

import httpx
import pytest

from lbaas.config import ConfigError
from lbaas.runtime import Hook, HttpServer, Process, Timer
from lbaas.testing.polling import free_port, wait_for


def test_parts_start_in_order_and_stop_in_reverse_also_when_one_fails() -> None:
    events: list[str] = []

    def part(name: str, fail: bool = False) -> Hook:
        def start() -> None:
            events.append(f"start {name}")
            if fail:
                raise RuntimeError(name)
        return Hook(start=start, stop=lambda: events.append(f"stop {name}"))

    process = Process("p", [part("a"), part("b")])
    process.start()
    process.stop()
    process.stop()  # a second stop does nothing
    assert events == ["start a", "start b", "stop b", "stop a"]
    events.clear()
    with pytest.raises(RuntimeError):
        Process("p", [part("a"), part("b", fail=True), part("c")]).start()
    assert events == ["start a", "start b", "stop b", "stop a"]


def test_a_failing_job_warns_once_then_debug_then_one_recovery(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="test.timer")
    outcomes = iter([False, False, False, True, True])
    done = threading.Event()

    def job() -> None:
        try:
            ok = next(outcomes)
        except StopIteration:
            done.set()
            return
        if not ok:
            raise TimeoutError("no reply")

    timer = Timer("t", 0.01, job, run_at_start=True, log=logging.getLogger("test.timer"))
    timer.start()
    assert done.wait(5)
    timer.stop()
    levels = [r.levelname for r in caplog.records]
    assert levels == ["WARNING", "DEBUG", "DEBUG", "INFO"]
    assert "job failed: TimeoutError: no reply" in caplog.records[0].getMessage()


def test_a_timer_wakes_early_and_ends_with_its_owner() -> None:
    runs: list[int] = []
    owner = threading.Event()
    timer = Timer("t", 60, lambda: runs.append(1), until=owner)
    timer.start()
    timer.wake()
    wait_for(lambda: runs, 5, what="the woken run")
    owner.set()
    timer.wake()
    timer.stop()
    assert runs == [1] and not timer._thread.is_alive()  # type: ignore[union-attr]


def test_http_server_serves_and_a_taken_port_is_one_line() -> None:
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]  # the smallest ASGI app
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    port = free_port()
    server = HttpServer("test server", app, "127.0.0.1", port, lifespan="off", log_level="warning")
    server.start()
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 204
        with pytest.raises(ConfigError, match=rf"the other cannot listen on 127.0.0.1:{port}: Address already in use"):
            HttpServer("other", app, "127.0.0.1", port, lifespan="off").start()
    finally:
        server.stop()
