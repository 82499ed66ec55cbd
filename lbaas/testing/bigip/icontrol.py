"""The iControl REST and AS3 endpoints of one emulated BIG-IP, as an ASGI application.

Contract: ``create_app(device)`` answers what the device's public documentation says,
in its shapes (see the package docstring for the list).  Every request first counts in
``device.calls``, then waits ``device.latency``, then may be failed by a
``device.fail_next`` knob, then must authenticate (except the login itself), then
settles due AS3 tasks.  Collections leave ``items`` out when empty, as iControl does.
Self links use ``https://localhost`` whatever address was called, as the device does.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lbaas.testing.bigip import ltm
from lbaas.testing.bigip.device import Busy, Device, StandbyRefusal, Task, TooManyTokens
from lbaas.testing.bigip.patch import PatchError, apply_patch
from lbaas.testing.bigip.schema import DeclarationInvalid, TENANT_NAME, tenant_names, validate

BASE: Final = "https://localhost"
LOGIN: Final = "/mgmt/shared/authn/login"
AS3: Final = "/mgmt/shared/appsvcs"
POLL: Final = 0.02  # seconds between checks while a synchronous declaration runs

Handler = Callable[[Device, Request, "re.Match[str]"], Awaitable[Response]]


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    """iControl's error shape."""
    return JSONResponse({"code": status, "message": message, "errorStack": [], "apiError": 1, **extra},
                        status_code=status)


def collection(kind: str, path: str, items: list[dict[str, Any]], version: str) -> JSONResponse:
    body: dict[str, Any] = {"kind": kind, "selfLink": f"{BASE}{path}?ver={version}"}
    if items:
        body["items"] = items
    return JSONResponse(body)


MAX_DEPTH: Final = 32  # far deeper than any declaration; bounds every recursive walk


async def _body(request: Request) -> Any:
    """The parsed JSON body, or ValueError when it is not JSON or nested too deeply."""
    try:
        body = json.loads(await request.body() or b"null")
    except (ValueError, RecursionError):
        return ValueError
    return body if _shallow(body) else ValueError


def _shallow(value: Any) -> bool:
    level: list[Any] = [value]
    for _ in range(MAX_DEPTH):
        level = [child for item in level if isinstance(item, (dict, list))
                 for child in (item.values() if isinstance(item, dict) else item)]
        if not level:
            return True
    return False


# --- authentication ---------------------------------------------------------------------

def _authenticated(device: Device, request: Request) -> JSONResponse | None:
    """None when the request carries a valid token or valid basic credentials."""
    token = request.headers.get("x-f5-auth-token")
    if token is not None:
        return None if device.token_valid(token) else error(401, "X-F5-Auth-Token does not exist.")
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return error(401, "Authorization failed: no user authentication header or token detected.")
    try:
        username, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return error(401, "Authentication failed.")
    if device.credentials_match(username, password):
        return None
    return error(401, "Authentication failed.")


async def login(device: Device, request: Request, match: re.Match[str]) -> Response:
    body = await _body(request)
    if not isinstance(body, dict) or not isinstance(body.get("username"), str) \
            or not isinstance(body.get("password"), str):
        return error(400, "Found invalid JSON body in the request.")
    try:
        record = device.login(body["username"], body["password"])
    except TooManyTokens as exc:
        return error(401, str(exc))
    if record is None:
        return error(401, "Authentication failed.")
    return JSONResponse({"username": body["username"], "loginProviderName":
                         body.get("loginProviderName", "tmos"), "token": record,
                         "generation": 0, "lastUpdateMicros": 0})


async def token(device: Device, request: Request, match: re.Match[str]) -> Response:
    name = match["token"]
    if request.method == "DELETE":
        device.revoke_token(name)
        return JSONResponse({})
    if request.method == "PATCH":
        body = await _body(request)
        timeout = body.get("timeout") if isinstance(body, dict) else None
        if not isinstance(timeout, int) or isinstance(timeout, bool):
            return error(400, "Found invalid JSON body in the request.")
        if not device.extend_token(name, timeout):
            return error(400, "timeout must be between 1 and 36000 seconds, and the token valid")
    if not device.token_valid(name):
        return error(404, f"Object with name {name} was not found")
    return JSONResponse(device.token_record(name))


# --- system -----------------------------------------------------------------------------

async def version(device: Device, request: Request, match: re.Match[str]) -> Response:
    entries = {"Build": "0.0.11", "Date": "Mon Jan  1 00:00:00 PST 2024", "Edition": "Final",
               "Product": "BIG-IP", "Title": "Main Package", "Version": device.tmos_version}
    return JSONResponse({"kind": "tm:sys:version:versionstats",
                         "selfLink": f"{BASE}/mgmt/tm/sys/version?ver={device.tmos_version}",
                         "entries": {f"{BASE}/mgmt/tm/sys/version/0": {"nestedStats": {
                             "entries": {k: {"description": v} for k, v in entries.items()}}}}})


def _provision_item(device: Device, module: str) -> dict[str, Any]:
    level = "nominal" if module == "ltm" and device.ltm_provisioned else "none"
    return {"kind": "tm:sys:provision:provisionstate", "name": module, "fullPath": module,
            "generation": 1, "selfLink": f"{BASE}/mgmt/tm/sys/provision/{module}?ver={device.tmos_version}",
            "cpuRatio": 0, "diskRatio": 0, "level": level, "memoryRatio": 0}


async def provision(device: Device, request: Request, match: re.Match[str]) -> Response:
    modules = ("afm", "am", "apm", "asm", "avr", "gtm", "ltm", "pem")
    if match["module"]:
        if match["module"] not in modules:
            return error(404, f"01020036:3: The requested provision ({match['module']}) was not found.")
        return JSONResponse(_provision_item(device, match["module"]))
    return collection("tm:sys:provision:provisioncollectionstate", "/mgmt/tm/sys/provision",
                      [_provision_item(device, m) for m in modules], device.tmos_version)


# --- AS3 --------------------------------------------------------------------------------

async def info(device: Device, request: Request, match: re.Match[str]) -> Response:
    return JSONResponse({"version": device.as3_version, "release": "5",
                         "schemaCurrent": device.as3_version, "schemaMinimum": "3.0.0"})


def _tenant_list(raw: str | None) -> list[str] | None | JSONResponse:
    if not raw:
        return None
    names = raw.split(",")
    bad = [name for name in names if not TENANT_NAME.fullmatch(name)]
    if bad:
        return JSONResponse({"code": 422, "message": "declaration is invalid", "declarationFullId": "",
                             "errors": [f"/{bad[0][:64]}: tenant name should match pattern "
                                        "\"^[A-Za-z][0-9A-Za-z_.-]*$\""]}, status_code=422)
    return names


def _invalid(errors: list[str]) -> JSONResponse:
    return JSONResponse({"code": 422, "errors": errors, "declarationFullId": "",
                         "message": "declaration is invalid"}, status_code=422)


async def declare(device: Device, request: Request, match: re.Match[str]) -> Response:
    only = _tenant_list(match["tenants"])
    if isinstance(only, JSONResponse):
        return only
    if request.method == "GET":
        declaration = device.declaration(only)
        return JSONResponse(declaration) if declaration else Response(status_code=204)
    asynchronous = request.query_params.get("async", "false").lower() == "true"
    if request.method == "DELETE":
        return await _submit(device, asynchronous, remove=only)
    body = await _body(request)
    if body is ValueError:
        return error(400, "Found invalid JSON body in the request.")
    if request.method == "PATCH":
        try:
            body = apply_patch(device.declaration() or {"class": "ADC", "schemaVersion": "3.0.0"}, body)
        except PatchError as exc:
            return _invalid([str(exc)])
    return await _post(device, request, body, only, asynchronous)


async def _post(device: Device, request: Request, body: Any, only: list[str] | None,
                asynchronous: bool) -> Response:
    sync_group = None
    dry_run = request.query_params.get("controls.dryRun", "false").lower() == "true"
    if isinstance(body, dict) and body.get("class") == "AS3":
        action = body.get("action", "deploy")
        if action not in ("deploy", "dry-run"):
            return _invalid([f"/action: {action!r} is not modelled by this emulator (deploy, dry-run)"])
        dry_run = dry_run or action == "dry-run"
        sync_group = body.get("syncToGroup") or None
        if sync_group is not None and not (isinstance(sync_group, str) and device.group
                                           and device.group.knows(sync_group)):
            return _invalid([f"/syncToGroup: device group {str(sync_group)[:128]!r} does not exist"])
        body = body.get("declaration")
    if not isinstance(body, dict):
        return _invalid(["/: should be object (one ADC declaration)"])
    if dry_run:
        try:
            validate(body, device.declaration())
        except DeclarationInvalid as exc:
            return _invalid(exc.errors)
        return JSONResponse({"results": [{"code": 200, "message": "success", "dryRun": True,
                                          "tenant": name, "host": "localhost", "runTime": 0}
                                         for name in tenant_names(body)], "declaration": body})
    return await _submit(device, asynchronous, deploy=body, only=only, sync_group=sync_group)


async def _submit(device: Device, asynchronous: bool, **operation: Any) -> Response:
    try:
        task = device.submit(**operation)
    except Busy as exc:
        return JSONResponse({"code": 503, "message": str(exc)}, status_code=503)
    except StandbyRefusal as exc:
        return JSONResponse({"code": 409, "message": str(exc)}, status_code=409)
    if asynchronous:
        return JSONResponse({"id": task.id, "results": [{"message": "Declaration successfully submitted",
                                                         "tenant": "", "runTime": 0, "code": 0, "host": ""}],
                             "declaration": {}, "selfLink": f"{BASE}{AS3}/task/{task.id}"}, status_code=202)
    return await _finished(device, task)


async def _finished(device: Device, task: Task) -> Response:
    while device.task(task.id) is not None and task.results is None:
        await asyncio.sleep(POLL)
    assert task.results is not None
    if task.results and "errors" in task.results[0]:
        return JSONResponse(task.results[0], status_code=422)
    return JSONResponse({"results": task.results, "declaration": task.declaration}, status_code=task.status)


async def task_record(device: Device, request: Request, match: re.Match[str]) -> Response:
    if not match["id"]:
        with device.lock:
            device.settle()
            return JSONResponse({"items": [t.record() for t in device.tasks.values()]})
    task = device.task(match["id"])
    if task is None:
        return JSONResponse({"message": f"No record found with ID of {match['id'][:64]}"}, status_code=404)
    return JSONResponse(task.record())


# --- LTM --------------------------------------------------------------------------------

def _full_path(segment: str) -> str:
    """``~T~A~name`` -> ``/T/A/name``; a bare name lives in /Common."""
    return segment.replace("~", "/") if segment.startswith("~") else f"/Common/{segment}"


def _partition(request: Request) -> str | None:
    found = re.fullmatch(r"\s*partition\s+eq\s+(\S+)\s*", request.query_params.get("$filter", ""))
    return found.group(1) if found else None


def _not_found(kind: str, full_path: str) -> JSONResponse:
    return error(404, f"01020036:3: The requested {kind} ({full_path[:256]}) was not found.", apiError=3)


def _stats(kind: str, path: str, entries: dict[str, Any], version: str) -> JSONResponse:
    return JSONResponse({"kind": kind, "selfLink": f"{BASE}{path}?ver={version}", "entries": entries})


async def virtual(device: Device, request: Request, match: re.Match[str]) -> Response:
    with device.lock:
        found = device.virtuals()
        pools = {pool.full_path: pool for pool in device.pools()}
        counters, health = device.counters, device.health
        if match["name"]:
            found = [v for v in found if v.full_path == _full_path(match["name"])]
            if not found:
                return _not_found("Virtual Server", _full_path(match["name"]))
        elif (partition := _partition(request)) is not None:
            found = [v for v in found if v.tenant == partition]
        if match["stats"]:
            entries: dict[str, Any] = {}
            for v in found:
                entries.update(ltm.virtual_stats(BASE, v, pools.get(v.pool or ""), health,
                                                 counters.get(v.full_path, {}), not match["name"]))
            return _stats("tm:ltm:virtual:virtualcollectionstats" if not match["name"]
                          else "tm:ltm:virtual:virtualstats", request.url.path, entries, device.tmos_version)
        items = [ltm.virtual_item(BASE, v) for v in found]
    if match["name"]:
        return JSONResponse(items[0])
    return collection("tm:ltm:virtual:virtualcollectionstate", request.url.path, items, device.tmos_version)


async def pool(device: Device, request: Request, match: re.Match[str]) -> Response:
    with device.lock:
        found, counters, health = device.pools(), device.counters, device.health
        if match["name"]:
            found = [p for p in found if p.full_path == _full_path(match["name"])]
            if not found:
                return _not_found("Pool", _full_path(match["name"]))
            if match["members"]:
                return _members(device, request, match, found[0])
        elif (partition := _partition(request)) is not None:
            found = [p for p in found if p.tenant == partition]
        if match["stats"]:
            entries: dict[str, Any] = {}
            for p in found:
                entries.update(ltm.pool_stats(BASE, p, health, counters.get(p.full_path, {}), not match["name"]))
            return _stats("tm:ltm:pool:poolcollectionstats" if not match["name"] else "tm:ltm:pool:poolstats",
                          request.url.path, entries, device.tmos_version)
        expand = request.query_params.get("expandSubcollections", "false") == "true"
        items = [ltm.pool_item(BASE, p, health, expand) for p in found]
    if match["name"]:
        return JSONResponse(items[0])
    return collection("tm:ltm:pool:poolcollectionstate", request.url.path, items, device.tmos_version)


def _members(device: Device, request: Request, match: re.Match[str], found: ltm.Pool) -> Response:
    members = list(found.members)
    if match["member"]:
        members = [m for m in members if m.full_path == _full_path(match["member"])]
        if not members:
            return _not_found("Pool Member", _full_path(match["member"]))
    if match["stats"]:
        entries: dict[str, Any] = {}
        for m in members:
            entries.update(ltm.member_stats(BASE, found, m, device.health,
                                            device.counters.get(f"{found.full_path}/{m.name}", {}),
                                            not match["member"]))
        return _stats("tm:ltm:pool:members:memberscollectionstats" if not match["member"]
                      else "tm:ltm:pool:members:membersstats", request.url.path, entries, device.tmos_version)
    items = [ltm.member_item(BASE, found, m, device.health) for m in members]
    if match["member"]:
        return JSONResponse(items[0])
    return collection("tm:ltm:pool:members:memberscollectionstate", request.url.path, items,
                      device.tmos_version)


# --- device management (HA) -------------------------------------------------------------

def _peers(device: Device) -> list[Device]:
    return device.group.devices if device.group else [device]


async def devices(device: Device, request: Request, match: re.Match[str]) -> Response:
    items = [{"kind": "tm:cm:device:devicestate", "name": peer.hostname, "partition": "Common",
              "fullPath": f"/Common/{peer.hostname}", "generation": 1,
              "selfLink": f"{BASE}/mgmt/tm/cm/device/~Common~{peer.hostname}",
              "failoverState": peer.failover_state, "selfDevice": "true" if peer is device else "false",
              "hostname": peer.hostname, "managementIp": "127.0.0.1", "version": peer.tmos_version}
             for peer in _peers(device)]
    return collection("tm:cm:device:devicecollectionstate", request.url.path, items, device.tmos_version)


def _group_item(name: str, kind: str) -> dict[str, Any]:
    return {"kind": "tm:cm:device-group:device-groupstate", "name": name, "partition": "Common",
            "fullPath": f"/Common/{name}", "type": kind, "autoSync": "disabled", "fullLoadOnSync": "false",
            "networkFailover": "enabled" if kind == "sync-failover" else "disabled",
            "devicesReference": {"link": f"{BASE}/mgmt/tm/cm/device-group/~Common~{name}/devices",
                                 "isSubcollection": True}}


async def device_groups(device: Device, request: Request, match: re.Match[str]) -> Response:
    groups = [("device_trust_group", "sync-only")]
    if device.group:
        groups.append((device.group.name, "sync-failover"))
    if match["group"]:
        name = _full_path(match["group"]).rsplit("/", 1)[-1]
        if name not in dict(groups):
            return _not_found("device group", f"/Common/{name}")
        items = [{"kind": "tm:cm:device-group:devices:devicesstate", "name": peer.hostname,
                  "partition": "Common", "fullPath": f"/Common/{peer.hostname}"} for peer in _peers(device)]
        return collection("tm:cm:device-group:devices:devicescollectionstate", request.url.path, items,
                          device.tmos_version)
    groups_items = [_group_item(name, kind) for name, kind in groups]
    return collection("tm:cm:device-group:device-groupcollectionstate", request.url.path, groups_items,
                      device.tmos_version)


def _nested(kind: str, path: str, entries: dict[str, str]) -> JSONResponse:
    return JSONResponse({"kind": kind, "selfLink": f"{BASE}{path}",
                         "entries": {f"{BASE}{path}/0": {"nestedStats": {
                             "entries": {k: {"description": v} for k, v in entries.items()}}}}})


SYNC_KIND: Final = "tm:cm:sync-status:sync-statusstats"


async def sync_status(device: Device, request: Request, match: re.Match[str]) -> Response:
    if device.group is None:
        return _nested(SYNC_KIND, request.url.path, {"color": "green", "mode": "standalone",
                                                     "status": "Standalone", "summary": " "})
    in_sync = device.group.in_sync()
    return _nested(SYNC_KIND, request.url.path, {
        "color": "green" if in_sync else "yellow", "mode": "high-availability",
        "status": "In Sync" if in_sync else "Changes Pending",
        "summary": "All devices in the device group are in sync" if in_sync
        else f"There is a possible change conflict in {device.group.name}"})


async def failover_status(device: Device, request: Request, match: re.Match[str]) -> Response:
    state = device.failover_state
    return _nested("tm:cm:failover-status:failover-statusstats", request.url.path,
                   {"color": "green" if state == "active" else "gray", "status": state.upper(),
                    "summary": f"1/1 {state}"})


CONFIG_SYNC = re.compile(r"config-sync\s+to-group\s+(\S+)")


async def cm_command(device: Device, request: Request, match: re.Match[str]) -> Response:
    body = await _body(request)
    if not isinstance(body, dict) or body.get("command") != "run" or not isinstance(body.get("utilCmdArgs"), str):
        return error(400, "Found invalid JSON body in the request.")
    found = CONFIG_SYNC.fullmatch(body["utilCmdArgs"].strip())
    if not found:
        return error(400, f"unsupported command: {body['utilCmdArgs'][:128]!r} (config-sync to-group <group>)")
    group = found.group(1)
    if device.group is None or not device.group.knows(group):
        return error(400, f"The requested device group ({group[:128]}) was not found.")
    device.group.config_sync(device, group)
    return JSONResponse({"kind": "tm:cm:runstate", "command": "run", "utilCmdArgs": body["utilCmdArgs"]})


# --- routing ----------------------------------------------------------------------------

_NAME = r"(?P<name>[^/]+)"
ROUTES: Final[list[tuple[str, re.Pattern[str], Handler]]] = [
    ("POST", re.compile(LOGIN), login),
    ("GET|PATCH|DELETE", re.compile(r"/mgmt/shared/authz/tokens/(?P<token>[^/]+)"), token),
    ("GET", re.compile(r"/mgmt/tm/sys/version"), version),
    ("GET", re.compile(r"/mgmt/tm/sys/provision(?:/(?P<module>[a-z]+))?"), provision),
    ("GET", re.compile(AS3 + r"/info"), info),
    ("GET|POST|DELETE|PATCH", re.compile(AS3 + r"/declare(?:/(?P<tenants>[^/]+))?"), declare),
    ("GET", re.compile(AS3 + r"/task(?:/(?P<id>[^/]+))?"), task_record),
    ("GET", re.compile(r"/mgmt/tm/ltm/virtual(?:/(?!stats$)" + _NAME + r")?(?P<stats>/stats)?"), virtual),
    ("GET", re.compile(r"/mgmt/tm/ltm/pool(?:/(?!stats$)" + _NAME +
                       r"(?P<members>/members(?:/(?!stats$)(?P<member>[^/]+))?)?)?(?P<stats>/stats)?"), pool),
    ("GET", re.compile(r"/mgmt/tm/cm/device"), devices),
    ("GET", re.compile(r"/mgmt/tm/cm/device-group(?:/(?P<group>[^/]+)/devices)?"), device_groups),
    ("GET", re.compile(r"/mgmt/tm/cm/sync-status"), sync_status),
    ("GET", re.compile(r"/mgmt/tm/cm/failover-status"), failover_status),
    ("POST", re.compile(r"/mgmt/tm/cm"), cm_command),
]


def _route(path: str, method: str) -> tuple[Handler, re.Match[str]] | Response:
    for methods, pattern, handler in ROUTES:
        found = pattern.fullmatch(path)
        if found:
            if method not in methods.split("|"):
                return error(405, f"Method {method} is not allowed on {path[:256]}")
            return handler, found
    if path.startswith("/mgmt/tm/"):
        return error(404, f"URI path {path[:256]} not registered.  Please verify URI is supported "
                          "and wait for /available suffix to be responsive.")
    return error(404, f"Public URI path not registered: {path[5:261]}", kind=":resterrorresponse")


def create_app(device: Device) -> Starlette:
    async def entry(request: Request) -> Response:
        path, method = request.url.path, request.method
        device.record_call(method, path)
        if device.latency:
            await asyncio.sleep(device.latency)
        status = device.take_failure(path)
        if status is not None:
            return error(status, "Service Unavailable" if status == 503 else f"injected failure {status}")
        if not (method == "POST" and path == LOGIN):
            refusal = _authenticated(device, request)
            if refusal is not None:
                return refusal
        if path.startswith(AS3) and not device.as3_installed:
            return error(404, f"Public URI path not registered: {path[5:261]}", kind=":resterrorresponse")
        device.settle()
        routed = _route(path, method)
        if isinstance(routed, Response):
            return routed
        handler, found = routed
        return await handler(device, request, found)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", entry, methods=methods)])
