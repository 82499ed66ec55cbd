"""Hostile values in every field of the local key store's Barbican API: each answers a 4xx
in Barbican's format or is stored and shown back exactly; never a 500.  A hostile payload
is data: it is stored encrypted and returned byte for byte.  The full matrix runs on
SQLite, ``hostile.SUBSET`` on PostgreSQL and MariaDB (as in test_hostile_api)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.conftest import BACKENDS, Api
from tests.keys.test_local_api import KeyApi, api  # noqa: F401  (the fixture: rate limit off)
from tests.security import hostile

FULL_BACKEND = "sqlite"
ON_FULL = pytest.mark.parametrize("api", [FULL_BACKEND], indirect=True)
ON_OTHERS = pytest.mark.parametrize("api", [b for b in BACKENDS if b != FULL_BACKEND], indirect=True)

TEXT = {"payload": "x", "payload_content_type": "text/plain"}
SECRET_FIELDS = ("name", "secret_type", "payload_content_type", "payload_content_encoding", "algorithm", "mode",
                 "expiration", "bit_length")
CONTAINER_FIELDS = ("name", "type", "ref-name", "ref")
SHOWN_AS_GIVEN = ("name", "algorithm", "mode")


def _cases(fields: tuple[str, ...], base: str, full: bool) -> list[Any]:
    values = hostile.strings(base) + hostile.integers()
    return [pytest.param(field, case, id=f"{field}-{case.id}") for field in fields
            for case in (values if full else hostile.subset(values))]


def _answered(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code != 201:
        assert set(response.json()) == {"code", "title", "description"}, response.text


def hostile_secret(api: Api, field: str, case: hostile.Hostile) -> None:  # noqa: F811
    alice = KeyApi(api)
    response = alice.call("POST", "/secrets", content=hostile.body({**TEXT, field: case.value}),
                          headers={"Content-Type": "application/json"})
    _answered(response)
    if response.status_code == 201 and field in SHOWN_AS_GIVEN:
        shown = alice.call("GET", "/secrets/" + response.json()["secret_ref"].rsplit("/", 1)[1]).json()
        assert shown[field] == case.value


def hostile_container(api: Api, field: str, case: hostile.Hostile) -> None:  # noqa: F811
    alice = KeyApi(api)
    secret = alice.store(b"x")
    entry = {"name": case.value if field == "ref-name" else "certificate",
             "secret_ref": case.value if field == "ref" else secret}
    body: dict[str, Any] = {"name": "c", "type": "certificate", "secret_refs": [entry]}
    if field in ("name", "type"):
        body[field] = case.value
    _answered(alice.call("POST", "/containers", content=hostile.body(body),
                         headers={"Content-Type": "application/json"}))


@ON_FULL
@pytest.mark.parametrize("field, case", _cases(SECRET_FIELDS, "opaque", full=True))
def test_hostile_secret_fields(api: Api, field: str, case: hostile.Hostile) -> None:  # noqa: F811
    hostile_secret(api, field, case)


@ON_OTHERS
@pytest.mark.parametrize("field, case", _cases(SECRET_FIELDS, "opaque", full=False))
def test_hostile_secret_fields_subset(api: Api, field: str, case: hostile.Hostile) -> None:  # noqa: F811
    hostile_secret(api, field, case)


@ON_FULL
@pytest.mark.parametrize("field, case", _cases(CONTAINER_FIELDS, "certificate", full=True))
def test_hostile_container_fields(api: Api, field: str, case: hostile.Hostile) -> None:  # noqa: F811
    hostile_container(api, field, case)


@ON_OTHERS
@pytest.mark.parametrize("field, case", _cases(CONTAINER_FIELDS, "certificate", full=False))
def test_hostile_container_fields_subset(api: Api, field: str, case: hostile.Hostile) -> None:  # noqa: F811
    hostile_container(api, field, case)


# Data, not fields: every hostile string that is UTF-8 text within the size limit.
PAYLOADS = [case for case in hostile.strings() if case.value and len(case.value) <= 40000
            and "\ud800" not in case.value]


@pytest.mark.parametrize("case", PAYLOADS, ids=repr)
def test_hostile_payloads_are_data(api: Api, case: hostile.Hostile) -> None:  # noqa: F811
    raw = case.value.encode("utf-8")
    alice = KeyApi(api)
    ref = alice.store(raw)
    assert alice.call("GET", f"/secrets/{ref.rsplit('/', 1)[1]}/payload").content == raw


@pytest.mark.parametrize("path", ["/secrets/{}", "/secrets/{}/payload", "/containers/{}"])
@pytest.mark.parametrize("ident", ["..%2F..%2Fetc", "%00", "x" * 5000, "00000000-0000-0000-0000-00000000000g",
                                   base64.b64encode(b"\xfb\xef\xbe" * 10).decode()])
def test_hostile_ids_are_not_found(api: Api, path: str, ident: str) -> None:  # noqa: F811
    response = KeyApi(api).call("GET", path.format(ident))
    assert response.status_code in (400, 404), response.text
