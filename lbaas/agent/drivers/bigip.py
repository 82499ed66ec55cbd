"""The agent-side driver of F5 BIG-IP devices, over iControl REST and AS3.

A group is one BIG-IP (``bigip_ha_mode = standalone``) or an active/standby pair in one
sync-failover device group (``pair``): every change is declared on the device whose
``failoverState`` is active, then config-synced to the group.

Options (the agent's ``[device]`` section; ``lbaas.config`` declares them):

* ``bigip_hosts`` – the devices' https:// URLs, comma-separated: one, or two for a pair
* ``bigip_username`` / ``bigip_password`` – an account allowed to log in and use AS3 (the
  password is never logged)
* ``bigip_ca_file`` – CA bundle verifying the devices (empty: the system's);
  ``bigip_verify`` – false turns verification off (lab devices with self-signed certificates)
* ``bigip_timeout`` – seconds per request; ``bigip_task_timeout`` – seconds one change may
  take, retries of a busy device and polling of the AS3 task included
* ``bigip_max_loadbalancers`` – for ``capacity_score``; 0: ``max_loadbalancers``, else unlimited
* ``environment`` – filled by the agent with its ``environment_prefix``: tenants are named
  after it, so environments sharing a device never touch each other's

What is declared, and how names map, is ``lbaas.agent.drivers.as3``'s contract.

Declaring a tenant replaces all of it, and a tenant holds every load balancer of one project
in one environment.  A change is therefore a read-modify-write of the tenant: read the
tenant's declaration (``GET .../declare/<tenant>``), replace (or remove) this load
balancer's application only, declare the tenant (``POST``), under a per-tenant lock so two
load balancers of one project converging at once in this agent cannot undo each other.
AS3's JSON-patch ``PATCH`` would name one application too, but AS3 still redeploys the
whole tenant behind it and answers in the same task form, so it would save one GET while
tying the driver to the declaration AS3 happens to hold; the POST of a tenant is the
operation every AS3 release documents.  (Agents of one environment that
share a device converge a project's load balancers from one agent: tenant affinity; a rare
race between two agents is healed by the next resync, which converges whatever a device lost.)

Declarations are asynchronous (``POST .../declare?async=true`` answers 202 and a task id);
the task is polled with backoff until every tenant's result is final, so ``converge`` returns
only once the device confirmed.  Failures: AS3 refusing a declaration (422, or a tenant
result that is not 200) is ``DeviceRejected`` with AS3's message; a busy or unavailable device
(503, connection errors, a standby answering) is retried until ``bigip_task_timeout``, then
``DeviceError``.  An expired or revoked token is replaced by logging in again, transparently.
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import httpx

from lbaas import config as cfg
from lbaas import constants as c
from lbaas import wire
from lbaas.agent.drivers import as3
from lbaas.agent.drivers.base import DeviceDriver, DeviceError, DeviceNotReady, DeviceRejected, trust

LOG = logging.getLogger(__name__)

_OPTIONS = ("bigip_hosts", "bigip_username", "bigip_password", "bigip_ca_file", "bigip_verify",
            "bigip_ha_mode", "bigip_timeout", "bigip_task_timeout", "bigip_max_loadbalancers")
LOGIN: Final = "/mgmt/shared/authn/login"
DECLARE: Final = "/mgmt/shared/appsvcs/declare"
TASK: Final = "/mgmt/shared/appsvcs/task"
AUTH_HEADER: Final = "X-F5-Auth-Token"
# The oldest AS3 release whose declarations, async tasks and per-tenant results this driver
# was written against (it declares that schemaVersion).
MIN_AS3_VERSION: Final = tuple(int(p) for p in as3.SCHEMA_VERSION.split("."))
# A token is renewed this long before the device would expire it.
TOKEN_MARGIN: Final = 30.0
# Polling of AS3 tasks and retries of a busy device: first delay, growth, largest delay.
FIRST_POLL, POLL_GROWTH, LONGEST_POLL = 0.05, 1.5, 1.0
BUSY_STATUSES: Final = (502, 503, 504)
FINAL_OK: Final = ("success", "no change")


class _Busy(DeviceError):
    """The device cannot take the change now (busy, standby, unreachable): try again."""


class Device:
    """One BIG-IP: an HTTP client with a token that renews itself."""

    def __init__(self, url: str, username: str, password: str, verify: ssl.SSLContext | bool,
                 timeout: float) -> None:
        self.url = url
        self._username = username
        self._password = password
        self._client = httpx.Client(base_url=url, timeout=timeout, verify=verify)
        self._token: str | None = None
        self._token_until = 0.0
        self._token_lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def request(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs: Any) -> httpx.Response:
        """One call with a valid token (one fresh login when the device says 401).

        Raises ``_Busy`` when the device cannot be reached or is busy, ``DeviceRejected`` for
        400/409/422, ``DeviceError`` for any other answer not in ``ok``."""
        response = self._send(method, path, self._valid_token(), **kwargs)
        if response.status_code == 401:
            self._forget_token()
            response = self._send(method, path, self._valid_token(), **kwargs)
        if response.status_code in ok:
            return response
        where = f"BIG-IP {self.url}: {method} {path}"
        if response.status_code in BUSY_STATUSES:
            raise _Busy(f"{where} answered {response.status_code}: {fault(response)}")
        if response.status_code in c.DEVICE_REJECTED_STATUSES:
            raise DeviceRejected(f"{where} refused ({response.status_code}): {fault(response)}")
        raise DeviceError(f"{where} failed with {response.status_code}: {fault(response)}")

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise DeviceError(f"BIG-IP {self.url}: {method} {path} answered with invalid JSON") from None

    def _send(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, headers={AUTH_HEADER: token}, **kwargs)
        except httpx.HTTPError as exc:
            raise _Busy(f"BIG-IP {self.url} is unreachable: {str(exc) or type(exc).__name__}") from exc

    def _valid_token(self) -> str:
        with self._token_lock:
            if self._token is None or time.monotonic() >= self._token_until:
                self._token, lifetime = self._login()
                self._token_until = time.monotonic() + max(lifetime - TOKEN_MARGIN, lifetime / 2)
            return self._token

    def _forget_token(self) -> None:
        with self._token_lock:
            self._token = None

    def _login(self) -> tuple[str, float]:
        """A token and its lifetime in seconds; raises ``DeviceError`` when the credentials
        are refused (never saying what they were)."""
        body = {"username": self._username, "password": self._password, "loginProviderName": "tmos"}
        try:
            response = self._client.post(LOGIN, json=body)
        except httpx.HTTPError as exc:
            raise _Busy(f"BIG-IP {self.url} is unreachable: {str(exc) or type(exc).__name__}") from exc
        if response.status_code in (400, 401, 403):
            raise DeviceError(f"BIG-IP {self.url} refused the login of bigip_username "
                              f"{self._username!r} ({response.status_code})")
        if response.status_code in BUSY_STATUSES:
            raise _Busy(f"BIG-IP {self.url}: login answered {response.status_code}")
        try:
            token = response.json()["token"]
            return str(token["token"]), float(token.get("timeout") or 1200)
        except (ValueError, KeyError, TypeError):
            raise DeviceError(f"BIG-IP {self.url}: login answered {response.status_code} "
                              f"without a token") from None


class BigIPDriver(DeviceDriver):
    """Converges load balancers onto one BIG-IP or an active/standby pair with AS3."""

    name = "bigip"

    def __init__(self, options: Mapping[str, Any]) -> None:
        """``options``: the ``[device]`` section (typed, or INI strings as tests pass them)
        plus ``environment``.  Raises ``ConfigError`` naming the option that is wrong."""
        super().__init__(options)
        values = cfg.typed("device", options, _OPTIONS)
        hosts = [url.rstrip("/") for url in values["bigip_hosts"]]
        self.pair = values["bigip_ha_mode"] == "pair"
        _check_hosts(hosts, self.pair)
        if not values["bigip_username"] or not values["bigip_password"]:
            raise cfg.ConfigError("[device] bigip_username and bigip_password are required (device_driver = bigip)")
        try:
            self.environment = as3.environment_tag(str(options.get("environment") or ""))
        except ValueError as exc:
            raise cfg.ConfigError(f"[agent] environment_prefix: {exc}") from None
        self.timeout = values["bigip_timeout"]
        self.task_timeout = values["bigip_task_timeout"]
        self.max_loadbalancers = values["bigip_max_loadbalancers"] or int(options.get("max_loadbalancers") or 0)
        verify = _tls(values["bigip_ca_file"], values["bigip_verify"])
        self.devices = [Device(url, values["bigip_username"], values["bigip_password"], verify, self.timeout)
                        for url in hosts]
        self.sync_group: str | None = None
        self._tenant_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._tenants: dict[str, str] = {}   # load balancer id -> its tenant, as last seen

    def close(self) -> None:
        for device in self.devices:
            device.close()

    # --- DeviceDriver ----------------------------------------------------------------

    def verify(self) -> wire.Inventory:
        """Every device answers, accepts the credentials, has LTM provisioned and AS3 >=
        ``MIN_AS3_VERSION``; a pair is one sync-failover device group with one active device.
        Raises ``DeviceNotReady`` naming each device and what it lacks."""
        problems: list[str] = []
        versions: list[str] = []
        as3_versions: list[str] = []
        for device in self.devices:
            try:
                tmos, as3_version = self._inspect(device)
            except DeviceError as exc:
                problems.append(str(exc))
                continue
            versions.append(tmos)
            as3_versions.append(as3_version)
        if not problems and self.pair:
            problems.extend(self._pair_problems())
        if problems:
            raise DeviceNotReady("; ".join(problems))
        try:
            held, _ = self._census(self.probe_timeout)
        except DeviceError as exc:
            raise DeviceNotReady(str(exc)) from exc
        return wire.Inventory(devices=len(self.devices), tmos_version=min(versions, key=version),
                              as3_version=min(as3_versions, key=version), loadbalancers=len(held),
                              capabilities={k: list(v) for k, v in as3.CAPABILITIES.items()})

    def converge(self, desired: wire.Present) -> None:
        """Declare this load balancer's application in its tenant, leaving the tenant's other
        applications as they are. Raises ``DeviceRejected`` / ``DeviceError``."""
        try:
            application = as3.application(desired)
            tenant = as3.tenant_name(self.environment, desired["project_id"])
            name = as3.app_name(desired["id"])
        except ValueError as exc:
            raise DeviceRejected(f"cannot be declared on BIG-IP: {exc}") from None
        self._change(tenant, lambda apps: {**apps, name: application})
        self._tenants[desired["id"]] = tenant

    def delete(self, loadbalancer_id: str) -> None:
        """Remove the load balancer's application (and its tenant once it holds no other)."""
        try:
            name = as3.app_name(loadbalancer_id)
        except ValueError:
            return  # never declared: only UUIDs are
        tenant = self._tenants.get(loadbalancer_id) or self._find_tenant(loadbalancer_id)
        if tenant is not None:
            self._change(tenant, lambda apps: {k: v for k, v in apps.items() if k != name})
        self._tenants.pop(loadbalancer_id, None)

    def list_loadbalancers(self) -> dict[str, int]:
        """id -> revision of this environment's applications on the (active) device."""
        held, _ = self._census()
        return held

    def report(self, loadbalancer_id: str) -> wire.DeviceReport | None:
        """Statuses and counters from LTM's statistics of the load balancer's virtual
        servers and pool members; None when the device does not hold it."""
        device = self._active()
        tenant = self._tenants.get(loadbalancer_id) or self._find_tenant(loadbalancer_id)
        if tenant is None:
            return None
        application = as3.applications(self._read_tenant(device, tenant)).get(as3.app_name(loadbalancer_id))
        if application is None:
            return None
        return device_report(device, tenant, as3.app_name(loadbalancer_id), application)

    def capacity_score(self) -> float:
        """Load balancers on the device (every environment's) / the maximum; 1.0 when the
        device cannot be asked, so nothing new is placed on a broken group."""
        if self.max_loadbalancers <= 0:
            return 0.0
        try:
            _, total = self._census()
        except DeviceError as exc:
            LOG.warning("capacity unknown, reporting full: %s", exc)
            return 1.0
        return total / self.max_loadbalancers

    def probe(self) -> wire.Probe:
        """Every device answers (its failover state, in a pair) and the active one lists
        what it holds, each request within the short probe timeout."""
        held, total = self._census(self.probe_timeout)
        score = total / self.max_loadbalancers if self.max_loadbalancers > 0 else 0.0
        return wire.Probe(loadbalancers=len(held), capacity_score=score)

    @property
    def probe_timeout(self) -> float:
        return min(self.timeout, c.DEVICE_PROBE_TIMEOUT)

    # --- verify -------------------------------------------------------------------------

    def _inspect(self, device: Device) -> tuple[str, str]:
        """(TMOS version, AS3 version) of one device; DeviceError saying what it lacks."""
        timeout = self.probe_timeout
        tmos = _nested_value(device.json("GET", "/mgmt/tm/sys/version", timeout=timeout), "Version")
        info = device.request("GET", "/mgmt/shared/appsvcs/info", ok=(200, 404), timeout=timeout)
        if info.status_code == 404:
            raise DeviceError(f"BIG-IP {device.url}: AS3 is not installed "
                              f"(/mgmt/shared/appsvcs/info answers 404)")
        as3_version = str(_json_of(info).get("version", ""))
        problems = []
        if version(as3_version) < MIN_AS3_VERSION:
            problems.append(f"runs AS3 {as3_version or '(unknown)'}, at least {as3.SCHEMA_VERSION} is needed")
        provision = device.json("GET", "/mgmt/tm/sys/provision", timeout=timeout)
        levels = {item.get("name"): item.get("level") for item in provision.get("items", [])}
        if levels.get("ltm") in (None, "none"):
            problems.append("LTM is not provisioned")
        if problems:
            raise DeviceError(f"BIG-IP {device.url}: " + "; ".join(problems))
        return str(tmos), as3_version

    def _pair_problems(self) -> list[str]:
        """What keeps the two devices from being one sync-failover pair (empty when they are)."""
        try:
            names = [self._self_device(device)["name"] for device in self.devices]
            groups = self.devices[0].json("GET", "/mgmt/tm/cm/device-group", timeout=self.probe_timeout)
            for group in groups.get("items", []):
                if group.get("type") != "sync-failover":
                    continue
                members = self._group_members(group)
                if set(names) <= members:
                    self.sync_group = str(group["name"])
                    return []
        except (DeviceError, KeyError, TypeError) as exc:
            return [f"cannot read the device group of the pair: {exc}"]
        return [f"BIG-IP devices {', '.join(names)} are not in one sync-failover device group"]

    def _group_members(self, group: dict) -> set[str]:
        """Device names of a device group: inline when the answer carries them, else read."""
        inline = group.get("devices")
        if isinstance(inline, list):
            return {str(d.get("name") if isinstance(d, dict) else d).rsplit("/", 1)[-1] for d in inline}
        path = f"/mgmt/tm/cm/device-group/~Common~{group['name']}/devices"
        items = self.devices[0].json("GET", path, timeout=self.probe_timeout).get("items", [])
        return {str(item.get("name")).rsplit("/", 1)[-1] for item in items}

    def _self_device(self, device: Device, timeout: float | None = None) -> dict:
        """The device's own entry of ``/mgmt/tm/cm/device`` (``selfDevice`` true)."""
        items = device.json("GET", "/mgmt/tm/cm/device", timeout=timeout or self.probe_timeout).get("items", [])
        for item in items:
            if str(item.get("selfDevice")).lower() == "true":
                return item
        raise DeviceError(f"BIG-IP {device.url}: /mgmt/tm/cm/device names no selfDevice")

    # --- reading ------------------------------------------------------------------------

    def _active(self, timeout: float | None = None) -> Device:
        """The device to declare on: the only one, or the pair's active member (every device
        is asked, so one that does not answer fails the look)."""
        if not self.pair:
            return self.devices[0]
        states = {device.url: str(self._self_device(device, timeout).get("failoverState")).lower()
                  for device in self.devices}
        active = [device for device in self.devices if states[device.url] == "active"]
        if len(active) != 1:
            raise _Busy("BIG-IP pair has no single active device: " +
                        ", ".join(f"{url} {state}" for url, state in states.items()))
        return active[0]

    def _declared(self, device: Device, path: str = DECLARE, timeout: float | None = None) -> dict:
        """The declaration AS3 holds (of one tenant with ``path``); {} when it holds none."""
        kwargs = {"timeout": timeout} if timeout else {}
        response = device.request("GET", path, ok=(200, 204, 404), **kwargs)
        if response.status_code != 200 or not response.content:
            return {}
        body = _json_of(response)
        return body.get("declaration", body) if body.get("class") == "AS3" else body

    def _read_tenant(self, device: Device, tenant: str) -> dict:
        declared = self._declared(device, f"{DECLARE}/{tenant}").get(tenant)
        return declared if isinstance(declared, dict) else {}

    def _census(self, timeout: float | None = None) -> tuple[dict[str, int], int]:
        """(this environment's id -> revision, how many load balancers of any environment)."""
        declared = self._declared(self._active(timeout), timeout=timeout)
        mine: dict[str, int] = {}
        total = 0
        for tenant, body in declared.items():
            for name, application in as3.applications(body).items():
                entry = as3.held(name, application)
                if entry is None:
                    continue
                total += 1
                if as3.owns_tenant(self.environment, tenant):
                    mine[entry[0]] = entry[1]
                    self._tenants[entry[0]] = tenant
        return mine, total

    def _find_tenant(self, loadbalancer_id: str) -> str | None:
        self._census()
        return self._tenants.get(loadbalancer_id)

    # --- writing ------------------------------------------------------------------------

    def _tenant_lock(self, tenant: str) -> threading.Lock:
        with self._locks_guard:
            return self._tenant_locks.setdefault(tenant, threading.Lock())

    def _change(self, tenant: str, edit: Callable[[dict[str, dict]], dict[str, dict]]) -> None:
        """Read the tenant on the active device, ``edit`` its applications, declare it and
        (pair) sync; the whole again on a busy device or a failover, until the task timeout."""
        deadline = time.monotonic() + self.task_timeout
        with self._tenant_lock(tenant):
            for delay in _delays(deadline):
                try:
                    self._change_once(tenant, edit, deadline)
                    return
                except _Busy as exc:
                    if delay is None:
                        raise DeviceError(f"{exc} (gave up after bigip_task_timeout "
                                          f"{self.task_timeout:g}s)") from exc
                    LOG.info("tenant %s: %s; trying again in %.2fs", tenant, exc, delay)
                    time.sleep(delay)

    def _change_once(self, tenant: str, edit: Callable[[dict[str, dict]], dict[str, dict]],
                     deadline: float) -> None:
        device = self._active()
        current = self._read_tenant(device, tenant)
        others = {k: v for k, v in current.items() if k != "class" and not _is_application(v)}
        applications = edit(as3.applications(current))
        body = as3.tenant(applications)
        if applications:
            body.update(others)  # the tenant's own properties (label, remark, ...) stay
        try:
            self._declare(device, as3.declaration({tenant: body}, f"lbaas_{tenant}"), tenant, deadline)
        except DeviceRejected as exc:
            # A pair that failed over may refuse the write on its new standby: redo it on
            # the active member rather than blaming the declaration.
            if self.pair and self._active() is not device:
                raise _Busy(f"BIG-IP {device.url} failed over during the change: {exc}") from exc
            raise
        if self.pair:
            if self._active() is not device:
                raise _Busy(f"BIG-IP {device.url} failed over during the change")
            self._sync(device)

    def _declare(self, device: Device, declaration: dict, tenant: str, deadline: float) -> None:
        """POST asynchronously and wait for the task's final result for ``tenant``."""
        response = device.request("POST", DECLARE, ok=(200, 202), params={"async": "true"},
                                  json=declaration)
        body = _json_of(response)
        if response.status_code == 200 and _final(body):
            _check_results(device, body, tenant)
            return
        task = body.get("id")
        if not isinstance(task, str) or not re.fullmatch(r"[A-Za-z0-9-]{1,64}", task):
            raise DeviceError(f"BIG-IP {device.url}: the declaration answered without a task id")
        _check_results(device, self._wait(device, task, deadline), tenant)

    def _wait(self, device: Device, task: str, deadline: float) -> dict:
        """The task's answer once every result is final. Raises ``_Busy`` past the deadline."""
        for delay in _delays(deadline):
            body = device.json("GET", f"{TASK}/{task}")
            if _final(body):
                return body
            if delay is None:
                raise _Busy(f"BIG-IP {device.url}: AS3 task {task} still in progress")
            time.sleep(delay)
        raise AssertionError("unreachable")  # _delays ends with None

    def _sync(self, device: Device) -> None:
        """Config-sync from ``device`` to the pair's group (found by verify, or now)."""
        if self.sync_group is None:
            problems = self._pair_problems()
            if problems:
                raise DeviceError("; ".join(problems))
        device.request("POST", "/mgmt/tm/cm", json={"command": "run",
                                                    "utilCmdArgs": f"config-sync to-group {self.sync_group}"})


# --- AS3 answers -----------------------------------------------------------------------

def _final(body: dict) -> bool:
    """Whether every tenant result of an AS3 answer is final (not "in progress")."""
    results = body.get("results")
    if not isinstance(results, list) or not results:
        return False
    return all(r.get("code") not in (0, None) and r.get("message") != "in progress" for r in results)


def _check_results(device: Device, body: dict, tenant: str) -> None:
    """Raise unless ``tenant``'s result is a success: ``DeviceRejected`` with AS3's message
    when it refused the declaration, ``_Busy`` when it was busy."""
    results = [r for r in body.get("results", []) if r.get("tenant") in (tenant, None, "")]
    for result in results or body.get("results", []):
        code, message = result.get("code"), str(result.get("message", ""))
        if code == 200 and message in FINAL_OK:
            continue
        detail = "; ".join(str(x) for x in [message, result.get("response"), *(result.get("errors") or [])] if x)
        text = f"BIG-IP {device.url}: AS3 refused tenant {tenant} ({code}): {detail[:1000]}"
        if code in BUSY_STATUSES:
            raise _Busy(text)
        raise DeviceRejected(text)


def _is_application(value: Any) -> bool:
    return isinstance(value, dict) and value.get("class") == "Application"


# --- statuses --------------------------------------------------------------------------

def device_report(device: Device, tenant: str, name: str, application: dict) -> wire.DeviceReport:
    """LTM's statistics of one application as the agent reports them: the one translation.

    Requests: one for every virtual server of the tenant (a collection's stats filtered by
    partition), then one per pool for its members' stats (iControl has no request for the
    members of many pools outside /Common), ``REPORT_CONCURRENCY`` at a time."""
    services = {key: body for key, body in _declared(application) if key.startswith("l_")
                and str(body.get("class", "")).startswith("Service_")}
    pools = {key: body for key, body in _declared(application) if key.startswith("p_")
             and body.get("class") == "Pool"}
    virtuals = _virtual_stats(device, tenant) if services else {}
    listeners: dict[str, str] = {}
    listener_stats: dict[str, wire.Counters] = {}
    for key, body in services.items():
        stats = virtuals.get(f"/{tenant}/{name}/{key}")
        if stats is None:
            raise DeviceError(f"BIG-IP {device.url}: no statistics for virtual server /{tenant}/{name}/{key}")
        listener_id = _uuid(key[2:])
        listener_stats[listener_id] = _counters(stats)
        listeners[listener_id] = _listener_status(stats, body)
    members: dict[str, str] = {}
    pool_statuses: dict[str, str] = {}
    paths = [f"/mgmt/tm/ltm/pool/~{tenant}~{name}~{key}/members/stats" for key in pools]
    for (key, body), entries in zip(pools.items(), _concurrently(device, paths)):
        statuses = _member_statuses(body, entries)
        members.update(statuses)
        pool_statuses[_uuid(key[2:])] = _rollup(list(statuses.values()), bool(body.get("monitors")))
    overall = _overall(listeners, application)
    return wire.DeviceReport(
        operating=wire.OperatingReport(loadbalancer=overall, listeners=listeners, pools=pool_statuses,
                                       members=members, healthmonitors={}),
        stats=_sum(listener_stats.values()), listener_stats=listener_stats)


# Member-stats requests a report has in flight at once: the report takes about
# ceil(pools / this) round trips instead of one per pool, without flooding the device.
REPORT_CONCURRENCY: Final = 8


def _declared(application: dict) -> Iterator[tuple[str, dict]]:
    """The objects as3.application names (listeners ``l_``, pools ``p_``)."""
    for key, body in application.items():
        if isinstance(body, dict) and _OBJECT.fullmatch(key):
            yield key, body


def _virtual_stats(device: Device, tenant: str) -> dict[str, dict]:
    """Full path -> stats entries of every virtual server in ``tenant``'s partition, in one
    request.  Matched by ``tmName``, never by the keys' spelling; a device that ignored the
    filter only makes the answer longer."""
    body = device.json("GET", "/mgmt/tm/ltm/virtual/stats", params={"$filter": f"partition eq {tenant}"})
    return {str(_stat(entries, "tmName")): entries for entries in _entries(body)}


def _concurrently(device: Device, paths: list[str]) -> list[list[dict]]:
    """The stats entries at each of ``paths`` (GETs, in order), at most
    ``REPORT_CONCURRENCY`` in flight; the first failure raises."""
    def fetch(path: str) -> list[dict]:
        return _entries(device.json("GET", path))
    if len(paths) <= 1:
        return [fetch(path) for path in paths]
    with ThreadPoolExecutor(max_workers=min(REPORT_CONCURRENCY, len(paths)),
                            thread_name_prefix="bigip-report") as workers:
        return list(workers.map(fetch, paths))


_OBJECT = re.compile(r"[lp]_[0-9a-f]{32}", re.ASCII)


def _entries(stats: Any) -> list[dict]:
    """The innermost ``entries`` of an iControl stats answer, one dict per object."""
    found: list[dict] = []
    for value in (stats.get("entries") or {}).values() if isinstance(stats, dict) else ():
        nested = value.get("nestedStats") if isinstance(value, dict) else None
        if isinstance(nested, dict):
            inner = nested.get("entries") or {}
            deeper = _entries(nested) if any(isinstance(v, dict) and "nestedStats" in v
                                              for v in inner.values()) else []
            found.extend(deeper or [inner])
    return found


def _stat(entries: dict, key: str) -> Any:
    entry = entries.get(key) or {}
    return entry.get("value", entry.get("description")) if isinstance(entry, dict) else None


def _number(entries: dict, key: str) -> int:
    try:
        return int(_stat(entries, key) or 0)
    except (TypeError, ValueError):
        return 0


def _counters(entries: dict) -> wire.Counters:
    # LTM counts bits; a virtual server has no request-error counter: 0.
    return wire.Counters(bytes_in=_number(entries, "clientside.bitsIn") // 8,
                         bytes_out=_number(entries, "clientside.bitsOut") // 8,
                         active_connections=_number(entries, "clientside.curConns"),
                         total_connections=_number(entries, "clientside.totConns"), request_errors=0)


def _sum(counters: Any) -> wire.Counters:
    total = wire.zero_counters()
    for one in counters:
        for key in total:
            total[key] += one[key]  # type: ignore[literal-required]
    return total


def _availability(entries: dict) -> str:
    return str(_stat(entries, "status.availabilityState") or "unknown").lower()


def _listener_status(entries: dict, service: dict) -> str:
    if not service.get("enable", True) or "disabled" in str(_stat(entries, "status.enabledState") or ""):
        return c.OFFLINE
    return c.ERROR if _availability(entries) == "offline" else c.ONLINE


def _member_statuses(pool: dict, entries: list[dict]) -> dict[str, str]:
    """member id -> status, matched by address and port."""
    by_endpoint = {(_address(str(_stat(e, "addr") or "")), _number(e, "port")): e for e in entries}
    statuses = {}
    for member in pool.get("members", []):
        remark = str(member.get("remark", ""))
        if not re.fullmatch(r"member [0-9a-f]{32}", remark):
            continue
        try:
            key = (_address(str(member["serverAddresses"][0])), int(member["servicePort"]))
        except (KeyError, IndexError, TypeError, ValueError):
            continue  # not a member as3.application writes it
        statuses[_uuid(remark[7:])] = _member_status(member, by_endpoint.get(key, {}))
    return statuses


def _member_status(member: dict, entries: dict) -> str:
    if member.get("adminState") == "offline":
        return c.OFFLINE
    if member.get("adminState") == "disable":
        return c.DRAINING
    availability = _availability(entries)
    if availability == "offline":
        return c.ERROR
    # "unknown": no monitor, or no result yet.
    return c.ONLINE if availability == "available" else c.NO_MONITOR


def _rollup(statuses: list[str], monitored: bool) -> str:
    """A pool's status from its members': ERROR when every member in service failed its
    monitor, DEGRADED when some did, OFFLINE when none is in service."""
    serving = [s for s in statuses if s != c.OFFLINE]
    if statuses and not serving:
        return c.OFFLINE
    failed = [s for s in serving if s == c.ERROR] if monitored else []
    if failed and len(failed) == len(serving):
        return c.ERROR
    return c.DEGRADED if failed else c.ONLINE


def _overall(listeners: dict[str, str], application: dict) -> str:
    services = [v for k, v in application.items() if k.startswith("l_") and isinstance(v, dict)]
    if services and not any(s.get("enable", True) for s in services):
        return c.OFFLINE
    return c.DEGRADED if any(s in (c.ERROR, c.DEGRADED) for s in listeners.values()) else c.ONLINE


def _address(text: str) -> str:
    """An address without its route domain (``10.0.0.1%2`` -> ``10.0.0.1``)."""
    return text.split("%", 1)[0]


def _uuid(hex_digits: str) -> str:
    return f"{hex_digits[:8]}-{hex_digits[8:12]}-{hex_digits[12:16]}-{hex_digits[16:20]}-{hex_digits[20:]}"


# --- helpers ---------------------------------------------------------------------------

def _check_hosts(hosts: list[str], pair: bool) -> None:
    if not hosts:
        raise cfg.ConfigError("[device] bigip_hosts must name the BIG-IP's https:// URL (device_driver = bigip)")
    if len(hosts) != (2 if pair else 1):
        raise cfg.ConfigError(f"[device] bigip_hosts must name {'two devices' if pair else 'one device'} "
                              f"with bigip_ha_mode = {'pair' if pair else 'standalone'} (it names {len(hosts)})")


def _tls(ca_file: str, verify: bool) -> ssl.SSLContext | bool:
    """What httpx verifies the devices with; ConfigError when ca_file is unusable."""
    if not verify:
        LOG.warning("bigip_verify = false: the BIG-IP's certificate is not verified")
        return False
    return trust(ca_file, "bigip_ca_file")


def _delays(deadline: float) -> Iterator[float | None]:
    """Backoff delays until ``deadline``, then one None (the last attempt's turn to fail)."""
    delay = FIRST_POLL
    while time.monotonic() + delay < deadline:
        yield delay
        delay = min(delay * POLL_GROWTH, LONGEST_POLL)
    yield None


def _json_of(response: httpx.Response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _nested_value(stats: dict, key: str) -> str:
    """A ``description`` from an iControl nested-stats answer (``/mgmt/tm/sys/version``)."""
    for entries in _entries(stats):
        value = _stat(entries, key)
        if value is not None:
            return str(value)
    return ""


def fault(response: httpx.Response) -> str:
    """The message of an iControl or AS3 error answer, short."""
    body = _json_of(response)
    parts = [body.get("message"), *(body.get("errors") or [])] if body else [response.text]
    return "; ".join(str(p) for p in parts if p)[:500] or "(no message)"


def version(text: str) -> tuple[int, ...]:
    """(3, 45, 0) from "3.45.0"; () when there is no version to read."""
    match = re.match(r"(\d+(?:\.\d+)*)", text or "")
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()
