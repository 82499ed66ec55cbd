"""Fixtures for the HAProxy device tests: real HAProxy, real HTTP on loopback only.

* ``make_device``/``device`` – device services (uvicorn in a thread) on free 127.0.0.1 ports
  over fresh short state directories; teardown deletes every load balancer and kills
  whatever HAProxy still runs from those directories.
* ``backends`` – a factory of small HTTP(S) servers on 127.0.0.1 that answer their own name.
* ``tls_context`` – a self-signed server certificate made with ``openssl req``.
"""

import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.appliance.helpers import Backend, DeviceService, kill_haproxy


@pytest.fixture
def backends() -> Iterator[Callable[..., Backend]]:
    started: list[Backend] = []

    def make(name: str, tls: ssl.SSLContext | None = None) -> Backend:
        backend = Backend(name, tls)
        started.append(backend)
        return backend

    yield make
    for backend in started:
        backend.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(certificate, key) of a self-signed certificate for 127.0.0.1, made by ``openssl``."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


@pytest.fixture(scope="session")
def tls_context(tls_files: tuple[str, str]) -> ssl.SSLContext:
    """A server context for TLS members."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_files)
    return context


@pytest.fixture
def make_device() -> Iterator[Callable[..., DeviceService]]:
    """Factory of started device services, each over its own state directory; teardown
    deletes every load balancer and kills any HAProxy left under those directories."""
    made: list[DeviceService] = []

    def make(state_dir: str | None = None, check_interval: float = 0.0,
             tls: tuple[str, str] | None = None) -> DeviceService:
        # Short paths: unix socket paths must stay under 108 bytes.
        folder = state_dir or tempfile.mkdtemp(prefix="lbd", dir="/tmp")
        service = DeviceService(folder, check_interval, tls).start()
        made.append(service)
        return service

    yield make
    for service in made:
        if service.running:
            try:
                for entry in service.client.get("/loadbalancers").json()["loadbalancers"]:
                    service.client.delete(f"/loadbalancers/{entry['id']}")
            except httpx.HTTPError:
                pass
        service.stop()
        service.client.close()
    for folder in {s.state_dir for s in made}:
        kill_haproxy(folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def device(make_device) -> DeviceService:
    return make_device()
