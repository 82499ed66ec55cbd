"""GET of one object (issue 14), on every backend: one statement of Core rows
(``resources.read_document``) that answers exactly what the ORM path answered
(``resources.readable`` + ``Kind.render_one``, still what writes render), to
every caller, and the same entry the list endpoint gives."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.api import policy, resources
from lbaas.api.auth import Context
from lbaas.api.resources import (HEALTHMONITOR, L7POLICY, L7RULE, LISTENER, LOADBALANCER, MEMBER, POOL,
                                 Kind)
from lbaas.errors import Forbidden, NotFound
from lbaas.services import l7rules, members
from tests.conftest import Api, dump

KINDS = {kind.name: kind for kind in (LOADBALANCER, LISTENER, POOL, MEMBER, HEALTHMONITOR, L7POLICY, L7RULE)}
# Mixed case and order: a document's tags come in the database's collation order (not
# "A" and "a": one tag under MariaDB's case-insensitive collation).
TAGS = ["b", "A", "a2", "c-1"]


def _graph_body() -> dict[str, Any]:
    """Every kind, tagged, with more than one of each relation (listeners, pools,
    members, policies by position, rules) and a float (http_version) to round-trip."""
    rules = [{"type": "PATH", "compare_type": "STARTS_WITH", "value": f"/{i}", "tags": TAGS} for i in range(2)]
    policies = [{"name": f"p{i}", "action": "REJECT", "position": 1, "tags": TAGS, "rules": rules}
                for i in range(2)]
    members_ = [{"address": "127.0.0.1", "protocol_port": 8000 + i, "tags": TAGS} for i in range(3)]
    monitor = {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 3, "http_method": "GET",
               "url_path": "/health", "http_version": 1.1, "domain_name": "example.com", "tags": TAGS}
    pool = {"name": "web", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "tags": TAGS,
            "session_persistence": {"type": "APP_COOKIE", "cookie_name": "sid"},
            "members": members_, "healthmonitor": monitor}
    return {"name": "reads", "description": "issue 14", "vip_subnet_id": "test-subnet", "tags": TAGS,
            "listeners": [{"name": "http", "protocol": "HTTP", "protocol_port": 80, "tags": TAGS,
                           "insert_headers": {"X-Forwarded-For": "true"}, "allowed_cidrs": ["10.0.0.0/8"],
                           "default_pool": pool, "l7policies": policies},
                          {"name": "tcp", "protocol": "TCP", "protocol_port": 81}],
            "pools": [{"name": "spare", "protocol": "TCP", "lb_algorithm": "SOURCE_IP"}]}


@pytest.fixture(scope="module")
def graph(api: Api) -> dict[str, tuple[str, str, str]]:
    """kind name -> (id, GET path, list path) of an ACTIVE graph of project-a (alice's)."""
    response = api.post("/lbaas/loadbalancers", {"loadbalancer": _graph_body()}, token="alice")
    assert response.status_code == 201, dump(response)
    lb = response.json()["loadbalancer"]
    api.wait_lb(lb["id"], token="alice")
    listener = next(x for x in lb["listeners"] if x["name"] == "http")
    pool = next(p for p in lb["pools"] if p["name"] == "web")
    policy_ = listener["l7policies"][0]
    ids = {"loadbalancer": lb["id"], "listener": listener["id"], "pool": pool["id"],
           "member": pool["members"][1]["id"], "healthmonitor": pool["healthmonitor"]["id"],
           "l7policy": policy_["id"], "rule": policy_["rules"][1]["id"]}
    parents = {"member": f"/lbaas/pools/{pool['id']}/members", "rule": f"/lbaas/l7policies/{policy_['id']}/rules"}
    return {name: (ident, f"{parents.get(name, '/lbaas/' + KINDS[name].plural)}/{ident}",
                   parents.get(name, "/lbaas/" + KINDS[name].plural))
            for name, ident in ids.items()}


def _parent(graph: dict[str, tuple[str, str, str]], name: str) -> str | None:
    """The id in a member's or rule's path (its pool, its policy)."""
    return {"member": graph["pool"][0], "rule": graph["l7policy"][0]}.get(name)


def _orm_document(session: Session, kind: Kind, ident: str, ctx: Context, parent: str | None) -> dict[str, Any]:
    """What GET answered before issue 14: ORM objects, one query per relation."""
    if kind is MEMBER:
        obj = members.visible(session, ctx, parent or "", ident)
    elif kind is L7RULE:
        obj = l7rules.visible(session, ctx, parent or "", ident)
    else:
        obj = resources.get(session, kind, ident, ctx)
    ctx.authorize(f"{kind.rules}:get_one", obj.project_id)
    return kind.render_one(session, obj)


def _core_document(session: Session, kind: Kind, ident: str, ctx: Context, parent: str | None) -> dict[str, Any]:
    scope = {"member": {"pool_id": parent or ""}, "rule": {"l7policy_id": parent or ""}}.get(kind.name)
    return resources.read_document(session, kind, ident, ctx, scope)


def _outcome(api: Api, read: Any, kind: Kind, ident: str, ctx: Context, parent: str | None) -> Any:
    """The document as JSON text (key order included), or the refusal."""
    with api.db.reading() as session:
        try:
            return json.dumps(read(session, kind, ident, ctx, parent))
        except (NotFound, Forbidden) as exc:
            return type(exc).__name__, str(exc)


@contextlib.contextmanager
def _statements(api: Api) -> Iterator[list[str]]:
    """The statements the server's read engine runs in the block: SQLite's BEGIN aside, and
    those of the noop provider's thread (a change of an earlier test completing)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement != "BEGIN" and threading.current_thread().name != "noop-provider":
            seen.append(statement)

    event.listen(api.db.read_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(api.db.read_engine, "before_cursor_execute", record)


@pytest.mark.parametrize("name", KINDS)
def test_get_answers_what_the_orm_path_and_the_list_answer(api: Api, graph: dict, name: str) -> None:
    kind, (ident, path, list_path) = KINDS[name], graph[name]
    response = api.get(path, token="alice")
    assert response.status_code == 200, dump(response)
    document = response.json()[kind.name]
    admin = Context("admin-project", frozenset({c.ROLE_ADMIN}), policy=policy.default())
    assert json.dumps(document) == _outcome(api, _orm_document, kind, ident, admin, _parent(graph, name))
    listed = api.get(f"{list_path}?id={ident}", token="alice").json()[kind.plural]
    assert [document] == listed
    if "tags" in document:
        assert sorted(document["tags"]) == sorted(TAGS)


def test_the_graph_lists_every_relation_in_order(graph: dict, api: Api) -> None:
    lb = api.get(graph["loadbalancer"][1]).json()["loadbalancer"]
    assert len(lb["listeners"]) == 2 and len(lb["pools"]) == 2
    pool = api.get(graph["pool"][1]).json()["pool"]
    assert len(pool["members"]) == 3 and pool["healthmonitor_id"] == graph["healthmonitor"][0]
    assert pool["listeners"] == [{"id": graph["listener"][0]}]
    listener = api.get(graph["listener"][1]).json()["listener"]
    assert listener["l7policies"][0] == {"id": graph["l7policy"][0]} and len(listener["l7policies"]) == 2
    assert api.get(graph["healthmonitor"][1]).json()["healthmonitor"]["http_version"] == 1.1


@pytest.mark.parametrize("name", KINDS)
def test_get_is_one_statement(api: Api, graph: dict, name: str) -> None:
    with _statements(api) as seen:
        response = api.get(graph[name][1], token="alice")
    assert response.status_code == 200, dump(response)
    assert len(seen) == 1, seen


# Callers of both projects in every role the policy knows, and the noauth administrator.
ROLES = ("admin", "member", "reader", "load-balancer_member", "load-balancer_observer",
         "load-balancer_global_observer", "load-balancer_admin", "nothing")
CALLERS = [Context(project, frozenset({role}), f"{role}@{project}", policy=policy.default())
           for project in ("project-a", "project-b") for role in ROLES] + \
          [Context("project-b", frozenset(), "noauth", noauth=True, policy=policy.default())]


@pytest.mark.parametrize("name", KINDS)
def test_every_caller_gets_what_the_orm_path_gave(api: Api, graph: dict, name: str) -> None:
    """Visibility (404) and policy (403) exactly as before, for the object, a missing id,
    another kind's id (with tags of its own) and a member or rule under another parent."""
    kind, ident = KINDS[name], graph[name][0]
    parent = _parent(graph, name)
    other_kind = graph["listener" if name == "loadbalancer" else "loadbalancer"][0]
    cases = [(ident, parent), ("no-such-id", parent), (other_kind, parent)]
    if parent is not None:
        cases.append((ident, graph["listener"][0]))   # the object under a parent it is not in
    seen = set()
    for ctx in CALLERS:
        for case_id, case_parent in cases:
            before = _outcome(api, _orm_document, kind, case_id, ctx, case_parent)
            assert _outcome(api, _core_document, kind, case_id, ctx, case_parent) == before, (ctx.user_id, case_id)
            seen.add(before[0] if isinstance(before, tuple) else "document")
    assert seen == {"document", "NotFound", "Forbidden"}, seen   # every outcome is compared


def test_over_http_other_projects_get_404_and_readers_read(api: Api, graph: dict) -> None:
    for name, (_ident, path, _list) in graph.items():
        assert api.get(path, token="reader").status_code == 200, name
        assert api.get(path, token="bob").status_code == 404, name
        assert api.get(path, token="admin").status_code == 200, name
    lb_id = graph["loadbalancer"][0]
    assert api.get(f"/lbaas/listeners/{lb_id}", token="alice").status_code == 404
    assert api.get(f"/lbaas/pools/{graph['listener'][0]}/members/{graph['member'][0]}").status_code == 404
