"""The policy over real HTTP: Octavia's rules and roles, a policy.yaml that
overrides one rule while the server runs, the agents API for admins only.

One server on SQLite (the policy does not depend on the database); tokens
from the local token file, so every role is one ``create_token`` away.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lbaas.api.policy import REFUSED
from lbaas.api.tokens import create as create_token
from lbaas.api.tokens import revoke
from tests.conftest import Api, start_api

LEGACY = {"lb-member": ("project-a", "load-balancer_member"),
          "lb-observer": ("project-a", "load-balancer_observer"),
          "lb-global": ("project-b", "load-balancer_global_observer"),
          "lb-admin": ("project-c", "load-balancer_admin"),
          "lb-quota": ("project-c", "load-balancer_quota_admin")}


@pytest.fixture(scope="module")
def server(temp_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, str]]:
    folder = str(tmp_path_factory.mktemp("policy"))
    policy_file = os.path.join(folder, "policy.yaml")
    api, stop = start_api(temp_database("sqlite").url, folder, "sqlite", {"api": {"policy_file": policy_file}})
    for name, (project, role) in LEGACY.items():
        api.tokens[name] = create_token(os.path.join(folder, "tokens.json"), project, role)
    yield api, policy_file
    stop()


@pytest.fixture
def api(server: tuple[Api, str]) -> Iterator[Api]:
    api, policy_file = server
    yield api
    if os.path.exists(policy_file):
        os.remove(policy_file)


def refused(response: Any) -> bool:
    return response.status_code == 403 and response.json()["faultstring"] == REFUSED


def lb_ids(api: Api, token: str) -> set[str]:
    response = api.get("/lbaas/loadbalancers", token=token)
    assert response.status_code == 200, response.text
    return {lb["id"] for lb in response.json()["loadbalancers"]}


def test_members_write_their_project_readers_only_read(api: Api) -> None:
    lb = api.create_lb("alice")
    assert api.get(f"/lbaas/loadbalancers/{lb['id']}", token="reader").status_code == 200
    assert lb["id"] in lb_ids(api, "reader")
    assert refused(api.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "test-subnet"}},
                            token="reader"))
    assert refused(api.put(f"/lbaas/loadbalancers/{lb['id']}", {"loadbalancer": {"name": "x"}}, token="reader"))
    assert refused(api.delete(f"/lbaas/loadbalancers/{lb['id']}", token="reader"))
    # Another project's object is not there at all, for reads and writes alike.
    assert api.get(f"/lbaas/loadbalancers/{lb['id']}", token="bob").status_code == 404
    assert api.put(f"/lbaas/loadbalancers/{lb['id']}", {"loadbalancer": {"name": "x"}},
                   token="bob").status_code == 404
    assert lb["id"] not in lb_ids(api, "bob")
    assert lb["id"] in lb_ids(api, "admin")
    assert refused(api.put(f"/lbaas/loadbalancers/{lb['id']}/failover", {}, token="alice"))


@pytest.mark.parametrize("path", ["/lbaas/listeners", "/lbaas/pools", "/lbaas/healthmonitors",
                                  "/lbaas/l7policies", "/lbaas/pools/p/members", "/lbaas/l7policies/p/rules"])
def test_a_reader_is_refused_every_write_before_its_body_is_judged(api: Api, path: str) -> None:
    assert refused(api.post(path, {}, token="reader"))
    assert refused(api.put(path + "/some-id", {}, token="reader"))
    assert refused(api.delete(path + "/some-id", token="reader"))


def test_legacy_roles_keep_their_meaning(api: Api) -> None:
    mine = api.create_lb("lb-member")
    theirs = api.create_lb("bob")
    assert mine["project_id"] == "project-a"
    assert mine["id"] in lb_ids(api, "lb-observer") and theirs["id"] not in lb_ids(api, "lb-observer")
    assert refused(api.put(f"/lbaas/loadbalancers/{mine['id']}", {"loadbalancer": {"name": "x"}},
                           token="lb-observer"))
    assert {mine["id"], theirs["id"]} <= lb_ids(api, "lb-global")  # reads every project
    assert api.get(f"/lbaas/loadbalancers/{mine['id']}", token="lb-global").status_code == 200
    # ... but writes none, not even in its own project.
    assert api.put(f"/lbaas/loadbalancers/{theirs['id']}", {"loadbalancer": {"name": "x"}},
                   token="lb-global").status_code == 403
    assert {mine["id"], theirs["id"]} <= lb_ids(api, "lb-admin")
    assert api.get("/agents", token="lb-admin").status_code == 200


def test_quotas_follow_the_quota_rules(api: Api) -> None:
    assert api.get("/lbaas/quotas/project-a", token="reader").status_code == 200
    assert refused(api.get("/lbaas/quotas/project-b", token="alice"))
    assert refused(api.put("/lbaas/quotas/project-a", {"quota": {"pool": 5}}, token="alice"))
    assert api.put("/lbaas/quotas/project-b", {"quota": {"pool": 5}}, token="lb-quota").status_code == 202
    assert api.get("/lbaas/quotas/project-b", token="lb-quota").json()["quota"]["pool"] == 5
    listed = {q["project_id"] for q in api.get("/lbaas/quotas", token="alice").json()["quotas"]}
    assert "project-b" not in listed
    assert "project-b" in {q["project_id"] for q in api.get("/lbaas/quotas", token="admin").json()["quotas"]}
    assert api.delete("/lbaas/quotas/project-b", token="admin").status_code == 204


@pytest.mark.parametrize("method, path", [("GET", "/agents"), ("GET", "/agents/status"), ("GET", "/agents/x"),
                                          ("PUT", "/agents/x"),
                                          ("DELETE", "/agents/x"), ("GET", "/agents/x/agent-loadbalancers")])
def test_the_agents_api_is_for_admins(api: Api, method: str, path: str) -> None:
    for token in ("alice", "reader", "lb-global"):
        response = api.request(method, path, token=token, json={"agent": {}} if method == "PUT" else None)
        assert refused(response), (token, response.text)
    assert api.request(method, path, token="admin",
                       json={"agent": {}} if method == "PUT" else None).status_code in (200, 404)


def test_a_policy_file_overrides_one_rule_while_the_server_runs(server: tuple[Api, str], api: Api) -> None:
    _, policy_file = server
    theirs = api.create_lb("bob")
    assert theirs["id"] not in lb_ids(api, "reader")
    with open(policy_file, "w", encoding="utf-8") as handle:
        handle.write('"os_load-balancer_api:loadbalancer:get_all-global": "role:reader"\n'
                     '"os_load-balancer_api:loadbalancer:post": "rule:load-balancer:admin"\n')
    assert theirs["id"] in lb_ids(api, "reader")  # read again on the next request
    # get_one still asks for the owner: listed, but a look at the one object is refused.
    assert refused(api.get(f"/lbaas/loadbalancers/{theirs['id']}", token="reader"))
    assert refused(api.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "test-subnet"}},
                            token="alice"))
    assert api.get("/lbaas/pools", token="reader").status_code == 200  # every other rule as it was
    os.remove(policy_file)
    assert theirs["id"] not in lb_ids(api, "reader")
    api.create_lb("alice", wait=False)


def test_local_tokens_expire_and_are_revoked_while_the_server_runs(server: tuple[Api, str], api: Api) -> None:
    token_file = os.path.join(os.path.dirname(server[1]), "tokens.json")
    short = create_token(token_file, "project-a", "member", expires_in=1)
    revoked = create_token(token_file, "project-a", "member")
    assert api.get("/lbaas/loadbalancers", token=short).status_code == 200
    assert api.get("/lbaas/loadbalancers", token=revoked).status_code == 200
    assert revoke(token_file, revoked.partition(".")[0])
    assert api.get("/lbaas/loadbalancers", token=revoked).status_code == 401
    ident, _, secret = short.partition(".")
    assert api.get("/lbaas/loadbalancers", token=f"{ident}.{secret[::-1]}").status_code == 401  # right id, wrong secret
    assert api.get("/lbaas/loadbalancers", token=secret).status_code == 401  # no id at all
    time.sleep(2)
    expired = api.get("/lbaas/loadbalancers", token=short)
    assert expired.status_code == 401 and "expired" in expired.json()["faultstring"]


def test_a_broken_policy_file_keeps_the_rules_in_force(server: tuple[Api, str], api: Api) -> None:
    _, policy_file = server
    with open(policy_file, "w", encoding="utf-8") as handle:
        handle.write('"os_load-balancer_api:loadbalancer:get_all": "!"\n')
    assert refused(api.get("/lbaas/loadbalancers", token="alice"))
    time.sleep(0.01)  # a new mtime, even on a coarse clock
    with open(policy_file, "w", encoding="utf-8") as handle:
        handle.write("{{{ not yaml")
    assert refused(api.get("/lbaas/loadbalancers", token="alice"))  # never a 500
    assert api.get("/lbaas/pools", token="alice").status_code == 200
