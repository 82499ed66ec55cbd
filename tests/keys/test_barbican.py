"""BarbicanKeyManager against a real Barbican (from PyPI, in .venv-barbican, started on
loopback by lbaas.testing.barbican): the same resolution tests as the local store
(tests.keys.resolution), Barbican's own 403 for another project folded into the same answer
as unknown, and an unreachable Barbican as KeyManagerUnavailable."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import httpx
import pytest

from lbaas import config as cfg
from lbaas import keys
from lbaas.keys import KeyManagerUnavailable
from lbaas.keys.barbican import BarbicanKeyManager, unauthenticated_headers
from lbaas.testing.barbican import Barbican
from lbaas.testing.polling import free_port
from tests.keys.resolution import (OTHER, OWNER, SERVER, test_a_certificate_container_resolves,  # noqa: F401
                                   test_a_pkcs12_secret_resolves, test_another_projects_refs_are_as_unknown_ones,
                                   test_ca_certificates_and_crls_resolve, test_malformed_refs_and_contents_are_refused)
from lbaas.testing import certs


@pytest.fixture(scope="module")
def barbican(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = Barbican(str(tmp_path_factory.mktemp("barbican")))
    url = server.start()
    yield url
    server.stop()


class BarbicanStore:
    """tests.keys.resolution's Store over Barbican's own API, one project per side."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.projects = {OWNER: f"owner-{uuid.uuid4().hex[:8]}", OTHER: f"other-{uuid.uuid4().hex[:8]}"}
        self.manager = BarbicanKeyManager(url, timeout=10)
        self.client = httpx.Client(timeout=30, trust_env=False)

    def _post(self, project: str, path: str, body: dict) -> dict:
        response = self.client.post(self.url + path, json=body,
                                    headers=dict(unauthenticated_headers(self.projects[project])))
        assert response.status_code == 201, response.text
        return response.json()

    def secret(self, project: str, payload: bytes) -> str:
        return self._post(project, "/v1/secrets", {
            "name": "s", "payload": base64.b64encode(payload).decode(), "secret_type": "opaque",
            "payload_content_type": "application/octet-stream", "payload_content_encoding": "base64"})["secret_ref"]

    def container(self, project: str, parts: dict[str, str]) -> str:
        return self._post(project, "/v1/containers", {
            "name": "c", "type": "certificate",
            "secret_refs": [{"name": name, "secret_ref": ref} for name, ref in parts.items()]})["container_ref"]

    def unknown_ref(self, kind: str) -> str:
        return f"{self.url}/v1/{kind}/{uuid.uuid4()}"


@pytest.fixture
def store(barbican: str) -> Iterator[BarbicanStore]:
    made = BarbicanStore(barbican)
    yield made
    made.client.close()
    made.manager.close()


def test_refs_naming_another_host_still_ask_the_configured_barbican(store: BarbicanStore) -> None:
    """Only the kind and id come from a reference: the host a tenant wrote is never asked."""
    ref = store.secret(OWNER, certs.pkcs12(SERVER))
    elsewhere = ref.replace(store.url, f"http://127.0.0.1:{free_port()}/somewhere")
    assert store.manager.certificate(elsewhere, store.projects[OWNER]).certificate == SERVER.cert_pem


def test_unreachable_barbican_is_unavailable() -> None:
    manager = BarbicanKeyManager(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(KeyManagerUnavailable, match="did not answer"):
        manager.certificate(f"http://x/v1/secrets/{uuid.uuid4()}", "p")
    manager.close()


def test_barbican_backend_is_made_from_the_configuration(barbican: str) -> None:
    config = cfg.load(overrides={"certificates": {"backend": "barbican", "barbican_endpoint": barbican + "/",
                                                  "barbican_timeout": "3"}})
    manager = keys.make(config, None)  # type: ignore[arg-type]  # Barbican needs no database
    assert isinstance(manager, BarbicanKeyManager) and manager.endpoint == barbican
    with pytest.raises(cfg.ConfigError, match="barbican_endpoint"):
        keys.make(cfg.load(overrides={"certificates": {"backend": "barbican"}}), None)  # type: ignore[arg-type]
