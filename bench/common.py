"""What every benchmark shares: statistics, results, machine facts, an API
server in its own process, temporary databases, HTTP clients and polling.

Every figure that is a latency is in milliseconds; every rate is per second.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent

# Benchmarks measure the control plane, not the tenant limits: no write rate limit, no quotas.
UNLIMITED_API = "write_rate_limit = 0"
UNLIMITED_QUOTAS = "[quotas]\n" + "\n".join(
    f"default_{kind}_quota = -1" for kind in ("load_balancer", "listener", "pool", "member", "health_monitor"))
RESULTS = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lbaas.testing.databases import TempDatabase  # noqa: E402  (creates and drops a database of its own)
from lbaas.testing.polling import free_port  # noqa: E402

#: Other people's work using more than this many of the 2 cores during a
#: run makes its figures pessimistic (flagged BUSY in the table and JSON).
BUSY_FOREIGN_CORES = 0.15

#: The poll interval when waiting for ACTIVE: short, so that waiting adds
#: little to a measured create-to-ACTIVE time (it adds load instead).
POLL = 0.005


# --- statistics ------------------------------------------------------------------

def percentile(values: Iterable[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100) of ``values``."""
    data = sorted(values)
    if not data:
        return float("nan")
    if len(data) == 1:
        return data[0]
    k = (len(data) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """n, p50, p95, p99, mean and max of durations given in seconds, as ms."""
    ms = [s * 1000.0 for s in seconds]
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "p50": percentile(ms, 50), "p95": percentile(ms, 95), "p99": percentile(ms, 99),
            "mean": statistics.fmean(ms), "max": max(ms)}


def median(values: Iterable[float]) -> float:
    data = [v for v in values if v == v]  # drop NaN
    return statistics.median(data) if data else float("nan")


def median_of(rounds: list[dict[str, float]], key: str) -> float:
    return median(r[key] for r in rounds if key in r)


# --- results ---------------------------------------------------------------------

SERVICES = ("postgres", "beam.smp", "mariadbd", "epmd", "erl_child_setup", "inet_gethost")


def _ticks(path: str, children: bool) -> int:
    with open(path) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)


def cpu_accounts() -> dict[str, float]:
    """CPU seconds so far: the whole machine (busy), this process with its
    reaped children (every benchmark reaps the servers and agents it
    starts), and the shared services (PostgreSQL, RabbitMQ, MariaDB,
    with their reaped children)."""
    hz = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as handle:
        cpu = [int(x) for x in handle.readline().split()[1:]]
    busy = sum(cpu[:8]) - cpu[3] - cpu[4]  # all but idle and iowait
    services = 0
    for pid in pids_named(*SERVICES):
        try:
            services += _ticks(f"/proc/{pid}/stat", children=True)
        except (OSError, IndexError, ValueError):
            pass
    return {"machine": busy / hz, "mine": _ticks("/proc/self/stat", children=True) / hz,
            "services": services / hz, "wall": time.monotonic()}


def foreign_cores(start: dict[str, float], end: dict[str, float]) -> float:
    """Cores used by other people's work (neither this run nor the shared services) between two accounts."""
    wall = max(end["wall"] - start["wall"], 1e-6)
    other = (end["machine"] - start["machine"]) - (end["mine"] - start["mine"]) - (end["services"] - start["services"])
    return max(other, 0.0) / wall


def cpu_share(seconds: float = 0.4) -> float:
    """The share of one core a busy thread gets for ``seconds``: about 1.0
    on a quiet machine, less when neighbours compete for the cores."""
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    while time.perf_counter() - wall0 < seconds:
        sum(range(1000))
    return (time.thread_time() - cpu0) / (time.perf_counter() - wall0)


class Result:
    """Rows of one benchmark: printed as a table and written as JSON,
    with how busy the machine was at the start and at the end."""

    def __init__(self, name: str, quick: bool) -> None:
        self.name = name
        self.quick = quick
        self.rows: list[dict[str, Any]] = []
        self.details: dict[str, Any] = {}
        self.notes: list[str] = []
        self.started = time.time()
        self.busy: dict[str, Any] = {"loadavg_start": os.getloadavg()[0]}
        self._accounts = cpu_accounts()

    def finish(self) -> None:
        """Record how much CPU other people's work took during the run."""
        end = cpu_accounts()
        start = self._accounts
        self.busy.update(loadavg_end=os.getloadavg()[0], loadavg_1_5_15=os.getloadavg(),
                         foreign_cores=foreign_cores(start, end),
                         services_cores=(end["services"] - start["services"]) / (end["wall"] - start["wall"]),
                         mine_cores=(end["mine"] - start["mine"]) / (end["wall"] - start["wall"]))

    def add(self, case: str, metric: str, value: float, unit: str, *, target: str | None = None,
            met: bool | None = None, **extra: Any) -> None:
        self.rows.append({"case": case, "metric": metric, "value": value, "unit": unit,
                          "target": target, "met": met, **extra})

    def note(self, text: str) -> None:
        self.notes.append(text)

    def document(self) -> dict[str, Any]:
        return {"benchmark": self.name, "quick": self.quick, "commit": code_version(),
                "started": dt.datetime.fromtimestamp(self.started, dt.timezone.utc).isoformat(),
                "duration_s": round(time.time() - self.started, 1), "machine": machine(),
                "busy": self.busy, "rows": self.rows, "notes": self.notes, "details": self.details}

    def save(self) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        path.write_text(json.dumps(self.document(), indent=1, default=str) + "\n", encoding="utf-8")
        return path

    def table(self) -> str:
        head = ("case", "metric", "value", "target", "met")
        lines = [[r["case"], r["metric"], describe(r), r["target"] or "",
                  "" if r["met"] is None else ("yes" if r["met"] else "NO")] for r in self.rows]
        widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
        out = [f"== {self.name} ==" + ("  (quick)" if self.quick else ""),
               "  ".join(h.ljust(w) for h, w in zip(head, widths)),
               "  ".join("-" * w for w in widths)]
        out += ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)) for line in lines]
        out += [f"  note: {n}" for n in self.notes]
        b = self.busy
        if "foreign_cores" in b:
            noisy = b["foreign_cores"] > BUSY_FOREIGN_CORES
            out.append(f"  machine: this run {b['mine_cores']:.2f} cores, services (PostgreSQL, RabbitMQ, MariaDB) "
                       f"{b['services_cores']:.2f}, other work {b['foreign_cores']:.2f} cores"
                       + ("  ** BUSY: others used the machine, figures pessimistic **" if noisy else ""))
        return "\n".join(out)


def describe(row: dict[str, Any]) -> str:
    """A row's value with its spread (p95, p99) and single runs, when recorded."""
    extra = [f"{key} {_fmt(row[key], row['unit'])}" for key in ("p95", "p99") if key in row]
    if "each" in row:
        extra.append("runs " + ", ".join(_fmt(x, row["unit"]) for x in row["each"]))
    return _fmt(row["value"], row["unit"]) + (f" ({'; '.join(extra)})" if extra else "")


def _fmt(value: float, unit: str) -> str:
    if value is None or value != value:
        return "n/a"
    if unit == "x":
        return f"{value:.2f}x"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    if abs(value) >= 10:
        return f"{value:.1f} {unit}"
    return f"{value:.2f} {unit}"


def code_version() -> str:
    """The commit measured, with "+changes" when lbaas/ differs from it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+changes" if git("status", "--porcelain", "--", "lbaas") else "")


_MACHINE: dict[str, Any] | None = None


def machine() -> dict[str, Any]:
    """The facts that make a figure comparable: cores, CPU, versions, load."""
    global _MACHINE
    if _MACHINE is None:
        def run(*cmd: str) -> str:
            try:
                return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                return "unknown"
        cpu = "unknown"
        try:
            cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                       if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        import sqlalchemy
        _MACHINE = {
            "cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "sqlalchemy": sqlalchemy.__version__,
            "sqlite": __import__("sqlite3").sqlite_version,
            "postgresql": run("psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "show server_version"),
            "mariadb": run("mysql", "-h127.0.0.1", "-uroot", "-N", "-e", "select version()"),
            "rabbitmq": run("rabbitmqctl", "-q", "version"),
        }
    return {**_MACHINE, "loadavg": os.getloadavg()}


# --- processes -------------------------------------------------------------------

def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def pids_named(*names: str) -> list[int]:
    """Processes whose command name is one of ``names`` (read-only: for CPU accounting)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as handle:
                    if handle.read().strip() in names:
                        found.append(int(entry))
            except OSError:
                pass
    return found


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM a process we started (its own process group), then SIGKILL."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def wait_http(url: str, proc: subprocess.Popen, what: str, log: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready after {timeout} s; see {log}")


class ServerProcess:
    """``lbaas server`` in its own process: noop provider, token auth on."""

    def __init__(self, workdir: str, db_url: str, *, extra: str = "",
                 projects: Iterable[str] = ("bench-a", "bench-b"),
                 launcher: list[str] | None = None) -> None:
        from lbaas.api.auth import create_token
        self.workdir = workdir
        token_file = os.path.join(workdir, "tokens.json")
        self.tokens = {"admin": create_token(token_file, "admin", "admin")}
        for project in projects:
            self.tokens[project] = create_token(token_file, project, "member")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = os.path.join(workdir, "server.ini")
        with open(self.config, "w", encoding="utf-8") as handle:
            handle.write(f"""[DEFAULT]
debug = false
log_file = {workdir}/server.log

[api]
bind_port = {self.port}
token_file = {token_file}
{UNLIMITED_API}

[database]
connection = {db_url}

[vip_subnets]
bench = 10.0.0.0/8

{UNLIMITED_QUOTAS}
{extra}
""")
        self.log = os.path.join(workdir, "server.log")
        # ``launcher``: another way to start the same CLI (profiling, experiments).
        argv = [sys.executable, *(launcher or ["-m", "lbaas.cli"]), "server", "--config-file", self.config]
        self.proc = subprocess.Popen(argv,
                                     cwd=str(ROOT), stdout=open(os.path.join(workdir, "server.out"), "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_http(self.url + "/", self.proc, "lbaas server", self.log)
        except Exception:
            self.stop()
            raise

    def cpu(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def client(self, token: str = "admin") -> httpx.Client:
        return client(self.url, self.tokens.get(token, token))

    def stop(self) -> None:
        stop_process(self.proc)


def client(url: str, token: str, timeout: float = 30) -> httpx.Client:
    """A keep-alive client (one connection) with the token set."""
    return httpx.Client(base_url=url, headers={"X-Auth-Token": token}, timeout=timeout,
                        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))


def temp_database(backend: str) -> tuple[TempDatabase, str]:
    """A fresh, migrated database; returns it and a work directory.
    ``drop()`` it afterwards (SQLite files included)."""
    from lbaas.db.session import Database
    workdir = tempfile.mkdtemp(prefix=f"lbaas-bench-{backend}-")
    db = TempDatabase(backend, workdir)
    handle = Database(db.url)
    handle.upgrade()
    handle.dispose()
    return db, workdir


# --- HTTP helpers ----------------------------------------------------------------

class Failed(Exception):
    pass


def wait_active(http: httpx.Client, lb_id: str, *, timeout: float = 60, poll: float = POLL,
                check: Callable[[dict], bool] | None = None) -> tuple[float, int]:
    """Poll GET until the load balancer is ACTIVE (and ``check`` holds);
    returns (monotonic time it was seen ACTIVE, number of polls)."""
    deadline = time.monotonic() + timeout
    polls = 0
    last: Any = None
    while True:
        response = http.get(f"/v2/lbaas/loadbalancers/{lb_id}")
        polls += 1
        now = time.monotonic()
        if response.status_code == 200:
            last = response.json()["loadbalancer"]
            status = last["provisioning_status"]
            if status == "ACTIVE" and (check is None or check(last)):
                return now, polls
            if status == "ERROR":
                raise Failed(f"load balancer {lb_id} went to ERROR: {last.get('status_reason')}")
        if now > deadline:
            raise Failed(f"load balancer {lb_id} not ACTIVE after {timeout} s: {last}")
        time.sleep(poll)


class DbObserver:
    """ACTIVE seen without API polls: one thread in this process reads the
    states of every load balancer being waited for straight from the
    database, every ``interval`` s, and wakes the waiters.  Only reads that
    start after a waiter registered count for it, so a change committed
    before ``wait`` was called cannot be mistaken for its completion."""

    def __init__(self, db_url: str, interval: float = POLL) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool
        self.engine = create_engine(db_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self.interval = interval
        self.reads = 0
        self._waiters: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="db-observer", daemon=True)
        self._thread.start()

    def wait(self, lb_id: str, timeout: float = 60) -> float:
        """Block until ``lb_id`` is ACTIVE; returns when that was read."""
        entry: list[Any] = [time.monotonic(), threading.Event(), None, None]  # since, event, done, error
        with self._lock:
            self._waiters[lb_id] = entry
        if not entry[1].wait(timeout):
            with self._lock:
                self._waiters.pop(lb_id, None)
            raise Failed(f"load balancer {lb_id} not ACTIVE after {timeout} s (database observer)")
        if entry[3]:
            raise Failed(entry[3])
        return entry[2]

    def _run(self) -> None:
        from sqlalchemy import select
        from lbaas.db import models as m
        with self.engine.connect() as conn:
            while not self._stop.is_set():
                started = time.monotonic()
                with self._lock:
                    ids = [ident for ident, entry in self._waiters.items() if entry[0] < started]
                if ids:
                    rows = conn.execute(select(m.LoadBalancer.id, m.LoadBalancer.provisioning_status,
                                               m.LoadBalancer.status_reason).where(m.LoadBalancer.id.in_(ids)))
                    self.reads += 1
                    seen = time.monotonic()
                    for ident, status, reason in rows:
                        if status in ("ACTIVE", "ERROR"):
                            with self._lock:
                                entry = self._waiters.pop(ident, None)
                            if entry is not None:
                                entry[2] = seen
                                entry[3] = None if status == "ACTIVE" else f"{ident} went to ERROR: {reason}"
                                entry[1].set()
                self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.engine.dispose()


def expect(response: httpx.Response, code: int = 201) -> dict:
    if response.status_code != code:
        raise Failed(f"{response.request.method} {response.request.url.path}: "
                     f"{response.status_code} {response.text[:300]}")
    return response.json() if response.content else {}


def run_threads(count: int, target: Callable[[int], Any]) -> list[Any]:
    """Run ``target(i)`` in ``count`` threads started together; their results
    (an exception is re-raised after all have finished)."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def body(i: int) -> None:
        try:
            barrier.wait()
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001  re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
