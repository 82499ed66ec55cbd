"""The BIG-IP emulator over HTTPS: authentication, AS3 semantics, LTM read-back, the
HA pair and every fault knob, as a driver meets them."""

from __future__ import annotations

import copy
import json
import ssl
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from lbaas.testing.bigip import BigIPEmulator, BigIPPair
from lbaas.testing.polling import wait_for

DECLARE = "/mgmt/shared/appsvcs/declare"
LOGIN = "/mgmt/shared/authn/login"


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("bigip-tls"))


@pytest.fixture
def emulator(cert_dir: str) -> Iterator[BigIPEmulator]:
    with BigIPEmulator(cert_dir=cert_dir) as started:
        yield started


@pytest.fixture
def pair(cert_dir: str) -> Iterator[BigIPPair]:
    with BigIPPair(cert_dir=cert_dir) as started:
        yield started


def client(emulator: BigIPEmulator, auth: Any = ("admin", "admin"), **options: Any) -> httpx.Client:
    verify = ssl.create_default_context(cafile=emulator.certificate) if emulator.certificate else False
    return httpx.Client(base_url=emulator.url, verify=verify, auth=auth, timeout=10, **options)


def application(vip: str = "10.0.0.1", members: tuple[str, ...] = ("192.0.2.1", "192.0.2.2"),
                monitors: list[Any] | None = None, port: int = 80) -> dict[str, Any]:
    return {"class": "Application", "template": "generic",
            "vs": {"class": "Service_HTTP", "virtualAddresses": [vip], "virtualPort": port, "pool": "web"},
            "web": {"class": "Pool", "loadBalancingMode": "least-connections-member",
                    "monitors": ["http"] if monitors is None else monitors,
                    "members": [{"servicePort": 8080, "serverAddresses": list(members), "ratio": 2}]}}


def adc(**tenants: dict[str, Any]) -> dict[str, Any]:
    return {"class": "ADC", "schemaVersion": "3.0.0", "id": "test", **tenants}


def tenant(**apps: dict[str, Any]) -> dict[str, Any]:
    return {"class": "Tenant", **apps}


def results(response: httpx.Response) -> dict[str, tuple[int, str]]:
    return {r["tenant"]: (r["code"], r["message"]) for r in response.json()["results"]}


# --- authentication ----------------------------------------------------------------------

def test_login_gives_a_token_that_authenticates_until_it_expires(emulator: BigIPEmulator) -> None:
    emulator.token_lifetime = 1
    with client(emulator, auth=None) as http:
        login = http.post(LOGIN, json={"username": "admin", "password": "admin", "loginProviderName": "tmos"})
        assert login.status_code == 200
        token = login.json()["token"]
        assert token["timeout"] in (0, 1) and token["token"]
        headers = {"X-F5-Auth-Token": token["token"]}
        assert http.get("/mgmt/tm/sys/version", headers=headers).status_code == 200
        time.sleep(1.1)
        expired = http.get("/mgmt/tm/sys/version", headers=headers)
        assert expired.status_code == 401
        assert expired.json()["code"] == 401 and "X-F5-Auth-Token" in expired.json()["message"]


def test_token_can_be_extended_and_expire_tokens_revokes_it(emulator: BigIPEmulator) -> None:
    with client(emulator, auth=None) as http:
        token = http.post(LOGIN, json={"username": "admin", "password": "admin"}).json()["token"]["token"]
        headers = {"X-F5-Auth-Token": token}
        extended = http.patch(f"/mgmt/shared/authz/tokens/{token}", json={"timeout": 3600}, headers=headers)
        assert extended.status_code == 200 and extended.json()["timeout"] > 1200
        emulator.expire_tokens()
        assert http.get("/mgmt/tm/sys/version", headers=headers).status_code == 401


def test_a_user_holds_at_most_100_live_tokens(emulator: BigIPEmulator) -> None:
    with client(emulator, auth=None) as http:
        credentials = {"username": "admin", "password": "admin"}
        tokens = [http.post(LOGIN, json=credentials).json()["token"]["token"] for _ in range(100)]
        refused = http.post(LOGIN, json=credentials)
        assert refused.status_code == 401 and "maximum active login tokens" in refused.json()["message"]
        http.delete(f"/mgmt/shared/authz/tokens/{tokens[0]}", headers={"X-F5-Auth-Token": tokens[1]})
        assert http.post(LOGIN, json=credentials).status_code == 200


def test_bad_credentials_and_missing_auth_are_401(emulator: BigIPEmulator) -> None:
    with client(emulator, auth=None) as http:
        assert http.post(LOGIN, json={"username": "admin", "password": "wrong"}).status_code == 401
        assert http.get("/mgmt/tm/sys/version").status_code == 401
        assert http.get("/mgmt/tm/sys/version", auth=("admin", "wrong")).json()["code"] == 401
        assert http.get("/mgmt/tm/sys/version", headers={"X-F5-Auth-Token": "NOPE"}).status_code == 401
        # hostile input is refused, never a 500
        for body in ('{"username": "\\ud800", "password": "\u00e9"}', "[" * 5000, '{"username": 1}'):
            assert http.post(LOGIN, content=body.encode()).status_code in (400, 401), body[:20]
        assert http.get("/mgmt/tm/sys/version", headers={"Authorization": "Basic !!!"}).status_code == 401


# --- system and AS3 info -------------------------------------------------------------------

def test_version_provision_and_as3_info(emulator: BigIPEmulator) -> None:
    with client(emulator) as http:
        entries = next(iter(http.get("/mgmt/tm/sys/version").json()["entries"].values()))
        assert entries["nestedStats"]["entries"]["Version"]["description"] == "15.1.10"
        ltm = http.get("/mgmt/tm/sys/provision/ltm").json()
        assert ltm["level"] == "nominal"
        info = http.get("/mgmt/shared/appsvcs/info").json()
        assert set(info) >= {"version", "release", "schemaCurrent", "schemaMinimum"}
        emulator.as3_installed = False
        assert http.get("/mgmt/shared/appsvcs/info").status_code == 404
        assert http.post(DECLARE, json=adc(T=tenant(A=application()))).status_code == 404


def test_ltm_not_provisioned_refuses_virtuals(emulator: BigIPEmulator) -> None:
    emulator.ltm_provisioned = False
    with client(emulator) as http:
        assert http.get("/mgmt/tm/sys/provision/ltm").json()["level"] == "none"
        answer = http.post(DECLARE, json=adc(T=tenant(A=application())))
        assert answer.status_code == 422
        assert results(answer) == {"T": (422, "declaration failed")}
        assert emulator.declaration("T") is None


# --- AS3 declarations ----------------------------------------------------------------------

def test_sync_declare_then_identical_redeclare_is_no_change(emulator: BigIPEmulator) -> None:
    declaration = adc(T1=tenant(A=application()))
    with client(emulator) as http:
        assert http.get(DECLARE).status_code == 204
        first = http.post(DECLARE, json=declaration)
        assert first.status_code == 200 and results(first) == {"T1": (200, "success")}
        assert first.json()["declaration"]["T1"] == declaration["T1"]
        again = http.post(DECLARE, json=declaration)
        assert results(again) == {"T1": (200, "no change")}
        current = http.get(f"{DECLARE}/T1").json()
        assert current["class"] == "ADC" and current["T1"] == declaration["T1"]
    assert emulator.history("T1") == [declaration["T1"]]


def test_async_declare_is_in_progress_then_final_and_refuses_a_second(emulator: BigIPEmulator) -> None:
    emulator.task_duration = 1.5  # long enough that a loaded machine still sees it running
    with client(emulator) as http:
        accepted = http.post(DECLARE, params={"async": "true"}, json=adc(T1=tenant(A=application())))
        assert accepted.status_code == 202
        task_id = accepted.json()["id"]
        running = http.get(f"/mgmt/shared/appsvcs/task/{task_id}").json()
        assert running["results"][0]["code"] == 0 and running["results"][0]["message"] == "in progress"
        busy = http.post(DECLARE, json=adc(T2=tenant(A=application("10.0.0.2"))))
        assert busy.status_code == 503
        assert emulator.declaration("T1") is None  # not applied while in progress

        def finished() -> dict[str, Any]:
            record: dict[str, Any] = http.get(f"/mgmt/shared/appsvcs/task/{task_id}").json()
            return record if record["results"][0]["code"] else {}

        done = wait_for(finished, timeout=5, what="the task to finish")
        assert [(r["tenant"], r["code"], r["message"]) for r in done["results"]] == [("T1", 200, "success")]
        assert done["declaration"]["T1"]["A"]["vs"]["class"] == "Service_HTTP"
        assert http.get("/mgmt/shared/appsvcs/task/nope").status_code == 404


def test_old_task_records_are_forgotten(emulator: BigIPEmulator) -> None:
    with client(emulator) as http:
        ids = [http.post(DECLARE, params={"async": "true"}, json=adc(T=tenant(A=application(port=1000 + n))))
               .json()["id"] for n in range(30)]
        assert http.get(f"/mgmt/shared/appsvcs/task/{ids[-1]}").status_code == 200
        gone = http.get(f"/mgmt/shared/appsvcs/task/{ids[0]}")
        assert gone.status_code == 404 and gone.json() == {"message": f"No record found with ID of {ids[0]}"}
        assert len(http.get("/mgmt/shared/appsvcs/task").json()["items"]) <= 26


def test_sync_declare_waits_for_the_task(emulator: BigIPEmulator) -> None:
    emulator.task_duration = 0.3
    with client(emulator) as http:
        started = time.monotonic()
        assert results(http.post(DECLARE, json=adc(T1=tenant(A=application())))) == {"T1": (200, "success")}
        assert time.monotonic() - started >= 0.3


def test_a_named_tenant_is_replaced_wholly_and_others_are_untouched(emulator: BigIPEmulator) -> None:
    with client(emulator) as http:
        http.post(DECLARE, json=adc(T1=tenant(A=application()), T2=tenant(B=application("10.0.0.2"))))
        replaced = http.post(DECLARE, json=adc(T1=tenant(C=application("10.0.0.3"))))
        assert results(replaced) == {"T1": (200, "success")}
        assert list(http.get(f"{DECLARE}/T1").json()["T1"]) == ["class", "C"]
        assert http.get(f"{DECLARE}/T2").json()["T2"]["B"]["vs"]["virtualAddresses"] == ["10.0.0.2"]
        virtuals = {item["fullPath"] for item in http.get("/mgmt/tm/ltm/virtual").json()["items"]}
        assert virtuals == {"/T1/C/vs", "/T2/B/vs"}


def test_tenant_without_applications_or_delete_removes_it(emulator: BigIPEmulator) -> None:
    with client(emulator) as http:
        http.post(DECLARE, json=adc(T1=tenant(A=application()), T2=tenant(B=application("10.0.0.2"))))
        assert results(http.post(DECLARE, json=adc(T1=tenant()))) == {"T1": (200, "success")}
        assert results(http.post(DECLARE, json=adc(T1=tenant()))) == {"T1": (200, "no change")}
        deleted = http.delete(f"{DECLARE}/T2")
        assert deleted.status_code == 200 and results(deleted) == {"T2": (200, "success")}
        assert http.get(DECLARE).status_code == 204
        assert "items" not in http.get("/mgmt/tm/ltm/virtual").json()  # as iControl: no empty list
    assert emulator.history("T1")[-1] is None and len(emulator.history("T2")) == 2


def test_update_mode_complete_removes_unnamed_tenants(emulator: BigIPEmulator) -> None:
    with client(emulator) as http:
        http.post(DECLARE, json=adc(T1=tenant(A=application()), T2=tenant(B=application("10.0.0.2"))))
        answer = http.post(DECLARE, json={**adc(T1=tenant(A=application())), "updateMode": "complete"})
        assert results(answer) == {"T1": (200, "no change"), "T2": (200, "success")}
    assert emulator.tenants() == ["T1"]


def test_post_to_a_tenant_list_only_touches_those(emulator: BigIPEmulator) -> None:
    with client(emulator) as http:
        answer = http.post(f"{DECLARE}/T2", json=adc(T1=tenant(A=application()), T2=tenant(B=application("10.0.0.2"))))
        assert results(answer) == {"T2": (200, "success")}
    assert emulator.tenants() == ["T2"]


@pytest.mark.parametrize("path, value, error", [
    (("A", "vs", "class"), "Service_Bogus", "/T/A/vs/class"),
    (("A", "vs", "connectionLimit"), 5, "/T/A/vs: should NOT have additional properties ('connectionLimit')"),
    (("A", "web", "loadBalancingMode"), "fastest", "/T/A/web/loadBalancingMode"),
    (("A", "web", "members", 0, "ratio"), 101, "/T/A/web/members/0/ratio: should be <= 100"),
    (("A", "web", "members", 0, "adminState"), "down", "/T/A/web/members/0/adminState"),
    (("A", "web", "members", 0, "serverAddresses", 0), "not-an-ip", "/T/A/web/members/0/serverAddresses/0"),
    (("A", "vs", "pool"), "missing", "/T/A/vs/pool: contains path to non-existent object missing"),
    (("A", "vs", "virtualPort"), 70000, "/T/A/vs/virtualPort: should be <= 65535"),
    (("A", "mon"), {"class": "Monitor", "monitorType": "http", "interval": 5, "sendString": "x"},
     "/T/A/mon: should NOT have additional properties ('sendString')"),
    (("A", "bad-"), {"class": "Pool"}, '/T/A: propertyName "bad-" should match pattern'),
    (("A", "web", "members"), [{"servicePort": 8080, "serverAddresses": ["192.0.2.1"]}] * 2,
     "/T/A/web/members: declaration has duplicate values in members"),
    (("A", "vs", "pool"), "/T/B/web", "/T/A/vs/pool: must contain path pointing into same Application"),
    (("A", "vs", "pool"), {"use": "vs"}, "/T/A/vs/pool: AS3 pointer vs does not point to required object type"),
    (("A", "template"), "https", "/T/A: should have required property 'serviceMain'"),
])
def test_schema_faults_are_422_naming_the_path(emulator: BigIPEmulator, path: tuple[Any, ...],
                                               value: Any, error: str) -> None:
    declaration = adc(T=tenant(A=application()))
    target: Any = declaration["T"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with client(emulator) as http:
        answer = http.post(DECLARE, json=declaration)
    assert answer.status_code == 422
    body = answer.json()
    assert body["message"] == "declaration is invalid"
    assert any(e.startswith(error) for e in body["errors"]), body["errors"]
    assert emulator.tenants() == []


def test_paths_over_255_characters_are_refused(emulator: BigIPEmulator) -> None:
    long_path = adc(**{"T" * 150: tenant(**{"A" * 100: application()})})  # /T../A../web: 256
    with client(emulator) as http:
        answer = http.post(DECLARE, json=long_path)
    assert answer.status_code == 422
    assert answer.json()["errors"][0].endswith("exceeds the 255 full path character limit")


def test_bad_tenant_names_and_missing_schema_version_are_422(emulator: BigIPEmulator) -> None:
    with client(emulator) as http:
        for name in ("1tenant", "t" * 191, "te nant", "Tenant/x"):
            answer = http.post(DECLARE, json=adc(**{name: tenant(A=application())}))
            assert answer.status_code == 422, name
        unversioned = {"class": "ADC", "T": tenant(A=application())}
        assert http.post(DECLARE, json=unversioned).status_code == 422
        assert http.post(DECLARE, content=b"{not json").status_code == 400
        deep = '{"class": "Pool", "metadata": ' + '{"a": ' * 600 + '1' + '}' * 600 + '}'
        assert http.post(DECLARE, content=json.dumps(adc(T=tenant())).replace(
            '"class": "Tenant"', f'"class": "Tenant", "A": {{"class": "Application", "p": {deep}}}')).status_code == 400
        assert http.get(f"{DECLARE}/bad name").status_code == 422


def test_duplicate_destination_fails_that_tenant_only(emulator: BigIPEmulator) -> None:
    with client(emulator) as http:
        http.post(DECLARE, json=adc(T1=tenant(A=application("10.0.0.1"))))
        answer = http.post(DECLARE, json=adc(T2=tenant(B=application("10.0.0.1")),
                                              T3=tenant(C=application("10.0.0.3"))))
        assert answer.status_code == 207  # Multi-Status: one tenant failed, one succeeded
        assert results(answer) == {"T2": (422, "declaration failed"), "T3": (200, "success")}
        failed = next(r for r in answer.json()["results"] if r["tenant"] == "T2")
        assert "/T1/A/vs" in failed["response"] and "illegally shares destination" in failed["response"]
    assert emulator.tenants() == ["T1", "T3"]


def test_https_service_redirects_port_80_unless_told_not_to(emulator: BigIPEmulator) -> None:
    https: dict[str, Any] = {"class": "Application", "svc": {"class": "Service_HTTPS", "virtualAddresses": ["10.0.0.9"],
                                             "serverTLS": "tls", "pool": "p"},
             "p": {"class": "Pool"},
             "tls": {"class": "TLS_Server", "certificates": [{"certificate": "cert"}]},
             "cert": {"class": "Certificate", "certificate": "PEM", "privateKey": "PEM"}}
    plain = application("10.0.0.9")
    with client(emulator) as http:
        clash = http.post(DECLARE, json=adc(T=tenant(H=https, P=plain)))
        assert results(clash) == {"T": (422, "declaration failed")}
        https["svc"]["redirect80"] = False
        assert results(http.post(DECLARE, json=adc(T=tenant(H=https, P=plain)))) == {"T": (200, "success")}


def test_patch_edits_the_stored_declaration(emulator: BigIPEmulator) -> None:
    with client(emulator) as http:
        http.post(DECLARE, json=adc(T=tenant(A=application())))
        patched = http.patch(DECLARE, json=[{"op": "add", "path": "/T/A/web/members/0/serverAddresses/-",
                                             "value": "192.0.2.3"}])
        assert results(patched) == {"T": (200, "success")}
        assert http.patch(DECLARE, json=[{"op": "replace", "path": "/T/nope", "value": 1}]).status_code == 422
    declared = emulator.declaration("T")
    assert declared is not None
    assert declared["A"]["web"]["members"][0]["serverAddresses"][-1] == "192.0.2.3"


# --- LTM read-back ---------------------------------------------------------------------------

def _stats(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """nestedStats entries by tmName (or member address:port)."""
    found = {}
    for entry in body["entries"].values():
        values = entry["nestedStats"]["entries"]
        key = values["tmName"]["description"] if "tmName" in values else \
            f"{values['addr']['description']}:{values['port']['value']}"
        found[key] = {k: v.get("description", v.get("value")) for k, v in values.items()}
    return found


def test_ltm_objects_and_stats_follow_member_availability(emulator: BigIPEmulator) -> None:
    with client(emulator) as http:
        http.post(DECLARE, json=adc(T=tenant(A=application(), U=application("10.0.0.2", ("192.0.2.9",), []))))
        pool = http.get("/mgmt/tm/ltm/pool/~T~A~web", params={"expandSubcollections": "true"}).json()
        assert pool["loadBalancingMode"] == "least-connections-member" and pool["monitor"] == "/Common/http"
        members = http.get("/mgmt/tm/ltm/pool/~T~A~web/members").json()["items"]
        assert [(m["fullPath"], m["ratio"], m["state"]) for m in members] == [
            ("/T/192.0.2.1:8080", 2, "up"), ("/T/192.0.2.2:8080", 2, "up")]
        assert _stats(http.get("/mgmt/tm/ltm/virtual/stats").json())["/T/A/vs"]["status.availabilityState"] == "available"
        # without a monitor TMOS cannot tell: unknown
        assert _stats(http.get("/mgmt/tm/ltm/virtual/~T~U~vs/stats").json())["/T/U/vs"][
            "status.availabilityState"] == "unknown"

        emulator.set_member_state("192.0.2.1", 8080, "offline")
        member_stats = _stats(http.get("/mgmt/tm/ltm/pool/~T~A~web/members/stats").json())
        assert member_stats["192.0.2.1:8080"]["status.availabilityState"] == "offline"
        assert member_stats["192.0.2.2:8080"]["status.availabilityState"] == "available"
        emulator.set_member_state("192.0.2.2", 8080, "offline")
        assert _stats(http.get("/mgmt/tm/ltm/pool/stats").json())["/T/A/web"]["status.availabilityState"] == "offline"
        assert _stats(http.get("/mgmt/tm/ltm/virtual/stats").json())["/T/A/vs"]["status.availabilityState"] == "offline"

        emulator.set_counters("/T/A/vs", **{"clientside.curConns": 7})
        assert _stats(http.get("/mgmt/tm/ltm/virtual/~T~A~vs/stats").json())["/T/A/vs"]["clientside.curConns"] == 7
        filtered = http.get("/mgmt/tm/ltm/virtual", params={"$filter": "partition eq Other"}).json()
        assert "items" not in filtered
        # a collection's stats key each object by its self link + /stats; one object's repeat its name
        in_t = http.get("/mgmt/tm/ltm/virtual/stats", params={"$filter": "partition eq T"}).json()
        assert set(in_t["entries"]) == {"https://localhost/mgmt/tm/ltm/virtual/~T~A~vs/stats",
                                        "https://localhost/mgmt/tm/ltm/virtual/~T~U~vs/stats"}
        assert not http.get("/mgmt/tm/ltm/virtual/stats", params={"$filter": "partition eq Other"}).json()["entries"]
        assert list(http.get("/mgmt/tm/ltm/virtual/~T~A~vs/stats").json()["entries"]) == [
            "https://localhost/mgmt/tm/ltm/virtual/~T~A~vs/~T~A~vs/stats"]
        missing = http.get("/mgmt/tm/ltm/virtual/~T~A~nope")
        assert missing.status_code == 404 and "/T/A/nope" in missing.json()["message"]


def test_disabled_services_and_members_report_disabled(emulator: BigIPEmulator) -> None:
    app = application(members=("192.0.2.1",))
    app["vs"]["enable"] = False
    app["web"]["members"][0]["adminState"] = "disable"
    with client(emulator) as http:
        http.post(DECLARE, json=adc(T=tenant(A=app)))
        virtual = _stats(http.get("/mgmt/tm/ltm/virtual/~T~A~vs/stats").json())["/T/A/vs"]
        assert virtual["status.enabledState"] == "disabled"
        assert http.get("/mgmt/tm/ltm/virtual/~T~A~vs").json()["disabled"] is True
        member = _stats(http.get("/mgmt/tm/ltm/pool/~T~A~web/members/stats").json())["192.0.2.1:8080"]
        assert (member["status.enabledState"], member["status.availabilityState"]) == ("disabled", "available")
        assert http.get("/mgmt/tm/ltm/pool/~T~A~web/members/~T~192.0.2.1:8080").json()["session"] == "user-disabled"


# --- HA pair -----------------------------------------------------------------------------------

def _failover_states(emulator: BigIPEmulator) -> dict[str, tuple[str, str]]:
    with client(emulator) as http:
        items = http.get("/mgmt/tm/cm/device").json()["items"]
    return {item["name"]: (item["failoverState"], item["selfDevice"]) for item in items}


def _sync_status(emulator: BigIPEmulator) -> str:
    with client(emulator) as http:
        body = http.get("/mgmt/tm/cm/sync-status").json()
    return next(iter(body["entries"].values()))["nestedStats"]["entries"]["status"]["description"]


def test_pair_refuses_the_standby_syncs_and_fails_over(pair: BigIPPair) -> None:
    active, standby = pair.active, pair.standby
    assert _failover_states(active) == {active.device.hostname: ("active", "true"),
                                        standby.device.hostname: ("standby", "false")}
    with client(active) as http:
        groups = {g["name"]: g["type"] for g in http.get("/mgmt/tm/cm/device-group").json()["items"]}
        assert groups["failover_group"] == "sync-failover"
    with client(standby) as http:
        assert http.post(DECLARE, json=adc(T=tenant(A=application()))).status_code == 409
    with client(active) as http:
        assert results(http.post(DECLARE, json=adc(T=tenant(A=application())))) == {"T": (200, "success")}
        assert _sync_status(active) == "Changes Pending" and not pair.in_sync()
        bad = http.post("/mgmt/tm/cm", json={"command": "run", "utilCmdArgs": "config-sync to-group nope"})
        assert bad.status_code == 400
        sync = http.post("/mgmt/tm/cm", json={"command": "run", "utilCmdArgs": "config-sync to-group failover_group"})
        assert sync.status_code == 200
    assert pair.in_sync() and _sync_status(standby) == "In Sync"
    assert standby.declaration("T") == active.declaration("T")

    assert pair.failover() is standby
    assert _failover_states(standby)[standby.device.hostname] == ("active", "true")
    with client(standby) as http:
        assert results(http.post(DECLARE, json=adc(T=tenant()))) == {"T": (200, "success")}
    with client(active) as http:  # now the standby
        assert http.delete(f"{DECLARE}/T").status_code == 409


def test_as3_request_with_sync_to_group_syncs_after_a_change(pair: BigIPPair) -> None:
    request = {"class": "AS3", "action": "deploy", "syncToGroup": "/Common/failover_group",
               "declaration": adc(T=tenant(A=application()))}
    with client(pair.active) as http:
        assert results(http.post(DECLARE, json=request)) == {"T": (200, "success")}
    assert pair.syncs == 1 and pair.standby.declaration("T") is not None
    with client(pair.active) as http:
        unknown = http.post(DECLARE, json={**request, "syncToGroup": "/Common/nope"})
        assert unknown.status_code == 422 and "syncToGroup" in unknown.json()["errors"][0]


def test_pointers_may_name_shared_objects_already_on_the_device(emulator: BigIPEmulator) -> None:
    shared = {"class": "Application", "template": "shared",
              "pool": {"class": "Pool", "members": [{"servicePort": 80, "serverAddresses": ["192.0.2.7"]}]}}
    uses_shared = application()
    uses_shared["vs"]["pool"] = "/Common/Shared/pool"
    with client(emulator) as http:
        assert http.post(DECLARE, json=adc(T=tenant(A=uses_shared))).status_code == 422
        assert results(http.post(DECLARE, json=adc(Common=tenant(Shared=shared)))) == {"Common": (200, "success")}
        assert results(http.post(DECLARE, json=adc(T=tenant(A=uses_shared)))) == {"T": (200, "success")}
        assert http.get("/mgmt/tm/ltm/virtual/~T~A~vs").json()["pool"] == "/Common/Shared/pool"


def test_ipv6_destinations_clash_whatever_their_spelling(emulator: BigIPEmulator) -> None:
    with client(emulator) as http:
        http.post(DECLARE, json=adc(T1=tenant(A=application("2001:db8::10"))))
        answer = http.post(DECLARE, json=adc(T2=tenant(A=application("2001:DB8:0::10"))))
        assert results(answer) == {"T2": (422, "declaration failed")}
        virtual = http.get("/mgmt/tm/ltm/virtual/~T1~A~vs").json()
        assert virtual["destination"] == "/T1/2001:db8::10.80"


# --- fault knobs -------------------------------------------------------------------------------

def test_fail_next_answers_busy_then_recovers(emulator: BigIPEmulator) -> None:
    emulator.fail_next(2, status=503, path=DECLARE)
    with client(emulator) as http:
        assert http.get("/mgmt/tm/sys/version").status_code == 200  # other paths unaffected
        assert [http.get(DECLARE).status_code for _ in range(3)] == [503, 503, 204]
        emulator.fail_next(1, status=500)
        assert http.get("/mgmt/tm/sys/version").status_code == 500


def test_latency_applies_to_every_request(emulator: BigIPEmulator) -> None:
    emulator.latency = 0.2
    with client(emulator) as http:
        started = time.monotonic()
        http.get("/mgmt/tm/sys/version")
        http.get("/mgmt/shared/appsvcs/info")
        assert time.monotonic() - started >= 0.4


def test_go_away_refuses_connections_and_come_back_keeps_state(emulator: BigIPEmulator) -> None:
    with client(emulator) as http:
        http.post(DECLARE, json=adc(T=tenant(A=application())))
        emulator.go_away()
        with pytest.raises(httpx.ConnectError):
            http.get(DECLARE)
        emulator.come_back()
        assert http.get(f"{DECLARE}/T").json()["T"] == adc(T=tenant(A=application()))["T"]


def test_calls_are_counted_per_path(emulator: BigIPEmulator) -> None:
    with client(emulator) as http:
        for _ in range(3):
            http.get("/mgmt/tm/ltm/virtual")
        http.post(DECLARE, json=adc(T=tenant(A=application())))
    assert emulator.calls("/mgmt/tm/ltm/virtual") == 3
    assert emulator.calls(DECLARE, method="POST") == 1 and emulator.calls(DECLARE, method="GET") == 0


def test_plain_http_emulator(cert_dir: str) -> None:
    with BigIPEmulator(tls=False) as plain, client(plain) as http:
        assert plain.url.startswith("http://") and plain.certificate is None
        assert http.get("/mgmt/tm/sys/version").status_code == 200


def test_declaration_records_are_copies(emulator: BigIPEmulator) -> None:
    declaration = adc(T=tenant(A=application()))
    with client(emulator) as http:
        http.post(DECLARE, json=declaration)
    recorded = emulator.declaration("T")
    assert recorded is not None
    recorded["A"]["vs"]["virtualPort"] = 1
    assert emulator.declaration("T") == copy.deepcopy(declaration["T"])
