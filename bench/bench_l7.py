"""7. L7 policies on the HAProxy data plane (issue 8, item 5): what 100 policies on one
listener cost HAProxy, and how fast a policy change reaches traffic.

1. Requests/s through HAProxy, 0 vs 100 policies: two load balancers on one ``lbaas
   device`` process (PUT straight to its API, no control plane), the same HTTP listener and
   default pool, one with 100 REDIRECT_TO_POOL policies (one rule each, cycling HOST_NAME
   EQUAL_TO, PATH STARTS_WITH, PATH REGEX, FILE_TYPE EQUAL_TO, HEADER EQUAL_TO, COOKIE
   EQUAL_TO) that the benchmark's requests never match, so every request evaluates all 100
   before the default pool; the request carries the header and the cookie the rules read,
   so those compare strings rather than miss at once. Load: ``wrk -t1 -c16`` (keep-alive,
   Debian's package, installed when missing) on GET /, runs alternating 0 / 100 so drift
   hits both alike; median req/s of each, and the median of the per-pair ratios. The back
   end is a separate HAProxy answering a fixed 200 (``http-request return``), so that the
   back end is not what limits the rate (a Python back end serves about 2,000 req/s).
2. Change -> traffic, on the device: the last policy (position 100) routes PATH STARTS_WITH
   /api to pool b; a PUT of the next revision points it at pool c (then back): time from
   sending the PUT to the first /api answer from the new pool (a poller: one GET /api on a
   fresh connection every 5 ms). The same on a load balancer with that one policy only.
3. The same through the API (``lbaas server`` + 2 agents + the device, PostgreSQL and
   RabbitMQ; the fully built listener with 100 policies made through /v2/lbaas/l7policies
   first): POST an l7rule PATH STARTS_WITH /api into the empty position-100 policy (/api
   moves from the default pool a to b), PUT the policy's redirect_pool_id to c, DELETE the
   rule (/api back to a); API call -> first /api answer from the new pool, and -> ACTIVE.

Traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.bench_dataplane import Target, delete_lb, timed_change
from bench.common import Result, expect, stop_process, summary_ms, temp_database, wait_active
from bench.dataplane_helpers import Poller, Record, first_answer, kill_pids, pids_under, wait_until
from lbaas.testing.cluster import Cluster
from lbaas.testing.polling import free_port

NAME = "l7"
POLICIES = 100
VIPS = ("127.0.5.1", "127.0.5.2", "127.0.5.3")   # outside the tests' 127.0.10+ and the cluster's 127.0.128.0/17
TOKEN = "bench-l7-token"
WRK = ["-t1", "-c16", "-H", "X-Tenant: nobody", "-H", "Cookie: session=nobody", "--latency"]
RULE_KINDS = (  # (type, compare, key, value format): none matches GET / of the benchmark
    ("HOST_NAME", "EQUAL_TO", None, "host-{i}.example.com"),
    ("PATH", "STARTS_WITH", None, "/p{i}/"),
    ("PATH", "REGEX", None, "^/r{i}/[a-z]+$"),
    ("FILE_TYPE", "EQUAL_TO", None, "x{i}"),
    ("HEADER", "EQUAL_TO", "X-Tenant", "tenant-{i}"),
    ("COOKIE", "EQUAL_TO", "session", "s{i}"),
)


# --- processes: the device and the back end ---------------------------------------------

class Device:
    """An ``lbaas device`` process on its own state directory, and a client of its API."""

    def __init__(self, workdir: str) -> None:
        self.state_dir = tempfile.mkdtemp(prefix="lbd7", dir="/tmp")  # short: socket paths
        port = free_port()
        config = Path(workdir, "device.ini")
        config.write_text(f"[device]\nbind_port = {port}\nstate_dir = {self.state_dir}\n"
                          f"token = {TOKEN}\ncheck_interval = 2\n")
        log = Path(workdir, "device.log")
        self.proc = subprocess.Popen([sys.executable, "-m", "lbaas.cli", "device", "--config-file",
                                      str(config)], stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                 headers={"X-Auth-Token": TOKEN})
        if not wait_until(self._ready, timeout=30):
            raise RuntimeError(f"lbaas device not answering after 30 s; see {log}")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"lbaas device exited with {self.proc.returncode}")
        try:
            return self.http.get("/").status_code == 200
        except httpx.HTTPError:
            return False

    def put(self, doc: dict) -> str:
        return expect(self.http.put(f"/loadbalancers/{doc['id']}", json=doc), 200)["applied"]

    def stop(self) -> list[int]:
        """Stop the service and every HAProxy it started; the pids that had to be killed."""
        for lb in self.http.get("/loadbalancers").json().get("loadbalancers", []):
            self.http.delete(f"/loadbalancers/{lb['id']}")
        self.http.close()
        stop_process(self.proc)
        left = pids_under(self.state_dir)
        kill_pids(left, 9)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        return left


class StaticBackends:
    """One HAProxy answering 200 with a fixed body on one port per name (its own process)."""

    def __init__(self, workdir: str, names: tuple[str, ...]) -> None:
        self.ports = {name: free_port() for name in names}
        fronts = "".join(f"frontend {name}\n    bind 127.0.0.1:{port}\n    http-request return status 200 "
                         f"content-type text/plain string {name}\n" for name, port in self.ports.items())
        config = Path(workdir, "backends.cfg")
        config.write_text("global\n    nbthread 1\n    maxconn 4096\ndefaults\n    mode http\n"
                          "    timeout client 30s\n    timeout server 30s\n    timeout connect 5s\n" + fronts)
        self.proc = subprocess.Popen([shutil.which("haproxy") or "/usr/sbin/haproxy", "-db", "-f", str(config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        for name, port in self.ports.items():
            wait_body("127.0.0.1", port, "/", name, timeout=10)

    def stop(self) -> None:
        stop_process(self.proc)


# --- desired states -------------------------------------------------------------------------

def rule(i: int) -> dict:
    kind, compare, key, value = RULE_KINDS[i % len(RULE_KINDS)]
    return {"id": f"rule-{i}", "type": kind, "compare_type": compare, "key": key,
            "value": value.format(i=i), "invert": False, "admin_state_up": True}


def policy(i: int, pool_id: str, rules: list[dict]) -> dict:
    return {"id": f"policy-{i}", "action": "REDIRECT_TO_POOL", "position": i, "redirect_pool_id": pool_id,
            "redirect_url": None, "redirect_prefix": None, "redirect_http_code": None,
            "admin_state_up": True, "rules": rules}


def api_rule() -> dict:
    return {"id": "rule-api", "type": "PATH", "compare_type": "STARTS_WITH", "key": None,
            "value": "/api", "invert": False, "admin_state_up": True}


def policies(count: int) -> list[dict]:
    """``count`` policies: all but the last never match; the last sends /api to pool b."""
    out = [policy(i, "pool-b", [rule(i)]) for i in range(1, count)]
    return out + [policy(count, "pool-b", [api_rule()])] if count else out


def desired(name: str, vip: str, port: int, backends: StaticBackends, count: int) -> dict:
    """A load balancer in the device's wire shape: one HTTP listener with ``count`` policies,
    default pool a, pools b and c for the policies."""
    def pool(letter: str) -> dict:
        return {"id": f"pool-{letter}", "name": "", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                "admin_state_up": True, "session_persistence": None, "healthmonitor": None,
                "members": [{"id": f"member-{letter}", "name": letter, "address": "127.0.0.1",
                             "protocol_port": backends.ports[letter], "weight": 1, "backup": False,
                             "admin_state_up": True, "monitor_address": None, "monitor_port": None}]}
    return {"id": name, "project_id": "bench", "revision": 1, "name": "", "admin_state_up": True,
            "vip_address": vip,
            "listeners": [{"id": f"{name}-listener", "name": "", "protocol": "HTTP", "protocol_port": port,
                           "connection_limit": -1, "admin_state_up": True, "timeout_client_data": 50000,
                           "timeout_member_connect": 5000, "timeout_member_data": 50000,
                           "timeout_tcp_inspect": 0, "default_pool_id": "pool-a",
                           "l7policies": policies(count)}],
            "pools": [pool(letter) for letter in "abc"]}


# --- traffic --------------------------------------------------------------------------------

def get_path(host: str, port: int, path: str, timeout: float = 2.0) -> tuple[int | None, str]:
    """GET ``path`` on a fresh connection: (status, body), or (None, the error)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


def wait_body(host: str, port: int, path: str, body: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (answer := get_path(host, port, path)) != (200, body):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host}:{port}{path} answered {answer}, not {body!r}")
        time.sleep(0.02)


class PathPoller(Poller):
    """The data-plane benchmark's VIP poller, on ``path`` instead of /."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.path = path  # before the thread starts in Poller.__init__
        super().__init__(host, port)

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.monotonic()
            status, body = get_path(self.host, self.port, self.path, self.timeout)
            self.records.append(Record(sent, time.monotonic(), status, body))
            self._stop.wait(self.interval)


def ensure_wrk() -> str:
    """The path of ``wrk``; installs Debian's package when it is missing (needs root)."""
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True, timeout=600,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("wrk") or "wrk"


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, seconds: int) -> dict[str, float]:
    """One wrk run: req/s, latency p50/p99 (ms) and failed requests (errors + non-2xx/3xx)."""
    out = subprocess.run([ensure_wrk(), *WRK, f"-d{seconds}s", url], capture_output=True, text=True,
                         timeout=seconds + 60, check=True).stdout
    found = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for label, key in (("50%", "p50"), ("99%", "p99")):
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)$", out, re.M).groups()  # type: ignore[union-attr]
        found[key] = float(value) * _UNITS[unit]
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    found["failed"] = sum(int(x) for x in errors.groups()) if errors else 0
    found["failed"] += int(non2xx.group(1)) if non2xx else 0
    return found


# --- the sections ---------------------------------------------------------------------------

def section_throughput(result: Result, urls: dict[int, str], pairs: int, seconds: int) -> None:
    """wrk on 0 and 100 policies in turn (A B A B ...), after one warm-up run of each."""
    for url in urls.values():
        wrk(url, 1)
    runs: dict[int, list[dict[str, float]]] = {count: [] for count in urls}
    for _ in range(pairs):
        for count, url in urls.items():
            runs[count].append(wrk(url, seconds))
    result.details["wrk_runs"] = {str(k): v for k, v in runs.items()}
    case = f"1. GET / through HAProxy, wrk -t1 -c16, {seconds} s x {pairs} each"
    for count, each in runs.items():
        rates = [r["rps"] for r in each]
        result.add(case, f"{count} policies: req/s, median", statistics.median(rates), "/s", each=rates)
        result.add(case, f"{count} policies: latency p50 / p99 (median of runs)",
                   statistics.median(r["p50"] for r in each), "ms",
                   p99=statistics.median(r["p99"] for r in each))
    zero, hundred = runs[0], runs[POLICIES]
    ratios = [h["rps"] / z["rps"] for z, h in zip(zero, hundred)]
    result.add(case, f"req/s {POLICIES} / 0 policies, median of pairs", statistics.median(ratios), "x",
               each=ratios)
    failed = sum(r["failed"] for each in runs.values() for r in each)
    result.add(case, "failed requests (socket errors + non-2xx)", failed, "req", target="0", met=failed == 0)


def timed_put(device: Device, doc: dict, poller: PathPoller, body: str) -> tuple[float, float]:
    """PUT the next revision of ``doc``; (PUT answered, first /api answer from ``body``), s."""
    doc["revision"] += 1
    t0 = time.monotonic()
    device.put(doc)
    answered = time.monotonic() - t0
    return answered, poller.wait(first_answer(t0, body), timeout=15) - t0


def section_device_change(result: Result, device: Device, docs: dict[int, dict], reps: int) -> None:
    """The position-100 policy (or the only one) moved between pools b and c, ``reps`` times."""
    for count, doc in docs.items():
        listener = doc["listeners"][0]
        poller = PathPoller(doc["vip_address"], listener["protocol_port"], "/api")
        last = listener["l7policies"][-1]
        puts, traffic = [], []
        try:
            for i in range(reps):
                last["redirect_pool_id"] = "pool-c" if i % 2 == 0 else "pool-b"
                answered, seen = timed_put(device, doc, poller, last["redirect_pool_id"][-1])
                puts.append(answered), traffic.append(seen)
        finally:
            poller.stop()
        case = f"2. device PUT moving /api (policy {count} of {count}) to another pool"
        t, p = summary_ms(traffic), summary_ms(puts)
        result.add(case, f"PUT -> first /api answer from the new pool, p50 (n={t['n']})", t["p50"], "ms",
                   p95=t["p95"])
        result.add(case, "PUT answered (config checked, HAProxy reloaded), p50", p["p50"], "ms")
        result.details[f"device_change_{count}"] = {"traffic_s": traffic, "put_s": puts}


def section_device(result: Result, workdir: str, backends: StaticBackends, pairs: int, seconds: int,
                   reps: int) -> None:
    """Sections 1 and 2 on one device: load balancers with 0, 100 and 1 policies."""
    device = Device(workdir)
    try:
        docs = {count: desired(f"l7-{count}", vip, free_port(vip), backends, count)
                for count, vip in zip((0, POLICIES, 1), VIPS)}
        for doc in docs.values():
            device.put(doc)
            listener = doc["listeners"][0]
            wait_body(doc["vip_address"], listener["protocol_port"], "/", "a", timeout=10)
            if listener["l7policies"]:
                wait_body(doc["vip_address"], listener["protocol_port"], "/api", "b", timeout=10)
        rendered = Path(device.state_dir, docs[POLICIES]["id"], "haproxy.cfg").read_text()
        result.add("1. setup", f"use_backend lines rendered for {POLICIES} policies",
                   rendered.count("use_backend "), "lines", target=str(POLICIES),
                   met=rendered.count("use_backend ") == POLICIES)
        urls = {count: f"http://{docs[count]['vip_address']}:{docs[count]['listeners'][0]['protocol_port']}/"
                for count in (0, POLICIES)}
        section_throughput(result, urls, pairs, seconds)
        section_device_change(result, device, {1: docs[1], POLICIES: docs[POLICIES]}, reps)
    finally:
        left = device.stop()
        if left:
            result.note(f"killed {len(left)} HAProxy processes the device left behind")


# --- through the API ------------------------------------------------------------------------

def api_listener(http: httpx.Client, backends: StaticBackends, port: int) -> tuple[Target, dict[str, str], str]:
    """A load balancer with default pool a, pools b and c and 100 policies, built through the
    API one call at a time (each waits for ACTIVE); the last policy has no rule (matches
    nothing). Returns the target, pool ids by letter and the last policy's id."""
    member = {"address": "127.0.0.1", "protocol_port": backends.ports["a"]}
    lb = expect(http.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {
        "name": "l7", "vip_subnet_id": "cluster", "listeners": [{
            "protocol": "HTTP", "protocol_port": port, "default_pool": {
                "name": "a", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "members": [member]}}]}}),
        201)["loadbalancer"]

    def create(path: str, body: dict) -> dict:
        wait_active(http, lb["id"], timeout=60)
        return next(iter(expect(http.post(path, json=body), 201).values()))

    pools = {"a": lb["listeners"][0]["default_pool_id"]}
    for letter in "bc":
        pools[letter] = create("/v2/lbaas/pools", {"pool": {
            "name": letter, "loadbalancer_id": lb["id"], "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}})["id"]
        create(f"/v2/lbaas/pools/{pools[letter]}/members", {"member": {
            "address": "127.0.0.1", "protocol_port": backends.ports[letter]}})
    listener_id = lb["listeners"][0]["id"]
    last = ""
    for i in range(1, POLICIES + 1):
        one = rule(i)
        rules = [] if i == POLICIES else [{k: one[k] for k in ("type", "compare_type", "key", "value")}]
        last = create("/v2/lbaas/l7policies", {"l7policy": {
            "listener_id": listener_id, "action": "REDIRECT_TO_POOL", "redirect_pool_id": pools["b"],
            "position": i, "rules": rules}})["id"]
    wait_active(http, lb["id"], timeout=60)
    return Target(http.get(f"/v2/lbaas/loadbalancers/{lb['id']}").json()["loadbalancer"], port), pools, last


def api_round(http: httpx.Client, target: Target, pools: dict[str, str], policy_id: str) -> dict[str, dict]:
    """POST the /api rule (-> b), PUT the policy to pool c (-> c), DELETE the rule (-> a); then
    the policy back to b (not measured)."""
    base = f"/v2/lbaas/l7policies/{policy_id}"
    out = {"POST l7rule PATH STARTS_WITH /api": timed_change(http, target, lambda: http.post(
        f"{base}/rules", json={"rule": {"type": "PATH", "compare_type": "STARTS_WITH", "value": "/api"}}),
        lambda t0: first_answer(t0, "b"))}
    rule_id = out["POST l7rule PATH STARTS_WITH /api"]["body"]["rule"]["id"]
    out["PUT l7policy redirect_pool_id"] = timed_change(http, target, lambda: http.put(
        base, json={"l7policy": {"redirect_pool_id": pools["c"]}}), lambda t0: first_answer(t0, "c"))
    out["DELETE l7rule"] = timed_change(http, target, lambda: http.delete(f"{base}/rules/{rule_id}"),
                                        lambda t0: first_answer(t0, "a"))
    expect(http.put(base, json={"l7policy": {"redirect_pool_id": pools["b"]}}), 200)
    wait_active(http, target.id, timeout=30)
    return out


def section_api(result: Result, backends: StaticBackends, reps: int) -> None:
    db, workdir = temp_database("postgresql")
    cluster = Cluster(workdir, db.url, environment="haproxy", device_driver="haproxy")
    state_dir = ""
    try:
        cluster.device_options = cluster.start_device("device-1")
        state_dir = cluster.devices["device-1"]["state_dir"]
        cluster.start_all(["server-1"], ["l7-1", "l7-2"])
        with cluster.client() as http:
            wait_until(lambda: bool(http.get("/v2/lbaas/providers").json().get("providers")), timeout=30)
            built = time.monotonic()
            target, pools, policy_id = api_listener(http, backends, free_port())
            result.details["api_build_s"] = time.monotonic() - built
            target.poller = PathPoller(target.vip, target.port, "/api")
            try:
                rounds = [api_round(http, target, pools, policy_id) for _ in range(reps)]
            finally:
                target.poller.stop()
            delete_lb(http, target.id)
    finally:
        cluster.stop()
        left = pids_under(state_dir) if state_dir else []
        if left:
            result.note(f"killed {len(left)} HAProxy processes left under {state_dir}")
            kill_pids(left, 9)
        db.drop()
    report_api(result, rounds)


def report_api(result: Result, rounds: list[dict[str, dict]]) -> None:
    case = f"3. API change on a listener with {POLICIES} policies (server + 2 agents + device)"
    for kind in rounds[0]:
        traffic = summary_ms([r[kind]["traffic"] for r in rounds])
        active = summary_ms([r[kind]["active"] for r in rounds])
        result.add(case, f"{kind} -> first /api answer from the new pool, p50 (n={traffic['n']})",
                   traffic["p50"], "ms", p95=traffic["p95"])
        result.add(case, f"{kind} -> ACTIVE, p50", active["p50"], "ms")
    result.details["api_rounds"] = [{k: {x: v for x, v in one.items() if x != "body"} for k, one in r.items()}
                                    for r in rounds]


def run(quick: bool = False) -> Result:
    result = Result(NAME, quick)
    pairs, seconds = (3, 2) if quick else (5, 5)
    reps = 4 if quick else 10
    ensure_wrk()
    workdir = tempfile.mkdtemp(prefix="lbaas-bench-l7-")
    backends = StaticBackends(workdir, ("a", "b", "c"))
    try:
        section_device(result, workdir, backends, pairs, seconds, reps)
        section_api(result, backends, 3 if quick else 10)
    finally:
        backends.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    result.details["settings"] = {"policies": POLICIES, "wrk": WRK, "wrk_seconds": seconds, "pairs": pairs,
                                  "change_reps": reps, "poll_s": 0.005, "rule_kinds": RULE_KINDS}
    result.note("back ends: one HAProxy process answering a fixed 200 per pool (http-request return); "
                "the measured HAProxy runs nbthread 1 like every load balancer of the device")
    result.note("2 shared cores: wrk, the measured HAProxy and the back-end HAProxy compete for them, so "
                "req/s is a lower bound; the ratio of alternating runs is the figure to quote")
    return result


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    outcome = run(quick=parser.parse_args().quick)
    print(outcome.table())
    print(f"({outcome.save()})")
