"""One emulated BIG-IP's state, without HTTP: accounts and tokens, AS3 tenants and
tasks, fault knobs, records; and the device group two of them form.

Contracts:

- Every public method takes the device's lock: knobs may be turned from any thread
  while the server serves.
- AS3 processes one declaration at a time, as the device does with burst handling off:
  ``submit`` refuses (``Busy``, answered 503) while another task is in progress.  A task
  stays "in progress" for ``task_duration`` seconds and is applied by the first
  ``settle()`` after that (every request settles first), in submission order.
- Applying a declaration: each tenant it names (or those of the URL's list) is replaced
  wholly by its content; a tenant without applications is removed; identical content
  is "no change"; ``updateMode: complete`` also removes the tenants it does not name.
  A schema fault fails the whole declaration (422, nothing applied); a tenant whose
  virtuals would share an address, port and protocol with another virtual fails alone
  (422 "declaration failed"), the others still apply (the answer is then 207).
  As AS3, the device keeps the last ``MAX_TASKS`` task records.
- ``history[tenant]`` lists every accepted content of a tenant in order (``None`` for
  a removal); ``calls`` counts requests by ``"METHOD /path"``.
- In a ``DeviceGroup`` one device is active; ``config_sync`` copies the sender's tenants
  to the other members; the group is "In Sync" when all members hold the same tenants.
"""

from __future__ import annotations

import copy
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from lbaas.testing.bigip import ltm
from lbaas.testing.bigip.schema import DeclarationInvalid, applications, tenant_names, validate

MAX_TOKEN_TIMEOUT: Final = 36000  # seconds; iControl refuses longer token lifetimes
MAX_TOKENS: Final = 100  # live tokens per user; a client logging in per request runs out
MAX_TASKS: Final = 25  # AS3 forgets older task records
BUSY_MESSAGE: Final = ("Error: Configuration operation in progress on device {host}, "
                       "please try again in 2 minutes")


class Busy(Exception):
    """AS3 is processing another declaration."""


class TooManyTokens(Exception):
    """The user holds as many live tokens as the device allows."""


class StandbyRefusal(Exception):
    """A write reached the standby member of a device group."""


@dataclass
class Task:
    """One AS3 operation: ``deploy`` a declaration (optionally limited to ``only``
    tenants) or ``remove`` tenants (``None``: all)."""

    id: str
    ready_at: float
    deploy: dict[str, Any] | None = None
    only: list[str] | None = None
    remove: list[str] | None = None
    sync_group: str | None = None
    results: list[dict[str, Any]] | None = None  # None while in progress
    declaration: dict[str, Any] = field(default_factory=dict)
    status: int = 0

    def record(self) -> dict[str, Any]:
        """The /task record: "in progress" until settled, then the final results."""
        results = self.results if self.results is not None else [
            {"code": 0, "message": "in progress", "tenant": "", "host": "", "runTime": 0}]
        return {"id": self.id, "results": results, "declaration": self.declaration,
                "selfLink": f"https://localhost/mgmt/shared/appsvcs/task/{self.id}"}


@dataclass
class Failure:
    status: int
    path: str | None  # only requests whose path starts with this; None: any


class Device:
    """One BIG-IP: its accounts, AS3 state, LTM health knobs and records."""

    def __init__(self, name: str, username: str, password: str, *,
                 tmos_version: str = "15.1.10", as3_version: str = "3.50.0") -> None:
        self.name = name
        self.hostname = f"{name}.example.net"
        self.username = username
        self.password = password
        self.tmos_version = tmos_version
        self.as3_version = as3_version
        self.lock = threading.RLock()
        # knobs
        self.latency = 0.0
        self.task_duration = 0.0
        self.token_lifetime = 1200
        self.as3_installed = True
        self.ltm_provisioned = True
        self.health = ltm.Health()
        self.counters: dict[str, dict[str, int]] = {}
        self._failures: list[Failure] = []
        # state and records
        self.group: DeviceGroup | None = None
        self.tenants: dict[str, dict[str, Any]] = {}
        self.declaration_id = ""
        self.schema_version = "3.0.0"
        self.history: dict[str, list[dict[str, Any] | None]] = {}
        self.tasks: dict[str, Task] = {}
        self.tokens: dict[str, float] = {}
        self.calls: Counter[str] = Counter()

    # --- knobs and records -------------------------------------------------------------

    def fail_next(self, count: int, status: int = 503, path: str | None = None) -> None:
        with self.lock:
            self._failures.extend(Failure(status, path) for _ in range(count))

    def take_failure(self, path: str) -> int | None:
        """The status the next failure knob imposes on a request to ``path``, if any."""
        with self.lock:
            for index, failure in enumerate(self._failures):
                if failure.path is None or path.startswith(failure.path):
                    del self._failures[index]
                    return failure.status
            return None

    def record_call(self, method: str, path: str) -> None:
        with self.lock:
            self.calls[f"{method} {path}"] += 1

    # --- authentication ----------------------------------------------------------------

    def credentials_match(self, username: str, password: str) -> bool:
        # bytes: compare_digest refuses non-ASCII str, and callers send anything
        def raw(text: str) -> bytes:
            return text.encode("utf-8", "surrogatepass")
        return (secrets.compare_digest(raw(username), raw(self.username))
                & secrets.compare_digest(raw(password), raw(self.password)))

    def login(self, username: str, password: str) -> dict[str, Any] | None:
        """A token record for valid credentials, else None.  TooManyTokens when the user
        already holds MAX_TOKENS live tokens."""
        if not self.credentials_match(username, password):
            return None
        token = secrets.token_hex(13).upper()
        with self.lock:
            now = time.monotonic()
            self.tokens = {live: expiry for live, expiry in self.tokens.items() if expiry > now}
            if len(self.tokens) >= MAX_TOKENS:
                raise TooManyTokens("maximum active login tokens")
            self.tokens[token] = now + self.token_lifetime
            return self.token_record(token)

    def token_record(self, token: str) -> dict[str, Any]:
        with self.lock:
            remaining = max(0, round(self.tokens.get(token, 0) - time.monotonic()))
        now = time.time()
        return {"token": token, "name": token, "userName": self.username,
                "authProviderName": "tmos", "timeout": remaining,
                "startTime": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)),
                "expirationMicros": int((now + remaining) * 1e6),
                "kind": "shared:authz:tokens:authtokenitemstate",
                "selfLink": f"https://localhost/mgmt/shared/authz/tokens/{token}"}

    def token_valid(self, token: str) -> bool:
        with self.lock:
            expiry = self.tokens.get(token)
            if expiry is not None and expiry <= time.monotonic():
                del self.tokens[token]
                expiry = None
            return expiry is not None

    def extend_token(self, token: str, timeout: int) -> bool:
        with self.lock:
            if not self.token_valid(token) or not 0 < timeout <= MAX_TOKEN_TIMEOUT:
                return False
            self.tokens[token] = time.monotonic() + timeout
            return True

    def revoke_token(self, token: str) -> None:
        with self.lock:
            self.tokens.pop(token, None)

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    # --- high availability -------------------------------------------------------------

    @property
    def failover_state(self) -> str:
        return "active" if self.group is None else self.group.state_of(self)

    def refuse_standby_write(self) -> None:
        """A real standby would accept the write and leave the group "Changes Pending";
        the emulator refuses it (409) so a driver writing to the wrong member fails loudly."""
        if self.group is not None and self.group.refuse_standby_writes and self.failover_state != "active":
            raise StandbyRefusal(f"{self.name} is the standby member of device group "
                                 f"{self.group.name}: declarations go to the active member")

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            self.settle()
            return {"tenants": copy.deepcopy(self.tenants), "id": self.declaration_id,
                    "schemaVersion": self.schema_version}

    def load(self, snapshot: Mapping[str, Any]) -> None:
        """Take a configuration synced from a peer."""
        with self.lock:
            self.tenants = copy.deepcopy(dict(snapshot["tenants"]))
            self.declaration_id = snapshot["id"]
            self.schema_version = snapshot["schemaVersion"]

    # --- AS3 ---------------------------------------------------------------------------

    def submit(self, *, deploy: dict[str, Any] | None = None, only: list[str] | None = None,
               remove: list[str] | None = None, sync_group: str | None = None) -> Task:
        """Queue one AS3 operation; Busy while another is in progress."""
        with self.lock:
            self.settle()
            if any(task.results is None for task in self.tasks.values()):
                raise Busy(BUSY_MESSAGE.format(host=self.hostname))
            self.refuse_standby_write()
            task = Task(str(uuid.uuid4()), time.monotonic() + self.task_duration, copy.deepcopy(deploy),
                        only, remove, sync_group)
            self.tasks[task.id] = task
            for old in [t for t in self.tasks.values() if t.results is not None][:-MAX_TASKS or None]:
                del self.tasks[old.id]
            self.settle()
            return task

    def settle(self) -> None:
        """Apply every task whose time has come, oldest first."""
        with self.lock:
            for task in self.tasks.values():
                if task.results is None and task.ready_at <= time.monotonic():
                    self._run(task)

    def task(self, task_id: str) -> Task | None:
        with self.lock:
            self.settle()
            return self.tasks.get(task_id)

    def _run(self, task: Task) -> None:
        try:
            self._apply(task)
        except Exception as exc:  # an emulator bug must not leave AS3 busy for ever
            task.results = [{"code": 500, "message": f"emulator error: {type(exc).__name__}: {exc}",
                             "tenant": "", "host": "localhost", "runTime": 0}]
            task.status = 500

    def _apply(self, task: Task) -> None:
        started = time.monotonic()
        if task.deploy is not None:
            try:
                validate(task.deploy, self.tenants)
            except DeclarationInvalid as exc:
                task.results = [{"code": 422, "errors": exc.errors, "declarationFullId": "",
                                 "message": "declaration is invalid"}]
                task.status = 422
                return
            results = self._deploy(task.deploy, task.only)
        else:
            results = [self._remove(name) for name in
                       (task.remove if task.remove is not None else list(self.tenants))]
        elapsed = int((time.monotonic() - started) * 1000)
        task.results = [{**result, "host": "localhost", "runTime": elapsed} for result in results] or [
            {"code": 200, "message": "no change", "host": "localhost", "tenant": "", "runTime": 0}]
        task.status = _overall_status([result["code"] for result in task.results])
        task.declaration = self.declaration()
        changed = any(r["message"] == "success" for r in task.results)
        if task.sync_group and changed and self.group and self.group.knows(task.sync_group):
            self.group.config_sync(self, task.sync_group)

    def _deploy(self, declaration: dict[str, Any], only: list[str] | None) -> list[dict[str, Any]]:
        names = [n for n in tenant_names(declaration) if only is None or n in only]
        results = []
        if declaration.get("updateMode") == "complete":
            results += [self._remove(n) for n in list(self.tenants) if n not in names and n != "Common"]
        for name in names:
            results.append(self._tenant(name, declaration[name]))
        if any(r["message"] == "success" for r in results):
            self.declaration_id = str(declaration.get("id", f"autogen_{uuid.uuid4()}"))
            self.schema_version = str(declaration["schemaVersion"])
        return results

    def _tenant(self, name: str, content: dict[str, Any]) -> dict[str, Any]:
        if not applications(content):
            return self._remove(name)
        if self.tenants.get(name) == content:
            return {"code": 200, "message": "no change", "tenant": name}
        refusal = self._refusal(name, content)
        if refusal:
            return {"code": 422, "message": "declaration failed", "response": refusal, "tenant": name}
        self.tenants[name] = copy.deepcopy(content)
        self.history.setdefault(name, []).append(copy.deepcopy(content))
        return {"code": 200, "message": "success", "tenant": name,
                "lineCount": len(json.dumps(content, indent=1).splitlines())}

    def _refusal(self, name: str, content: dict[str, Any]) -> str | None:
        """Why the device would refuse this tenant's configuration, if it would."""
        proposed = [v for v in ltm.virtuals({**self.tenants, name: content}) if v.tenant == name]
        if proposed and not self.ltm_provisioned:
            return f"Virtual Server {proposed[0].full_path} cannot be created: module LTM is not provisioned"
        others = ltm.virtuals({n: t for n, t in self.tenants.items() if n != name})
        for index, virtual in enumerate(proposed):
            for other in others + proposed[:index]:
                if virtual.clashes(other):
                    return (f"Virtual Server {virtual.full_path} illegally shares destination address, "
                            f"source address, service port, ip-protocol, and vlan with Virtual Server "
                            f"{other.full_path}.")
        return None

    def _remove(self, name: str) -> dict[str, Any]:
        if name not in self.tenants:
            return {"code": 200, "message": "no change", "tenant": name}
        del self.tenants[name]
        self.history.setdefault(name, []).append(None)
        return {"code": 200, "message": "success", "tenant": name}

    def declaration(self, only: list[str] | None = None) -> dict[str, Any]:
        """The current declaration as GET /declare shows it ({} without tenants)."""
        with self.lock:
            if not self.tenants:
                return {}
            chosen = {n: copy.deepcopy(t) for n, t in self.tenants.items() if only is None or n in only}
            return {"class": "ADC", "schemaVersion": self.schema_version, "id": self.declaration_id,
                    "updateMode": "selective", "controls": {"archiveTimestamp": _now()}, **chosen}

    # --- LTM read-back -----------------------------------------------------------------

    def virtuals(self) -> list[ltm.Virtual]:
        with self.lock:
            self.settle()
            return ltm.virtuals(self.tenants)

    def pools(self) -> list[ltm.Pool]:
        with self.lock:
            self.settle()
            return ltm.pools(self.tenants)


class DeviceGroup:
    """A sync-failover device group: one active member, the others standby."""

    def __init__(self, name: str, devices: list[Device], refuse_standby_writes: bool = True) -> None:
        self.name = name
        self.devices = devices
        self.refuse_standby_writes = refuse_standby_writes
        self.syncs = 0
        # One lock for the whole group: a sync touches two devices at once, and a single
        # lock cannot be taken in two orders.
        self._lock = threading.RLock()
        self._active = devices[0]
        for device in devices:
            device.group = self
            device.lock = self._lock

    def state_of(self, device: Device) -> str:
        return "active" if device is self._active else "standby"

    @property
    def active(self) -> Device:
        return self._active

    def failover(self) -> Device:
        """Make the next member active (the old active becomes standby)."""
        with self._lock:
            index = self.devices.index(self._active)
            self._active = self.devices[(index + 1) % len(self.devices)]
            return self._active

    def knows(self, name: str) -> bool:
        return name in (self.name, f"/Common/{self.name}")

    def config_sync(self, sender: Device, group: str) -> None:
        """Copy ``sender``'s configuration to the other members."""
        if not self.knows(group):
            raise KeyError(group)
        snapshot = sender.snapshot()
        for device in self.devices:
            if device is not sender:
                device.load(snapshot)
        with self._lock:
            self.syncs += 1

    def in_sync(self) -> bool:
        first, *others = [device.snapshot()["tenants"] for device in self.devices]
        return all(other == first for other in others)


def _overall_status(codes: list[int]) -> int:
    """AS3's answer to a declaration: 200 when every tenant succeeded (or had no change),
    422 when none did, 207 (Multi-Status) when some did."""
    succeeded = sum(code == 200 for code in codes)
    return 200 if succeeded == len(codes) else 422 if succeeded == 0 else 207


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
