"""The real ``openstack secret`` CLI (python-barbicanclient) against the local key store,
configured by the clouds.yaml the all-in-one prints: a PKCS12 stored as the Barbican docs
say, a certificate container of PEM parts, and both resolving as listener certificates."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lbaas import allinone
from lbaas import config as cfg
from lbaas.keys.local import LocalKeyManager, LocalStore
from lbaas.testing import certs
from tests.api.test_clients import OPENSTACK, cli_env
from tests.conftest import TEST_ENCRYPTION_KEY, Api, start_api

CA = certs.make_ca("CLI CA")
SERVER = certs.make_cert(CA, ["cli.example.com"])


@pytest.fixture(scope="module")
def server(temp_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    db = temp_database("sqlite")
    api, stop = start_api(db.url, str(tmp_path_factory.mktemp("secret-cli")), "sqlite")
    yield api
    stop()


def clouds_yaml(url: str, token: str) -> str:
    """The clouds part of the all-in-one's banner, for this server."""
    config = cfg.load(overrides={"vip_subnets": {"x": "127.0.100.0/24"}})
    banner = allinone.banner(url, token, config, haproxy=False)
    return banner[banner.index("clouds:"):banner.index("\nthen:")].replace("lbaas:", "cli:", 1)


def run(home: Path, url: str, token: str, command: str, output: str = "-f json") -> Any:
    """``openstack --os-cloud cli <command> <output>`` through a shell, as a user types it;
    the JSON it printed (or the text, when ``output`` is not JSON)."""
    config = home / "clouds.yaml"
    config.write_text(clouds_yaml(url, token), encoding="utf-8")
    env = {**cli_env(home, config), "OPENSTACK": OPENSTACK}
    done = subprocess.run(["bash", "-c", f'"$OPENSTACK" --os-cloud cli {command} {output}'], cwd=home, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"openstack {command}:\n{done.stderr}"
    return json.loads(done.stdout) if output == "-f json" else done.stdout.strip()


def test_openstack_secret_store_and_container_create(server: Api, tmp_path: Path) -> None:
    token = server.tokens["alice"]
    (tmp_path / "server.p12").write_bytes(certs.pkcs12(SERVER, [CA]))
    stored = run(tmp_path, server.url, token,
                 "secret store --name server-p12 --payload-content-type='application/octet-stream' "
                 "--payload-content-encoding='base64' --payload \"$(base64 < server.p12)\"")
    p12_ref = stored["Secret href"]
    assert p12_ref.startswith(f"{server.url}/key-manager/v1/secrets/")

    (tmp_path / "cert.pem").write_text(SERVER.cert_pem)
    (tmp_path / "key.pem").write_text(SERVER.key_pem)
    refs = {name: run(tmp_path, server.url, token,
                      f"secret store --name {name} --payload-content-type=text/plain --payload \"$(cat {file})\"")
            ["Secret href"] for name, file in (("certificate", "cert.pem"), ("private_key", "key.pem"))}
    container = run(tmp_path, server.url, token,
                    "secret container create --name tls --type certificate "
                    f"--secret certificate={refs['certificate']} --secret private_key={refs['private_key']}")
    container_ref = container["Container href"]
    assert container_ref.startswith(f"{server.url}/key-manager/v1/containers/")

    listed = run(tmp_path, server.url, token, "secret list")
    assert {s["Name"] for s in listed} >= {"server-p12", "certificate", "private_key"}
    # (-f json: the client cannot serialise the container's dates.)
    assert run(tmp_path, server.url, token, f"secret container get {container_ref}", "-f value -c Name") == "tls"

    manager = LocalKeyManager(LocalStore(server.db, TEST_ENCRYPTION_KEY))
    from_p12 = manager.certificate(p12_ref, "project-a")
    assert (from_p12.certificate, from_p12.intermediates) == (SERVER.cert_pem, (CA.cert_pem,))
    assert manager.certificate(container_ref, "project-a").certificate == SERVER.cert_pem
