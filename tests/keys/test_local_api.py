"""The local key store's Barbican subset over HTTP (/key-manager/v1), on SQLite, PostgreSQL
and MariaDB: shapes, paging, refusals in Barbican's error format, project isolation,
encryption at rest, and resolution of its references (tests.keys.resolution)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from lbaas.db.models import KeySecret
from lbaas.keys import InvalidReference, KeyManagerUnavailable
from lbaas.keys.local import LocalKeyManager, LocalStore
from lbaas.testing import certs
from tests.conftest import BACKENDS, TEST_ENCRYPTION_KEY, Api, start_api
from tests.keys.resolution import (OTHER, OWNER, test_a_certificate_container_resolves,  # noqa: F401
                                   test_a_pkcs12_secret_resolves, test_another_projects_refs_are_as_unknown_ones,
                                   test_ca_certificates_and_crls_resolve, test_malformed_refs_and_contents_are_refused)

V1 = "/key-manager/v1"
P12 = certs.pkcs12(certs.make_cert(certs.make_ca(), ["local.example.com"]))


class KeyApi:
    """The key manager API as one token's holder sees it."""

    def __init__(self, api: Api, token: str = "alice") -> None:
        self.api = api
        self.headers = {"X-Auth-Token": api.tokens.get(token, token)}

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return self.api.client.request(method, V1 + path, headers=headers, **kw)

    def store(self, payload: bytes, **fields: Any) -> str:
        body = {"name": "s", "payload": base64.b64encode(payload).decode(),
                "payload_content_type": "application/octet-stream", "payload_content_encoding": "base64", **fields}
        response = self.call("POST", "/secrets", json=body)
        assert response.status_code == 201, response.text
        return response.json()["secret_ref"]

    def container(self, parts: dict[str, str], kind: str = "certificate", name: str = "c") -> str:
        body = {"name": name, "type": kind, "secret_refs": [{"name": n, "secret_ref": r} for n, r in parts.items()]}
        response = self.call("POST", "/containers", json=body)
        assert response.status_code == 201, response.text
        return response.json()["container_ref"]


def assert_fault(response: httpx.Response, status: int, *words: str) -> None:
    """Barbican's error format, naming the problem."""
    assert response.status_code == status, response.text
    document = response.json()
    assert set(document) == {"code", "title", "description"} and document["code"] == status, document
    for word in words:
        assert word in document["description"], document


class LocalStoreOverHttp:
    """tests.keys.resolution's Store: alice's project owns, bob's is the other."""

    def __init__(self, api: Api) -> None:
        self.clients = {OWNER: KeyApi(api, "alice"), OTHER: KeyApi(api, "bob")}
        self.projects = {OWNER: "project-a", OTHER: "project-b"}
        self.manager = LocalKeyManager(LocalStore(api.db, TEST_ENCRYPTION_KEY))
        self.url = api.url

    def secret(self, project: str, payload: bytes) -> str:
        return self.clients[project].store(payload)

    def container(self, project: str, parts: dict[str, str]) -> str:
        return self.clients[project].container(parts)

    def unknown_ref(self, kind: str) -> str:
        return f"{self.url}{V1}/{kind}/{uuid.uuid4()}"


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, temp_database: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The API on each database, without the write rate limit (these tests store a lot)."""
    db = temp_database(request.param)
    server, stop = start_api(db.url, str(tmp_path_factory.mktemp("keys")), request.param,
                             {"api": {"write_rate_limit": 0}})
    yield server
    stop()


@pytest.fixture
def store(api: Api) -> LocalStoreOverHttp:
    return LocalStoreOverHttp(api)


def test_versions_are_barbicans_shape(api: Api) -> None:
    root = api.client.get("/key-manager/")
    assert root.status_code == 300
    [version] = root.json()["versions"]
    assert (version["id"], version["min_version"], version["links"][0]["href"]) == \
        ("v1", "1.0", f"{api.url}/key-manager/v1/")
    assert api.client.get(V1).json()["version"]["status"] == "CURRENT"
    # Octavia's document at / is untouched.
    assert [v["id"] for v in api.client.get("/").json()["versions"]] == ["v2.0", "v2"]


def test_secret_life(api: Api) -> None:
    alice = KeyApi(api)
    ref = alice.store(P12, name="server-p12", secret_type="certificate", expiration="2099-01-01T00:00:00Z")
    assert ref.startswith(f"{api.url}{V1}/secrets/")
    ident = ref.rsplit("/", 1)[1]
    shown = alice.call("GET", f"/secrets/{ident}").json()
    assert (shown["name"], shown["secret_type"], shown["status"], shown["secret_ref"], shown["expiration"],
            shown["content_types"]) == ("server-p12", "certificate", "ACTIVE", ref, "2099-01-01T00:00:00",
                                        {"default": "application/octet-stream"})
    payload = alice.call("GET", f"/secrets/{ident}/payload", headers={"Accept": "application/octet-stream"})
    assert (payload.status_code, payload.content, payload.headers["content-type"]) == \
        (200, P12, "application/octet-stream")
    assert ref in [s["secret_ref"] for s in alice.call("GET", "/secrets?name=server-p12").json()["secrets"]]
    assert alice.call("DELETE", f"/secrets/{ident}").status_code == 204
    assert_fault(alice.call("GET", f"/secrets/{ident}"), 404, "secret")
    assert_fault(alice.call("DELETE", f"/secrets/{ident}"), 404)


def test_text_secret_and_the_older_accept_form(api: Api) -> None:
    alice = KeyApi(api)
    response = alice.call("POST", "/secrets", json={"payload": "pass phrase", "payload_content_type": "text/plain"})
    ident = response.json()["secret_ref"].rsplit("/", 1)[1]
    for path, accept in ((f"/secrets/{ident}/payload", "text/plain"), (f"/secrets/{ident}", "text/plain")):
        got = alice.call("GET", path, headers={"Accept": accept})
        assert (got.text, got.headers["content-type"]) == ("pass phrase", "text/plain; charset=UTF-8")


def test_lists_page_like_barbican(api: Api) -> None:
    carol = KeyApi(api, api.tokens["alice"])
    name = f"paged-{uuid.uuid4().hex[:6]}"
    refs = [carol.store(b"x", name=name) for _ in range(3)]
    first = carol.call("GET", f"/secrets?name={name}&limit=2").json()
    assert first["total"] == 3 and len(first["secrets"]) == 2
    assert first["next"].endswith("/key-manager/v1/secrets?limit=2&offset=2") and "previous" not in first
    second = carol.call("GET", f"/secrets?name={name}&limit=2&offset=2").json()
    assert len(second["secrets"]) == 1 and "next" not in second
    assert second["previous"].endswith("/key-manager/v1/secrets?limit=2&offset=0")
    # Oldest first; within one second by id: every secret on exactly one page.
    assert sorted(s["secret_ref"] for s in first["secrets"] + second["secrets"]) == sorted(refs)
    assert_fault(carol.call("GET", "/secrets?limit=-1"), 400, "limit")
    assert_fault(carol.call("GET", "/secrets?offset=x"), 400, "offset")


def test_container_life(api: Api) -> None:
    alice = KeyApi(api)
    cert, key = alice.store(b"c"), alice.store(b"k")
    ref = alice.container({"certificate": cert, "private_key": key}, name="tls")
    ident = ref.rsplit("/", 1)[1]
    shown = alice.call("GET", f"/containers/{ident}").json()
    assert (shown["name"], shown["type"], shown["container_ref"], shown["consumers"]) == ("tls", "certificate", ref, [])
    assert sorted((p["name"], p["secret_ref"]) for p in shown["secret_refs"]) == \
        [("certificate", cert), ("private_key", key)]
    listed = alice.call("GET", "/containers?limit=100").json()
    assert ref in [c["container_ref"] for c in listed["containers"]] and listed["total"] >= 1
    assert alice.call("DELETE", f"/containers/{ident}").status_code == 204
    assert_fault(alice.call("GET", f"/containers/{ident}"), 404, "container")


def test_another_projects_objects_are_not_found(api: Api) -> None:
    alice, bob = KeyApi(api, "alice"), KeyApi(api, "bob")
    secret = alice.store(P12)
    ident = secret.rsplit("/", 1)[1]
    container = alice.container({"certificate": secret}).rsplit("/", 1)[1]
    for method, path in (("GET", f"/secrets/{ident}"), ("GET", f"/secrets/{ident}/payload"),
                         ("DELETE", f"/secrets/{ident}"), ("GET", f"/containers/{container}"),
                         ("DELETE", f"/containers/{container}")):
        assert_fault(bob.call(method, path), 404)
    assert secret not in [s["secret_ref"] for s in bob.call("GET", "/secrets?limit=100").json()["secrets"]]
    # Nor can bob put alice's secret into a container of his.
    assert_fault(bob.call("POST", "/containers", json={"type": "certificate", "secret_refs": [
        {"name": "certificate", "secret_ref": secret}]}), 400, "secret of this project")
    assert alice.call("GET", f"/secrets/{ident}/payload").content == P12


def test_payload_is_encrypted_at_rest(api: Api) -> None:
    plaintext = b"-----BEGIN PRIVATE KEY----- only ever encrypted " + uuid.uuid4().hex.encode()
    ident = KeyApi(api).store(plaintext).rsplit("/", 1)[1]
    with api.db.reading() as session:
        stored = session.scalar(select(KeySecret.encrypted_payload).where(KeySecret.id == ident))
    assert stored is not None
    for form in (plaintext, base64.b64encode(plaintext), plaintext[-32:]):
        assert form.decode() not in stored
    assert Fernet(TEST_ENCRYPTION_KEY.encode()).decrypt(stored.encode()) == plaintext
    # Another key cannot read it: the manager says so without the material.
    other = LocalKeyManager(LocalStore(api.db, Fernet.generate_key().decode()))
    with pytest.raises(InvalidReference, match="encryption_key"):
        other.secret_payload(ident, "project-a")


def test_the_largest_payload_round_trips(api: Api) -> None:
    """64 KiB, encrypted and encoded, is more than MySQL's TEXT holds: the column must take it."""
    largest = bytes(range(256)) * 256
    alice = KeyApi(api)
    ident = alice.store(largest).rsplit("/", 1)[1]
    assert alice.call("GET", f"/secrets/{ident}/payload").content == largest


def test_a_store_without_a_key_is_unavailable(api: Api) -> None:
    ident = KeyApi(api).store(b"x").rsplit("/", 1)[1]
    with pytest.raises(KeyManagerUnavailable, match="encryption_key"):
        LocalKeyManager(LocalStore(api.db, None)).secret_payload(ident, "project-a")


BAD_SECRETS = {
    "no payload": ({"payload_content_type": "text/plain"}, 400, "payload is required"),
    "empty payload": ({"payload": "", "payload_content_type": "text/plain"}, 400, "payload is required"),
    "payload not a string": ({"payload": 5, "payload_content_type": "text/plain"}, 400, "string"),
    "content type": ({"payload": "x", "payload_content_type": "application/json"}, 400, "payload_content_type"),
    "no encoding": ({"payload": "eA==", "payload_content_type": "application/octet-stream"}, 400, "base64"),
    "encoding with text": ({"payload": "x", "payload_content_type": "text/plain",
                            "payload_content_encoding": "base64"}, 400, "must not be given"),
    "bad base64": ({"payload": "!!!", "payload_content_type": "application/octet-stream",
                    "payload_content_encoding": "base64"}, 400, "not valid base64"),
    "too large": ({"payload": base64.b64encode(b"x" * (64 * 1024 + 1)).decode(),
                   "payload_content_type": "application/octet-stream",
                   "payload_content_encoding": "base64"}, 413, "larger than"),
    "secret type": ({"payload": "x", "payload_content_type": "text/plain", "secret_type": "bogus"}, 400,
                    "secret_type"),
    "past expiration": ({"payload": "x", "payload_content_type": "text/plain", "expiration": "2001-01-01T00:00:00"},
                        400, "past"),
    "bad expiration": ({"payload": "x", "payload_content_type": "text/plain", "expiration": "soon"}, 400,
                       "ISO 8601"),
    "long name": ({"payload": "x", "payload_content_type": "text/plain", "name": "n" * 256}, 400, "name"),
    "control in name": ({"payload": "x", "payload_content_type": "text/plain", "name": "a\nb"}, 400, "name"),
    "bit length": ({"payload": "x", "payload_content_type": "text/plain", "bit_length": -1}, 400, "bit_length"),
    "not an object": ([], 400, "JSON object"),
}


@pytest.mark.parametrize("case", BAD_SECRETS)
def test_bad_secrets_are_clear_400s(api: Api, case: str) -> None:
    body, status, words = BAD_SECRETS[case]
    assert_fault(KeyApi(api).call("POST", "/secrets", json=body), status, words)


def test_bad_containers_are_clear_400s(api: Api) -> None:
    alice = KeyApi(api)
    secret = alice.store(b"x")
    cases = [
        ({"type": "box", "secret_refs": []}, "type must be"),
        ({"type": "certificate", "secret_refs": [{"name": "bogus", "secret_ref": secret}]}, "may be named only"),
        ({"type": "certificate", "secret_refs": [{"name": "private_key", "secret_ref": secret}]}, "'certificate'"),
        ({"type": "generic", "secret_refs": [{"name": "a", "secret_ref": "file:///etc/passwd"}]}, "reference"),
        ({"type": "generic", "secret_refs": [{"name": "a", "secret_ref": secret},
                                             {"name": "a", "secret_ref": secret}]}, "twice"),
        ({"type": "generic", "secret_refs": "x"}, "list"),
        ({"type": "generic", "secret_refs": [{"name": "a", "secret_ref": f"{api.url}{V1}/secrets/{uuid.uuid4()}"}]},
         "secret of this project"),
    ]
    for body, words in cases:
        assert_fault(alice.call("POST", "/containers", json=body), 400, words)
    response = alice.call("POST", "/containers", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_fault(response, 400, "JSON")


def test_authentication_and_roles(api: Api) -> None:
    assert_fault(api.client.get(V1 + "/secrets"), 401)
    alice, reader = KeyApi(api, "alice"), KeyApi(api, "reader")
    ident = alice.store(b"read me not").rsplit("/", 1)[1]
    assert reader.call("GET", f"/secrets/{ident}").status_code == 200  # the same project: metadata only
    assert_fault(reader.call("GET", f"/secrets/{ident}/payload"), 403, "member")
    assert_fault(reader.call("POST", "/secrets", json={"payload": "x", "payload_content_type": "text/plain"}), 403)
    assert_fault(reader.call("DELETE", f"/secrets/{ident}"), 403)
