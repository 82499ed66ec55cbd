"""6. The HAProxy data plane end to end: API -> server -> RabbitMQ -> agent ->
``lbaas device`` -> HAProxy -> back ends, with real traffic on loopback.

A Cluster on PostgreSQL + RabbitMQ: 1 ``lbaas server``, 2 ``lbaas agent``
(haproxy driver, both pointing at the same device) and 1 ``lbaas device``
(one HAProxy master + worker per load balancer).  Back ends are small HTTP
servers in this process on 127.0.0.1 answering their name ("b1", "b2",
"b3"); VIPs come from the cluster subnet 127.0.128.0/17.  Every load
balancer is one fully populated POST: LB + HTTP listener + HTTP pool
ROUND_ROBIN + 2 members + an HTTP health monitor (delay 5 s, GET /health),
unless a row says "no health monitor".

Traffic is observed by a poller thread: one GET on a fresh connection every
5 ms, each answer kept with its send and receive times.  API states are
polled every 5 ms (bench.common.wait_active).

1. create -> VIP answers 200 from a member (first 200 received), and
   create -> ACTIVE; a fresh load balancer each time (distinct VIP and port),
   deleted (cascade) before the next, so the device holds at most one.
2. member change -> traffic reflects it, on one load balancer (the only one
   on the device): add a member (first answer from it; a reload), remove
   it, weight 0 and admin_state_up false on a member (the send time of the
   first request after its last answer, once 10 answers in a row came from
   others; runtime API, no reload), each followed by a restore; and
   API -> ACTIVE for each.
3. no request lost: two client threads (one fresh connection per request;
   one keep-alive connection, reopened after a failure and never retried)
   request the VIP sequentially (2 ms apart) while 20 changes are applied one
   after another (each waits for ACTIVE): member add / remove (reload),
   weight change (runtime), weight + monitor_port change (forces a reload),
   admin_state_up false (runtime).  How each change was applied is read
   from the device's log.
4. N load balancers on one device (200; quick: 20), created 10 at a time:
   memory (VmRSS and Pss of every HAProxy process under the device's
   state_dir, per load balancer; the device service's own RSS), the same
   member changes as 2 at that size, then all deleted with ?cascade=true and
   the HAProxy processes checked gone.
"""

from __future__ import annotations

import re
import signal
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from bench.common import Result, expect, percentile, summary_ms, temp_database, wait_active
from bench.dataplane_helpers import (LoadClient, Poller, first_answer, get_once, gone, kill_pids, memory_of,
                                     pids_under, process_tree, wait_until)

NAME = "dataplane"
HOSTS = ["dp-1", "dp-2"]
MONITOR = {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2, "max_retries_down": 2,
           "url_path": "/health"}
TRAFFIC_TIMEOUT = 15.0
CREATE_TARGET_MS = 1000.0
CHANGE_TARGET_MS = 200.0


# --- API bodies and calls ---------------------------------------------------------

def lb_body(name: str, port: int, members: list[Any], monitor: bool = True) -> dict:
    pool: dict[str, Any] = {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                            "members": [{"address": b.address, "protocol_port": b.port} for b in members]}
    if monitor:
        pool["healthmonitor"] = dict(MONITOR)
    return {"loadbalancer": {"name": name, "vip_subnet_id": "cluster", "listeners": [{
        "protocol": "HTTP", "protocol_port": port, "default_pool": pool}]}}


def delete_lb(http: httpx.Client, lb_id: str, timeout: float = 60) -> None:
    expect(http.delete(f"/v2/lbaas/loadbalancers/{lb_id}", params={"cascade": "true"}), 204)
    deadline = time.monotonic() + timeout
    while http.get(f"/v2/lbaas/loadbalancers/{lb_id}").status_code != 404:
        if time.monotonic() > deadline:
            raise TimeoutError(f"load balancer {lb_id} not deleted after {timeout} s")
        time.sleep(0.05)


class Target:
    """One load balancer being measured: its ids, VIP and a VIP poller."""

    def __init__(self, doc: dict, port: int) -> None:
        self.id = doc["id"]
        self.vip = doc["vip_address"]
        self.port = port
        self.pool_id = doc["pools"][0]["id"] if doc.get("pools") else doc["listeners"][0]["default_pool_id"]
        self.poller: Poller | None = None

    def members(self, http: httpx.Client) -> dict[int, str]:
        """protocol_port -> member id."""
        listed = expect(http.get(f"/v2/lbaas/pools/{self.pool_id}/members"), 200)["members"]
        return {m["protocol_port"]: m["id"] for m in listed}


def timed_change(http: httpx.Client, target: Target, call: Any, wait: Any) -> dict[str, float]:
    """Run ``call()`` (the API request), then measure API -> ACTIVE and
    API -> traffic (``wait(t0)`` builds the traffic predicate); seconds."""
    t0 = time.monotonic()
    response = call()
    api = time.monotonic() - t0
    if response.status_code not in (200, 201, 202, 204):
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: "
                           f"{response.status_code} {response.text[:300]}")
    active_at, _ = wait_active(http, target.id, timeout=30)
    seen_at = target.poller.wait(wait(t0), timeout=TRAFFIC_TIMEOUT)
    return {"api": api, "active": active_at - t0, "traffic": seen_at - t0,
            "body": response.json() if response.content else {}}


def member_cycle(http: httpx.Client, target: Target, spare: Any, drained: Any) -> dict[str, dict[str, float]]:
    """One round of the measured member changes on ``target`` (whose members
    are ``drained`` and another): add ``spare``, remove it, weight 0 on
    ``drained`` and back, admin_state_up false on it and back."""
    base = f"/v2/lbaas/pools/{target.pool_id}/members"
    out: dict[str, dict[str, float]] = {}
    added = timed_change(http, target, lambda: http.post(base, json={"member": {
        "address": spare.address, "protocol_port": spare.port}}), lambda t0: first_answer(t0, spare.name))
    out["add member"] = added
    spare_id = added["body"]["member"]["id"]
    out["remove member"] = timed_change(http, target, lambda: http.delete(f"{base}/{spare_id}"),
                                        lambda t0: gone(t0, spare.name))
    drained_id = target.members(http)[drained.port]
    member = f"{base}/{drained_id}"
    out["weight 0"] = timed_change(http, target, lambda: http.put(member, json={"member": {"weight": 0}}),
                                   lambda t0: gone(t0, drained.name))
    out["weight 0 -> 1"] = timed_change(http, target, lambda: http.put(member, json={"member": {"weight": 1}}),
                                        lambda t0: first_answer(t0, drained.name))
    out["admin_state_up false"] = timed_change(
        http, target, lambda: http.put(member, json={"member": {"admin_state_up": False}}),
        lambda t0: gone(t0, drained.name))
    out["admin_state_up true"] = timed_change(
        http, target, lambda: http.put(member, json={"member": {"admin_state_up": True}}),
        lambda t0: first_answer(t0, drained.name))
    for value in out.values():
        value.pop("body", None)
    return out


def collect(rounds: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, list[float]]]:
    """kind -> {"active": [...], "traffic": [...], "api": [...]} (seconds)."""
    out: dict[str, dict[str, list[float]]] = {}
    for one in rounds:
        for kind, values in one.items():
            for key, value in values.items():
                out.setdefault(kind, {}).setdefault(key, []).append(value)
    return out


# --- the sections -------------------------------------------------------------------

def section_create(result: Result, http: httpx.Client, backends: list[Any], reps: int, reps_plain: int,
                   ports: Any) -> None:
    runs = []
    for i in range(reps + reps_plain):
        monitor = i < reps
        port = next(ports)
        t0 = time.monotonic()
        response = http.post("/v2/lbaas/loadbalancers",
                             json=lb_body(f"create-{i}", port, backends[:2], monitor=monitor))
        api = time.monotonic() - t0
        doc = expect(response, 201)["loadbalancer"]
        poller = Poller(doc["vip_address"], port)
        try:
            active_at, _ = wait_active(http, doc["id"], timeout=30)
            served_at = poller.wait(first_answer(t0), timeout=TRAFFIC_TIMEOUT)
            polls = len(poller.records)
        finally:
            poller.stop()
        runs.append({"monitor": monitor, "api": api, "active": active_at - t0, "traffic": served_at - t0,
                     "vip_polls": polls})
        delete_lb(http, doc["id"])
    result.details["create_runs"] = runs
    for monitor, label in ((True, "with health monitor"), (False, "no health monitor")):
        chosen = [r for r in runs if r["monitor"] is monitor]
        if not chosen:
            continue
        traffic = summary_ms([r["traffic"] for r in chosen])
        active = summary_ms([r["active"] for r in chosen])
        case = f"1. create LB+listener+pool+2 members ({label})"
        primary = monitor
        result.add(case, f"create -> VIP 200, p50 (n={traffic['n']})", traffic["p50"], "ms",
                   target=f"< {CREATE_TARGET_MS:.0f} ms" if primary else None,
                   met=traffic["p50"] < CREATE_TARGET_MS if primary else None)
        result.add(case, "create -> VIP 200, p95", traffic["p95"], "ms")
        result.add(case, "create -> VIP 200, max", traffic["max"], "ms")
        result.add(case, "create -> ACTIVE, p50", active["p50"], "ms")
        result.add(case, "POST answered, p50", summary_ms([r["api"] for r in chosen])["p50"], "ms")


def section_changes(result: Result, http: httpx.Client, target: Target, backends: list[Any],
                    reps: int, label: str, baseline: dict | None = None) -> dict[str, dict[str, list[float]]]:
    rounds = [member_cycle(http, target, backends[2], backends[1]) for _ in range(reps)]
    kinds = collect(rounds)
    measured = ("add member", "weight 0", "admin_state_up false")
    for kind in ("add member", "remove member", "weight 0", "admin_state_up false"):
        traffic = summary_ms(kinds[kind]["traffic"])
        active = summary_ms(kinds[kind]["active"])
        how = "reload" if "member" in kind else "runtime API"
        case = f"{label}: {kind} ({how})"
        target_ok = kind in measured and baseline is None
        extra: dict[str, Any] = {}
        if baseline is not None:
            base = percentile([s * 1000 for s in baseline[kind]["traffic"]], 50)
            extra["at_1_lb_p50_ms"] = round(base, 1)
        result.add(case, f"API -> traffic, p50 (n={traffic['n']})", traffic["p50"], "ms",
                   target=f"< {CHANGE_TARGET_MS:.0f} ms" if target_ok else None,
                   met=traffic["p50"] < CHANGE_TARGET_MS if target_ok else None, **extra)
        result.add(case, "API -> traffic, p95", traffic["p95"], "ms")
        result.add(case, "API -> ACTIVE, p50", active["p50"], "ms")
        result.add(case, "API -> ACTIVE, p95", active["p95"], "ms")
        if baseline is not None:
            base = percentile([s * 1000 for s in baseline[kind]["traffic"]], 50)
            result.add(case, "traffic p50 / same at 1 LB", traffic["p50"] / base if base else float("nan"), "x")
    return kinds


def section_no_loss(result: Result, http: httpx.Client, target: Target, backends: list[Any], changes: int,
                    device_log: str) -> None:
    base = f"/v2/lbaas/pools/{target.pool_id}/members"
    spare, drained = backends[2], backends[1]
    drained_id = target.members(http)[drained.port]
    log_start = Path(device_log).stat().st_size
    clients = [LoadClient(target.vip, target.port, keepalive=False).start(),
               LoadClient(target.vip, target.port, keepalive=True).start()]
    applied: list[str] = []
    spare_id = None
    try:
        time.sleep(0.3)
        for i in range(changes):
            step = i % 5
            if step == 0:
                what = "add member"
                response = http.post(base, json={"member": {"address": spare.address, "protocol_port": spare.port}})
                spare_id = expect(response, 201)["member"]["id"]
            elif step == 1:
                what = "weight"
                response = http.put(f"{base}/{drained_id}", json={"member": {"weight": 5 + i}})
            elif step == 2:
                what = "weight + monitor_port"
                monitor_port = drained.port if (i // 5) % 2 == 0 else None
                response = http.put(f"{base}/{drained_id}", json={"member": {"weight": 2 + i,
                                                                             "monitor_port": monitor_port}})
            elif step == 3:
                what = "admin_state_up false"
                response = http.put(f"{base}/{spare_id}", json={"member": {"admin_state_up": False}})
            else:
                what = "remove member"
                response = http.delete(f"{base}/{spare_id}")
            if response.status_code not in (200, 201, 204):
                raise RuntimeError(f"change {i} ({what}): {response.status_code} {response.text[:300]}")
            wait_active(http, target.id, timeout=30, poll=0.02)
            applied.append(what)
            time.sleep(0.15)
        time.sleep(0.5)
    finally:
        for client in clients:
            client.stop()
    with open(device_log, encoding="utf-8", errors="replace") as handle:
        handle.seek(log_start)
        modes = re.findall(rf"load balancer {re.escape(target.id)} revision \d+: (\w+)", handle.read())
    # Put the drained member back to weight 1, no monitor_port (for what follows).
    expect(http.put(f"{base}/{drained_id}", json={"member": {"weight": 1, "monitor_port": None}}), 200)
    wait_active(http, target.id, timeout=30)
    counted = {mode: modes.count(mode) for mode in sorted(set(modes))}
    fresh, kept = clients
    case = f"3. {changes} changes under sequential load"
    result.add(case, "requests, new connection each", fresh.requests, "req")
    result.add(case, "failed, new connection each", fresh.failures, "req", target="0", met=fresh.failures == 0)
    result.add(case, "requests, one keep-alive connection", kept.requests, "req")
    result.add(case, "failed, keep-alive (no retry)", kept.failures, "req", target="0", met=kept.failures == 0)
    if kept.failures:
        result.note(f"keep-alive client: {kept.failures} requests failed ({kept.errors[0][1]}): an old HAProxy "
                    "worker closes idle keep-alive connections when a reload soft-stops it; a client that "
                    "does not retry a request on a reused connection sees it")
    result.add(case, "changes applied by reload", counted.get("reloaded", 0), "changes")
    result.add(case, "changes applied by runtime API", counted.get("runtime", 0), "changes")
    result.details["no_loss"] = {"changes": applied, "device_applied": counted, "device_modes_in_order": modes,
                                 "fresh": {"requests": fresh.requests, "failures": fresh.failures,
                                           "bodies": fresh.bodies, "errors": fresh.errors},
                                 "keepalive": {"requests": kept.requests, "failures": kept.failures,
                                               "bodies": kept.bodies, "errors": kept.errors}}


def memory_snapshot(cluster: Any, state_dir: str) -> dict[str, Any]:
    haproxy = memory_of(pids_under(state_dir))
    device = memory_of(process_tree(cluster.devices["device-1"]["proc"].pid))
    agents = {host: memory_of(process_tree(proc.pid))["rss"] for host, proc in cluster.agents.items()}
    return {"haproxy": haproxy, "device": device, "agents_rss_kib": agents}


def section_scale(result: Result, cluster: Any, http_factory: Any, backends: list[Any], count: int,
                  reps: int, state_dir: str, one_lb_memory: dict, baseline: dict, ports: Any) -> None:
    port = next(ports)
    created: list[dict] = []
    times: list[float] = []

    def make(i: int) -> None:
        with http_factory() as http:
            t0 = time.monotonic()
            doc = expect(http.post("/v2/lbaas/loadbalancers",
                                   json=lb_body(f"scale-{i}", port, backends[:2])), 201)["loadbalancer"]
            created.append(doc)
            active_at, _ = wait_active(http, doc["id"], timeout=180, poll=0.1)
            times.append(active_at - t0)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=10) as pool:
        for future in [pool.submit(make, i) for i in range(count)]:
            future.result()
    wall = time.monotonic() - started
    create = summary_ms(times)
    case = f"4. {count} LBs on one device"
    result.add(case, f"create {count} (10 at a time), wall", wall, "s", rate_per_s=round(count / wall, 2))
    result.add(case, "create -> ACTIVE under that load, p50", create["p50"], "ms")
    result.add(case, "create -> ACTIVE under that load, p95", create["p95"], "ms")
    answering = sum(1 for doc in created if _answers(doc["vip_address"], port))
    result.add(case, "VIPs answering 200", answering, "LBs", target=str(count), met=answering == count)

    time.sleep(3)  # let start-up allocations settle
    snap = memory_snapshot(cluster, state_dir)
    hap = snap["haproxy"]
    per_lb_rss = hap["rss"] / count / 1024
    per_lb_pss = hap["pss"] / count / 1024
    marginal = (hap["pss"] - one_lb_memory["haproxy"]["pss"]) / (count - 1) / 1024 if count > 1 else float("nan")
    result.add(case, "HAProxy processes", hap["processes"], "procs", target=f"{2 * count}",
               met=hap["processes"] == 2 * count)
    result.add(case, "HAProxy VmRSS sum / LB", per_lb_rss, "MiB")
    result.add(case, "HAProxy Pss sum / LB", per_lb_pss, "MiB")
    result.add(case, "HAProxy Pss, marginal per extra LB", marginal, "MiB")
    result.add(case, "device service RSS", snap["device"]["rss"] / 1024, "MiB",
               at_1_lb_mib=round(one_lb_memory["device"]["rss"] / 1024, 1))
    result.add(case, "agent RSS (each)", statistics.fmean(snap["agents_rss_kib"].values()) / 1024, "MiB")
    result.details["memory"] = {"at_1_lb": one_lb_memory, f"at_{count}_lbs": snap}

    # The same member changes at that size, on one load balancer in the middle.
    middle = created[len(created) // 2]
    with http_factory() as http:
        target = Target(middle, port)
        target.poller = Poller(target.vip, port)
        try:
            section_changes(result, http, target, backends, reps, f"4. at {count} LBs", baseline=baseline)
        finally:
            target.poller.stop()

    # Delete them all (cascade), then the processes must go.
    started = time.monotonic()

    def remove(doc: dict) -> None:
        with http_factory() as http:
            delete_lb(http, doc["id"], timeout=180)

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(remove, created))
    deleted = time.monotonic() - started
    wait_until(lambda: not pids_under(state_dir), timeout=30, interval=0.2)
    gone_at = time.monotonic() - started
    left = pids_under(state_dir)
    folders = [p.name for p in Path(state_dir).iterdir() if p.is_dir()] if Path(state_dir).exists() else []
    result.add(case, f"delete {count} (cascade, 10 at a time), wall", deleted, "s")
    result.add(case, "delete -> last HAProxy process gone", gone_at, "s")
    result.add(case, "HAProxy processes left", len(left), "procs", target="0", met=not left)
    result.add(case, "LB folders left in state_dir", len(folders), "dirs", target="0", met=not folders)
    result.details["scale"] = {"count": count, "create_wall_s": wall, "create": create, "delete_wall_s": deleted,
                               "left_pids": left, "left_folders": folders}


def _answers(host: str, port: int) -> bool:
    for _ in range(3):
        status, _body = get_once(host, port)
        if status == 200:
            return True
        time.sleep(0.2)
    return False


# --- entry point ------------------------------------------------------------------------

def run(quick: bool = False) -> Result:
    from lbaas.testing.backends import Backend
    from lbaas.testing.cluster import Cluster

    result = Result(NAME, quick)
    create_reps, create_plain = (4, 2) if quick else (15, 5)
    change_reps = 3 if quick else 10
    changes = 10 if quick else 20
    count = 20 if quick else 200
    scale_reps = 2 if quick else 5
    ports = iter(range(20001, 21000))

    db, workdir = temp_database("postgresql")
    backends = [Backend(f"b{i}") for i in (1, 2, 3)]
    cluster = Cluster(workdir, db.url, environment="haproxy", device_driver="haproxy")
    state_dir = ""
    try:
        cluster.device_options = cluster.start_device("device-1")
        state_dir = cluster.devices["device-1"]["state_dir"]
        cluster.start_all(["server-1"], HOSTS)
        with cluster.client() as http:
            wait_until(lambda: bool(http.get("/v2/lbaas/providers").json().get("providers")), timeout=30)
            # Warm-up: one load balancer end to end, not measured.
            warm = expect(http.post("/v2/lbaas/loadbalancers", json=lb_body("warm-up", next(ports),
                                                                            backends[:2])), 201)["loadbalancer"]
            wait_active(http, warm["id"], timeout=60)
            delete_lb(http, warm["id"])

            section_create(result, http, backends, create_reps, create_plain, ports)

            port = next(ports)
            doc = expect(http.post("/v2/lbaas/loadbalancers", json=lb_body("changes", port, backends[:2])),
                         201)["loadbalancer"]
            wait_active(http, doc["id"], timeout=60)
            target = Target(http.get(f"/v2/lbaas/loadbalancers/{doc['id']}").json()["loadbalancer"], port)
            target.poller = Poller(target.vip, port)
            try:
                baseline = section_changes(result, http, target, backends, change_reps, "2. at 1 LB")
            finally:
                target.poller.stop()
            one_lb_memory = memory_snapshot(cluster, state_dir)
            section_no_loss(result, http, target, backends, changes,
                            f"{workdir}/device-1.log")
            time.sleep(1)
            # Old workers must be gone after reloads (no long connections are left open).
            workers = len(pids_under(f"{state_dir}/{target.id}"))
            result.add(f"3. {changes} changes under sequential load", "HAProxy processes of the LB after",
                       workers, "procs", target="2", met=workers == 2)
            delete_lb(http, target.id)

        section_scale(result, cluster, cluster.client, backends, count, scale_reps, state_dir,
                      one_lb_memory, baseline, ports)
    finally:
        cluster.stop()
        if state_dir:  # anything HAProxy we caused to start and cluster.stop() missed
            left = pids_under(state_dir)
            if left:
                result.note(f"killed {len(left)} HAProxy processes left under {state_dir} at the end")
                kill_pids(left, signal.SIGKILL)
        for backend in backends:
            backend.stop()
        db.drop()

    result.details["settings"] = {"hosts": HOSTS, "health_monitor": MONITOR, "vip_poll_s": 0.005,
                                  "api_poll_s": 0.005, "device_check_interval_s": 2, "agent_stats_interval_s": 2,
                                  "create_reps": [create_reps, create_plain], "change_reps": change_reps,
                                  "scale_count": count, "scale_change_reps": scale_reps}
    result.details["figures"] = {f"{r['case']} | {r['metric']}": {"value": r["value"], "unit": r["unit"],
                                                                  "target": r["target"], "met": r["met"]}
                                 for r in result.rows}
    result.note("1 server, 2 agents (haproxy driver, workers 4), 1 device on PostgreSQL + RabbitMQ; "
                "health monitor HTTP delay 5 s unless 'no health monitor'; VIP polled every 5 ms on fresh "
                "connections, API every 5 ms")
    result.note("memory: VmRSS from /proc/<pid>/status and Pss from /proc/<pid>/smaps_rollup of every process "
                "whose command line names the device state_dir (HAProxy masters + workers); RSS counts shared "
                "pages once per process, Pss shares them out")
    return result


if __name__ == "__main__":
    import argparse
    import sys
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    outcome = run(quick=args.quick)
    path = outcome.save()
    print(outcome.table())
    print(f"({path})")
    sys.exit(0)
