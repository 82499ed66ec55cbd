"""Flavors, availability zones and their profiles through the API, on every backend: CRUD,
validation of the profiles' data against the provider's capabilities, policy, and a load
balancer that names a zone or a flavor (judged, stored, placed in the zone's agent group)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lbaas.controller.agent_provider import AgentProvider
from lbaas.controller.provider import NoopProvider, Provider
from lbaas.db import models as m
from lbaas.db.clock import DatabaseClock
from lbaas.db.session import Database
from lbaas.messaging import Broker
from lbaas.scheduler import Scheduler
from lbaas.testing.databases import BACKENDS
from tests.api.test_clients import Cli
from tests.conftest import Api, dump, start_api

ENV = "e1"
DOWN = 30.0


def serve(db_url: str, tmp_dir: str, backend: str) -> Iterator[Api]:
    """A server with the noop provider and an agent environment ``e1`` (agents are rows the
    tests write; the casts go to an in-memory broker nobody consumes)."""
    broker = Broker("memory://")

    def providers(db: Database) -> dict[str, Provider]:
        return {"noop": NoopProvider(db, 0.02), ENV: AgentProvider(ENV, db, broker, Scheduler(DOWN))}

    api, stop = start_api(db_url, tmp_dir, backend, providers=providers)
    yield api
    stop()
    broker.close()


@pytest.fixture(scope="module", params=BACKENDS)
def catalogue_api(request: pytest.FixtureRequest, temp_database: Any,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from serve(temp_database(request.param).url, str(tmp_path_factory.mktemp("catalogue")), request.param)


def created(api: Api, path: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(path, {key: body})
    assert response.status_code == 201, dump(response)
    return response.json()[key]


def zone(api: Api, name: str, group: int, enabled: bool = True) -> dict[str, Any]:
    profile = created(api, "/lbaas/availabilityzoneprofiles", "availability_zone_profile",
                      {"name": f"{name}-profile", "provider_name": ENV,
                       "availability_zone_data": json.dumps({"group": group})})
    return created(api, "/lbaas/availabilityzones", "availability_zone",
                   {"name": name, "availability_zone_profile_id": profile["id"], "enabled": enabled})


def flavor(api: Api, name: str, data: dict[str, Any], provider: str = ENV) -> dict[str, Any]:
    profile = created(api, "/lbaas/flavorprofiles", "flavorprofile",
                      {"name": f"{name}-profile", "provider_name": provider, "flavor_data": json.dumps(data)})
    return created(api, "/lbaas/flavors", "flavor", {"name": name, "flavor_profile_id": profile["id"]})


def agent(api: Api, host: str, group: int) -> str:
    """A live agent of ``ENV`` in ``group``, by the database's clock (as the scheduler judges)."""
    with api.db.transaction() as session:
        beat = DatabaseClock().now(session)
        row = m.Agent(host=host, environment=ENV, group=group, heartbeat_at=beat, started_at=beat,
                      created_at=beat, configurations={})
        session.add(row)
        session.flush()
        return row.id


def bound_group(api: Api, lb_id: str) -> int | None:
    with api.db.reading() as session:
        binding = session.get(m.Binding, lb_id)
        return None if binding is None else session.get(m.Agent, binding.agent_id).group


# --- CRUD ----------------------------------------------------------------------------------

def test_flavor_profile_and_flavor_crud(catalogue_api: Api) -> None:
    api = catalogue_api
    profile = created(api, "/lbaas/flavorprofiles", "flavorprofile",
                      {"name": "fp-crud", "provider_name": ENV, "flavor_data": '{"group": 2}'})
    assert (profile["provider_name"], json.loads(profile["flavor_data"])) == (ENV, {"group": 2})
    made = created(api, "/lbaas/flavors", "flavor",
                   {"name": "crud", "description": "gold", "flavor_profile_id": profile["id"]})
    assert (made["name"], made["description"], made["enabled"]) == ("crud", "gold", True)

    listed = api.get("/lbaas/flavors?name=crud").json()
    assert [x["id"] for x in listed["flavors"]] == [made["id"]] and listed["flavors_links"] == []
    response = api.put(f"/lbaas/flavors/{made['id']}", {"flavor": {"enabled": False, "description": "silver"}})
    assert response.status_code == 200, dump(response)
    assert api.get(f"/lbaas/flavors/{made['id']}").json()["flavor"]["description"] == "silver"
    response = api.put(f"/lbaas/flavorprofiles/{profile['id']}", {"flavorprofile": {"flavor_data": '{"group": 3}'}})
    assert json.loads(response.json()["flavorprofile"]["flavor_data"]) == {"group": 3}

    # A profile in use by a flavor stays.
    assert api.delete(f"/lbaas/flavorprofiles/{profile['id']}").status_code == 409
    assert api.delete(f"/lbaas/flavors/{made['id']}").status_code == 204
    assert api.get(f"/lbaas/flavors/{made['id']}").status_code == 404
    assert api.delete(f"/lbaas/flavorprofiles/{profile['id']}").status_code == 204


def test_availability_zone_crud_keyed_by_name(catalogue_api: Api) -> None:
    api = catalogue_api
    made = zone(api, "crud-az", 1)
    assert (made["name"], made["enabled"], made["description"]) == ("crud-az", True, "")
    assert api.post("/lbaas/availabilityzones", {"availability_zone": {
        "name": "crud-az", "availability_zone_profile_id": made["availability_zone_profile_id"]}}).status_code == 409
    response = api.put("/lbaas/availabilityzones/crud-az", {"availability_zone": {"description": "east"}})
    assert response.json()["availability_zone"]["description"] == "east", dump(response)
    names = [x["name"] for x in api.get("/lbaas/availabilityzones").json()["availability_zones"]]
    assert "crud-az" in names
    profiles = api.get("/lbaas/availabilityzoneprofiles").json()["availability_zone_profiles"]
    assert any(p["id"] == made["availability_zone_profile_id"] for p in profiles)
    assert api.delete("/lbaas/availabilityzones/crud-az").status_code == 204
    assert api.get("/lbaas/availabilityzones/crud-az").status_code == 404


# --- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "words"), [
    ('{"max_share": 0.5}', ['"max_share"', "supported: group"]),
    ('{"group": 1, "x": 1, "y": 2}', ['"x"', '"y"']),
    ('{"group": "1"}', ["group must be an integer"]),
    ('{"group": true}', ["group must be an integer"]),
    ('{"group": 0}', ["group must be an integer"]),
    ('[1]', ["JSON object"]),
    ('{"group": ', ["JSON object"]),
    ("[" * 4000, ["JSON object"]),
])
def test_profile_data_is_judged_against_the_provider(catalogue_api: Api, data: str, words: list[str]) -> None:
    for path, key, field in (("/lbaas/flavorprofiles", "flavorprofile", "flavor_data"),
                             ("/lbaas/availabilityzoneprofiles", "availability_zone_profile",
                              "availability_zone_data")):
        response = catalogue_api.post(path, {key: {"name": "bad", "provider_name": ENV, field: data}})
        assert response.status_code == 400, dump(response)
        message = response.json()["faultstring"]
        assert all(word in message for word in words), message


def test_noop_provider_honours_no_keys_and_unknown_providers_are_refused(catalogue_api: Api) -> None:
    response = catalogue_api.post("/lbaas/flavorprofiles", {"flavorprofile": {
        "name": "n", "provider_name": "noop", "flavor_data": '{"group": 1}'}})
    assert response.status_code == 400 and "supported: none" in response.json()["faultstring"]
    response = catalogue_api.post("/lbaas/flavorprofiles", {"flavorprofile": {
        "name": "n", "provider_name": "nowhere", "flavor_data": "{}"}})
    assert response.status_code == 400 and "nowhere" in response.json()["faultstring"]
    response = catalogue_api.post("/lbaas/flavors", {"flavor": {"name": "orphan", "flavor_profile_id": "missing"}})
    assert response.status_code == 400, dump(response)
    response = catalogue_api.post("/lbaas/availabilityzones", {"availability_zone": {
        "name": "bad name/../x", "availability_zone_profile_id": "x"}})
    assert response.status_code == 400, dump(response)


def test_capabilities_list_what_profiles_may_hold(catalogue_api: Api) -> None:
    for path, key in (("flavor_capabilities", "flavor_capabilities"),
                      ("availability_zone_capabilities", "availability_zone_capabilities")):
        listed = catalogue_api.get(f"/lbaas/providers/{ENV}/{path}", token="alice").json()[key]
        assert [c["name"] for c in listed] == ["group"] and listed[0]["description"]
        assert catalogue_api.get(f"/lbaas/providers/noop/{path}").json()[key] == []


# --- policy --------------------------------------------------------------------------------

def test_members_read_flavors_and_zones_only_admins_write_and_see_profiles(catalogue_api: Api) -> None:
    api = catalogue_api
    made = flavor(api, "policy-flavor", {})
    zone(api, "policy-az", 1)
    for token in ("alice", "reader"):
        assert api.get("/lbaas/flavors", token=token).status_code == 200
        assert api.get(f"/lbaas/flavors/{made['id']}", token=token).status_code == 200
        assert api.get("/lbaas/availabilityzones/policy-az", token=token).status_code == 200
        for path in ("/lbaas/flavorprofiles", "/lbaas/availabilityzoneprofiles", "/v2/octavia/amphorae"):
            assert api.get(path, token=token).status_code == 403, path
    refused = api.post("/lbaas/flavors", {"flavor": {"name": "x", "flavor_profile_id": made["flavor_profile_id"]}},
                       token="alice")
    assert refused.status_code == 403 and "faultstring" in refused.json()
    assert api.put("/lbaas/availabilityzones/policy-az", {"availability_zone": {"enabled": False}},
                   token="alice").status_code == 403
    assert api.delete(f"/lbaas/flavors/{made['id']}", token="alice").status_code == 403
    assert api.get("/v2/octavia/amphorae").json() == {"amphorae": [], "amphorae_links": []}


# --- load balancers -------------------------------------------------------------------------

def test_loadbalancer_in_a_zone_is_placed_in_its_group(catalogue_api: Api) -> None:
    api = catalogue_api
    zone(api, "place-az2", 2)
    agent(api, f"place-g1-{api.backend}", 1)
    agent(api, f"place-g2-{api.backend}", 2)
    lb = api.create_lb(wait=False, availability_zone="place-az2", project_id="place-project")
    assert (lb["availability_zone"], lb["provider"]) == ("place-az2", ENV)
    assert bound_group(api, lb["id"]) == 2
    pinned = flavor(api, "place-pin1", {"group": 1})
    lb = api.create_lb(wait=False, flavor_id=pinned["id"], project_id="place-project")
    assert (lb["flavor_id"], bound_group(api, lb["id"])) == (pinned["id"], 1)
    # In use by a load balancer: neither the zone nor the flavor may go.
    assert api.delete("/lbaas/availabilityzones/place-az2").status_code == 409
    assert api.delete(f"/lbaas/flavors/{pinned['id']}").status_code == 409


def test_loadbalancer_refuses_unknown_disabled_or_mismatched_zone_and_flavor(catalogue_api: Api) -> None:
    api = catalogue_api
    zone(api, "off-az", 1, enabled=False)
    zone(api, "g1-az", 1)
    other = flavor(api, "noop-flavor", {}, provider="noop")
    two = flavor(api, "g2-flavor", {"group": 2})
    cases = [({"availability_zone": "nowhere-az"}, "does not exist"),
             ({"flavor_id": "nowhere"}, "does not exist"),
             ({"availability_zone": "off-az"}, "disabled"),
             ({"availability_zone": "g1-az", "provider": "noop"}, "one provider"),
             ({"availability_zone": "g1-az", "flavor_id": other["id"]}, "one provider"),
             ({"availability_zone": "g1-az", "flavor_id": two["id"]}, "different agent groups")]
    for fields, words in cases:
        response = api.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "test-subnet", **fields}})
        assert response.status_code == 400 and words in response.json()["faultstring"], (fields, dump(response))
    api.put(f"/lbaas/flavors/{two['id']}", {"flavor": {"enabled": False}})
    response = api.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "test-subnet",
                                                                   "flavor_id": two["id"]}})
    assert response.status_code == 400 and "disabled" in response.json()["faultstring"]


def test_a_zone_whose_group_has_no_agent_leaves_the_loadbalancer_waiting(catalogue_api: Api) -> None:
    api = catalogue_api
    zone(api, "empty-az", 7)
    agent(api, f"empty-g1-{api.backend}", 1)
    lb = api.create_lb(wait=False, availability_zone="empty-az")
    assert bound_group(api, lb["id"]) is None
    shown = api.get(f"/lbaas/loadbalancers/{lb['id']}").json()["loadbalancer"]
    assert shown["provisioning_status"] == "PENDING_CREATE"


# --- the openstack CLI ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli_api(temp_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The CLI reads the wire format, not the database: one server on SQLite suffices."""
    yield from serve(temp_database("sqlite").url, str(tmp_path_factory.mktemp("cli")), "sqlite")


def test_openstack_cli_manages_flavors_and_zones(cli_api: Api, tmp_path: Path) -> None:
    cli = Cli(tmp_path, cli_api.url, cli_api.tokens["admin"])
    profile = cli.json("flavorprofile", "create", "--name", "cli-fp", "--provider", ENV,
                       "--flavor-data", '{"group": 1}')
    assert (profile["provider_name"], json.loads(profile["flavor_data"])) == (ENV, {"group": 1})
    gold = cli.json("flavor", "create", "--name", "gold", "--flavorprofile", "cli-fp",
                    "--description", "pinned to group 1", "--enable")
    assert (gold["name"], gold["flavor_profile_id"], gold["enabled"]) == ("gold", profile["id"], True)
    assert [f["name"] for f in cli.json("flavor", "list")] == ["gold"]
    cli.ok("flavor", "set", "--description", "group one", "gold")
    assert cli.json("flavor", "show", "gold")["description"] == "group one"

    zone_profile = cli.json("availabilityzoneprofile", "create", "--name", "cli-azp", "--provider", ENV,
                            "--availability-zone-data", '{"group": 2}')
    assert json.loads(zone_profile["availability_zone_data"]) == {"group": 2}
    az = cli.json("availabilityzone", "create", "--name", "az2", "--availabilityzoneprofile", "cli-azp")
    assert (az["name"], az["availability_zone_profile_id"]) == ("az2", zone_profile["id"])
    assert [z["name"] for z in cli.json("availabilityzone", "list")] == ["az2"]
    cli.ok("availabilityzone", "set", "--description", "second", "az2")
    assert cli.json("availabilityzone", "show", "az2")["description"] == "second"
    refused = cli.run("availabilityzoneprofile", "create", "--name", "x", "--provider", ENV,
                      "--availability-zone-data", '{"rack": 4}')
    assert refused.returncode != 0 and "rack" in refused.stderr

    capabilities = cli.json("provider", "capability", "list", ENV)
    assert {(c["name"], c["type"]) for c in capabilities} == {("group", "flavor"), ("group", "availability_zone")}
    assert cli.json("amphora", "list") == []

    agent(cli_api, "cli-g1", 1)
    agent(cli_api, "cli-g2", 2)
    lb = cli.json("create", "--vip-subnet-id", "test-subnet", "--name", "cli-zoned", "--availability-zone", "az2")
    assert (lb["availability_zone"], lb["provider"], bound_group(cli_api, lb["id"])) == ("az2", ENV, 2)

    for kind, name in (("flavor", "gold"), ("flavorprofile", "cli-fp")):
        cli.ok(kind, "delete", name)
    assert cli.json("flavor", "list") == []
