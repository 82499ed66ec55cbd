"""The server behind a real Keystone (from PyPI, ``lbaas.testing.keystone``).

The clients authenticate with a password and find the server through the
catalog, as in a cloud: the ``openstack`` CLI (create --wait, list, show,
quotas by project name) and openstacksdk.  Then the edges: another project's
object is 404, a reader's write 403, an admin sees every project, a
policy.yaml override, expired and revoked tokens 401, and Keystone down
(a cached token still works, a new one is 503, never 500).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openstack
import pytest
import yaml

from lbaas.api.policy import REFUSED
from lbaas.testing.keystone import ADMIN_PASSWORD, Keystone
from tests.api.test_clients import OPENSTACK, PROXY_VARS, cli_env
from tests.conftest import Api, start_api

TOKEN_LIFETIME = 15  # seconds: short, so that the expiry test waits little
USERS = {"admin": ("admin", ADMIN_PASSWORD, "admin"), "alice": ("alice", "secret", "project-a"),
         "reader": ("reader-a", "secret", "project-a"), "bob": ("bob", "secret", "project-b")}


@pytest.fixture(scope="module")
def keystone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keystone]:
    server = Keystone(str(tmp_path_factory.mktemp("keystone")), token_lifetime=TOKEN_LIFETIME)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(keystone: Keystone, temp_database: Any,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, str]]:
    folder = str(tmp_path_factory.mktemp("behind-keystone"))
    policy_file = os.path.join(folder, "policy.yaml")
    options = keystone.authtoken_options(http_request_max_retries=0)
    api, stop = start_api(temp_database("sqlite").url, folder, "sqlite",
                          {"api": {"auth_strategy": "keystone", "policy_file": policy_file},
                           "keystone_authtoken": options})
    keystone.register_lbaas(api.url)
    yield api, policy_file
    stop()


@pytest.fixture
def api(server: tuple[Api, str]) -> Api:
    return server[0]


@pytest.fixture
def home(keystone: Keystone, server: tuple[Api, str], tmp_path: Path) -> Path:
    """clouds.yaml with a password cloud per user; the server is in the catalog."""
    clouds = {"clouds": {name: keystone.cloud(*USERS[name]) for name in USERS}}
    (tmp_path / "clouds.yaml").write_text(yaml.safe_dump(clouds), encoding="utf-8")
    return tmp_path


def openstack_cli(home: Path, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OPENSTACK, "--os-cloud", user, "loadbalancer", *args],
                          env=cli_env(home, home / "clouds.yaml"),
                          capture_output=True, text=True, timeout=120, check=False)


def cli_json(home: Path, user: str, *args: str) -> Any:
    result = openstack_cli(home, user, *args, "-f", "json")
    assert result.returncode == 0, f"{user}: openstack loadbalancer {' '.join(args)}:\n{result.stderr}"
    return json.loads(result.stdout)


def test_the_cli_finds_the_server_in_the_catalog_and_the_policy_applies(home: Path, api: Api,
                                                                         keystone: Keystone) -> None:
    lb = cli_json(home, "alice", "create", "--vip-subnet-id", "test-subnet", "--name", "ks-lb", "--wait")
    assert (lb["provisioning_status"], lb["name"]) == ("ACTIVE", "ks-lb")
    assert lb["id"] in {x["id"] for x in cli_json(home, "alice", "list")}
    # Every CLI call logs in with a password: the rest goes straight over HTTP where it can.
    bob, reader = keystone.token(*USERS["bob"]), keystone.token(*USERS["reader"])
    theirs = api.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "test-subnet"}},
                      token=bob).json()["loadbalancer"]
    assert lb["id"] in {x["id"] for x in api.get("/lbaas/loadbalancers", token=reader).json()["loadbalancers"]}
    assert api.get(f"/lbaas/loadbalancers/{lb['id']}", token=bob).status_code == 404
    shown = openstack_cli(home, "bob", "show", lb["id"])  # a 404, then a lookup by name that finds none
    assert shown.returncode != 0 and f"Unable to locate {lb['id']}" in shown.stderr
    renamed = openstack_cli(home, "reader", "set", "--name", "nope", lb["id"])
    assert renamed.returncode != 0 and "403" in renamed.stderr and REFUSED in renamed.stderr
    assert {lb["id"], theirs["id"]} <= {x["id"] for x in cli_json(home, "admin", "list")}


def test_quotas_by_project_name(home: Path, keystone: Keystone, api: Api) -> None:
    cli_json(home, "admin", "quota", "set", "--pool", "7", "project-b")
    assert cli_json(home, "admin", "quota", "show", "project-b")["pool"] == 7
    # The client resolved the name through Keystone: the server holds the quota under the id.
    quota = f"/lbaas/quotas/{keystone.ids['project-b']}"
    assert api.get(quota, token=keystone.token(*USERS["bob"])).json()["quota"]["pool"] == 7
    # A member may not look project names up in Keystone: it names its project by id.
    refused = openstack_cli(home, "bob", "quota", "set", "--pool", "9", keystone.ids["project-b"])
    assert refused.returncode != 0 and "403" in refused.stderr
    assert openstack_cli(home, "admin", "quota", "reset", "project-b").returncode == 0
    assert api.get(quota, token=keystone.admin_token()).json()["quota"]["pool"] != 7


def test_openstacksdk_with_a_password(keystone: Keystone, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    conn = openstack.connection.Connection(**keystone.cloud(*USERS["alice"]))
    try:
        created = conn.load_balancer.create_load_balancer(name="sdk-ks", vip_subnet_id="test-subnet")
        assert created.project_id == keystone.ids["project-a"]
        lb = conn.load_balancer.wait_for_load_balancer(created.id, interval=0.05, wait=30)
        assert lb.provisioning_status == "ACTIVE"
        assert created.id in {x.id for x in conn.load_balancer.load_balancers()}
    finally:
        conn.close()


def test_a_policy_file_override_applies_behind_keystone(server: tuple[Api, str], keystone: Keystone) -> None:
    api, policy_file = server
    bob = keystone.token(*USERS["bob"])
    theirs = api.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "test-subnet"}}, token=bob)
    assert theirs.status_code == 201, theirs.text
    reader = keystone.token(*USERS["reader"])
    listed = lambda: {lb["id"] for lb in api.get("/lbaas/loadbalancers", token=reader).json()["loadbalancers"]}  # noqa: E731
    assert theirs.json()["loadbalancer"]["id"] not in listed()
    try:
        Path(policy_file).write_text('"os_load-balancer_api:loadbalancer:get_all-global": "role:reader"\n')
        assert theirs.json()["loadbalancer"]["id"] in listed()
    finally:
        os.remove(policy_file)


def test_revoked_and_expired_tokens_are_401(api: Api, keystone: Keystone) -> None:
    revoked = keystone.token(*USERS["alice"])
    keystone.revoke(revoked)
    response = api.get("/lbaas/loadbalancers", token=revoked)
    assert response.status_code == 401, response.text
    expiring = keystone.token(*USERS["alice"])
    assert api.get("/lbaas/loadbalancers", token=expiring).status_code == 200
    time.sleep(TOKEN_LIFETIME + 1)
    assert api.get("/lbaas/loadbalancers", token=expiring).status_code == 401  # even from the cache


def test_keystone_down_cached_tokens_work_new_ones_are_503(api: Api, keystone: Keystone) -> None:
    cached, fresh = keystone.token(*USERS["alice"]), keystone.token(*USERS["bob"])
    assert api.get("/lbaas/loadbalancers", token=cached).status_code == 200
    keystone.stop()
    try:
        assert api.get("/lbaas/loadbalancers", token=cached).status_code == 200
        refused = api.get("/lbaas/loadbalancers", token=fresh)
        assert refused.status_code == 503 and "identity service" in refused.json()["faultstring"]
    finally:
        keystone.start()
    assert api.get("/lbaas/loadbalancers", token=fresh).status_code == 200


def test_identity_headers_from_the_client_are_ignored(api: Api, keystone: Keystone) -> None:
    """Only what Keystone says about a token counts: a reader claiming admin stays a reader."""
    reader = keystone.token(*USERS["reader"])
    forged = {"X-Roles": "admin", "X-Project-Id": keystone.ids["project-b"], "X-Identity-Status": "Confirmed"}
    response = api.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "test-subnet"}},
                        token=reader, headers=dict(forged))
    assert response.status_code == 403 and response.json()["faultstring"] == REFUSED
    assert api.get("/agents", token=reader, headers=dict(forged)).status_code == 403
    assert api.get("/lbaas/loadbalancers", headers=dict(forged), token="").status_code == 401
