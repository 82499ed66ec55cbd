"""The lifecycle core: start order, reverse stop, timers that log once per state change."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

import httpx
import pytest
from cryptography.fernet import Fernet

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


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as listing:
        return {int(child) for child in listing.read().split()}


def test_server_workers_share_one_port_are_restarted_and_stop_together(tmp_path) -> None:
    """[api] workers = 2: two whole servers behind one port; one killed is started
    again; SIGTERM to the parent ends them all."""
    db = tmp_path / "lbaas.sqlite"
    conf = tmp_path / "lbaas.conf"
    port = free_port()
    conf.write_text(f"""[DEFAULT]\ntransport_url = memory://\n[api]\nauth_strategy = noauth\nbind_port = {port}
workers = 2\n[database]\nconnection = sqlite:///{db}\n[certificates]\nencryption_key = {Fernet.generate_key().decode()}
""", encoding="utf-8")
    lbaas = [sys.executable, "-m", "lbaas.cli"]
    subprocess.run([*lbaas, "db", "upgrade", "--config-file", str(conf)], check=True, capture_output=True)
    log = open(tmp_path / "server.log", "wb")
    parent = subprocess.Popen([*lbaas, "server", "--config-file", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v2/lbaas/loadbalancers"
    try:
        wait_for(lambda: len(_children(parent.pid)) == 2, 60, 0.1, "two workers")
        wait_for(lambda: httpx.get(url, timeout=2).status_code == 200, 60, 0.1, "the API",
                 ignore=(httpx.HTTPError,))
        first = _children(parent.pid)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(_children(parent.pid)) == 2 and victim not in _children(parent.pid), 60, 0.1,
                 "a worker started again")
        assert all(httpx.get(url, timeout=5).status_code == 200 for _ in range(10))
        workers = _children(parent.pid)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == 0
        for pid in workers:
            assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    finally:
        if parent.poll() is None:
            parent.kill()
        log.close()
    assert "exited (code -9); starting it again" in (tmp_path / "server.log").read_text()
