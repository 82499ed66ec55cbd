"""8. TLS termination on the HAProxy data plane: handshakes, kept-alive requests, rotation.

One ``lbaas device`` process (PUT straight to its API, no control plane) holds one load
balancer with a TERMINATED_HTTPS listener (Octavia's default versions, ciphers and ALPN; an
EC P-256 certificate made on the spot) in front of a back end that is a separate HAProxy
answering a fixed 200 (``bench_l7.StaticBackends``), so the back end is not what limits.

1. New TLS handshakes/s: ``PROCESSES`` client processes, each connecting, completing a
   TLS 1.3 handshake (SNI www.example.com) and closing, in a loop for ``seconds``; the sum of
   their rates, median of runs. Also with a full request per connection (handshake + GET /).
   HAProxy's CPU time per connection (from /proc) says what HAProxy itself can do when
   the clients, which share the 2 cores, are the limit.
2. Requests/s over kept-alive HTTPS: ``wrk -t1 -c16`` (Debian's package, installed when
   missing) on https://VIP:port/, median of runs.
3. Certificate rotation: a PUT of the next revision whose default certificate has the same id
   and new content (HAProxy reloads); time from sending the PUT to the first new connection
   that is served the new certificate (a poller: one handshake every 5 ms), and how long the
   PUT took to answer. The poller's failed handshakes across all rotations are counted.

Traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import multiprocessing
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time

from cryptography import x509

from bench.bench_l7 import Device, StaticBackends, ensure_wrk
from bench.common import Result, proc_cpu_seconds, summary_ms
from bench.dataplane_helpers import pids_under
from lbaas.testing import certs
from lbaas.testing import tls as t
from lbaas.testing.polling import free_port

NAME = "tls"
VIP = "127.0.6.1"          # outside the tests' 127.0.10+ and the other benchmarks' addresses
PROCESSES = 2
SERVER_NAME = "www.example.com"
WRK = ["-t1", "-c16", "--latency"]
POLL_S = 0.005


def desired(backends: StaticBackends, port: int, server: certs.Issued, ident: str) -> dict:
    """One TERMINATED_HTTPS listener, its HTTP pool holding the static back end."""
    return t.terminated({
        "id": "lb-tls", "project_id": "bench", "revision": 1, "name": "", "admin_state_up": True,
        "vip_address": VIP,
        "listeners": [{"id": "listener-tls", "protocol": "HTTP", "protocol_port": port,
                       "default_pool_id": "pool-a"}],
        "pools": [{"id": "pool-a", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                   "members": [{"id": "member-a", "address": "127.0.0.1",
                                "protocol_port": backends.ports["a"]}]}],
    }, t.listener_tls(t.certificate(server, ident=ident)))


# --- load -----------------------------------------------------------------------------------

def _handshakes(port: int, seconds: float, request: bool, out: "multiprocessing.Queue[tuple[int, int]]") -> None:
    """One client process: handshakes (and a GET on each when ``request``) until time is up;
    puts (completed, failed) on ``out``."""
    context = t.client_context()
    done = failed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((VIP, port), timeout=5) as raw:
                with context.wrap_socket(raw, server_hostname=SERVER_NAME) as sock:
                    if request:
                        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        while sock.recv(65536):
                            pass
            done += 1
        except OSError:
            failed += 1
    out.put((done, failed))


def handshake_rate(port: int, seconds: float, request: bool) -> tuple[float, int]:
    """(connections/s over all client processes, failures)."""
    queue: multiprocessing.Queue[tuple[int, int]] = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_handshakes, args=(port, seconds, request, queue))
             for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=seconds + 60) for _ in procs]
    for proc in procs:
        proc.join(10)
    return sum(done for done, _ in results) / seconds, sum(failed for _, failed in results)


def wrk_https(url: str, seconds: int) -> dict[str, float]:
    """One wrk run over kept-alive HTTPS: req/s, p50 (ms), failures."""
    out = subprocess.run([ensure_wrk(), *WRK, f"-d{seconds}s", url], capture_output=True, text=True,
                         timeout=seconds + 60, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = (sum(int(x) for x in errors.groups()) if errors else 0) + (int(non2xx.group(1)) if non2xx else 0)
    if rps is None:
        raise RuntimeError(f"wrk printed no rate: {out[-500:]}")
    return {"rps": float(rps.group(1)), "failed": failed}


class CertificatePoller:
    """A thread making one new TLS connection every ``POLL_S``: when each saw which
    certificate (by serial number), and how many failed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: list[tuple[float, int]] = []
        self.failures = 0
        self._stop = threading.Event()
        self._context = t.client_context()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with socket.create_connection((VIP, self.port), timeout=2) as raw:
                    with self._context.wrap_socket(raw, server_hostname=SERVER_NAME) as sock:
                        der = sock.getpeercert(binary_form=True)
                serial = ssl_serial(der)
                self.seen.append((time.monotonic(), serial))
            except OSError:
                self.failures += 1
            self._stop.wait(POLL_S)

    def first(self, serial: int, after: float, timeout: float = 15) -> float:
        """The time of the first connection after ``after`` that saw ``serial``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for when, seen in list(self.seen):
                if when >= after and seen == serial:
                    return when
            time.sleep(POLL_S)
        raise RuntimeError(f"certificate {serial} not served within {timeout} s")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def ssl_serial(der: bytes | None) -> int:
    if der is None:
        raise OSError("no peer certificate")
    return x509.load_der_x509_certificate(der).serial_number


# --- the sections ---------------------------------------------------------------------------

def haproxy_cpu(state_dir: str) -> float:
    """CPU seconds used so far by the device's HAProxy processes."""
    return sum(proc_cpu_seconds(pid) for pid in pids_under(state_dir))


def section_handshakes(result: Result, device: Device, port: int, runs: int, seconds: float) -> None:
    handshake_rate(port, 1, False)  # warm-up
    for request, label in ((False, "handshake + close"), (True, "handshake + GET / + close")):
        rates, cpu_ms, failed = [], [], 0
        for _ in range(runs):
            before = haproxy_cpu(device.state_dir)
            rate, fails = handshake_rate(port, seconds, request)
            cpu_ms.append((haproxy_cpu(device.state_dir) - before) * 1000 / (rate * seconds))
            rates.append(rate)
            failed += fails
        case = f"1. new TLS connections, {PROCESSES} client processes, {seconds:g} s x {runs}"
        result.add(case, f"{label}: connections/s, median", statistics.median(rates), "/s", each=rates)
        result.add(case, f"{label}: HAProxy CPU per connection, median", statistics.median(cpu_ms),
                   "ms", each=cpu_ms)
        result.add(case, f"{label}: failed connections", failed, "conn", target="0", met=failed == 0)


def section_keepalive(result: Result, url: str, runs: int, seconds: int) -> None:
    wrk_https(url, 1)
    each = [wrk_https(url, seconds) for _ in range(runs)]
    case = f"2. GET / over kept-alive HTTPS, wrk -t1 -c16, {seconds} s x {runs}"
    rates = [r["rps"] for r in each]
    result.add(case, "req/s, median", statistics.median(rates), "/s", each=rates)
    failed = int(sum(r["failed"] for r in each))
    result.add(case, "failed requests", failed, "req", target="0", met=failed == 0)


def section_rotation(result: Result, device: Device, doc: dict, reps: int) -> None:
    listener_tls = doc["listeners"][0]["tls"]
    ident = listener_tls["default_certificate"]["id"]
    ca = certs.make_ca("Bench CA")
    poller = CertificatePoller(doc["listeners"][0]["protocol_port"])
    seen, puts = [], []
    try:
        for _ in range(reps):
            new = certs.make_cert(ca, [SERVER_NAME])
            listener_tls["default_certificate"] = t.certificate(new, ident=ident)
            doc["revision"] += 1
            t0 = time.monotonic()
            applied = device.put(doc)
            puts.append(time.monotonic() - t0)
            if applied != "reloaded":
                raise RuntimeError(f"a rotation was {applied}, not reloaded")
            seen.append(poller.first(new.serial, t0) - t0)
    finally:
        poller.stop()
    case = f"3. certificate rotation (same id, new content), {reps} PUTs"
    s, p = summary_ms(seen), summary_ms(puts)
    result.add(case, f"PUT -> first connection served the new certificate, p50 (n={s['n']})",
               s["p50"], "ms", p95=s["p95"])
    result.add(case, "PUT answered (files written, config checked, HAProxy reloaded), p50",
               p["p50"], "ms", p95=p["p95"])
    result.add(case, "failed handshakes of the poller across the rotations", poller.failures,
               "conn", target="0", met=poller.failures == 0)
    result.details["rotation"] = {"seen_s": seen, "put_s": puts, "polls": len(poller.seen)}


def run(quick: bool = False) -> Result:
    result = Result(NAME, quick)
    runs, seconds = (2, 2) if quick else (5, 5)
    reps = 4 if quick else 10
    ensure_wrk()
    workdir = tempfile.mkdtemp(prefix="lbaas-bench-tls-")
    backends = StaticBackends(workdir, ("a",))
    device = Device(workdir)
    try:
        port = free_port(VIP)
        ca = certs.make_ca("Bench CA")
        doc = desired(backends, port, certs.make_cert(ca, [SERVER_NAME]), "b" * 32)
        device.put(doc)
        section_handshakes(result, device, port, runs, seconds)
        section_keepalive(result, f"https://{VIP}:{port}/", runs, seconds)
        section_rotation(result, device, doc, reps)
    finally:
        device.stop()
        backends.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    result.details["settings"] = {"client_processes": PROCESSES, "seconds": seconds, "runs": runs,
                                  "rotations": reps, "poll_s": POLL_S, "wrk": WRK,
                                  "certificate": "EC P-256", "versions": "TLSv1.2-TLSv1.3 (TLS 1.3 negotiated)"}
    result.note("the measured HAProxy runs nbthread 1 like every load balancer of the device; "
                "clients, the back-end HAProxy and the measured one share 2 cores")
    return result


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    outcome = run(quick=parser.parse_args().quick)
    print(outcome.table())
    print(f"({outcome.save()})")
