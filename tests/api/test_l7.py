"""L7 policies and rules through the API, on every backend: CRUD, listing,
position order, Octavia's validation, the lifecycle (409, cascades),
quotas, the status tree, the fully populated create and the desired state."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import Api, dump

POOL = {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN"}


def _graph(api: Api, token: str = "admin", **lb: Any) -> tuple[str, str, str, str]:
    """An ACTIVE load balancer with an HTTP listener (default pool) and a second pool:
    (load balancer, listener, default pool, other pool) ids."""
    body = {"vip_subnet_id": "test-subnet", **lb,
            "listeners": [{"protocol": "HTTP", "protocol_port": 80, "default_pool": {"name": "web", **POOL}}],
            "pools": [{"name": "api", **POOL}]}
    response = api.post("/lbaas/loadbalancers", {"loadbalancer": body}, token=token)
    assert response.status_code == 201, dump(response)
    document = response.json()["loadbalancer"]
    api.wait_lb(document["id"], token=token)
    pools = {p["name"]: p["id"] for p in document["pools"]}
    return document["id"], document["listeners"][0]["id"], pools["web"], pools["api"]


def _policy(api: Api, lb_id: str, token: str = "admin", status: int = 201, **fields: Any) -> dict:
    response = api.post("/lbaas/l7policies", {"l7policy": fields}, token=token)
    assert response.status_code == status, dump(response)
    if status == 201:
        api.wait_lb(lb_id, token=token)
        return api.get(f"/lbaas/l7policies/{response.json()['l7policy']['id']}", token=token).json()["l7policy"]
    return response.json()


def _rule(api: Api, lb_id: str, policy_id: str, status: int = 201, **fields: Any) -> dict:
    response = api.post(f"/lbaas/l7policies/{policy_id}/rules", {"rule": fields})
    assert response.status_code == status, dump(response)
    if status == 201:
        api.wait_lb(lb_id)
    return response.json()


def _fault(response: Any, status: int, *words: str) -> None:
    assert response.status_code == status, dump(response)
    for word in words:
        assert word in response.json()["faultstring"], response.json()["faultstring"]


def _positions(api: Api, listener_id: str) -> list[tuple[str, int]]:
    listed = api.get(f"/lbaas/l7policies?listener_id={listener_id}&sort=position:asc").json()["l7policies"]
    return [(p["name"], p["position"]) for p in listed]


def test_policy_and_rule_crud(api: Api) -> None:
    lb_id, listener_id, _web, api_pool = _graph(api)
    policy = _policy(api, lb_id, listener_id=listener_id, action="REDIRECT_TO_POOL",
                     redirect_pool_id=api_pool, name="to-api", tags=["t1"])
    assert policy["provisioning_status"] == "ACTIVE" and policy["operating_status"] == "ONLINE"
    assert (policy["position"], policy["redirect_http_code"], policy["redirect_url"]) == (1, None, None)
    assert policy["tenant_id"] == policy["project_id"] and policy["tags"] == ["t1"] and policy["rules"] == []
    rule = _rule(api, lb_id, policy["id"], type="PATH", compare_type="STARTS_WITH", value="/api")["rule"]
    assert rule["provisioning_status"] == "PENDING_CREATE"
    assert {"name", "description"}.isdisjoint(rule) and rule["key"] is None and rule["invert"] is False
    rules_path = f"/lbaas/l7policies/{policy['id']}/rules"
    assert api.get(f"{rules_path}/{rule['id']}").json()["rule"]["operating_status"] == "ONLINE"
    assert api.get(f"/lbaas/l7policies/{policy['id']}").json()["l7policy"]["rules"] == [{"id": rule["id"]}]
    assert api.get(f"/lbaas/listeners/{listener_id}").json()["listener"]["l7policies"] == [{"id": policy["id"]}]

    # Another action clears the fields it does not use and takes the default code.
    moved = api.put(f"/lbaas/l7policies/{policy['id']}",
                    {"l7policy": {"action": "REDIRECT_TO_URL", "redirect_url": "https://example.com/x"}})
    assert moved.status_code == 200, dump(moved)
    assert (moved.json()["l7policy"]["redirect_pool_id"], moved.json()["l7policy"]["redirect_http_code"]) \
        == (None, 302)
    api.wait_lb(lb_id)
    changed = api.put(f"{rules_path}/{rule['id']}", {"rule": {"type": "HEADER", "key": "X-Env", "value": "prod",
                                                              "compare_type": "EQUAL_TO", "invert": True}})
    assert changed.status_code == 200, dump(changed)
    assert (changed.json()["rule"]["key"], changed.json()["rule"]["invert"]) == ("X-Env", True)
    api.wait_lb(lb_id)
    assert api.delete(f"{rules_path}/{rule['id']}").status_code == 204
    api.wait_lb(lb_id)
    assert api.get(f"{rules_path}/{rule['id']}").status_code == 404
    assert api.delete(f"/lbaas/l7policies/{policy['id']}").status_code == 204
    api.wait_lb(lb_id)
    assert api.get(f"/lbaas/l7policies/{policy['id']}").status_code == 404
    assert api.get(f"/lbaas/listeners/{listener_id}").json()["listener"]["l7policies"] == []


def test_positions_stay_one_to_n(api: Api) -> None:
    lb_id, listener_id, _web, _api = _graph(api)
    ids = {name: _policy(api, lb_id, listener_id=listener_id, action="REJECT", name=name)["id"]
           for name in ("a", "b", "c")}
    assert _positions(api, listener_id) == [("a", 1), ("b", 2), ("c", 3)]
    _policy(api, lb_id, listener_id=listener_id, action="REJECT", name="first", position=1)
    assert _positions(api, listener_id) == [("first", 1), ("a", 2), ("b", 3), ("c", 4)]
    _policy(api, lb_id, listener_id=listener_id, action="REJECT", name="far", position=99)
    assert _positions(api, listener_id)[-1] == ("far", 5)
    assert api.put(f"/lbaas/l7policies/{ids['c']}", {"l7policy": {"position": 2}}).status_code == 200
    api.wait_lb(lb_id)
    assert _positions(api, listener_id) == [("first", 1), ("c", 2), ("a", 3), ("b", 4), ("far", 5)]
    assert api.delete(f"/lbaas/l7policies/{ids['a']}").status_code == 204
    api.wait_lb(lb_id)
    assert _positions(api, listener_id) == [("first", 1), ("c", 2), ("b", 3), ("far", 4)]
    listener = api.desired(lb_id)["listeners"][0]  # type: ignore[typeddict-item]
    assert [p["position"] for p in listener["l7policies"]] == [1, 2, 3, 4]
    assert listener["l7policies"][1]["id"] == ids["c"]


# (fields of a policy or None to use a rule, fields of the rule, words of the 400)
POLICY_ERRORS = [
    ({"action": "REDIRECT_TO_POOL"}, ["REDIRECT_TO_POOL requires redirect_pool_id"]),
    ({"action": "REDIRECT_TO_URL"}, ["REDIRECT_TO_URL requires redirect_url"]),
    ({"action": "REDIRECT_PREFIX"}, ["REDIRECT_PREFIX requires redirect_prefix"]),
    ({"action": "REDIRECT_TO_URL", "redirect_url": "ftp://x.example"}, ["l7policy.redirect_url"]),
    ({"action": "REDIRECT_TO_URL", "redirect_url": "http://x.example/\n    bind :22"}, ["l7policy.redirect_url"]),
    ({"action": "REDIRECT_PREFIX", "redirect_prefix": "https://a b"}, ["l7policy.redirect_prefix"]),
    ({"action": "REDIRECT_TO_URL", "redirect_url": "http://x.example", "redirect_http_code": 304},
     ["l7policy.redirect_http_code"]),
    ({"action": "FORWARD"}, ["l7policy.action"]),
    ({"action": "REJECT", "position": 0}, ["l7policy.position"]),
    ({"action": "REDIRECT_TO_POOL", "redirect_pool_id": "nope"}, ["redirect_pool_id", "not found"]),
    ({"action": "REJECT", "rules": [{"type": "HEADER", "compare_type": "EQUAL_TO", "value": "x"}]}, ["key"]),
]
RULE_ERRORS = [
    ({"type": "HEADER", "compare_type": "EQUAL_TO", "value": "x"}, ["needs a key"]),
    ({"type": "COOKIE", "compare_type": "EQUAL_TO", "value": "x"}, ["needs a key"]),
    ({"type": "PATH", "compare_type": "EQUAL_TO", "key": "k", "value": "/x"}, ["takes no key"]),
    ({"type": "PATH", "compare_type": "REGEX", "value": "^/(api"}, ["does not compile"]),
    ({"type": "FILE_TYPE", "compare_type": "STARTS_WITH", "value": "jpg"}, ["EQUAL_TO or REGEX"]),
    ({"type": "HOST_NAME", "compare_type": "EQUAL_TO", "value": "a b.example"}, ["may not hold"]),
    ({"type": "PATH", "compare_type": "EQUAL_TO", "value": "/x\n    bind :22"}, ["may not hold"]),
    ({"type": "SSL_CONN_HAS_CERT", "compare_type": "EQUAL_TO", "value": "True"}, ["TERMINATED_HTTPS"]),
    ({"type": "PATH", "compare_type": "LIKE", "value": "/x"}, ["rule.compare_type"]),
    ({"type": "PATH", "compare_type": "EQUAL_TO"}, ["rule.value"]),
]


@pytest.fixture(scope="module")
def shared(api: Api) -> tuple[str, str, str, str]:
    return _graph(api)


@pytest.mark.parametrize("fields, words", POLICY_ERRORS)
def test_policy_validation(api: Api, shared: tuple[str, str, str, str], fields: dict, words: list[str]) -> None:
    lb_id, listener_id, _web, _api = shared
    before = api.get(f"/lbaas/l7policies?listener_id={listener_id}").json()["l7policies"]
    _fault(api.post("/lbaas/l7policies", {"l7policy": {"listener_id": listener_id, **fields}}), 400, *words)
    assert api.get(f"/lbaas/l7policies?listener_id={listener_id}").json()["l7policies"] == before
    assert api.get(f"/lbaas/loadbalancers/{lb_id}").json()["loadbalancer"]["provisioning_status"] == "ACTIVE"


@pytest.mark.parametrize("fields, words", RULE_ERRORS)
def test_rule_validation(api: Api, shared: tuple[str, str, str, str], fields: dict, words: list[str]) -> None:
    lb_id, listener_id, _web, _api = shared
    listed = api.get(f"/lbaas/l7policies?listener_id={listener_id}&name=rules").json()["l7policies"]
    policy = listed[0] if listed else _policy(api, lb_id, listener_id=listener_id, action="REJECT", name="rules")
    _fault(api.post(f"/lbaas/l7policies/{policy['id']}/rules", {"rule": fields}), 400, *words)
    assert api.get(f"/lbaas/l7policies/{policy['id']}/rules").json()["rules"] == []


def test_validation_against_other_objects(api: Api) -> None:
    lb_id, listener_id, _web, api_pool = _graph(api)
    other_lb, _other_listener, other_pool, _ = _graph(api)
    _fault(api.post("/lbaas/l7policies", {"l7policy": {"listener_id": listener_id, "action": "REDIRECT_TO_POOL",
                                                       "redirect_pool_id": other_pool}}), 400, "not found")
    tcp = api.post("/lbaas/listeners", {"listener": {"loadbalancer_id": lb_id, "protocol": "TCP",
                                                     "protocol_port": 81}}).json()["listener"]
    api.wait_lb(lb_id)
    _fault(api.post("/lbaas/l7policies", {"l7policy": {"listener_id": tcp["id"], "action": "REJECT"}}),
           400, "only supported on HTTP and TERMINATED_HTTPS listeners")
    policy = _policy(api, lb_id, listener_id=listener_id, action="REDIRECT_TO_POOL", redirect_pool_id=api_pool)
    _fault(api.put(f"/lbaas/l7policies/{policy['id']}", {"l7policy": {"action": "REDIRECT_PREFIX"}}),
           400, "requires redirect_prefix")
    rule = _rule(api, lb_id, policy["id"], type="COOKIE", compare_type="EQUAL_TO", key="sid", value="a")["rule"]
    _fault(api.put(f"/lbaas/l7policies/{policy['id']}/rules/{rule['id']}", {"rule": {"key": None}}),
           400, "needs a key")
    # The policy's pool cannot go while the policy sends traffic to it (Octavia: 409).
    _fault(api.delete(f"/lbaas/pools/{api_pool}"), 409, "in use by L7 policy")
    assert api.get(f"/lbaas/l7policies/{policy['id']}").json()["l7policy"]["redirect_pool_id"] == api_pool
    assert api.get(f"/lbaas/loadbalancers/{other_lb}").json()["loadbalancer"]["provisioning_status"] == "ACTIVE"


def test_change_while_pending_is_409(api: Api) -> None:
    lb_id, listener_id, _web, _api = _graph(api)
    with api.changes_held():
        first = api.post("/lbaas/l7policies", {"l7policy": {"listener_id": listener_id, "action": "REJECT"}})
    assert first.status_code == 201 and first.json()["l7policy"]["provisioning_status"] == "PENDING_CREATE"
    second = api.post("/lbaas/l7policies", {"l7policy": {"listener_id": listener_id, "action": "REJECT"}})
    _fault(second, 409, "immutable")
    api.wait_lb(lb_id)
    assert len(api.get(f"/lbaas/l7policies?listener_id={listener_id}").json()["l7policies"]) == 1


def test_cascades_with_listener_and_loadbalancer(api: Api) -> None:
    lb_id, listener_id, _web, api_pool = _graph(api)
    policy = _policy(api, lb_id, listener_id=listener_id, action="REDIRECT_TO_POOL", redirect_pool_id=api_pool)
    rule = _rule(api, lb_id, policy["id"], type="HOST_NAME", compare_type="ENDS_WITH", value=".example.com")
    assert api.delete(f"/lbaas/listeners/{listener_id}").status_code == 204
    api.wait_lb(lb_id)
    assert api.get(f"/lbaas/l7policies/{policy['id']}").status_code == 404
    assert api.get(f"/lbaas/l7policies/{policy['id']}/rules/{rule['rule']['id']}").status_code == 404
    # The pool is free again once its policy went.
    assert api.delete(f"/lbaas/pools/{api_pool}").status_code == 204
    api.wait_lb(lb_id)

    lb_id, listener_id, _web, _api = _graph(api)
    policy = _policy(api, lb_id, listener_id=listener_id, action="REJECT",
                     rules=[{"type": "PATH", "compare_type": "EQUAL_TO", "value": "/admin"}])
    assert api.delete(f"/lbaas/loadbalancers/{lb_id}?cascade=true").status_code == 204
    api.wait_lb(lb_id, "DELETED")
    assert api.get(f"/lbaas/l7policies/{policy['id']}").status_code == 404
    assert api.get(f"/lbaas/l7policies?id={policy['id']}").json()["l7policies"] == []


def test_listing_filters_paging_fields_and_tags(api: Api) -> None:
    lb_id, listener_id, _web, api_pool = _graph(api)
    tag = uuid.uuid4().hex[:8]
    _policy(api, lb_id, listener_id=listener_id, action="REJECT", name="r", tags=[tag])
    pool_policy = _policy(api, lb_id, listener_id=listener_id, action="REDIRECT_TO_POOL",
                          redirect_pool_id=api_pool, name="p", tags=[tag, "x"],
                          rules=[{"type": "PATH", "compare_type": "STARTS_WITH", "value": "/a"},
                                 {"type": "HEADER", "compare_type": "CONTAINS", "key": "X-T", "value": "b"}])
    listed = api.get(f"/lbaas/l7policies?tags={tag}&action=REDIRECT_TO_POOL").json()["l7policies"]
    assert [p["id"] for p in listed] == [pool_policy["id"]]
    assert len(listed[0]["rules"]) == 2
    page = api.get(f"/lbaas/l7policies?tags={tag}&limit=1&sort=position:desc&fields=id,position").json()
    assert page["l7policies"] == [{"id": pool_policy["id"], "position": 2}]
    assert [link["rel"] for link in page["l7policies_links"]] == ["next"]
    assert len(api.get(f"/lbaas/l7policies?not-tags=x&tags={tag}").json()["l7policies"]) == 1
    rules = api.get(f"/lbaas/l7policies/{pool_policy['id']}/rules?type=HEADER").json()["rules"]
    assert [(r["key"], r["value"]) for r in rules] == [("X-T", "b")]
    _fault(api.get("/lbaas/l7policies?position=first"), 400, "position")
    # Another project sees none of them.
    assert api.get(f"/lbaas/l7policies?tags={tag}", token="bob").json()["l7policies"] == []
    assert api.get(f"/lbaas/l7policies/{pool_policy['id']}", token="bob").status_code == 404
    assert api.get(f"/lbaas/l7policies/{pool_policy['id']}/rules", token="bob").status_code == 404


def test_quotas(api: Api) -> None:
    project = f"quota-l7-{uuid.uuid4().hex[:6]}"
    defaults = api.get("/lbaas/quotas/defaults").json()["quota"]
    assert (defaults["l7policy"], defaults["l7rule"]) == (500, 5000)
    response = api.put(f"/lbaas/quotas/{project}", {"quota": {"l7policy": 1, "l7rule": 1}})
    assert response.status_code == 202 and response.json()["quota"]["l7policy"] == 1, dump(response)
    listed = api.get(f"/lbaas/quotas?project_id={project}").json()["quotas"]
    assert [(q["l7policy"], q["l7rule"]) for q in listed if q["project_id"] == project] == [(1, 1)]
    lb_id, listener_id, _web, _api = _graph(api, project_id=project)
    two_rules = [{"type": "PATH", "compare_type": "EQUAL_TO", "value": f"/{i}"} for i in range(2)]
    _fault(api.post("/lbaas/l7policies", {"l7policy": {"listener_id": listener_id, "action": "REJECT",
                                                       "rules": two_rules}}), 403, "Quota")
    policy = _policy(api, lb_id, listener_id=listener_id, action="REJECT", rules=two_rules[:1])
    _fault(api.post("/lbaas/l7policies", {"l7policy": {"listener_id": listener_id, "action": "REJECT"}}),
           403, "Quota")
    _fault(api.post(f"/lbaas/l7policies/{policy['id']}/rules", {"rule": two_rules[1]}), 403, "Quota")
    assert api.get(f"/lbaas/loadbalancers/{lb_id}").json()["loadbalancer"]["provisioning_status"] == "ACTIVE"
    assert api.delete(f"/lbaas/quotas/{project}").status_code == 204


def test_status_tree_and_operating_status(api: Api) -> None:
    lb_id, listener_id, _web, _api = _graph(api)
    up = _policy(api, lb_id, listener_id=listener_id, action="REDIRECT_PREFIX",
                 redirect_prefix="https://new.example.com", redirect_http_code=308,
                 rules=[{"type": "HOST_NAME", "compare_type": "EQUAL_TO", "value": "old.example.com"}])
    assert up["redirect_http_code"] == 308
    down = _policy(api, lb_id, listener_id=listener_id, action="REJECT", admin_state_up=False)
    assert down["operating_status"] == "OFFLINE"
    tree = api.get(f"/lbaas/loadbalancers/{lb_id}/status").json()["statuses"]["loadbalancer"]
    policies = tree["listeners"][0]["l7policies"]
    assert [(p["id"], p["action"], p["provisioning_status"], p["operating_status"]) for p in policies] == [
        (up["id"], "REDIRECT_PREFIX", "ACTIVE", "ONLINE"), (down["id"], "REJECT", "ACTIVE", "OFFLINE")]
    assert [(r["type"], r["operating_status"]) for r in policies[0]["rules"]] == [("HOST_NAME", "ONLINE")]
    assert api.put(f"/lbaas/l7policies/{down['id']}", {"l7policy": {"admin_state_up": True}}).status_code == 200
    api.wait_lb(lb_id)
    assert api.get(f"/lbaas/l7policies/{down['id']}").json()["l7policy"]["operating_status"] == "ONLINE"


def test_fully_populated_create_with_policies(api: Api) -> None:
    body = {"vip_subnet_id": "test-subnet", "listeners": [{
        "protocol": "HTTP", "protocol_port": 80, "default_pool": {"name": "web", **POOL},
        "l7policies": [
            {"name": "second", "action": "REJECT", "position": 2,
             "rules": [{"type": "PATH", "compare_type": "STARTS_WITH", "value": "/admin"}]},
            {"name": "first", "action": "REDIRECT_TO_POOL", "position": 1,
             "redirect_pool": {"name": "api", **POOL, "members": [{"address": "127.0.0.5", "protocol_port": 81}]},
             "rules": [{"type": "PATH", "compare_type": "STARTS_WITH", "value": "/api"},
                       {"type": "COOKIE", "compare_type": "EQUAL_TO", "key": "beta", "value": "1", "invert": True}]},
            {"name": "last", "action": "REDIRECT_TO_URL", "redirect_url": "https://example.com/"}]}]}
    response = api.post("/lbaas/loadbalancers", {"loadbalancer": body})
    assert response.status_code == 201, dump(response)
    lb = response.json()["loadbalancer"]
    policies = lb["listeners"][0]["l7policies"]
    assert [(p["name"], p["position"], len(p["rules"])) for p in policies] == [
        ("first", 1, 2), ("second", 2, 1), ("last", 3, 0)]
    api_pool = next(p for p in lb["pools"] if p["name"] == "api")
    assert policies[0]["redirect_pool_id"] == api_pool["id"] and policies[2]["redirect_http_code"] == 302
    api.wait_lb(lb["id"])
    listener = api.desired(lb["id"])["listeners"][0]  # type: ignore[typeddict-item]
    assert [(p["action"], p["redirect_pool_id"]) for p in listener["l7policies"]] == [
        ("REDIRECT_TO_POOL", api_pool["id"]), ("REJECT", None), ("REDIRECT_TO_URL", None)]
    # Rules are ANDed: their order is the database's (created_at, id), not the body's.
    cookie = next(r for r in policies[0]["rules"] if r["type"] == "COOKIE")
    assert next(r for r in listener["l7policies"][0]["rules"] if r["type"] == "COOKIE") == {
        "id": cookie["id"], "type": "COOKIE", "compare_type": "EQUAL_TO", "key": "beta",
        "value": "1", "invert": True, "admin_state_up": True}


def test_fully_populated_create_refuses_bad_policies(api: Api) -> None:
    def listener(**policy: Any) -> dict:
        return {"vip_subnet_id": "test-subnet", "name": "bad-l7",
                "listeners": [{"protocol": "HTTP", "protocol_port": 80, "l7policies": [policy]}]}

    _fault(api.post("/lbaas/loadbalancers", {"loadbalancer": listener(action="REDIRECT_TO_POOL",
                                                                      redirect_pool_id="x")}),
           400, "redirect_pool")
    _fault(api.post("/lbaas/loadbalancers", {"loadbalancer": listener(
        action="REJECT", rules=[{"type": "PATH", "compare_type": "REGEX", "value": "(("}])}), 400, "compile")
    tcp = {"vip_subnet_id": "test-subnet", "name": "bad-l7",
           "listeners": [{"protocol": "TCP", "protocol_port": 80, "l7policies": [{"action": "REJECT"}]}]}
    _fault(api.post("/lbaas/loadbalancers", {"loadbalancer": tcp}), 400, "TERMINATED_HTTPS listeners")
    assert api.get("/lbaas/loadbalancers?name=bad-l7").json()["loadbalancers"] == []
