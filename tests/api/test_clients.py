"""The real OpenStack clients against the real server, unchanged.

openstacksdk (in process) and the ``openstack loadbalancer`` CLI of
python-octaviaclient (as a subprocess, configured by a clouds.yaml) each
drive a whole load balancer life: create, list, show, rename, listener,
pool, member, health monitor, status tree, statistics, cascade delete.
Both run against a server of this module's own on SQLite: what is under
test is the wire format the clients parse, not the database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openstack
import pytest
from openstack import exceptions as sdk_exceptions

from tests.conftest import Api, start_api

CLOUD = "lbaas-test"
OPENSTACK = str(Path(sys.executable).with_name("openstack"))
WAIT = {"interval": 0.05, "wait": 30}
# Never let a proxy from the environment see this traffic: it is all local.
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
CLI_POLLS = Path(__file__).parent.parent / "cli_polls"   # its sitecustomize shortens --wait's polls


def cli_env(home: Path, config: Path) -> dict[str, str]:
    """The environment of an ``openstack`` CLI run: nothing but ``config`` (a clouds.yaml),
    no proxy, and polls of ``--wait`` shortened (tests/cli_polls/sitecustomize.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_") and k not in PROXY_VARS}
    env.update({"OS_CLIENT_CONFIG_FILE": str(config), "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                "PYTHONPATH": str(CLI_POLLS)})
    return env


@pytest.fixture(scope="module")
def server(temp_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    db = temp_database("sqlite")
    api, stop = start_api(db.url, str(tmp_path_factory.mktemp("clients")), "sqlite")
    yield api
    stop()


@pytest.fixture
def local_only(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def clouds_yaml(url: str, token: str) -> str:
    """What a user puts in clouds.yaml to reach the server with a token."""
    return (f"clouds:\n"
            f"  {CLOUD}:\n"
            f"    auth_type: admin_token\n"
            f"    auth:\n"
            f"      token: {token}\n"
            f"      endpoint: {url}\n"
            f"    load_balancer_endpoint_override: {url}\n"
            f"    network_endpoint_override: {url}\n")


# --- openstacksdk --------------------------------------------------------------

def test_openstacksdk_drives_a_whole_lifecycle(server: Api, local_only: None) -> None:
    conn = openstack.connection.Connection(
        auth_type="admin_token", auth={"token": server.tokens["admin"], "endpoint": server.url},
        load_balancer_endpoint_override=server.url, network_endpoint_override=server.url)
    lbs = conn.load_balancer
    try:
        # The subnet lookup goes through our Neutron-shaped /v2.0/subnets.
        subnet = conn.network.find_subnet("test-subnet")
        assert subnet is not None and (subnet.id, subnet.cidr) == ("test-subnet", "127.0.64.0/18")

        created = lbs.create_load_balancer(name="sdk-lb", vip_subnet_id=subnet.id,
                                           description="made by openstacksdk", tags=["sdk"])
        assert created.provisioning_status == "PENDING_CREATE"
        assert created.vip_address.startswith("127.0.") and created.vip_subnet_id == "test-subnet"
        lb = lbs.wait_for_load_balancer(created.id, **WAIT)
        assert (lb.provisioning_status, lb.operating_status) == ("ACTIVE", "ONLINE")
        assert (lb.name, lb.description, lb.tags, lb.provider) == \
            ("sdk-lb", "made by openstacksdk", ["sdk"], "noop")

        assert [x.id for x in lbs.load_balancers(name="sdk-lb")] == [lb.id]
        assert lbs.find_load_balancer("sdk-lb").id == lb.id
        assert lbs.get_load_balancer(lb.id).vip_address == created.vip_address

        renamed = lbs.update_load_balancer(lb.id, name="sdk-renamed")
        assert (renamed.name, renamed.provisioning_status) == ("sdk-renamed", "PENDING_UPDATE")
        # A second change while the first is pending is refused, and the
        # server's message reaches the caller.
        with pytest.raises(sdk_exceptions.ConflictException, match="immutable"):
            lbs.update_load_balancer(lb.id, name="too-early")
        lb = lbs.wait_for_load_balancer(lb.id, **WAIT)
        assert lbs.get_load_balancer(lb.id).name == "sdk-renamed"

        listener = lbs.create_listener(name="sdk-listener", loadbalancer_id=lb.id, protocol="HTTP",
                                       protocol_port=80)
        assert listener.load_balancers == [{"id": lb.id}]
        lbs.wait_for_load_balancer(lb.id, **WAIT)
        pool = lbs.create_pool(name="sdk-pool", listener_id=listener.id, protocol="HTTP",
                               lb_algorithm="ROUND_ROBIN")
        lbs.wait_for_load_balancer(lb.id, **WAIT)
        member = lbs.create_member(pool, name="sdk-member", address="127.0.0.1", protocol_port=8080,
                                   weight=5)
        assert member.pool_id == pool.id
        lbs.wait_for_load_balancer(lb.id, **WAIT)
        monitor = lbs.create_health_monitor(name="sdk-hm", pool_id=pool.id, type="HTTP", delay=5,
                                            timeout=3, max_retries=3, url_path="/health",
                                            expected_codes="200-204")
        lbs.wait_for_load_balancer(lb.id, **WAIT)

        listener = lbs.get_listener(listener.id)
        assert (listener.default_pool_id, listener.provisioning_status) == (pool.id, "ACTIVE")
        pool = lbs.get_pool(pool.id)
        assert (pool.health_monitor_id, pool.members, pool.listeners) == \
            (monitor.id, [{"id": member.id}], [{"id": listener.id}])
        monitor = lbs.get_health_monitor(monitor.id)
        assert (monitor.type, monitor.url_path, monitor.expected_codes, monitor.provisioning_status) == \
            ("HTTP", "/health", "200-204", "ACTIVE")
        members = list(lbs.members(pool))
        assert [(x.id, x.name, x.address, x.protocol_port, x.weight, x.provisioning_status)
                for x in members] == [(member.id, "sdk-member", "127.0.0.1", 8080, 5, "ACTIVE")]
        assert lbs.find_member("sdk-member", pool).id == member.id
        lb = lbs.get_load_balancer(lb.id)
        assert (lb.listeners, lb.pools) == ([{"id": listener.id}], [{"id": pool.id}])

        # The SDK has no call for the status tree: its adapter reaches it
        # through the same discovered endpoint.
        response = lbs.get(f"/lbaas/loadbalancers/{lb.id}/status")
        assert response.status_code == 200, response.text
        tree = response.json()["statuses"]["loadbalancer"]
        assert (tree["id"], tree["name"], tree["provisioning_status"]) == (lb.id, "sdk-renamed", "ACTIVE")
        [tree_listener] = tree["listeners"]
        [tree_pool] = tree_listener["pools"]
        assert (tree_listener["id"], tree_pool["id"]) == (listener.id, pool.id)
        assert [(x["id"], x["operating_status"]) for x in tree_pool["members"]] == [(member.id, "ONLINE")]
        assert (tree_pool["health_monitor"]["id"], tree_pool["health_monitor"]["provisioning_status"]) == \
            (monitor.id, "ACTIVE")

        # (get_load_balancer_statistics wants the id, not the resource.)
        stats = lbs.get_load_balancer_statistics(lb.id)
        assert (stats.bytes_in, stats.bytes_out, stats.active_connections, stats.total_connections,
                stats.request_errors) == (0, 0, 0, 0, 0)
        assert lbs.get_listener_statistics(listener.id).total_connections == 0

        with pytest.raises(sdk_exceptions.BadRequestException, match="cascade"):
            lbs.delete_load_balancer(lb.id)
        lbs.delete_load_balancer(lb.id, cascade=True)
        lbs.wait_for_delete(lbs.get_load_balancer(lb.id), **WAIT)
        with pytest.raises(sdk_exceptions.NotFoundException):
            lbs.get_load_balancer(lb.id)
        assert lbs.find_load_balancer("sdk-renamed") is None
        for getter, ident in ((lbs.get_listener, listener.id), (lbs.get_pool, pool.id),
                              (lbs.get_health_monitor, monitor.id)):
            with pytest.raises(sdk_exceptions.NotFoundException):
                getter(ident)
    finally:
        conn.close()


# --- the openstack CLI ------------------------------------------------------------

class Cli:
    """``openstack --os-cloud lbaas-test ...`` with nothing but our clouds.yaml."""

    def __init__(self, home: Path, url: str, token: str) -> None:
        config = home / "clouds.yaml"
        config.write_text(clouds_yaml(url, token), encoding="utf-8")
        self.env = cli_env(home, config)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([OPENSTACK, "--os-cloud", CLOUD, "loadbalancer", *args], env=self.env,
                              capture_output=True, text=True, timeout=90, check=False)

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, f"openstack loadbalancer {' '.join(args)}:\n{result.stderr}"
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "-f", "json"))


def test_openstack_cli_drives_a_whole_lifecycle(server: Api, tmp_path: Path) -> None:
    cli = Cli(tmp_path, server.url, server.tokens["admin"])

    # --vip-subnet-id is resolved by name through our /v2.0/subnets.
    lb = cli.json("create", "--vip-subnet-id", "test-subnet", "--name", "cli-lb", "--tag", "cli", "--wait")
    assert (lb["name"], lb["provisioning_status"], lb["operating_status"]) == ("cli-lb", "ACTIVE", "ONLINE")
    assert (lb["vip_subnet_id"], lb["tags"], lb["provider"]) == ("test-subnet", ["cli"], "noop")
    assert lb["vip_address"].startswith("127.0.")
    lb_id = lb["id"]

    listed = {x["id"]: x for x in cli.json("list", "--name", "cli-lb")}
    assert list(listed) == [lb_id]
    assert (listed[lb_id]["vip_address"], listed[lb_id]["provisioning_status"]) == (lb["vip_address"], "ACTIVE")

    cli.ok("set", "--name", "cli-renamed", "--description", "renamed by the CLI", "--wait", "cli-lb")
    shown = cli.json("show", "cli-renamed")
    assert (shown["id"], shown["name"], shown["description"], shown["provisioning_status"]) == \
        (lb_id, "cli-renamed", "renamed by the CLI", "ACTIVE")

    listener = cli.json("listener", "create", "--name", "cli-listener", "--protocol", "HTTP",
                        "--protocol-port", "80", "--wait", lb_id)
    assert (listener["name"], listener["protocol_port"], listener["provisioning_status"]) == \
        ("cli-listener", 80, "ACTIVE")
    assert listener["loadbalancers"] == [{"id": lb_id}]
    pool = cli.json("pool", "create", "--name", "cli-pool", "--protocol", "HTTP", "--lb-algorithm",
                    "ROUND_ROBIN", "--listener", "cli-listener", "--wait")
    assert (pool["name"], pool["lb_algorithm"], pool["provisioning_status"]) == \
        ("cli-pool", "ROUND_ROBIN", "ACTIVE")
    assert pool["listeners"] == [{"id": listener["id"]}]
    member = cli.json("member", "create", "--name", "cli-member", "--address", "127.0.0.1",
                      "--protocol-port", "8080", "--weight", "3", "--wait", "cli-pool")
    assert (member["name"], member["address"], member["protocol_port"], member["weight"],
            member["provisioning_status"]) == ("cli-member", "127.0.0.1", 8080, 3, "ACTIVE")
    monitor = cli.json("healthmonitor", "create", "--name", "cli-hm", "--type", "HTTP", "--delay", "5",
                       "--timeout", "3", "--max-retries", "3", "--url-path", "/health", "--wait", "cli-pool")
    assert (monitor["name"], monitor["type"], monitor["url_path"], monitor["provisioning_status"]) == \
        ("cli-hm", "HTTP", "/health", "ACTIVE")
    assert monitor["pools"] == [{"id": pool["id"]}]

    shown_pool = cli.json("pool", "show", "cli-pool")
    assert (shown_pool["healthmonitor_id"], shown_pool["members"]) == (monitor["id"], [{"id": member["id"]}])

    # `status show` has no -f: it always prints the tree as JSON.
    tree = json.loads(cli.ok("status", "show", lb_id))["loadbalancer"]
    assert (tree["id"], tree["name"], tree["provisioning_status"], tree["operating_status"]) == \
        (lb_id, "cli-renamed", "ACTIVE", "ONLINE")
    [tree_listener] = tree["listeners"]
    [tree_pool] = tree_listener["pools"]
    assert (tree_listener["id"], tree_listener["provisioning_status"]) == (listener["id"], "ACTIVE")
    assert tree_pool["id"] == pool["id"]
    assert [(x["id"], x["address"], x["operating_status"]) for x in tree_pool["members"]] == \
        [(member["id"], "127.0.0.1", "ONLINE")]
    assert (tree_pool["health_monitor"]["id"], tree_pool["health_monitor"]["type"]) == (monitor["id"], "HTTP")

    stats = cli.json("stats", "show", lb_id)
    assert stats == {"active_connections": 0, "bytes_in": 0, "bytes_out": 0, "request_errors": 0,
                     "total_connections": 0}

    members = cli.json("member", "list", "cli-pool")
    assert [(x["id"], x["name"], x["address"], x["protocol_port"], x["weight"], x["provisioning_status"],
             x["operating_status"]) for x in members] == \
        [(member["id"], "cli-member", "127.0.0.1", 8080, 3, "ACTIVE", "ONLINE")]

    # Without --cascade the server refuses, and the CLI shows its reason.
    refused = cli.run("delete", lb_id)
    assert refused.returncode != 0 and "cascade" in refused.stderr, refused.stderr
    assert cli.json("show", lb_id)["provisioning_status"] == "ACTIVE"

    cli.ok("delete", "--cascade", "--wait", lb_id)
    gone = cli.run("show", lb_id)
    assert gone.returncode != 0 and f"Unable to locate {lb_id}" in gone.stderr, gone.stderr
    assert lb_id not in [x["id"] for x in cli.json("list")]
    assert server.get(f"/lbaas/pools/{pool['id']}").status_code == 404


def test_openstacksdk_discovers_the_api_with_auth_type_none(temp_database: Any, tmp_path: Path,
                                                            local_only: None) -> None:
    """With ``auth_strategy = noauth`` a client needs nothing but the endpoint."""
    api, stop = start_api(temp_database("sqlite").url, str(tmp_path), "sqlite",
                          extra={"api": {"auth_strategy": "noauth"}})
    try:
        conn = openstack.connection.Connection(auth_type="none", auth={"endpoint": api.url},
                                               load_balancer_endpoint_override=api.url)
        lb = conn.load_balancer.create_load_balancer(name="no-auth", vip_subnet_id="test-subnet")
        lb = conn.load_balancer.wait_for_load_balancer(lb.id, **WAIT)
        assert (lb.name, lb.provisioning_status) == ("no-auth", "ACTIVE")
        assert [x.name for x in conn.load_balancer.load_balancers()] == ["no-auth"]
    finally:
        stop()


def test_versions_document_needs_no_token_but_the_api_does(server: Api) -> None:
    assert server.client.get("/").status_code == 200
    assert server.client.get("/v2/lbaas/loadbalancers").status_code == 401


def test_openstack_cli_drives_l7_policies_and_rules(server: Api, tmp_path: Path) -> None:
    """The issue's acceptance commands, unchanged, plus list, show, set and delete."""
    cli = Cli(tmp_path, server.url, server.tokens["admin"])
    lb_id = cli.json("create", "--vip-subnet-id", "test-subnet", "--name", "cli-l7", "--wait")["id"]
    listener = cli.json("listener", "create", "--name", "l7-listener", "--protocol", "HTTP",
                        "--protocol-port", "80", "--wait", lb_id)
    pool = cli.json("pool", "create", "--name", "l7-api-pool", "--protocol", "HTTP", "--lb-algorithm",
                    "ROUND_ROBIN", "--loadbalancer", lb_id, "--wait")

    policy = cli.json("l7policy", "create", "--action", "REDIRECT_TO_POOL", "--redirect-pool", "l7-api-pool",
                      "--name", "to-api", "--wait", "l7-listener")
    assert (policy["action"], policy["redirect_pool_id"], policy["position"], policy["listener_id"],
            policy["provisioning_status"]) == ("REDIRECT_TO_POOL", pool["id"], 1, listener["id"], "ACTIVE")
    rule = cli.json("l7rule", "create", "--compare-type", "STARTS_WITH", "--type", "PATH", "--value", "/api",
                    "--wait", policy["id"])
    assert (rule["type"], rule["compare_type"], rule["value"], rule["invert"], rule["provisioning_status"]) == \
        ("PATH", "STARTS_WITH", "/api", False, "ACTIVE")

    assert [(x["id"], x["action"]) for x in cli.json("l7policy", "list", "--listener", "l7-listener")] == \
        [(policy["id"], "REDIRECT_TO_POOL")]
    assert [(x["id"], x["value"]) for x in cli.json("l7rule", "list", "to-api")] == [(rule["id"], "/api")]
    shown = cli.json("l7policy", "show", "to-api")
    assert (shown["id"], shown["rules"]) == (policy["id"], [{"id": rule["id"]}])
    assert cli.json("l7rule", "show", "to-api", rule["id"])["compare_type"] == "STARTS_WITH"
    cli.ok("l7policy", "set", "--action", "REDIRECT_TO_URL", "--redirect-url", "https://example.com/",
           "--wait", "to-api")
    moved = cli.json("l7policy", "show", "to-api")
    assert (moved["action"], moved["redirect_url"], moved["redirect_pool_id"], moved["redirect_http_code"]) == \
        ("REDIRECT_TO_URL", "https://example.com/", None, 302)
    tree = json.loads(cli.ok("status", "show", lb_id))["loadbalancer"]
    [tree_policy] = tree["listeners"][0]["l7policies"]
    assert (tree_policy["id"], [r["id"] for r in tree_policy["rules"]]) == (policy["id"], [rule["id"]])

    cli.ok("l7rule", "delete", "--wait", "to-api", rule["id"])
    assert cli.json("l7rule", "list", "to-api") == []
    cli.ok("l7policy", "delete", "--wait", "to-api")
    assert policy["id"] not in [x["id"] for x in cli.json("l7policy", "list")]
    cli.ok("delete", "--cascade", "--wait", lb_id)
