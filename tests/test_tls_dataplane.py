"""TLS termination end to end: the Octavia cookbook's HTTPS and SNI recipes typed into the
real ``openstack`` CLI (python-barbicanclient stores the PKCS12 bundles in the server's key
store, python-octaviaclient makes the listener), then HTTPS through the VIP: API -> server ->
RabbitMQ -> agent -> ``lbaas device`` over HTTPS -> HAProxy -> back ends.  A certificate
rotated through the API under continuous HTTPS load, every request counted.  And the same
listener with its certificate in a real Barbican (``[certificates] backend = barbican``)."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from lbaas.keys.barbican import unauthenticated_headers
from lbaas.testing import certs
from lbaas.testing.barbican import Barbican
from lbaas.testing.cluster import Cluster, wait_lb
from lbaas.testing.tls import client_context, get
from tests.appliance.helpers import Backend, wait_for
from tests.keys.test_cli import run

pytestmark = pytest.mark.integration
CA = certs.make_ca("Cookbook CA")
WWW = certs.make_cert(CA, ["www.example.com"])
SHOP = certs.make_cert(CA, ["shop.example.com"])
ROTATED = certs.make_cert(CA, ["www.example.com", "rotated.example.com"])


@pytest.fixture(scope="module")
def cluster(temp_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    db = temp_database("postgresql", migrate=False)
    cluster = Cluster(str(tmp_path_factory.mktemp("tls-dataplane")), db.url, environment="haproxy",
                      device_driver="haproxy")
    try:
        cluster.device_options = cluster.start_device("device-1")
        yield cluster.start_all(["server-1"], ["tls-1"])
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    made = Backend("app")
    yield made
    made.stop()


@pytest.fixture(scope="module")
def barbican_cluster(temp_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    barbican = Barbican(str(tmp_path_factory.mktemp("barbican")))
    url = barbican.start()
    db = temp_database("postgresql", migrate=False)
    cluster = Cluster(str(tmp_path_factory.mktemp("tls-barbican")), db.url, environment="haproxy",
                      device_driver="haproxy",
                      certificates=f"backend = barbican\nbarbican_endpoint = {url}")
    try:
        cluster.device_options = cluster.start_device("device-1")
        yield cluster.start_all(["server-1"], ["tls-b1"]), url
    finally:
        cluster.stop()
        barbican.stop()


def cli(cluster: Cluster, home: Path, command: str, output: str = "-f json") -> Any:
    return run(home, cluster.url(), cluster.tokens["p1"], command, output)


def store_p12(cluster: Cluster, home: Path, name: str, issued: certs.Issued) -> str:
    (home / f"{name}.p12").write_bytes(certs.pkcs12(issued, [CA]))
    return cli(cluster, home, f"secret store --name='{name}' -t 'passphrase' "
                              f"--payload-content-type='application/octet-stream' "
                              f"--payload-content-encoding='base64' --payload=\"$(base64 < {name}.p12)\"")["Secret href"]


def test_cookbook_https_and_sni_recipes(cluster: Cluster, backend: Backend, tmp_path: Path) -> None:
    www, shop = store_p12(cluster, tmp_path, "tls_secret1", WWW), store_p12(cluster, tmp_path, "tls_secret2", SHOP)
    lb = cli(cluster, tmp_path, "loadbalancer create --name lb1 --vip-subnet-id cluster --wait")
    cli(cluster, tmp_path, f"loadbalancer listener create --protocol-port 443 --protocol TERMINATED_HTTPS "
                           f"--name listener1 --sni-container-refs {www} {shop} --default-tls-container={www} "
                           f"--wait lb1")
    cli(cluster, tmp_path, "loadbalancer pool create --name pool1 --lb-algorithm ROUND_ROBIN "
                           "--listener listener1 --protocol HTTP --wait")
    cli(cluster, tmp_path, f"loadbalancer member create --address {backend.address} "
                           f"--protocol-port {backend.port} --wait pool1")

    vip = lb["vip_address"]
    context = client_context(CA)
    wait_for(lambda: _answers(vip, context, "www.example.com"), timeout=20, what="HTTPS through the VIP")
    answer = get(vip, 443, context, "www.example.com")
    assert (answer.status, answer.body, answer.peer_cn) == (200, "app", "www.example.com")
    assert get(vip, 443, context, "shop.example.com").peer_cn == "shop.example.com"
    assert get(vip, 443, client_context(), None).peer_cn == "www.example.com"   # no SNI: the default
    assert cli(cluster, tmp_path, "loadbalancer show lb1")["provisioning_status"] == "ACTIVE"


def test_rotation_under_load_loses_no_request(cluster: Cluster, backend: Backend) -> None:
    with cluster.client(token="p1") as client:
        refs = [_secret(client, issued) for issued in (WWW, ROTATED)]
        body = {"loadbalancer": {"name": "rotating", "vip_subnet_id": "cluster", "listeners": [{
            "protocol": "TERMINATED_HTTPS", "protocol_port": 8443, "default_tls_container_ref": refs[0],
            "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "members": [
                {"address": backend.address, "protocol_port": backend.port}]}}]}}
        response = client.post("/v2/lbaas/loadbalancers", json=body)
        assert response.status_code == 201, response.text
        lb = wait_lb(client, response.json()["loadbalancer"]["id"], timeout=30)
        vip, listener_id = lb["vip_address"], lb["listeners"][0]["id"]
        context = client_context(CA)
        wait_for(lambda: _answers(vip, context, "www.example.com", 8443), timeout=20, what="HTTPS")

        results: list[str] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                try:
                    answer = get(vip, 8443, context, "www.example.com")
                    results.append(answer.peer_cn if answer.status == 200 else f"status {answer.status}")
                except OSError as exc:
                    results.append(f"failed: {exc}")

        threads = [threading.Thread(target=load) for _ in range(2)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        rotated = client.put(f"/v2/lbaas/listeners/{listener_id}",
                             json={"listener": {"default_tls_container_ref": refs[1]}})
        assert rotated.status_code == 200, rotated.text
        wait_lb(client, lb["id"], timeout=30)
        wait_for(lambda: results[-1:] == ["www.example.com"] and _serial(vip, context) == ROTATED.serial,
                 timeout=20, what="the rotated certificate")
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    failures = [r for r in results if r != "www.example.com"]
    assert not failures, failures[:5]
    assert len(results) > 20, len(results)


def test_a_certificate_kept_in_barbican(barbican_cluster: tuple[Cluster, str], backend: Backend) -> None:
    cluster, barbican = barbican_cluster
    payload = base64.b64encode(certs.pkcs12(WWW, [CA])).decode()
    stored = httpx.post(f"{barbican}/v1/secrets", headers=dict(unauthenticated_headers("p1")), json={
        "name": "www", "payload": payload, "payload_content_type": "application/octet-stream",
        "payload_content_encoding": "base64"}, timeout=30)
    assert stored.status_code == 201, stored.text
    ref = stored.json()["secret_ref"]
    with cluster.client(token="p1") as client:
        body = {"loadbalancer": {"name": "in-barbican", "vip_subnet_id": "cluster", "listeners": [{
            "protocol": "TERMINATED_HTTPS", "protocol_port": 443, "default_tls_container_ref": ref,
            "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "members": [
                {"address": backend.address, "protocol_port": backend.port}]}}]}}
        response = client.post("/v2/lbaas/loadbalancers", json=body)
        assert response.status_code == 201, response.text
        lb = wait_lb(client, response.json()["loadbalancer"]["id"], timeout=30)
    # Another project cannot use the reference: Barbican answers it as another's secret.
    with cluster.client(token="p2") as other:
        response = other.post("/v2/lbaas/loadbalancers", json={"loadbalancer": {"vip_subnet_id": "cluster"}})
        theirs = wait_lb(other, response.json()["loadbalancer"]["id"], timeout=30)
        foreign = other.post("/v2/lbaas/listeners", json={"listener": {
            "loadbalancer_id": theirs["id"], "protocol": "TERMINATED_HTTPS", "protocol_port": 443,
            "default_tls_container_ref": ref}})
        assert foreign.status_code == 400 and "default_tls_container_ref" in foreign.text, foreign.text
    context = client_context(CA)
    wait_for(lambda: _answers(lb["vip_address"], context, "www.example.com"), timeout=20, what="HTTPS")
    answer = get(lb["vip_address"], 443, context, "www.example.com")
    assert (answer.status, answer.body, answer.peer_cn) == (200, "app", "www.example.com")


def _secret(client: Any, issued: certs.Issued) -> str:
    response = client.post("/key-manager/v1/secrets", json={
        "payload": base64.b64encode(certs.pkcs12(issued, [CA])).decode(), "payload_content_encoding": "base64",
        "payload_content_type": "application/octet-stream"})
    assert response.status_code == 201, response.text
    return str(response.json()["secret_ref"])


def _answers(vip: str, context: Any, name: str, port: int = 443) -> bool:
    try:
        return get(vip, port, context, name, timeout=2).status == 200
    except OSError:
        return False


def _serial(vip: str, context: Any) -> int:
    with socket.create_connection((vip, 8443), timeout=2) as raw:
        with context.wrap_socket(raw, server_hostname="www.example.com") as sock:
            der = sock.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number if der else 0
