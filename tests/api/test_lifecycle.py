"""Create, read, update, delete and the PENDING lifecycle, on every backend."""

from __future__ import annotations

import threading
import uuid

from tests.conftest import Api, dump


def full_graph(name: str, port: int = 80, members: int = 2) -> dict:
    return {"name": name, "vip_subnet_id": "test-subnet", "listeners": [{
        "name": f"{name}-l", "protocol": "HTTP", "protocol_port": port,
        "default_pool": {
            "name": f"{name}-p", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
            "session_persistence": {"type": "APP_COOKIE", "cookie_name": "sid"},
            "members": [{"address": "127.0.0.1", "protocol_port": 8000 + i, "weight": i + 1}
                        for i in range(members)],
            "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 3,
                              "url_path": "/health", "expected_codes": "200-204"}}}]}


def test_versions_document_has_absolute_links(api: Api) -> None:
    document = api.client.get("/").json()
    hrefs = [link["href"] for v in document["versions"] for link in v["links"]]
    assert hrefs and all(h.startswith(api.url) for h in hrefs)
    assert {v["id"] for v in document["versions"]} >= {"v2.0", "v2"}


def test_loadbalancer_goes_active_and_is_served_under_both_prefixes(api: Api) -> None:
    response = api.post("/lbaas/loadbalancers", {"loadbalancer": {"name": "one", "vip_subnet_id": "test-subnet",
                                                                   "tags": ["x", "y"]}})
    assert response.status_code == 201, dump(response)
    lb = response.json()["loadbalancer"]
    assert lb["provisioning_status"] == "PENDING_CREATE"
    assert lb["operating_status"] == "OFFLINE"
    assert lb["vip_address"].startswith("127.0.")
    assert sorted(lb["tags"]) == ["x", "y"]
    active = api.wait_lb(lb["id"])
    assert active["operating_status"] == "ONLINE"
    other = api.get(f"/v2.0/lbaas/loadbalancers/{lb['id']}")
    assert other.status_code == 200 and other.json()["loadbalancer"]["id"] == lb["id"]


def test_fully_populated_create_in_one_request(api: Api) -> None:
    response = api.post("/lbaas/loadbalancers", {"loadbalancer": full_graph("graph")})
    assert response.status_code == 201, dump(response)
    lb = response.json()["loadbalancer"]
    listener = lb["listeners"][0]
    pool = lb["pools"][0]
    assert listener["default_pool_id"] == pool["id"]
    assert len(pool["members"]) == 2 and pool["healthmonitor"]["type"] == "HTTP"
    api.wait_lb(lb["id"])
    tree = api.get(f"/lbaas/loadbalancers/{lb['id']}/status").json()["statuses"]["loadbalancer"]
    assert tree["provisioning_status"] == "ACTIVE"
    tree_pool = tree["listeners"][0]["pools"][0]
    assert tree_pool["health_monitor"]["provisioning_status"] == "ACTIVE"
    assert {m["operating_status"] for m in tree_pool["members"]} == {"ONLINE"}
    alias = api.get(f"/lbaas/loadbalancers/{lb['id']}/statuses")
    assert alias.json()["statuses"]["loadbalancer"]["id"] == lb["id"]
    stats = api.get(f"/lbaas/loadbalancers/{lb['id']}/stats").json()["stats"]
    assert set(stats) == {"bytes_in", "bytes_out", "active_connections", "total_connections", "request_errors"}


def test_step_by_step_graph_and_child_lifecycle(api: Api) -> None:
    lb = api.create_lb(name="steps")
    listener = api.post("/lbaas/listeners", {"listener": {"loadbalancer_id": lb["id"], "protocol": "TCP",
                                                          "protocol_port": 443}})
    assert listener.status_code == 201, dump(listener)
    listener_id = listener.json()["listener"]["id"]
    assert api.get(f"/lbaas/loadbalancers/{lb['id']}").json()["loadbalancer"]["provisioning_status"] \
        in ("PENDING_UPDATE", "ACTIVE")
    api.wait_lb(lb["id"])
    pool = api.post("/lbaas/pools", {"pool": {"listener_id": listener_id, "protocol": "TCP",
                                              "lb_algorithm": "LEAST_CONNECTIONS"}})
    assert pool.status_code == 201, dump(pool)
    pool_id = pool.json()["pool"]["id"]
    api.wait_lb(lb["id"])
    assert api.get(f"/lbaas/listeners/{listener_id}").json()["listener"]["default_pool_id"] == pool_id
    member = api.post(f"/lbaas/pools/{pool_id}/members", {"member": {"address": "127.0.0.2", "protocol_port": 22}})
    assert member.status_code == 201, dump(member)
    member_id = member.json()["member"]["id"]
    api.wait_lb(lb["id"])
    hm = api.post("/lbaas/healthmonitors", {"healthmonitor": {"pool_id": pool_id, "type": "TCP", "delay": 2,
                                                              "timeout": 1, "max_retries": 2}})
    assert hm.status_code == 201, dump(hm)
    hm_id = hm.json()["healthmonitor"]["id"]
    api.wait_lb(lb["id"])
    updated = api.put(f"/lbaas/pools/{pool_id}/members/{member_id}", {"member": {"weight": 7, "name": "m"}})
    assert updated.status_code == 200 and updated.json()["member"]["provisioning_status"] == "PENDING_UPDATE"
    api.wait_lb(lb["id"])
    got = api.get(f"/lbaas/pools/{pool_id}/members/{member_id}").json()["member"]
    assert (got["weight"], got["name"], got["provisioning_status"]) == (7, "m", "ACTIVE")
    assert api.get(f"/lbaas/pools/{pool_id}").json()["pool"]["healthmonitor_id"] == hm_id
    # Deleting the pool takes its members and monitor along.
    assert api.delete(f"/lbaas/pools/{pool_id}").status_code == 204
    api.wait_lb(lb["id"])
    assert api.get(f"/lbaas/pools/{pool_id}").status_code == 404
    assert api.get(f"/lbaas/pools/{pool_id}/members/{member_id}").status_code == 404
    assert api.get(f"/lbaas/healthmonitors/{hm_id}").status_code == 404
    assert api.get(f"/lbaas/listeners/{listener_id}").json()["listener"]["default_pool_id"] is None


def test_change_while_pending_is_409_and_writes_nothing(api: Api) -> None:
    with api.changes_held():
        lb = api.create_lb(wait=False, name="busy")
    response = api.put(f"/lbaas/loadbalancers/{lb['id']}", {"loadbalancer": {"name": "renamed"}})
    assert response.status_code == 409, dump(response)
    assert "immutable" in response.json()["faultstring"]
    assert api.wait_lb(lb["id"])["name"] == "busy"


def test_two_concurrent_updates_exactly_one_wins(api: Api) -> None:
    for _ in range(3):
        lb = api.create_lb(name="race")
        barrier = threading.Barrier(2)
        codes: list[int] = []

        def update(name: str) -> None:
            barrier.wait()
            codes.append(api.put(f"/lbaas/loadbalancers/{lb['id']}",
                                 {"loadbalancer": {"name": name}}).status_code)

        threads = [threading.Thread(target=update, args=(f"n{i}",)) for i in range(2)]
        with api.changes_held():  # the loser must find the winner's change still pending
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert sorted(codes) == [200, 409], codes
        final = api.wait_lb(lb["id"])
        assert final["name"] in ("n0", "n1")


def test_delete_with_children_needs_cascade(api: Api) -> None:
    lb = api.post("/lbaas/loadbalancers", {"loadbalancer": full_graph("cascade", port=81)}).json()["loadbalancer"]
    api.wait_lb(lb["id"])
    refused = api.delete(f"/lbaas/loadbalancers/{lb['id']}")
    assert refused.status_code == 400 and "cascade" in refused.json()["faultstring"]
    assert api.wait_lb(lb["id"])["provisioning_status"] == "ACTIVE"
    assert api.delete(f"/lbaas/loadbalancers/{lb['id']}?cascade=true").status_code == 204
    api.wait_lb(lb["id"], "DELETED")
    for path in (f"/lbaas/listeners/{lb['listeners'][0]['id']}", f"/lbaas/pools/{lb['pools'][0]['id']}"):
        assert api.get(path).status_code == 404
    assert api.delete(f"/lbaas/loadbalancers/{lb['id']}").status_code == 404


def test_empty_loadbalancer_deletes_without_cascade(api: Api) -> None:
    lb = api.create_lb()
    assert api.delete(f"/lbaas/loadbalancers/{lb['id']}").status_code == 204
    assert api.get(f"/lbaas/loadbalancers/{lb['id']}").json()["loadbalancer"]["provisioning_status"] \
        in ("PENDING_DELETE",) or api.get(f"/lbaas/loadbalancers/{lb['id']}").status_code == 404
    api.wait_lb(lb["id"], "DELETED")


def test_batch_member_update_replaces_the_set(api: Api) -> None:
    lb = api.post("/lbaas/loadbalancers", {"loadbalancer": full_graph("batch", port=82)}).json()["loadbalancer"]
    api.wait_lb(lb["id"])
    pool_id = lb["pools"][0]["id"]
    batch = {"members": [{"address": "127.0.0.1", "protocol_port": 8000, "weight": 9},
                         {"address": "127.0.0.9", "protocol_port": 9000}]}
    response = api.put(f"/lbaas/pools/{pool_id}/members", batch)
    assert response.status_code == 202, dump(response)
    api.wait_lb(lb["id"])
    members = api.get(f"/lbaas/pools/{pool_id}/members").json()["members"]
    assert sorted((m["address"], m["protocol_port"], m["weight"]) for m in members) == \
        [("127.0.0.1", 8000, 9), ("127.0.0.9", 9000, 1)]


def test_quota_and_defaults(api: Api) -> None:
    project = f"quota-{uuid.uuid4().hex[:6]}"
    defaults = api.get("/lbaas/quotas/defaults").json()["quota"]
    assert defaults["load_balancer"] == 100
    response = api.put(f"/lbaas/quotas/{project}", {"quota": {"load_balancer": 1, "listener": 0}})
    assert response.status_code == 202, dump(response)
    assert api.get(f"/lbaas/quotas/{project}").json()["quota"]["load_balancer"] == 1
    first = api.create_lb(project_id=project)
    over = api.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "test-subnet",
                                                              "project_id": project}})
    assert over.status_code == 403 and "Quota" in over.json()["faultstring"]
    listener = api.post("/lbaas/listeners", {"listener": {"loadbalancer_id": first["id"], "protocol": "HTTP",
                                                          "protocol_port": 80}})
    assert listener.status_code == 403
    assert api.wait_lb(first["id"])["provisioning_status"] == "ACTIVE"   # the refused change left no trace
    assert api.delete(f"/lbaas/quotas/{project}").status_code == 204
    assert api.get(f"/lbaas/quotas/{project}").json()["quota"]["load_balancer"] == defaults["load_balancer"]


def test_providers_and_subnets(api: Api) -> None:
    names = [p["name"] for p in api.get("/lbaas/providers").json()["providers"]]
    assert "noop" in names
    subnets = api.get("/v2.0/subnets?id=tiny").json()["subnets"]
    assert [s["cidr"] for s in subnets] == ["127.0.200.0/30"]
    unknown = api.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "test-subnet",
                                                                 "provider": "nope"}})
    assert unknown.status_code == 400 and "nope" in unknown.json()["faultstring"]


def test_vip_allocation_exhausts_cleanly_and_port_is_unique(api: Api) -> None:
    first = api.create_lb(vip_subnet_id="tiny")
    second = api.create_lb(vip_subnet_id="tiny")
    assert first["vip_address"] != second["vip_address"]
    third = api.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "tiny"}})
    assert third.status_code == 409 and "No free VIP" in third.json()["faultstring"]
    # Another load balancer's VIP is refused, without naming it (it may be another project's).
    shared = api.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_address": first["vip_address"]}},
                      token="alice")
    assert shared.status_code == 409 and "already in use" in shared.json()["faultstring"], dump(shared)
    assert first["id"] not in shared.text and first["project_id"] not in shared.text
    for code in (201, 409):
        response = api.post("/lbaas/listeners", {"listener": {"loadbalancer_id": first["id"], "protocol": "TCP",
                                                              "protocol_port": 5000}})
        assert response.status_code == code, dump(response)
        api.wait_lb(first["id"])
    for lb in (first, second):
        api.delete(f"/lbaas/loadbalancers/{lb['id']}?cascade=true")
        api.wait_lb(lb["id"], "DELETED")


def test_ipv6_vip_given_directly(api: Api) -> None:
    lb = api.create_lb(vip_address="fd00:0::1234", vip_subnet_id=None)
    assert lb["vip_address"] == "fd00::1234" and lb["vip_subnet_id"] == "test-subnet6"
    listener = api.post("/lbaas/listeners", {"listener": {"loadbalancer_id": lb["id"], "protocol": "TCP",
                                                          "protocol_port": 443}})
    assert listener.status_code == 201
    api.wait_lb(lb["id"])
