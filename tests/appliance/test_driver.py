"""The agent-side HAProxyDriver against two real device services."""

import shutil
import tempfile

import pytest

from lbaas.agent.drivers.base import DeviceError, DeviceNotReady, DeviceRejected
from lbaas.appliance.service import start_in_thread
from lbaas.agent.drivers.haproxy import HAProxyDriver
from lbaas.testing import certs, tls
from tests.appliance.helpers import (TOKEN, answers, bump, free_port, kill_haproxy, loadbalancer,
                                  member, url_of)

pytestmark = [pytest.mark.integration]


def driver_for(*urls: str, **options: str) -> HAProxyDriver:
    return HAProxyDriver({"devices": ", ".join(urls), "device_token": TOKEN, "timeout": "5",
                          **options})


@pytest.fixture
def pair(make_device):
    return make_device(), make_device()


def test_converge_reaches_every_device(pair, backends):
    first, second = pair
    driver = driver_for(first.url, second.url, max_loadbalancers="4")
    inventory = driver.verify()
    assert inventory["devices"] == 2 and inventory["loadbalancers"] == 0
    assert inventory["haproxy_version"].startswith("2.")

    lb = loadbalancer([member(backends("a")), member(backends("b"))])
    lb["deleted"] = False  # the agent's document carries more than the device needs
    driver.converge(lb)
    driver.converge(lb)  # idempotent

    for device in pair:
        assert device.client.get("/loadbalancers").json()["loadbalancers"] == [
            {"id": lb["id"], "revision": 1}]
    assert driver.list_loadbalancers() == {lb["id"]: 1}
    assert driver.capacity_score() == 0.25
    assert set(answers(url_of(lb), 4)) == {"a", "b"}
    report = driver.report(lb["id"])
    assert report["operating"]["loadbalancer"] == "ONLINE"
    assert set(report["operating"]["members"]) == {m["id"] for m in lb["pools"][0]["members"]}
    assert set(report["listener_stats"]) == {lb["listeners"][0]["id"]}
    assert driver.report("unknown-lb") is None

    # A device that lags behind makes the group report the older revision.
    assert first.apply(bump(lb)) == "unchanged"
    assert driver.list_loadbalancers() == {lb["id"]: 1}

    driver.delete(lb["id"])
    driver.delete(lb["id"])
    assert driver.list_loadbalancers() == {}
    for device in pair:
        assert device.client.get("/loadbalancers").json()["loadbalancers"] == []
    driver.close()


def test_verify_refuses_a_device_that_is_down(device):
    down = f"http://127.0.0.1:{free_port()}"
    driver = driver_for(device.url, down)

    with pytest.raises(DeviceNotReady) as failure:
        driver.verify()

    message = str(failure.value)
    assert down in message and "unreachable" in message
    assert device.url not in message


def test_verify_refuses_a_wrong_token(device):
    driver = HAProxyDriver({"devices": device.url, "device_token": "wrong"})

    with pytest.raises(DeviceNotReady, match="rejected the device_token"):
        driver.verify()


def test_converge_names_the_failing_device(device, backends):
    down = f"http://127.0.0.1:{free_port()}"
    driver = driver_for(device.url, down)
    lb = loadbalancer([member(backends("a"))])

    with pytest.raises(DeviceError) as failure:
        driver.converge(lb)

    assert down in str(failure.value) and device.url not in str(failure.value)
    with pytest.raises(DeviceError, match=down):
        driver.list_loadbalancers()
    assert driver.report(lb["id"]) is not None  # the live device still answers
    assert driver_for(device.url, down, max_loadbalancers="10").capacity_score() == 1.0


def test_converge_reports_a_rejected_document(device):
    driver = driver_for(device.url)
    lb = loadbalancer([])
    lb["listeners"][0]["protocol"] = "UDP"

    with pytest.raises(DeviceError, match="400.*UDP"):
        driver.converge(lb)


def test_options_are_checked():
    with pytest.raises(ValueError, match="devices"):
        HAProxyDriver({"device_token": "t"})
    with pytest.raises(ValueError, match="device_token"):
        HAProxyDriver({"devices": "http://127.0.0.1:1"})


def test_device_over_https_with_ca_file(make_device, tls_files, backends):
    device = make_device(tls=tls_files)
    driver = driver_for(device.url, ca_file=tls_files[0])

    assert driver.verify()["devices"] == 1
    lb = loadbalancer([member(backends("a"))])
    driver.converge(lb)
    assert answers(url_of(lb), 2) == ["a", "a"]
    driver.delete(lb["id"])

    driver.close()
    untrusting = driver_for(device.url)
    with pytest.raises(DeviceNotReady, match="unreachable"):  # the system CAs do not know it
        untrusting.verify()
    untrusting.close()


def test_start_in_thread_with_a_relative_state_dir(backends, monkeypatch):
    folder = tempfile.mkdtemp(prefix="lbd", dir="/tmp")
    monkeypatch.chdir(folder)
    try:
        driver = HAProxyDriver(start_in_thread("dev"))
        assert driver.verify()["loadbalancers"] == 0
        lb = loadbalancer([member(backends("a"))])
        driver.converge(lb)
        assert answers(url_of(lb), 2) == ["a", "a"]
        driver.delete(lb["id"])
    finally:
        kill_haproxy(folder)
        shutil.rmtree(folder, ignore_errors=True)


def test_private_keys_cross_plain_http_only_with_leave(make_device, backends):
    ca = certs.make_ca("driver CA")
    lb = tls.terminated(loadbalancer([member(backends("a"))]),
                        tls.listener_tls(tls.certificate(certs.make_cert(ca, ["www.example.com"]))))
    device = make_device()
    assert device.url.startswith("http://")
    with pytest.raises(DeviceRejected, match="allow_plaintext_keys"):
        driver_for(device.url).converge(lb)
    assert device.client.get("/loadbalancers").json()["loadbalancers"] == []
    driver_for(device.url, allow_plaintext_keys="true").converge(lb)
    assert [x["id"] for x in device.client.get("/loadbalancers").json()["loadbalancers"]] == [lb["id"]]
    # Nothing secret in the plain document: no leave needed.
    driver_for(device.url).converge(loadbalancer([member(backends("a"))]))
