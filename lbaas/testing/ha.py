"""Private, disposable high-availability back ends for the fault tests: a
RabbitMQ cluster (``RabbitCluster``) and a PostgreSQL primary with a streaming
standby (``PostgresPair``). Both run on loopback only, on ports of their own,
and never touch the machine's shared RabbitMQ (5672) or PostgreSQL (5432).

``RabbitCluster(workdir, size=3)``
    Starts ``size`` nodes of the Debian ``rabbitmq-server`` at once, as this
    user, named ``lbaas-ha-<id>-<n>@localhost``, with their database, logs and
    pid files under ``workdir/rabbit``, no plugins (the management plugin
    would want port 15672) and an Erlang cookie of their own: the machine's
    node shares epmd with them, but not the cookie, so no command sent here
    can reach it. Node 1 boots first, then nodes 2..n at once, which join
    it as they boot (classic peer discovery; ``rabbitmqctl join_cluster`` for
    a node that did not); a vhost ``lbaas`` exists with ``guest`` allowed
    everything. ``url(vhost)`` is the
    multi-host ``rabbit://`` URL (node 1 first), ``node_url(i)`` one node's
    kombu URL. A node is stopped cleanly (``stop_node``), killed
    (``kill_node``) and started again on its ports and data (``start_node``
    + ``await_node``); ``queues``, ``queue_type`` and ``leader`` read
    ``list_queues``. ``stop`` ends every node it started and removes their
    data (the logs stay in ``workdir``). Raises ``RabbitError`` when a node
    does not come up; the nodes already started are stopped first.

``PostgresPair(workdir)``
    A primary (``initdb``, trust authentication, wal_level replica) and a
    standby streaming from it (``pg_basebackup -R``), both run as the
    ``postgres`` OS user (``initdb`` refuses root) from
    /usr/lib/postgresql/15/bin. Replication is synchronous: a commit the
    primary acknowledged is on the standby, so promoting the standby loses no
    accepted write; the standby itself waits for no one once promoted. Data
    lives under a directory of its own in /tmp (the ``postgres`` user must
    reach it; pytest's directories are private to root); its logs are copied
    into ``workdir`` by ``stop``, which ends both servers and removes the data.
    ``url(dbname)`` is the libpq multi-host SQLAlchemy URL (primary first,
    ``target_session_attrs=read-write``).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lbaas.testing.polling import free_port, wait_for

__all__ = ["PostgresPair", "RabbitCluster", "RabbitError", "parallel"]

RABBIT_BIN = "/usr/lib/rabbitmq/bin"   # the scripts themselves: the /usr/sbin wrappers su to rabbitmq
PG_BIN = "/usr/lib/postgresql/15/bin"
PG_USER = "postgres"
DEFAULT_VHOST = "lbaas"
NODE_START_TIMEOUT = 180.0   # s; three Erlang VMs booting on two cores other work shares
CTL_TIMEOUT = 120.0


class RabbitError(RuntimeError):
    """A private RabbitMQ node did not start, stop or answer."""


def parallel(*calls: Callable[[], object]) -> None:
    """Run ``calls`` in threads and wait for all; re-raise the first failure."""
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        try:
            call()
        except BaseException as exc:  # carried to the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _end_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group ``proc`` leads (a shell wrapper and its VM); reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


# --- RabbitMQ -------------------------------------------------------------------------

@dataclass
class RabbitNode:
    """One node: its Erlang name, AMQP and distribution ports, and process (None: down)."""

    name: str
    port: int
    dist_port: int
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class RabbitCluster:
    """A private RabbitMQ cluster of ``size`` nodes on loopback (see the module docstring)."""

    def __init__(self, workdir: str, size: int = 3) -> None:
        self.root = os.path.join(workdir, "rabbit")
        self.home = os.path.join(self.root, "home")   # the CLI and the nodes read the cookie here
        os.makedirs(self.home, exist_ok=True)
        ident = uuid.uuid4().hex[:8]
        self.nodes = [RabbitNode(f"lbaas-ha-{ident}-{i}@localhost", free_port(), free_port())
                      for i in range(1, size + 1)]
        self._write_files()
        started = time.monotonic()
        try:
            # Node 1 first, alone; then the others at once, which join it as they boot
            # (peer discovery: a join by rabbitmqctl costs three CLI VMs and an app restart
            # per node, and discovery while node 1 still booted could hang in its lock).
            self._boot(0)
            parallel(*(lambda i=i: self._boot(i) for i in range(1, size)))
            for i in self._strays():   # a node that found no peer after all
                self._join(i)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def _write_files(self) -> None:
        cookie = os.path.join(self.home, ".erlang.cookie")
        with open(cookie, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(20).upper())
        os.chmod(cookie, 0o400)   # Erlang refuses a cookie others can read
        # default_vhost: made at first boot, one rabbitmqctl less (each boots a VM).
        common = f"log.console = false\nlog.file.level = info\ndefault_vhost = {DEFAULT_VHOST}\n"
        discovery = "cluster_formation.peer_discovery_backend = classic_config\n" + "".join(
            f"cluster_formation.classic_config.nodes.{n} = {node.name}\n" for n, node in enumerate(self.nodes, 1))
        files = {"enabled_plugins": "[].\n",
                 # Our own, so the machine's (its NODENAME, its 5672 listener) never applies.
                 "rabbitmq-env.conf": "", "seed.conf": common, "rabbitmq.conf": common + discovery}
        for name, text in files.items():
            with open(os.path.join(self.root, name), "w", encoding="ascii") as handle:
                handle.write(text)

    def _env(self, node: RabbitNode | None = None) -> dict[str, str]:
        seed = node is self.nodes[0]   # node 1 looks for no peer: it starts the cluster
        env = {**os.environ, "HOME": self.home,
               "RABBITMQ_CONF_ENV_FILE": os.path.join(self.root, "rabbitmq-env.conf"),
               "RABBITMQ_CONFIG_FILE": os.path.join(self.root, "seed.conf" if seed else "rabbitmq.conf"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.root, "enabled_plugins")}
        if node is None:
            return env
        short = node.name.split("@")[0]
        return {**env, "RABBITMQ_NODENAME": node.name, "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(node.port), "RABBITMQ_DIST_PORT": str(node.dist_port),
                "RABBITMQ_MNESIA_BASE": os.path.join(self.root, "mnesia"),
                "RABBITMQ_LOG_BASE": os.path.join(self.root, "log"),
                "RABBITMQ_PID_FILE": os.path.join(self.root, f"{short}.pid"),
                # Distribution on loopback too, like every other listener here.
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}"}

    def ctl(self, *args: str, node: int = 0, timeout: float = CTL_TIMEOUT) -> str:
        """``rabbitmqctl -n <node> args``; its output. RabbitError when it fails."""
        command = [f"{RABBIT_BIN}/rabbitmqctl", "-q", "-n", self.nodes[node].name, *args]
        done = subprocess.run(command, env=self._env(), capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RabbitError(f"{' '.join(args)} on {self.nodes[node].name}: {done.stderr.strip()[-2000:]}")
        return done.stdout

    # --- nodes ----------------------------------------------------------------------

    def _boot(self, i: int) -> None:
        self.start_node(i)
        self.await_node(i)

    def _strays(self) -> list[int]:
        """Nodes running outside node 1's cluster."""
        running = json.loads(self.ctl("cluster_status", "--formatter", "json"))["running_nodes"]
        return [i for i, node in enumerate(self.nodes) if node.name not in running]

    def _join(self, i: int) -> None:
        """Node ``i`` leaves its own one-node cluster for node 1's."""
        self.ctl("stop_app", node=i)
        self.ctl("join_cluster", self.nodes[0].name, node=i)
        self.ctl("start_app", node=i)
        self.await_node(i)

    def start_node(self, i: int) -> None:
        """Start node ``i`` (0-based) on its ports and data; returns at once (see ``await_node``)."""
        node = self.nodes[i]
        if node.running():
            return
        log = open(os.path.join(self.root, f"{node.name.split('@')[0]}.out"), "ab")
        node.proc = subprocess.Popen([f"{RABBIT_BIN}/rabbitmq-server"], env=self._env(node), cwd=self.root,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()   # the child holds its own descriptor

    def await_node(self, i: int, timeout: float = NODE_START_TIMEOUT) -> None:
        """Wait until node ``i`` accepts AMQP connections."""
        node = self.nodes[i]

        def listening() -> bool:
            if node.proc is None or node.proc.poll() is not None:
                raise RabbitError(f"{node.name} is not running; logs in {self.root}")
            return self._listening(i)

        # The AMQP listener opens among the last boot steps, and a port is cheap to
        # poll, where each rabbitmqctl boots an Erlang VM of its own.
        wait_for(listening, timeout, 0.2, f"RabbitMQ node {node.name} to listen")

    def _listening(self, i: int) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.nodes[i].port), timeout=1):
            return True
        return False

    def stop_node(self, i: int) -> None:
        """Stop node ``i`` cleanly (its queues' replicas elsewhere take over)."""
        node = self.nodes[i]
        if not node.running():
            return
        assert node.proc is not None
        try:
            self.ctl("stop", node=i, timeout=60)
            node.proc.wait(timeout=60)
        except (RabbitError, subprocess.TimeoutExpired):
            _end_group(node.proc)

    def kill_node(self, i: int) -> None:
        """SIGKILL node ``i``: what a crash or a pulled cable looks like to its peers."""
        proc = self.nodes[i].proc
        if proc is not None:
            _end_group(proc)
            # Its port closes with the VM; a restart must not find the old listener.
            wait_for(lambda: not self._listening(i), 10, 0.1, f"{self.nodes[i].name} to close its port")

    def running_node(self) -> int:
        """The index of a node that runs (for commands that need one)."""
        return next(i for i, node in enumerate(self.nodes) if node.running())

    # --- vhosts and queues --------------------------------------------------------------

    def add_vhost(self, vhost: str) -> None:
        """Another vhost, ``guest`` allowed everything in it."""
        node = self.running_node()
        self.ctl("add_vhost", vhost, node=node)
        self.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*", node=node)

    def url(self, vhost: str = DEFAULT_VHOST) -> str:
        """The OpenStack-style ``transport_url`` naming every node, node 1 first."""
        hosts = ",".join(f"guest:guest@127.0.0.1:{node.port}" for node in self.nodes)
        return f"rabbit://{hosts}/{vhost}"

    def node_url(self, i: int, vhost: str = DEFAULT_VHOST) -> str:
        """A kombu URL of node ``i`` alone."""
        return f"amqp://guest:guest@127.0.0.1:{self.nodes[i].port}/{vhost}"

    def queues(self, vhost: str, *columns: str) -> dict[str, list[str]]:
        """``list_queues`` of ``vhost``: queue name -> the other ``columns``."""
        out = self.ctl("list_queues", "-p", vhost, "--no-table-headers", "name", *columns,
                       node=self.running_node())
        rows = [line.split("\t") for line in out.splitlines() if line.strip()]
        return {row[0]: row[1:] for row in rows}

    def queue_type(self, vhost: str, name: str) -> str:
        """``classic``, ``quorum`` or ``stream``; KeyError when the queue does not exist."""
        return self.queues(vhost, "type")[name][0]

    def leader(self, vhost: str, name: str) -> int | None:
        """The index of the node leading quorum queue ``name``; None when none does."""
        leader = self.queues(vhost, "leader")[name][0]
        return next((i for i, node in enumerate(self.nodes) if node.name == leader), None)

    def stop(self) -> None:
        """Stop every node started here (cleanly, then by pid) and remove their data. Must not raise."""
        def end(i: int) -> None:
            node = self.nodes[i]
            if node.running():
                try:
                    self.stop_node(i)
                except Exception:   # a clean stop is a courtesy; the kill below is the guarantee
                    pass
            if node.proc is not None:
                _end_group(node.proc)

        with contextlib.suppress(Exception):
            parallel(*(lambda i=i: end(i) for i in range(len(self.nodes))))
        shutil.rmtree(os.path.join(self.root, "mnesia"), ignore_errors=True)   # the logs stay, for a post-mortem

    def __enter__(self) -> "RabbitCluster":
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.stop()


# --- PostgreSQL -------------------------------------------------------------------------

class PostgresPair:
    """A private PostgreSQL primary and synchronous streaming standby (see the module docstring)."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        # Short and under /tmp: reachable by the postgres user, and unix socket paths stay short.
        self.root = tempfile.mkdtemp(prefix="lbaas-pg-", dir="/tmp")
        account = pwd.getpwnam(PG_USER)
        os.chown(self.root, account.pw_uid, account.pw_gid)
        self.primary_port = free_port()
        self.standby_port = free_port()
        started = time.monotonic()
        try:
            self._init_primary()
            self._init_standby()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    def _dir(self, role: str) -> str:
        return os.path.join(self.root, role)

    def _run(self, *command: str, timeout: float = 120) -> str:
        """``command`` as the postgres user; its output. RuntimeError when it fails."""
        done = subprocess.run(["runuser", "-u", PG_USER, "--", *command], cwd=self.root,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {done.stdout[-1000:]}{done.stderr[-2000:]}")
        return done.stdout

    def _settings(self, port: int, sync_standby: bool) -> str:
        return "\n".join([
            f"port = {port}", "listen_addresses = '127.0.0.1'", f"unix_socket_directories = '{self.root}'",
            "wal_level = replica", "max_wal_senders = 5", "hot_standby = on",
            # A test database: durability against a crash of the host is not the point.
            "fsync = off", "full_page_writes = off",
            # Synchronous: what the primary acknowledged, the standby holds.
            f"synchronous_standby_names = '{'*' if sync_standby else ''}'",
            "synchronous_commit = on", "max_connections = 200", ""])

    def _init_primary(self) -> None:
        data = self._dir("primary")
        # initdb's pg_hba already trusts replication from loopback when -A trust.
        self._run(f"{PG_BIN}/initdb", "-D", data, "-U", PG_USER, "-A", "trust", "--no-sync", "-E", "UTF8")
        with open(os.path.join(data, "postgresql.auto.conf"), "a", encoding="utf-8") as handle:
            handle.write(self._settings(self.primary_port, sync_standby=True))
        self._start("primary")

    def _init_standby(self) -> None:
        data = self._dir("standby")
        self._run(f"{PG_BIN}/pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", PG_USER,
                  "-D", data, "-R", "-X", "stream", "-c", "fast", "--no-sync")
        # Appended after what -R wrote: the last setting wins. Promoted, it must not wait for a standby.
        with open(os.path.join(data, "postgresql.auto.conf"), "a", encoding="utf-8") as handle:
            handle.write(self._settings(self.standby_port, sync_standby=False))
        self._start("standby")
        self.wait_replicated()

    def _start(self, role: str) -> None:
        self._run(f"{PG_BIN}/pg_ctl", "-D", self._dir(role), "-l", os.path.join(self.root, f"{role}.log"),
                  "-w", "-t", "60", "start")

    def _pid(self, role: str) -> int | None:
        try:
            with open(os.path.join(self._dir(role), "postmaster.pid"), encoding="ascii") as handle:
                return int(handle.readline())
        except (OSError, ValueError):
            return None

    def connect(self, port: int, dbname: str = "postgres") -> Any:
        """An autocommit psycopg connection to the server on ``port``."""
        import psycopg
        return psycopg.connect(host="127.0.0.1", port=port, user=PG_USER, dbname=dbname, autocommit=True,
                               connect_timeout=5)

    def url(self, dbname: str) -> str:
        """The multi-host SQLAlchemy URL: the primary first, only a writable server accepted."""
        return (f"postgresql+psycopg://{PG_USER}@/{dbname}?host=127.0.0.1:{self.primary_port}"
                f"&host=127.0.0.1:{self.standby_port}&target_session_attrs=read-write")

    def create_database(self, name: str) -> str:
        """Create ``name`` on the primary, wait until the standby has it; its ``url``."""
        with self.connect(self.primary_port) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.wait_replicated()
        return self.url(name)

    def wait_replicated(self, timeout: float = 30) -> None:
        """Wait until the standby streams from the primary and has replayed all it wrote."""
        def caught_up() -> bool:
            with self.connect(self.primary_port) as conn:
                row = conn.execute("SELECT pg_current_wal_lsn() <= replay_lsn FROM pg_stat_replication "
                                   "WHERE state = 'streaming'").fetchone()
            return bool(row and row[0])

        wait_for(caught_up, timeout, 0.1, "the standby to catch up", ignore=(Exception,))

    def stop_primary(self, mode: str = "immediate") -> None:
        """Stop the primary (``immediate``: no shutdown checkpoint, clients cut off: a crash)."""
        self._run(f"{PG_BIN}/pg_ctl", "-D", self._dir("primary"), "-m", mode, "-w", "stop")

    def promote_standby(self) -> None:
        """Make the standby a primary; returns once it accepts writes."""
        self._run(f"{PG_BIN}/pg_ctl", "-D", self._dir("standby"), "-w", "-t", "60", "promote")

    def stop(self) -> None:
        """Stop both servers (by the pid in their data directory), keep the logs, remove the data.
        Must not raise."""
        for role in ("standby", "primary"):
            pid = self._pid(role)
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGQUIT)   # immediate shutdown: nothing here is worth a checkpoint
                wait_for(lambda: not _alive(pid), 30, 0.1, f"PostgreSQL {role} to exit")
            except (OSError, AssertionError):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        for role in ("primary", "standby"):
            try:
                shutil.copy(os.path.join(self.root, f"{role}.log"), os.path.join(self.workdir, f"pg-{role}.log"))
            except OSError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PostgresPair":
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
