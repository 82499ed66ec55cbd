"""Fuzzing from the API's own OpenAPI document (schemathesis).

Every operation /openapi.json describes gets generated requests, valid and
invalid by its schema (bodies, query strings, path parameters), against a
live server on SQLite, as an admin.  Every other case names objects of a
real load balancer graph (path parameters, parent ids and the subnet in
bodies), so that it gets past the lookups to the writes.  The checks: no
answer is a 5xx (``not_a_server_error``), and every 4xx is in Octavia's
fault format.  Derandomized (the same cases every run), bounded to about
two minutes in all.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from lbaas import config as cfg
from lbaas.api.app import create_app
from lbaas.api.auth import NoAuth
from lbaas.api.deps import State
from lbaas import keys
from lbaas.services import Services
from lbaas.services.vips import Subnets
from tests.conftest import Api, dump, start_api

EXAMPLES = 100  # per operation and generation mode: about 80 s on SQLite


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation, read from the application without a server or database."""
    state = State(Services(cfg.load(), db=None, providers={}, subnets=Subnets({}),  # type: ignore[arg-type]
                           keys=keys.make(cfg.load(), None)), NoAuth())  # type: ignore[arg-type]
    paths = create_app(state).openapi()["paths"]
    return [(method.upper(), path) for path, operations in paths.items() for method in operations]


@pytest.fixture(scope="module")
def fuzz_server(temp_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    db = temp_database("sqlite")
    server, stop = start_api(db.url, str(tmp_path_factory.mktemp("fuzz")), "sqlite")
    yield server
    stop()


@pytest.fixture(scope="module")
def targets(fuzz_server: Api) -> dict[str, str]:
    """Ids of one real graph, by the path parameter that names each."""
    body = {"name": "fuzz", "vip_subnet_id": "test-subnet", "listeners": [
        {"protocol": "HTTP", "protocol_port": 80, "default_pool": {
            "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
            "members": [{"address": "127.0.0.1", "protocol_port": 80}],
            "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 2, "max_retries": 3}}}]}
    response = fuzz_server.post("/lbaas/loadbalancers", {"loadbalancer": body})
    assert response.status_code == 201, dump(response)
    lb = response.json()["loadbalancer"]
    pool = lb["pools"][0]
    fuzz_server.wait_lb(lb["id"])
    return {"loadbalancers": lb["id"], "listeners": lb["listeners"][0]["id"], "pools": pool["id"],
            "members": pool["members"][0]["id"], "healthmonitors": pool["healthmonitor"]["id"],
            "quotas": "admin-project", "providers": "noop", "subnets": "test-subnet"}


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_server: Api) -> Any:
    return schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")


def fault_format(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx is Octavia's fault document."""
    if 400 <= response.status_code < 500:
        body = response.json()
        assert set(body) == {"faultcode", "faultstring", "debuginfo"}, body
        assert body["faultcode"] == "Client", body
    return None


_turn = itertools.count()
# "/v2/lbaas/pools/{pool_id}/members/{ident}" -> ("pools", "pool_id"), ("members", "ident")
_PARAMETER = re.compile(r"([a-z]+)/\{([a-z_]+)\}")


# Body fields that name another object, and the real one they may name instead.
_REFERENCES = {"loadbalancer_id": "loadbalancers", "listener_id": "listeners", "pool_id": "pools",
               "vip_subnet_id": "subnets"}
# What a create needs to name: its parent (or, for a load balancer, its subnet).
_PARENTS = {"loadbalancer": "vip_subnet_id", "listener": "loadbalancer_id", "pool": "loadbalancer_id",
            "healthmonitor": "pool_id"}


def _aim(case: Any, targets: dict[str, str]) -> None:
    """Every other case names real objects, so that it gets past the lookups to the writes."""
    if next(_turn) % 2:
        return
    if case.path_parameters and case.method.upper() != "DELETE":  # DELETE: the graph stays
        for collection, name in _PARAMETER.findall(case.operation.path):
            if collection in targets:
                case.path_parameters[name] = targets[collection]
    if isinstance(case.body, dict) and len(case.body) == 1:
        key, fields = next(iter(case.body.items()))
        if isinstance(fields, dict):
            _aim_body(_PARENTS.get(key) if case.method.upper() == "POST" else None, fields, targets)


def _aim_body(parent: str | None, fields: dict[str, Any], targets: dict[str, str]) -> None:
    if parent:
        fields.setdefault(parent, None)
    for field, collection in _REFERENCES.items():
        if field in fields:
            fields[field] = targets[collection]
    if "vip_subnet_id" in fields:
        fields.pop("vip_address", None)  # any other address is outside the subnet


OPERATIONS = _operations()


@pytest.mark.parametrize("method, path", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_request_is_a_server_error(method: str, path: str, fuzz_schema: Any, fuzz_server: Api,
                                      targets: dict[str, str]) -> None:
    operation = fuzz_schema[path][method]
    headers = {"X-Auth-Token": fuzz_server.tokens["admin"]}
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: Any) -> None:
            _aim(case, targets)
            case.call_and_validate(headers=headers, checks=[not_a_server_error, fault_format])

        try:
            fuzz()
        except Unsatisfiable:
            # Nothing to get wrong: an operation without parameters or body has no invalid requests.
            assert mode == GenerationMode.NEGATIVE
