"""Low-level tools of the data-plane benchmark (bench_dataplane.py): a raw
HTTP GET on a fresh connection, a background VIP poller, load clients and
the memory of the HAProxy processes under a device's state_dir.

Traffic goes to 127.0.0.0/8 only (the VIPs of the cluster subnet and the
back ends on 127.0.0.1).
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def _loopback(host: str) -> str:
    if not host.startswith("127."):
        raise ValueError(f"{host} is not a loopback address; this benchmark only talks to 127.0.0.0/8")
    return host


# --- one request on a fresh connection ------------------------------------------

def get_once(host: str, port: int, timeout: float = 2.0) -> tuple[int | None, str]:
    """GET / on a new connection (``Connection: close``): (status, body), or
    (None, error text) when no complete HTTP answer came back."""
    try:
        with socket.create_connection((_loopback(host), port), timeout=timeout) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\nConnection: close\r\n\r\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    data = b"".join(chunks)
    head, sep, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1]) if sep else None
    except (IndexError, ValueError):
        status = None
    if status is None:
        return None, f"incomplete answer ({len(data)} bytes)"
    return status, body.decode(errors="replace")


# --- the VIP poller ---------------------------------------------------------------

@dataclass
class Record:
    sent: float       # monotonic, just before connecting
    received: float   # monotonic, after the answer (or the error)
    status: int | None
    body: str


class Poller:
    """One thread: a GET on a fresh connection every ``interval`` s; every
    answer is kept (with its monotonic send and receive times)."""

    def __init__(self, host: str, port: int, interval: float = 0.005, timeout: float = 2.0) -> None:
        self.host, self.port, self.interval, self.timeout = _loopback(host), port, interval, timeout
        self.records: list[Record] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"poll-{host}:{port}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            status, body = get_once(self.host, self.port, self.timeout)
            self.records.append(Record(sent, time.monotonic(), status, body))
            self._stop.wait(self.interval)

    def since(self, t0: float) -> list[Record]:
        return [r for r in list(self.records) if r.sent >= t0]

    def wait(self, check: Callable[[list[Record]], float | None], timeout: float) -> float:
        """Poll ``check(records)`` (on the records so far) until it returns a
        time; raises TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            found = check(list(self.records))
            if found is not None:
                return found
            if time.monotonic() > deadline:
                tail = [(r.status, r.body[:20]) for r in self.records[-8:]]
                raise TimeoutError(f"traffic on {self.host}:{self.port} did not change within {timeout} s; "
                                   f"last answers {tail}")
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def first_answer(t0: float, body: str | None = None) -> Callable[[list[Record]], float | None]:
    """When the first 200 (from ``body`` if given) sent at or after ``t0`` came back."""
    def check(records: list[Record]) -> float | None:
        for r in records:
            if r.sent >= t0 and r.status == 200 and (body is None or r.body == body):
                return r.received
        return None
    return check


def gone(t0: float, body: str, settle: int = 10) -> Callable[[list[Record]], float | None]:
    """When ``body`` stopped answering: the send time of the first request
    after its last answer, once ``settle`` answers in a row (all 200, none
    from ``body``) have followed.  With round robin over two members the
    drained one would show up every other request, so 10 in a row is proof."""
    def check(records: list[Record]) -> float | None:
        run: list[Record] = []
        for r in records:
            if r.sent < t0:
                continue
            if r.status == 200 and r.body != body:
                run.append(r)
            else:
                run = []
        if len(run) >= settle:
            return run[0].sent
        return None
    return check


# --- load clients -----------------------------------------------------------------

@dataclass
class LoadClient:
    """Sequential GETs on the VIP from one thread until ``stop()``.

    ``keepalive``: one persistent HTTP/1.1 connection, opened again after
    each failure (no retry: a failed request counts); otherwise one fresh
    connection per request.  ``pause``: seconds between requests."""

    host: str
    port: int
    keepalive: bool = False
    pause: float = 0.002
    requests: int = 0
    failures: int = 0
    bodies: dict[str, int] = field(default_factory=dict)
    errors: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        _loopback(self.host)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load-{self.port}-{self.keepalive}", daemon=True)

    def start(self) -> "LoadClient":
        self._thread.start()
        return self

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            status: int | None
            if self.keepalive:
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
                    conn.request("GET", "/", headers={"Host": "vip"})
                    response = conn.getresponse()
                    status, body = response.status, response.read().decode(errors="replace")
                    if response.will_close:
                        conn.close()
                        conn = None
                except (OSError, http.client.HTTPException) as exc:
                    status, body = None, f"{type(exc).__name__}: {exc}"
                    if conn is not None:
                        conn.close()
                    conn = None
            else:
                status, body = get_once(self.host, self.port, timeout=5)
            self.requests += 1
            if status == 200:
                self.bodies[body] = self.bodies.get(body, 0) + 1
            else:
                self.failures += 1
                if len(self.errors) < 50:
                    self.errors.append((time.monotonic(), f"{status}: {body[:120]}"))
            if self.pause:
                self._stop.wait(self.pause)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


# --- processes and memory ---------------------------------------------------------

def pids_under(state_dir: str) -> list[int]:
    """Live (not zombie) processes whose command line mentions ``state_dir``:
    the HAProxy masters and workers a device service started there."""
    needle = state_dir.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "cmdline").read_bytes():
                continue
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (from /proc/<pid>/status) and Pss, Private_Clean+Private_Dirty
    (from /proc/<pid>/smaps_rollup) in KiB; missing values are left out."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                out["rss"] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        private = 0
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key == "Pss":
                out["pss"] = int(rest.split()[0])
            elif key in ("Private_Clean", "Private_Dirty"):
                private += int(rest.split()[0])
        out["private"] = private
    except (OSError, ValueError, IndexError):
        pass
    return out


def memory_of(pids: list[int]) -> dict[str, int]:
    """Sums over ``pids`` (KiB) and how many were read."""
    total = {"processes": 0, "rss": 0, "pss": 0, "private": 0}
    for pid in pids:
        values = memory_kib(pid)
        if "rss" not in values:
            continue  # gone meanwhile
        total["processes"] += 1
        for key in ("rss", "pss", "private"):
            total[key] += values.get(key, 0)
    return total


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(x) for x in (task / "children").read_text().split())
        except OSError:
            pass
    return out


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def kill_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
