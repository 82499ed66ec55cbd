"""One HAProxy process (master-worker mode) per load balancer, driven through its sockets.

Every file of a load balancer lives in its own folder (``Paths``). HAProxy is started as a
daemon (``-W -D``) in its own session, so it outlives the management service; the service
finds it again through the pid file and the master socket.
"""

import csv
import io
import ipaddress
import logging
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lbaas.appliance.errors import ConfigRejected, HAProxyFailure

LOG = logging.getLogger(__name__)

# sun_path is 108 bytes on Linux including the terminating NUL.
MAX_UNIX_SOCKET_PATH = 107
SOCKET_TIMEOUT = 5.0
CHECK_TIMEOUT = 30.0
READY_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
_POLL = 0.05


@dataclass(frozen=True)
class Paths:
    """Where the files of one load balancer live (all inside ``root``)."""

    root: Path

    @property
    def desired(self) -> Path:
        return self.root / "desired.json"

    @property
    def config(self) -> Path:
        return self.root / "haproxy.cfg"

    @property
    def candidate(self) -> Path:
        return self.root / "haproxy.cfg.new"

    @property
    def previous(self) -> Path:
        return self.root / "haproxy.cfg.prev"

    @property
    def pid_file(self) -> Path:
        return self.root / "haproxy.pid"

    @property
    def master_socket(self) -> Path:
        return self.root / "master.sock"

    @property
    def stats_socket(self) -> Path:
        return self.root / "stats.sock"

    @property
    def server_state(self) -> Path:
        return self.root / "server-state"

    @property
    def output(self) -> Path:
        return self.root / "haproxy.out"


@dataclass
class ProcInfo:
    """What the master CLI's ``show proc`` says."""

    master_pid: int
    reloads: int
    failed_reloads: int
    workers: list[int]


def haproxy_version(haproxy_bin: str) -> str:
    """The version of ``haproxy_bin`` as "X.Y.Z" (distribution suffixes dropped).

    Raises ``HAProxyFailure`` when the binary cannot be run.
    """
    try:
        out = subprocess.run([haproxy_bin, "-v"], capture_output=True, text=True, errors="replace",
                             timeout=CHECK_TIMEOUT, check=False).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise HAProxyFailure(f"cannot run {haproxy_bin}: {exc}") from exc
    match = re.search(r"version (\d+\.\d+(?:\.\d+)?)", out)
    if not match:
        raise HAProxyFailure(f"cannot read the version of {haproxy_bin}: {out[:200]!r}")
    return match.group(1)


def unix_command(path: Path, command: str, timeout: float = SOCKET_TIMEOUT) -> str:
    """Send one CLI ``command`` to the HAProxy socket at ``path``; return its whole answer.

    Raises ``OSError`` when the socket does not answer.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(command.encode() + b"\n")
        # Half-closing tells the CLI this is the last command, so it answers and closes.
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def endpoint_in_use(address: str, port: int, own_pids: Iterable[int] = ()) -> bool:
    """True when a process not in ``own_pids`` listens on address:port (or on the port of
    every address).

    Read from the kernel's socket tables rather than by trying to bind: HAProxy binds with
    SO_REUSEPORT, so a trial bind with it would share a port another HAProxy (or anything
    else using SO_REUSEPORT) listens on, and one without it would count our own HAProxy.
    """
    inodes = _listening_inodes(ipaddress.ip_address(address), port)
    if not inodes:
        return False
    ours = {inode for pid in own_pids for inode in _socket_inodes(pid)}
    return not inodes <= ours


_LISTEN = "0A"


def _listening_inodes(address: ipaddress.IPv4Address | ipaddress.IPv6Address,
                      port: int) -> set[str]:
    """Inodes of the TCP sockets listening on ``port`` at ``address`` or at any address."""
    found = set()
    for table, wildcard in (("/proc/net/tcp", ipaddress.ip_address("0.0.0.0")),
                            ("/proc/net/tcp6", ipaddress.ip_address("::"))):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            host, _, hex_port = local.partition(":")
            if state != _LISTEN or int(hex_port, 16) != port:
                continue
            bound = _kernel_address(host)
            if bound in (address, wildcard) or _mapped(bound) == address:
                found.add(inode)
    return found


def _kernel_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} prints it: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(text)
    return ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))


def _mapped(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> object:
    return address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None


def _socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets ``pid`` holds open."""
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (nobody may reap daemonised HAProxy)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name.
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def runs_config(pid: int, config: Path) -> bool:
    """True when ``pid`` is alive and its command line names ``config``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(config).encode() in argv and pid_alive(pid)


def pids_serving(lb_id: str) -> list[int]:
    """Live HAProxy processes of load balancer ``lb_id``: ours, or a group peer's that shares
    this host (whose configuration file is also named ``<state_dir>/<lb_id>/haproxy.cfg``)."""
    suffix = f"/{lb_id}/haproxy.cfg".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if Path(argv[0].decode(errors="replace")).name.startswith("haproxy") and \
                any(arg.endswith(suffix) for arg in argv) and pid_alive(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def pids_with_config(config: Path) -> list[int]:
    """Live processes whose command line names ``config`` (the master and its workers)."""
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and runs_config(int(entry.name), config)]


class HAProxyInstance:
    """The HAProxy of one load balancer: check, install, start, reload, stop, query."""

    def __init__(self, paths: Paths, haproxy_bin: str) -> None:
        self.paths = paths
        self.haproxy_bin = haproxy_bin

    # --- configuration files -------------------------------------------------------

    def check_paths(self) -> None:
        """Raise ``HAProxyFailure`` when a socket path is too long for a unix socket."""
        for path in (self.paths.master_socket, self.paths.stats_socket):
            if len(str(path)) > MAX_UNIX_SOCKET_PATH:
                raise HAProxyFailure(f"socket path {path} is longer than "
                                     f"{MAX_UNIX_SOCKET_PATH} bytes; use a shorter state_dir")

    def check(self, text: str) -> None:
        """Run ``haproxy -c`` on ``text`` without touching the installed configuration.

        Raises ``ConfigRejected`` with HAProxy's alerts when it refuses the text.
        """
        self.paths.candidate.write_text(text)
        try:
            result = subprocess.run(
                [self.haproxy_bin, "-c", "-f", str(self.paths.candidate)],
                capture_output=True, text=True, errors="replace", timeout=CHECK_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HAProxyFailure(f"cannot run {self.haproxy_bin} -c: {exc}") from exc
        finally:
            self.paths.candidate.unlink(missing_ok=True)
        if result.returncode != 0:
            message = _alerts(result.stdout + result.stderr)
            raise ConfigRejected(f"haproxy rejected the configuration: {message}")

    def installed_config(self) -> str | None:
        """The configuration text in place, None when there is none."""
        try:
            return self.paths.config.read_text()
        except FileNotFoundError:
            return None

    def install(self, text: str) -> None:
        """Atomically make ``text`` the configuration, keeping the old one for ``rollback``."""
        current = self.installed_config()
        if current is not None:
            _write_atomic(self.paths.previous, current)
        _write_atomic(self.paths.config, text)

    def rollback(self) -> bool:
        """Put the configuration from before the last ``install`` back; False if none."""
        try:
            previous = self.paths.previous.read_text()
        except FileNotFoundError:
            return False
        _write_atomic(self.paths.config, previous)
        return True

    # --- process life cycle ----------------------------------------------------------

    def is_running(self) -> bool:
        """True when our master is alive and its CLI lists at least one worker."""
        pid = self.master_pid()
        if pid is None:
            return False
        info = self.proc_info()
        return info is not None and info.master_pid == pid and bool(info.workers)

    def master_pid(self) -> int | None:
        """The pid from the pid file when that process is alive and runs our config."""
        pid = self._pid_file_value()
        # Guards against pid reuse after a reboot: the process must name our config.
        return pid if pid is not None and runs_config(pid, self.paths.config) else None

    def _pid_file_value(self) -> int | None:
        try:
            return int(self.paths.pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None  # absent, or still being written

    def start(self) -> None:
        """Start the master (and its worker) from the installed configuration; wait until
        both sockets answer. Raises ``HAProxyFailure`` with HAProxy's alerts."""
        self.check_paths()
        self.paths.pid_file.unlink(missing_ok=True)
        command = [self.haproxy_bin, "-W", "-D", "-S", str(self.paths.master_socket),
                   "-f", str(self.paths.config), "-p", str(self.paths.pid_file)]
        LOG.info("starting haproxy for %s", self.paths.root.name)
        # A file, not a pipe: the daemon keeps its stdio, so a pipe would never reach EOF.
        with open(self.paths.output, "wb") as output:
            try:
                proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output,
                                        stderr=subprocess.STDOUT, cwd=self.paths.root,
                                        start_new_session=True)
                code = proc.wait(timeout=READY_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise HAProxyFailure(f"cannot start haproxy: {exc}") from exc
        if code != 0:
            raise HAProxyFailure(f"haproxy did not start: {self._output_alerts()}")
        self._wait_ready(old_workers=set(), reloads=None)

    def reload(self) -> None:
        """Hitless reload through the master CLI, saving the server state first.

        Waits for a new worker; raises ``HAProxyFailure`` when none comes (the master then
        keeps the old worker serving).
        """
        before = self.proc_info()
        if before is None:
            raise HAProxyFailure("the haproxy master socket does not answer")
        self.save_server_state()
        try:
            unix_command(self.paths.master_socket, "reload")
        except OSError:
            pass  # the master re-executes itself and may drop the connection unanswered
        self._wait_ready(old_workers=set(before.workers), reloads=before)

    def stop(self) -> None:
        """Stop the master and its workers (SIGTERM, then SIGKILL); idempotent."""
        pids = pids_with_config(self.paths.config)
        master = self.master_pid()
        if master is not None:
            _signal(master, signal.SIGTERM)
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        if not _wait_gone(pids, STOP_TIMEOUT):
            for pid in pids:
                _signal(pid, signal.SIGKILL)
            _wait_gone(pids, STOP_TIMEOUT)
        if pids:
            LOG.info("stopped haproxy for %s (pids %s)", self.paths.root.name, pids)

    def _wait_ready(self, old_workers: set[int], reloads: ProcInfo | None) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            info = self.proc_info()
            if info is not None:
                if reloads is not None and info.failed_reloads > reloads.failed_reloads:
                    # HAProxy 2.6 keeps no startup log of a failed reload (2.7+ has one).
                    raise HAProxyFailure("haproxy could not load the new configuration; "
                                         "the previous one stays in force")
                fresh = [pid for pid in info.workers if pid not in old_workers]
                if fresh and (reloads is None or info.reloads > reloads.reloads) \
                        and self._stats_pid() in fresh:
                    return
            elif reloads is None and self._master_died():
                raise HAProxyFailure(f"haproxy exited: {self._output_alerts()}")
            time.sleep(_POLL)
        raise HAProxyFailure(f"haproxy did not become ready within {READY_TIMEOUT}s: "
                             f"{self._output_alerts()}")

    def _master_died(self) -> bool:
        pid = self._pid_file_value()
        return pid is not None and not pid_alive(pid)

    # --- sockets -------------------------------------------------------------------

    def proc_info(self) -> ProcInfo | None:
        """The master's ``show proc``, None when the master socket does not answer."""
        try:
            text = unix_command(self.paths.master_socket, "show proc", timeout=2.0)
        except OSError:
            return None
        return _parse_show_proc(text)

    def stats_command(self, command: str) -> str:
        """Send ``command`` to the worker's stats socket. Raises ``OSError``."""
        return unix_command(self.paths.stats_socket, command)

    def runtime(self, commands: list[str]) -> list[str]:
        """Run runtime-API ``commands``; return the ones that failed with their answers."""
        failures = []
        for command in commands:
            try:
                answer = self.stats_command(command).strip()
            except OSError as exc:
                answer = str(exc)
            if answer:
                failures.append(f"{command}: {answer}")
        return failures

    def show_stat(self) -> list[dict[str, str]]:
        """The rows of ``show stat`` as dicts keyed by the CSV header. Raises ``OSError``."""
        text = self.stats_command("show stat")
        return list(csv.DictReader(io.StringIO(text.lstrip("# "))))

    def save_server_state(self) -> None:
        """Write ``show servers state`` to the state file the next process loads."""
        try:
            state = self.stats_command("show servers state")
        except OSError as exc:
            LOG.warning("cannot save server state of %s: %s", self.paths.root.name, exc)
            return
        _write_atomic(self.paths.server_state, state)

    def _stats_pid(self) -> int | None:
        try:
            info = self.stats_command("show info")
        except OSError:
            return None
        match = re.search(r"^Pid: (\d+)", info, re.MULTILINE)
        return int(match.group(1)) if match else None

    def _output_alerts(self) -> str:
        try:
            return _alerts(self.paths.output.read_text(errors="replace"))
        except OSError:
            return "(no output)"


def _parse_show_proc(text: str) -> ProcInfo | None:
    master, reloads, failed, workers = None, 0, 0, []
    section = ""
    for line in text.splitlines():
        if line.startswith("#"):
            section = line
            continue
        fields = line.split()
        if len(fields) < 2 or not fields[0].isdigit():
            continue
        if fields[1] == "master":
            master = int(fields[0])
            reloads = int(fields[2]) if fields[2].isdigit() else 0
            found = re.search(r"failed: (\d+)", line)
            failed = int(found.group(1)) if found else 0
        elif fields[1] == "worker" and section == "# workers":
            workers.append(int(fields[0]))
    if master is None:
        return None
    return ProcInfo(master_pid=master, reloads=reloads, failed_reloads=failed, workers=workers)


def _alerts(output: str) -> str:
    """HAProxy's ALERT lines (else its last lines), without the "[ALERT] (pid) :" prefix."""
    lines = [re.sub(r"^\[ALERT\]\s*\(\d+\)\s*:\s*", "", line)
             for line in output.splitlines() if line.startswith("[ALERT]")]
    if not lines:
        lines = [line for line in output.splitlines() if line.strip()][-5:]
    return " | ".join(lines) or "(no output)"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(pid_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL)
    return True
