"""Pagination, sorting, filters, fields, tags; authentication and tenant isolation."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import Api


@pytest.fixture(scope="module")
def family(api: Api) -> dict:
    """Seven load balancers of project-a with known names and tags."""
    marker = uuid.uuid4().hex[:8]
    made = []
    for i in range(7):
        tags = ["fam", marker, "even" if i % 2 == 0 else "odd"]
        made.append(api.create_lb(token="alice", wait=False, name=f"{marker}-{i}", tags=tags,
                                  admin_state_up=i != 3))
    for lb in made:
        api.wait_lb(lb["id"], token="alice")
    return {"marker": marker, "ids": [lb["id"] for lb in made]}


def _names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [lb["name"] for lb in response.json()["loadbalancers"]]


def test_pages_follow_links_forward_and_back(api: Api, family: dict) -> None:
    tag = family["marker"]
    seen: list[str] = []
    url = f"/lbaas/loadbalancers?tags={tag}&limit=3&sort=name:asc"
    pages = 0
    while url:
        response = api.get(url, token="alice")
        seen += _names(response)
        pages += 1
        nxt = [link["href"] for link in response.json()["loadbalancers_links"] if link["rel"] == "next"]
        url = nxt[0].replace(api.url, "") if nxt else None
    assert seen == [f"{tag}-{i}" for i in range(7)]
    assert pages == 3
    # From the last page, "previous" leads back to the one before it.
    last = api.get(f"/lbaas/loadbalancers?tags={tag}&limit=3&sort=name:asc&marker={family['ids'][5]}", token="alice")
    assert _names(last) == [f"{tag}-6"]
    previous = [link["href"] for link in last.json()["loadbalancers_links"] if link["rel"] == "previous"][0]
    assert _names(api.get(previous.replace(api.url, ""), token="alice")) == [f"{tag}-3", f"{tag}-4", f"{tag}-5"]


def test_sort_desc_and_sort_key(api: Api, family: dict) -> None:
    tag = family["marker"]
    expected = [f"{tag}-{i}" for i in reversed(range(7))]
    assert _names(api.get(f"/lbaas/loadbalancers?tags={tag}&sort=name:desc", token="alice")) == expected
    assert _names(api.get(f"/lbaas/loadbalancers?tags={tag}&sort_key=name&sort_dir=desc", token="alice")) == expected


def test_sorting_on_a_nullable_key_pages_through_everything(api: Api, family: dict) -> None:
    tag = family["marker"]
    api.put(f"/lbaas/loadbalancers/{family['ids'][2]}", {"loadbalancer": {"description": "touched"}}, token="alice")
    api.wait_lb(family["ids"][2], token="alice")
    seen: list[str] = []
    url = f"/lbaas/loadbalancers?tags={tag}&limit=2&sort=updated_at:asc"
    while url:
        response = api.get(url, token="alice")
        seen += _names(response)
        nxt = [link["href"] for link in response.json()["loadbalancers_links"] if link["rel"] == "next"]
        url = nxt[0].replace(api.url, "") if nxt else None
    assert sorted(seen) == sorted(f"{tag}-{i}" for i in range(7)) and len(seen) == 7
    assert seen[-1] == f"{tag}-2"   # the only one ever updated sorts last


def test_filters_fields_and_tags(api: Api, family: dict) -> None:
    tag = family["marker"]
    assert _names(api.get(f"/lbaas/loadbalancers?name={tag}-2", token="alice")) == [f"{tag}-2"]
    assert _names(api.get(f"/lbaas/loadbalancers?id={family['ids'][4]}", token="alice")) == [f"{tag}-4"]
    assert _names(api.get(f"/lbaas/loadbalancers?tags={tag}&admin_state_up=false", token="alice")) == [f"{tag}-3"]
    odd = _names(api.get(f"/lbaas/loadbalancers?tags={tag},odd&sort=name", token="alice"))
    assert odd == [f"{tag}-1", f"{tag}-3", f"{tag}-5"]
    assert len(_names(api.get(f"/lbaas/loadbalancers?tags-any=odd,even&tags={tag}", token="alice"))) == 7
    assert len(_names(api.get(f"/lbaas/loadbalancers?tags={tag}&not-tags=odd", token="alice"))) == 4
    assert _names(api.get(f"/lbaas/loadbalancers?tags={tag}&not-tags-any=odd,even", token="alice")) == []
    fields = api.get(f"/lbaas/loadbalancers?tags={tag}&fields=id&fields=name", token="alice").json()
    assert all(set(lb) == {"id", "name"} for lb in fields["loadbalancers"])


def test_authentication_is_required(api: Api) -> None:
    assert api.get("/lbaas/loadbalancers", token="").status_code == 401
    response = api.get("/lbaas/loadbalancers", token="wrong-token")
    assert response.status_code == 401 and response.json()["faultcode"] == "Client"


def test_tenants_are_isolated(api: Api, family: dict) -> None:
    lb_id = family["ids"][0]
    assert api.get(f"/lbaas/loadbalancers/{lb_id}", token="bob").status_code == 404
    assert api.put(f"/lbaas/loadbalancers/{lb_id}", {"loadbalancer": {"name": "x"}}, token="bob").status_code == 404
    assert api.delete(f"/lbaas/loadbalancers/{lb_id}", token="bob").status_code == 404
    assert family["marker"] not in str(api.get("/lbaas/loadbalancers", token="bob").json())
    assert api.get(f"/lbaas/loadbalancers?marker={lb_id}", token="bob").status_code == 400
    assert api.get(f"/lbaas/loadbalancers/{lb_id}", token="admin").status_code == 200
    listener = api.post("/lbaas/listeners", {"listener": {"loadbalancer_id": lb_id, "protocol": "TCP",
                                                          "protocol_port": 99}}, token="bob")
    assert listener.status_code == 404


def test_project_id_in_body_only_for_admins(api: Api) -> None:
    refused = api.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "test-subnet",
                                                                 "project_id": "project-b"}}, token="alice")
    assert refused.status_code == 400
    made = api.create_lb(token="admin", project_id="project-b")
    assert made["project_id"] == "project-b"
    assert api.get(f"/lbaas/loadbalancers/{made['id']}", token="bob").status_code == 200


def test_readers_may_only_read(api: Api, family: dict) -> None:
    assert api.get(f"/lbaas/loadbalancers/{family['ids'][1]}", token="reader").status_code == 200
    denied = api.post("/lbaas/loadbalancers", {"loadbalancer": {"vip_subnet_id": "test-subnet"}}, token="reader")
    assert denied.status_code == 403
    assert api.delete(f"/lbaas/loadbalancers/{family['ids'][1]}", token="reader").status_code == 403


def test_quota_administration_is_admin_only(api: Api) -> None:
    assert api.put("/lbaas/quotas/project-a", {"quota": {"pool": 5}}, token="alice").status_code == 403
    assert api.get("/lbaas/quotas/project-b", token="alice").status_code == 403
    assert api.get("/lbaas/quotas/project-a", token="alice").status_code == 200
