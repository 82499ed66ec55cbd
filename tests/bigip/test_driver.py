"""The bigip driver against the BIG-IP emulator (iControl REST + AS3 over HTTPS).

Each test starts its own emulator (or pair), so fault knobs never leak between tests.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lbaas import constants as c
from lbaas.agent.drivers import as3
from lbaas.agent.drivers.base import DeviceError, DeviceNotReady, DeviceRejected
from lbaas.agent.drivers.bigip import BigIPDriver
from lbaas.config import ConfigError
from lbaas.testing.bigip import BigIPEmulator, BigIPPair
from lbaas.testing.polling import wait_for
from tests.bigip.desired import bump, listener, loadbalancer, member, monitor, pool

DECLARE = "/mgmt/shared/appsvcs/declare"
PROJECT = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.fixture
def emulator() -> Iterator[BigIPEmulator]:
    with BigIPEmulator() as device:
        yield device


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[BigIPPair]:
    # One certificate for both members: two self-signed ones would share a subject name,
    # which one CA bundle cannot tell apart.
    with BigIPPair(cert_dir=str(tmp_path)) as devices:
        yield devices


def make_driver(hosts: list[BigIPEmulator], ca_file: str | None, environment: str = "east",
                **extra: Any) -> BigIPDriver:
    options = {"bigip_hosts": ",".join(h.url for h in hosts), "bigip_username": "admin",
               "bigip_password": "admin", "bigip_ca_file": ca_file or "", "bigip_task_timeout": "5",
               "bigip_ha_mode": "pair" if len(hosts) == 2 else "standalone",
               "environment": environment, **extra}
    return BigIPDriver(options)


@pytest.fixture
def driver(emulator: BigIPEmulator) -> Iterator[BigIPDriver]:
    made = make_driver([emulator], emulator.certificate)
    yield made
    made.close()


@pytest.fixture
def pair_driver(pair: BigIPPair) -> Iterator[BigIPDriver]:
    made = make_driver(list(pair.members), pair.first.certificate)
    made.verify()
    yield made
    made.close()


def tenant_of(desired: dict, environment: str = "east") -> str:
    return as3.tenant_name(environment, desired["project_id"])


def app_on(device: BigIPEmulator, desired: dict, environment: str = "east") -> dict | None:
    content = device.declaration(tenant_of(desired, environment)) or {}
    return content.get(as3.app_name(desired["id"]))


# --- verify ------------------------------------------------------------------------------

def test_verify_reports_the_device_and_honest_capabilities(driver: BigIPDriver) -> None:
    inventory = driver.verify()
    assert inventory["devices"] == 1 and inventory["loadbalancers"] == 0
    assert inventory["tmos_version"] == "15.1.10" and inventory["as3_version"] == "3.50.0"
    capabilities = inventory["capabilities"]
    assert "TERMINATED_HTTPS" not in capabilities["protocols"] and "UDP" not in capabilities["protocols"]
    assert "l7policy" not in capabilities["kinds"]


@pytest.mark.parametrize("knob, words", [("as3_installed", "AS3 is not installed"),
                                         ("ltm_provisioned", "LTM is not provisioned")])
def test_verify_says_what_is_missing(emulator: BigIPEmulator, driver: BigIPDriver, knob: str, words: str) -> None:
    setattr(emulator, knob, False)
    with pytest.raises(DeviceNotReady, match=words):
        driver.verify()


def test_an_old_as3_is_not_enough() -> None:
    with BigIPEmulator(as3_version="3.10.0") as old:
        with pytest.raises(DeviceNotReady, match="runs AS3 3.10.0, at least"):
            make_driver([old], old.certificate).verify()


def test_wrong_credentials_are_named_but_never_shown(emulator: BigIPEmulator) -> None:
    wrong = make_driver([emulator], emulator.certificate, bigip_password="not-the-password")
    with pytest.raises(DeviceNotReady, match="refused the login") as caught:
        wrong.verify()
    assert "not-the-password" not in str(caught.value)


def test_an_unverified_certificate_is_refused(emulator: BigIPEmulator) -> None:
    with pytest.raises(DeviceNotReady, match="unreachable"):
        make_driver([emulator], None).verify()  # the system's CAs do not know the emulator


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="bigip_hosts"):
        BigIPDriver({"bigip_username": "a", "bigip_password": "b", "environment": "east"})
    with pytest.raises(ConfigError, match="two devices"):
        BigIPDriver({"bigip_hosts": "https://127.0.0.1:1", "bigip_ha_mode": "pair", "bigip_username": "a",
                     "bigip_password": "b", "environment": "east"})
    with pytest.raises(ConfigError, match="environment_prefix"):
        BigIPDriver({"bigip_hosts": "https://127.0.0.1:1", "bigip_username": "a", "bigip_password": "b",
                     "environment": "east_west"})


# --- converge, list, delete ---------------------------------------------------------------

def test_converge_list_and_no_change(emulator: BigIPEmulator, driver: BigIPDriver) -> None:
    desired = loadbalancer(pools=[pool(healthmonitor=monitor())])
    driver.converge(desired)
    assert driver.list_loadbalancers() == {desired["id"]: 1}
    assert app_on(emulator, desired) == as3.application(desired)
    driver.converge(desired)  # the same state: AS3 "no change", nothing new applied
    assert len(emulator.history(tenant_of(desired))) == 1
    driver.converge(bump(desired))
    assert driver.list_loadbalancers() == {desired["id"]: 2}


def test_load_balancers_of_one_project_share_a_tenant(emulator: BigIPEmulator, driver: BigIPDriver) -> None:
    first, second = loadbalancer(), loadbalancer()
    driver.converge(first)
    driver.converge(second)
    assert driver.list_loadbalancers() == {first["id"]: 1, second["id"]: 1}
    driver.converge(bump(first))  # converging one leaves the other as it is
    assert app_on(emulator, second) == as3.application(second)
    driver.delete(first["id"])
    assert driver.list_loadbalancers() == {second["id"]: 1}
    driver.delete(first["id"])  # idempotent
    driver.delete(second["id"])
    assert tenant_of(second) not in emulator.tenants()  # the last one takes the tenant along


def test_parallel_converges_in_one_tenant_lose_nothing(driver: BigIPDriver) -> None:
    many = [loadbalancer() for _ in range(6)]
    threads = [threading.Thread(target=driver.converge, args=(d,)) for d in many]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert driver.list_loadbalancers() == {d["id"]: 1 for d in many}


def test_two_environments_on_one_device_never_touch_each_other(emulator: BigIPEmulator) -> None:
    east = make_driver([emulator], emulator.certificate, environment="east")
    west = make_driver([emulator], emulator.certificate, environment="west")
    ours, theirs = loadbalancer(project_id=PROJECT), loadbalancer(project_id=PROJECT)
    east.converge(ours)
    west.converge(theirs)
    assert east.list_loadbalancers() == {ours["id"]: 1}
    assert west.list_loadbalancers() == {theirs["id"]: 1}
    east.delete(theirs["id"])  # not east's to delete: untouched
    east.delete(ours["id"])
    assert west.list_loadbalancers() == {theirs["id"]: 1}
    assert app_on(emulator, theirs, "west") is not None


def test_hostile_project_ids_stay_in_their_tenant(emulator: BigIPEmulator, driver: BigIPDriver) -> None:
    desired = loadbalancer(project_id="../Common")
    driver.converge(desired)
    assert tenant_of(desired) in emulator.tenants() and "Common" not in emulator.tenants()
    assert driver.list_loadbalancers() == {desired["id"]: 1}


# --- report, capacity, probe -----------------------------------------------------------

def test_report_statuses_and_counters(emulator: BigIPEmulator, driver: BigIPDriver) -> None:
    up, down = member(address="192.0.2.11"), member(address="192.0.2.12")
    desired = loadbalancer(pools=[pool([up, down], healthmonitor=monitor())])
    driver.converge(desired)
    emulator.set_member_state("192.0.2.12", 8080, "offline")
    listener_id = desired["listeners"][0]["id"]
    path = f"/{tenant_of(desired)}/{as3.app_name(desired['id'])}/l_{uuid.UUID(listener_id).hex}"
    emulator.set_counters(path, **{"clientside.bitsIn": 8000, "clientside.bitsOut": 16000,
                                   "clientside.curConns": 3, "clientside.totConns": 9})
    report = driver.report(desired["id"])
    assert report is not None
    operating = report["operating"]
    assert operating["members"] == {up["id"]: c.ONLINE, down["id"]: c.ERROR}
    assert operating["pools"] == {desired["pools"][0]["id"]: c.DEGRADED}
    assert operating["listeners"] == {listener_id: c.ONLINE} and operating["loadbalancer"] == c.ONLINE
    assert report["listener_stats"][listener_id] == {"bytes_in": 1000, "bytes_out": 2000, "active_connections": 3,
                                                     "total_connections": 9, "request_errors": 0}
    assert report["stats"] == report["listener_stats"][listener_id]
    assert driver.report(str(uuid.uuid4())) is None


def test_report_of_members_without_monitor_and_admin_down(driver: BigIPDriver) -> None:
    plain, off = member(), member(address="192.0.2.13", admin_state_up=False)
    first = pool([plain, off])
    desired = loadbalancer(pools=[first], listeners=[listener(first, admin_state_up=False)])
    driver.converge(desired)
    report = driver.report(desired["id"])
    assert report is not None
    assert report["operating"]["members"] == {plain["id"]: c.NO_MONITOR, off["id"]: c.OFFLINE}
    assert report["operating"]["listeners"] == {desired["listeners"][0]["id"]: c.OFFLINE}
    assert report["operating"]["loadbalancer"] == c.OFFLINE


def test_report_reads_every_virtual_in_one_request(emulator: BigIPEmulator, driver: BigIPDriver) -> None:
    pools = [pool([member(port=8000 + i)], healthmonitor=monitor()) for i in range(20)]
    desired = loadbalancer(pools=pools, listeners=[listener(p, port=1000 + i) for i, p in enumerate(pools)])
    driver.converge(desired)
    emulator.set_member_state("192.0.2.10", 8005, "offline")
    emulator.latency = 0.05
    before = emulator.calls()
    started = time.monotonic()
    report = driver.report(desired["id"])
    took = time.monotonic() - started
    assert report is not None
    assert emulator.calls("/mgmt/tm/ltm/virtual/stats", method="GET") == 1
    # one members request per pool, several in flight: far fewer round trips than 40
    assert emulator.calls() - before <= 1 + 20 + 3
    assert took < 20 * 0.05
    operating = report["operating"]
    assert operating["listeners"] == {one["id"]: c.ERROR if i == 5 else c.ONLINE  # its pool is down
                                      for i, one in enumerate(desired["listeners"])}
    assert operating["pools"][pools[5]["id"]] == c.ERROR
    assert operating["members"][pools[5]["members"][0]["id"]] == c.ERROR
    assert sum(s == c.ONLINE for s in operating["pools"].values()) == 19


def test_capacity_counts_every_environment_and_probe_lists_ours(emulator: BigIPEmulator) -> None:
    east = make_driver([emulator], emulator.certificate, bigip_max_loadbalancers="4")
    west = make_driver([emulator], emulator.certificate, environment="west")
    east.converge(loadbalancer())
    west.converge(loadbalancer())
    assert east.capacity_score() == 0.5
    assert east.probe() == {"loadbalancers": 1, "capacity_score": 0.5}


# --- refusals and faults ------------------------------------------------------------------

def test_a_declaration_the_device_refuses_is_rejected_with_as3s_message(driver: BigIPDriver) -> None:
    first = loadbalancer(project_id="a1")
    clash = loadbalancer(project_id="b2", vip_address=first["vip_address"])
    driver.converge(first)
    with pytest.raises(DeviceRejected, match="illegally shares destination address"):
        driver.converge(clash)
    assert driver.list_loadbalancers() == {first["id"]: 1}


def test_what_cannot_be_expressed_is_rejected_before_the_device_is_asked(
        emulator: BigIPEmulator, driver: BigIPDriver) -> None:
    desired = loadbalancer(protocol="UDP")
    with pytest.raises(DeviceRejected, match="protocol UDP"):
        driver.converge(desired)
    assert emulator.calls(DECLARE, method="POST") == 0


def test_a_busy_device_is_retried(emulator: BigIPEmulator, driver: BigIPDriver) -> None:
    emulator.fail_next(3, status=503, path=DECLARE)
    desired = loadbalancer()
    driver.converge(desired)
    assert driver.list_loadbalancers() == {desired["id"]: 1}


def test_a_device_busy_for_too_long_is_a_device_error(emulator: BigIPEmulator) -> None:
    impatient = make_driver([emulator], emulator.certificate, bigip_task_timeout="0.5")
    emulator.fail_next(1000, status=503, path=DECLARE)
    started = time.monotonic()
    with pytest.raises(DeviceError, match="gave up") as caught:
        impatient.converge(loadbalancer())
    assert not isinstance(caught.value, DeviceRejected)
    assert time.monotonic() - started < 3


def test_slow_tasks_are_waited_for(emulator: BigIPEmulator, driver: BigIPDriver) -> None:
    emulator.task_duration = 0.4
    desired = loadbalancer()
    driver.converge(desired)
    assert app_on(emulator, desired) is not None  # confirmed before converge returned


def test_expired_tokens_are_renewed(emulator: BigIPEmulator, driver: BigIPDriver) -> None:
    first, second = loadbalancer(), loadbalancer()
    driver.converge(first)
    emulator.expire_tokens()
    driver.converge(second)
    assert driver.list_loadbalancers() == {first["id"]: 1, second["id"]: 1}
    assert emulator.calls("/mgmt/shared/authn/login", method="POST") == 2


def test_an_unreachable_device_is_a_device_error(emulator: BigIPEmulator) -> None:
    impatient = make_driver([emulator], emulator.certificate, bigip_task_timeout="0.5")
    desired = loadbalancer()
    emulator.go_away()
    with pytest.raises(DeviceError, match="unreachable") as caught:
        impatient.converge(desired)
    assert not isinstance(caught.value, DeviceRejected)
    with pytest.raises(DeviceError):
        impatient.probe()
    emulator.come_back()
    impatient.converge(desired)
    assert impatient.list_loadbalancers() == {desired["id"]: 1}


# --- a pair -------------------------------------------------------------------------------

def test_a_pair_is_written_on_its_active_member_and_synced(pair: BigIPPair, pair_driver: BigIPDriver) -> None:
    desired = loadbalancer()
    pair_driver.converge(desired)
    assert app_on(pair.active, desired) is not None and pair.in_sync()
    pair.failover()
    pair_driver.converge(bump(desired))
    assert pair_driver.list_loadbalancers() == {desired["id"]: 2} and pair.in_sync()
    pair_driver.delete(desired["id"])
    assert pair_driver.list_loadbalancers() == {} and pair.in_sync()


def test_a_failover_during_a_change_is_redone_on_the_new_active(pair: BigIPPair, pair_driver: BigIPDriver) -> None:
    old_active = pair.active
    for member_ in pair.members:
        member_.task_duration = 1.5
    desired = loadbalancer()
    worker = threading.Thread(target=pair_driver.converge, args=(desired,))
    worker.start()
    # Fail over while the declaration's task runs on the old active member.
    wait_for(lambda: old_active.calls(DECLARE, method="POST") == 1, timeout=5, what="the first declaration")
    new_active = pair.failover()
    worker.join(timeout=10)
    assert app_on(new_active, desired) is not None
    assert all(m.calls(DECLARE, method="POST") >= 1 for m in pair.members)  # it was redone
    assert pair.in_sync() and pair_driver.list_loadbalancers() == {desired["id"]: 1}


def test_a_pair_outside_one_sync_failover_group_is_not_ready(tmp_path: Path) -> None:
    with BigIPEmulator(name="lonely1", cert_dir=str(tmp_path)) as one, \
            BigIPEmulator(name="lonely2", cert_dir=str(tmp_path)) as two:
        with pytest.raises(DeviceNotReady, match="sync-failover"):
            make_driver([one, two], one.certificate).verify()
