"""An emulated BIG-IP served over HTTP(S) from a thread, and a pair of them.

See the package docstring for the public surface; this module holds the classes.
"""

from __future__ import annotations

import copy
import tempfile
from typing import Any

from lbaas.appliance import selfsigned
from lbaas.runtime import HttpServer, free_port
from lbaas.testing.bigip import ltm
from lbaas.testing.bigip.device import Device, DeviceGroup
from lbaas.testing.bigip.icontrol import create_app


class BigIPEmulator:
    """One BIG-IP: ``start()``, ``url``, knobs, records, ``stop()``."""

    def __init__(self, *, name: str = "bigip1", host: str = "127.0.0.1", port: int | None = None,
                 tls: bool = True, username: str = "admin", password: str = "admin",
                 tmos_version: str = "15.1.10", as3_version: str = "3.50.0",
                 cert_dir: str | None = None) -> None:
        self.device = Device(name, username, password, tmos_version=tmos_version, as3_version=as3_version)
        self.host = host
        self.port = port or free_port(host)
        self.tls = tls
        self._cert_dir = cert_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.certificate: str | None = None  # the PEM a client verifies the emulator with
        self._key: str | None = None
        self._server: HttpServer | None = None

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.device.name

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> None:
        if self.tls and self.certificate is None:
            if self._cert_dir is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="bigip-emulator-")
                self._cert_dir = self._tmp.name
            self.certificate, self._key = selfsigned.ensure(self._cert_dir, self.host)
        self._listen()

    def stop(self) -> None:
        self.go_away()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def go_away(self) -> None:
        """Close the listening socket (connections are refused) and the open ones."""
        if self._server is not None:
            # A vanished device does not wait for its clients to hang up.
            self._server.server.force_exit = True
            self._server.stop()
            self._server = None

    def come_back(self) -> None:
        """Listen again on the same port, with the same state."""
        if self._server is None:
            self._listen()

    def _listen(self) -> None:
        options: dict[str, Any] = {"lifespan": "off", "log_level": "warning", "log_config": None,
                                   "access_log": False, "timeout_graceful_shutdown": 1}
        if self.tls:
            options.update(ssl_certfile=self.certificate, ssl_keyfile=self._key)
        server = HttpServer(f"BIG-IP emulator {self.name}", create_app(self.device), self.host,
                            self.port, timeout=30, **options)
        server.start()
        self._server = server

    def __enter__(self) -> BigIPEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- knobs ---------------------------------------------------------------------------

    def set(self, **knobs: Any) -> None:
        """Turn knobs by name: latency, task_duration, token_lifetime, as3_installed,
        ltm_provisioned."""
        with self.device.lock:
            for knob, value in knobs.items():
                if knob not in ("latency", "task_duration", "token_lifetime", "as3_installed",
                                "ltm_provisioned"):
                    raise AttributeError(f"no knob {knob!r}")
                setattr(self.device, knob, value)

    @property
    def latency(self) -> float:
        return self.device.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self.set(latency=seconds)

    @property
    def task_duration(self) -> float:
        return self.device.task_duration

    @task_duration.setter
    def task_duration(self, seconds: float) -> None:
        self.set(task_duration=seconds)

    @property
    def token_lifetime(self) -> int:
        return self.device.token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, seconds: int) -> None:
        self.set(token_lifetime=seconds)

    @property
    def as3_installed(self) -> bool:
        return self.device.as3_installed

    @as3_installed.setter
    def as3_installed(self, installed: bool) -> None:
        self.set(as3_installed=installed)

    @property
    def ltm_provisioned(self) -> bool:
        return self.device.ltm_provisioned

    @ltm_provisioned.setter
    def ltm_provisioned(self, provisioned: bool) -> None:
        self.set(ltm_provisioned=provisioned)

    def fail_next(self, count: int = 1, status: int = 503, path: str | None = None) -> None:
        """Answer the next ``count`` requests (to paths starting with ``path``) with ``status``."""
        self.device.fail_next(count, status, path)

    def expire_tokens(self) -> None:
        self.device.expire_tokens()

    def set_member_state(self, address: str, port: int, state: str | None) -> None:
        """Force a member's availability (available, offline, unknown); None: derived again."""
        if state is not None and state not in ltm.AVAILABILITY:
            raise ValueError(f"state must be one of {ltm.AVAILABILITY}")
        with self.device.lock:
            if state is None:
                self.device.health.states.pop((address, port), None)
            else:
                self.device.health.states[(address, port)] = state

    def set_default_member_state(self, state: str) -> None:
        """The availability of monitored members nobody forced (default: available)."""
        if state not in ltm.AVAILABILITY:
            raise ValueError(f"state must be one of {ltm.AVAILABILITY}")
        with self.device.lock:
            self.device.health.default = state

    def set_counters(self, full_path: str, **values: int) -> None:
        """Stats counters of a virtual or pool (``/T/A/name``) or member
        (``/T/A/pool/address:port``), e.g. ``**{"clientside.curConns": 3}``."""
        with self.device.lock:
            self.device.counters.setdefault(full_path, {}).update(values)

    # --- records -------------------------------------------------------------------------

    def declaration(self, tenant: str | None = None) -> dict[str, Any] | None:
        """The current whole declaration ({} when empty), or one tenant's content (None
        when absent)."""
        with self.device.lock:
            self.device.settle()
            if tenant is None:
                return self.device.declaration()
            found = self.device.tenants.get(tenant)
            return copy.deepcopy(found) if found is not None else None

    def tenants(self) -> list[str]:
        with self.device.lock:
            self.device.settle()
            return list(self.device.tenants)

    def history(self, tenant: str) -> list[dict[str, Any] | None]:
        """Every accepted content of ``tenant`` in order; None marks a removal."""
        with self.device.lock:
            self.device.settle()
            return copy.deepcopy(self.device.history.get(tenant, []))

    def calls(self, path: str | None = None, method: str | None = None) -> int:
        """How many requests reached ``path`` (all paths when None) with ``method``."""
        with self.device.lock:
            return sum(count for key, count in self.device.calls.items()
                       if (method is None or key.split(" ", 1)[0] == method)
                       and (path is None or key.split(" ", 1)[1] == path))

    def virtuals(self) -> list[ltm.Virtual]:
        return self.device.virtuals()

    def pools(self) -> list[ltm.Pool]:
        return self.device.pools()


class BigIPPair:
    """Two emulators in one sync-failover device group; the first starts active."""

    def __init__(self, group: str = "failover_group", *, refuse_standby_writes: bool = True,
                 **options: Any) -> None:
        # Both members serve one certificate (they listen on one address): two self-signed
        # certificates with one subject could not both be trusted through one CA file.
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if options.get("tls", True) and options.get("cert_dir") is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="bigip-pair-")
            options["cert_dir"] = self._tmp.name
        self.first = BigIPEmulator(name="bigip1", **options)
        self.second = BigIPEmulator(name="bigip2", **options)
        self.group = DeviceGroup(group, [self.first.device, self.second.device], refuse_standby_writes)

    @property
    def certificate(self) -> str | None:
        """The PEM both members serve (None over http)."""
        return self.first.certificate

    @property
    def members(self) -> tuple[BigIPEmulator, BigIPEmulator]:
        return self.first, self.second

    @property
    def active(self) -> BigIPEmulator:
        return self.first if self.group.active is self.first.device else self.second

    @property
    def standby(self) -> BigIPEmulator:
        return self.second if self.active is self.first else self.first

    def start(self) -> None:
        self.first.start()
        try:
            self.second.start()
        except BaseException:
            self.first.stop()
            raise

    def stop(self) -> None:
        self.second.stop()
        self.first.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def set(self, **knobs: Any) -> None:
        """Turn the same knobs on both members (see BigIPEmulator.set)."""
        for member in self.members:
            member.set(**knobs)

    def failover(self) -> BigIPEmulator:
        """Swap roles; returns the new active member."""
        self.group.failover()
        return self.active

    def in_sync(self) -> bool:
        return self.group.in_sync()

    @property
    def syncs(self) -> int:
        """How many config-syncs ran."""
        return self.group.syncs

    def __enter__(self) -> BigIPPair:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
