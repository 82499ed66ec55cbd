"""9. BIG-IP: what a change and a resync cost against a device that answers every call in 50 ms.

The bigip driver (``lbaas.agent.drivers.bigip``) against the BIG-IP emulator in this process
(HTTPS), every request delayed by ``LATENCY`` (the emulator's knob); AS3 tasks take no time
of their own, so the figures are the driver's round trips and work, not a real AS3's
processing of a tenant (which a real device adds, the same for any client).

1. The 56th listener.  One load balancer with 55 HTTP listeners, each with its pool of one
   member and an HTTP monitor, is on the device; the time for the driver to converge it with
   a 56th listener (no pool), then without it again (the listener deleted), and the time of
   the status report the agent makes after every converge (``report``).  Median of runs.
   The same through the API: one ``lbaas server`` and one ``lbaas agent`` (bigip driver) on
   PostgreSQL and RabbitMQ; POST of the 56th listener (and its DELETE) to the load balancer
   back to ACTIVE.  F5's agent (f5-openstack-agent pull request 1400) took 28.0 s in its
   Neutron driver plus 44.1 s in its agent, and 1.46 s + 0.78 s after that change.
2. 200 load balancers after an agent restart (1 listener, a pool of one member, an HTTP
   monitor each, in 5 projects, so 5 tenants).  A fresh driver: ``verify`` and
   ``list_loadbalancers`` as the agent starts, then every load balancer converged and
   reported as ``AgentService.resync`` does it: one after the other.  Two cases: the device
   still holds every revision (nothing to converge) and the device lost them (replaced: all
   200 converged).  The second also with the agent's ``workers`` (4) converging in
   parallel, as a re-dispatch of every load balancer through the agent's queue would.
"""

from __future__ import annotations

import copy
import queue
import shutil
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from bench.common import UNLIMITED_QUOTAS, Result, median, temp_database
from lbaas.agent.drivers.bigip import BigIPDriver
from lbaas.testing.bigip import BigIPEmulator
from lbaas.testing.cluster import Cluster, wait_lb
from lbaas.testing.polling import wait_for
from tests.bigip.desired import listener, loadbalancer, member, monitor, pool

NAME = "bigip"
LATENCY = 0.05
ENVIRONMENT = "bench"
LISTENERS = 55
FIRST_PORT = 10001
WORKERS = 4                  # the agent's default [agent] workers
PROJECTS = [f"{p:032x}" for p in range(1, 6)]


def make_driver(emulator: BigIPEmulator) -> BigIPDriver:
    return BigIPDriver({"bigip_hosts": emulator.url, "bigip_username": "admin", "bigip_password": "admin",
                        "bigip_ca_file": str(emulator.certificate), "bigip_task_timeout": "120",
                        "environment": ENVIRONMENT})


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def counted(emulator: BigIPEmulator, action: Callable[[], Any]) -> tuple[float, int]:
    """Seconds ``action`` took and the requests it made to the device."""
    before = emulator.calls()
    seconds = timed(action)
    return seconds, emulator.calls() - before


def pooled_listener(port: int) -> tuple[dict, dict]:
    """An HTTP listener on ``port`` with its own pool (one member, an HTTP monitor)."""
    its_pool = pool([member(address="192.0.2.20", port=port)], healthmonitor=monitor())
    return listener(its_pool, port=port), its_pool


# --- 1. the 56th listener, driver ---------------------------------------------------------

def fifty_five() -> Any:
    made = [pooled_listener(FIRST_PORT + i) for i in range(LISTENERS)]
    return loadbalancer(pools=[p for _, p in made], listeners=[li for li, _ in made])


def next_revision(desired: Any, listeners: list[dict]) -> Any:
    following = copy.deepcopy(desired)
    following["revision"] += 1
    following["listeners"] = copy.deepcopy(listeners)
    return following


def listener_runs(emulator: BigIPEmulator, runs: int) -> list[dict[str, float]]:
    driver = make_driver(emulator)
    try:
        driver.verify()
        desired = fifty_five()
        emulator.latency = 0.0          # the 55 are set up, not measured
        driver.converge(desired)
        emulator.latency = LATENCY
        base = desired["listeners"]
        extra = listener(None, port=FIRST_PORT + LISTENERS)
        rounds = []
        for _ in range(runs):
            desired = next_revision(desired, [*base, extra])
            add, add_calls = counted(emulator, lambda: driver.converge(desired))
            report, report_calls = counted(emulator, lambda: driver.report(desired["id"]))
            desired = next_revision(desired, base)
            remove, remove_calls = counted(emulator, lambda: driver.converge(desired))
            rounds.append({"add_s": add, "add_calls": add_calls, "report_s": report,
                           "report_calls": report_calls, "remove_s": remove, "remove_calls": remove_calls})
        return rounds
    finally:
        driver.close()


# --- 1. the 56th listener, through the API ---------------------------------------------------

def api_listener_runs(emulator: BigIPEmulator, runs: int) -> list[dict[str, float]]:
    db, workdir = temp_database("postgresql")
    options = {"bigip_hosts": emulator.url, "bigip_username": "admin", "bigip_password": "admin",
               "bigip_ca_file": str(emulator.certificate), "bigip_task_timeout": "120"}
    cluster = Cluster(workdir, db.url, environment=ENVIRONMENT, device_driver="bigip",
                      device_options=options, extra=UNLIMITED_QUOTAS, pending_timeout=60.0)
    try:
        cluster.start_all(["server-1"], ["bigip-bench-1"])
        with cluster.client() as client:
            lb_id = _api_fifty_five(client, emulator)
            rounds = []
            for _ in range(runs):
                rounds.append(_api_round(client, lb_id))
        return rounds
    finally:
        cluster.stop()
        db.drop()
        shutil.rmtree(workdir, ignore_errors=True)


def _api_fifty_five(client: httpx.Client, emulator: BigIPEmulator) -> str:
    listeners = [{"protocol": "HTTP", "protocol_port": FIRST_PORT + i, "default_pool": {
        "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
        "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2, "url_path": "/health"},
        "members": [{"address": "192.0.2.20", "protocol_port": FIRST_PORT + i}]}} for i in range(LISTENERS)]
    emulator.latency = 0.0
    wait_for(lambda: client.get("/v2.0/agents").json()["agents"][0]["configurations"]
             .get("device_state") == "up", timeout=30, what="the bench agent's device")
    response = client.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {
        "vip_subnet_id": "cluster", "listeners": listeners}})
    response.raise_for_status()
    lb_id = response.json()["loadbalancer"]["id"]
    wait_lb(client, lb_id, timeout=120)
    emulator.latency = LATENCY
    return str(lb_id)


def _api_round(client: httpx.Client, lb_id: str) -> dict[str, float]:
    started = time.perf_counter()
    response = client.post("/v2/lbaas/listeners", json={"listener": {
        "loadbalancer_id": lb_id, "protocol": "HTTP", "protocol_port": FIRST_PORT + LISTENERS}})
    response.raise_for_status()
    wait_lb(client, lb_id, timeout=120)
    added = time.perf_counter() - started
    started = time.perf_counter()
    assert client.delete(f"/v2/lbaas/listeners/{response.json()['listener']['id']}").status_code == 204
    wait_lb(client, lb_id, timeout=120)
    return {"add_s": added, "remove_s": time.perf_counter() - started}


# --- 2. 200 load balancers after a restart ---------------------------------------------------

def small(project: str) -> dict:
    """One HTTP listener, its pool of one member with an HTTP monitor."""
    its_pool = pool(healthmonitor=monitor())
    return loadbalancer(project_id=project, pools=[its_pool], listeners=[listener(its_pool)])


def fleet(count: int) -> list[dict]:
    return [small(PROJECTS[i % len(PROJECTS)]) for i in range(count)]


def converge_and_report(driver: BigIPDriver, desired: Any) -> None:
    """What the agent's converge does with the device: the change, then the status report."""
    driver.converge(desired)
    driver.report(desired["id"])


def restart(emulator: BigIPEmulator, desired: list[dict], workers: int) -> dict[str, float]:
    """A fresh driver: verify and list as the agent starts, then converge what the device lacks."""
    driver = make_driver(emulator)
    before = emulator.calls()
    try:
        started = time.perf_counter()
        driver.verify()
        held = driver.list_loadbalancers()
        missing = [d for d in desired if held.get(d["id"]) != d["revision"]]
        listed = time.perf_counter() - started
        if workers == 1:
            for one in missing:
                converge_and_report(driver, one)
        else:
            _in_parallel(driver, missing, workers)
        total = time.perf_counter() - started
    finally:
        driver.close()
    return {"list_s": listed, "total_s": total, "converged": len(missing), "calls": emulator.calls() - before}


def _in_parallel(driver: BigIPDriver, desired: list[dict], workers: int) -> None:
    work: queue.Queue[dict] = queue.Queue()
    for one in desired:
        work.put(one)
    failures: list[BaseException] = []

    def worker() -> None:
        while True:
            try:
                one = work.get_nowait()
            except queue.Empty:
                return
            try:
                converge_and_report(driver, one)
            except Exception as exc:  # reported after the run, never lost
                failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} converges failed; first: {failures[0]}")


def wipe(emulator: BigIPEmulator) -> None:
    """The device lost everything (replaced): remove every tenant, quickly."""
    latency, emulator.latency = emulator.latency, 0.0
    with httpx.Client(verify=str(emulator.certificate), auth=("admin", "admin")) as client:
        client.delete(f"{emulator.url}/mgmt/shared/appsvcs/declare").raise_for_status()
    emulator.latency = latency
    assert emulator.tenants() == []


def restart_runs(emulator: BigIPEmulator, count: int, runs: int) -> dict[str, list[dict[str, float]]]:
    desired = fleet(count)
    rounds: dict[str, list[dict[str, float]]] = {"lost_serial": [], "in_sync": [], "lost_parallel": []}
    for _ in range(runs):
        wipe(emulator)
        rounds["lost_serial"].append(restart(emulator, desired, 1))
        rounds["in_sync"].append(restart(emulator, desired, 1))
        wipe(emulator)
        rounds["lost_parallel"].append(restart(emulator, desired, WORKERS))
    return rounds


# --- the run ---------------------------------------------------------------------------------

def run(quick: bool = False) -> Result:
    result = Result(NAME, quick)
    runs, api_runs, count, fleet_runs = (2, 1, 40, 1) if quick else (5, 3, 200, 3)
    with BigIPEmulator() as emulator:
        driver_rounds = listener_runs(emulator, runs)
        wipe(emulator)
        api_rounds = api_listener_runs(emulator, api_runs)
        wipe(emulator)
        emulator.latency = LATENCY
        fleet_rounds = restart_runs(emulator, count, fleet_runs)
    _listener_rows(result, driver_rounds, api_rounds)
    _restart_rows(result, fleet_rounds, count)
    result.details.update(listener_driver=driver_rounds, listener_api=api_rounds, restart=fleet_rounds,
                          settings={"latency_s": LATENCY, "listeners": LISTENERS, "loadbalancers": count,
                                    "projects": len(PROJECTS), "workers": WORKERS})
    result.note(f"every device request delayed {LATENCY * 1000:.0f} ms; AS3 tasks take no time of their own")
    return result


def _each(rounds: list[dict[str, float]], key: str) -> list[float]:
    return [round(r[key], 2) for r in rounds]


def _listener_rows(result: Result, driver_rounds: list[dict[str, float]], api_rounds: list[dict[str, float]]) -> None:
    case = f"LB with {LISTENERS} listeners"
    for key, metric in (("add_s", "driver: converge with the 56th listener"),
                        ("report_s", "driver: status report after it"),
                        ("remove_s", "driver: converge without it")):
        calls = median(r[key.replace("_s", "_calls")] for r in driver_rounds)
        result.add(case, f"{metric} ({calls:.0f} requests)", median(r[key] for r in driver_rounds), "s",
                   each=_each(driver_rounds, key))
    result.add(case, "API: POST 56th listener -> ACTIVE", median(r["add_s"] for r in api_rounds), "s",
               target="F5 agent: 28 + 44 s; 1.5 + 0.8 s fixed", each=_each(api_rounds, "add_s"))
    result.add(case, "API: DELETE it -> ACTIVE", median(r["remove_s"] for r in api_rounds), "s",
               each=_each(api_rounds, "remove_s"))


def _restart_rows(result: Result, rounds: dict[str, list[dict[str, float]]], count: int) -> None:
    case = f"agent restart, {count} LBs"
    labels = {"in_sync": "device in sync: verify + list", "lost_serial": "device lost them: all converged, serial",
              "lost_parallel": f"device lost them: all converged, {WORKERS} workers"}
    for key, label in labels.items():
        calls = median(r["calls"] for r in rounds[key])
        result.add(case, f"{label} ({calls:.0f} requests)", median(r["total_s"] for r in rounds[key]), "s",
                   each=_each(rounds[key], "total_s"))


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    outcome = run(quick=parser.parse_args().quick)
    outcome.finish()
    print(outcome.table())
    print(f"({outcome.save()})")
