"""The agent-side driver of the HAProxy device service (``lbaas.appliance``).

A group is a list of device services that all hold the same load balancers (for example the
two hosts of an active/standby pair): a change must reach every one of them.

Options (the agent's ``[device]`` section):

* ``devices`` – comma-separated base URLs, e.g. ``http://127.0.0.1:9443`` (required)
* ``device_token`` – the devices' shared token (required)
* ``ca_file`` – CA bundle to verify ``https://`` devices (default: the system's)
* ``timeout`` – seconds per request (default 10)
* ``max_loadbalancers`` – per device, for ``capacity_score`` (default 0 = unlimited)
* ``allow_plaintext_keys`` – send private keys to ``http://`` devices too (default false:
  a desired state holding a key is refused for them, so keys cross only TLS)

A device that answers 400, 409 or 422 refused the document (``DeviceRejected``); no answer,
401 or 5xx is a device failure (``DeviceError``) that the agent retries once the device answers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import httpx

from lbaas import config as cfg
from lbaas import constants as c
from lbaas import wire
from lbaas.agent.drivers.base import DeviceDriver, DeviceError, DeviceNotReady, DeviceRejected, trust

LOG = logging.getLogger(__name__)
# The [device] options this driver reads (lbaas.config declares them).
_OPTIONS = ("devices", "device_token", "ca_file", "timeout", "max_loadbalancers", "allow_plaintext_keys")


def holds_private_keys(desired: wire.Present) -> bool:
    """Whether any listener or pool of ``desired`` carries a certificate with its key."""
    return any(ln.get("tls") for ln in desired["listeners"]) or any(
        (tls := p.get("tls")) is not None and tls["certificate"] is not None for p in desired["pools"])


class HAProxyDriver(DeviceDriver):
    """Talks to every device service of the group over HTTP(S)."""

    name = "haproxy"

    def __init__(self, options: Mapping[str, Any]) -> None:
        """``options``: the ``[device]`` section (typed, or INI strings as tests pass them).

        Raises ``ValueError`` (a ``ConfigError`` naming the option) when an option is missing
        or malformed, or the ca_file cannot be read.
        """
        super().__init__(options)
        values = cfg.typed("device", options, _OPTIONS)
        self.devices = [url.rstrip("/") for url in values["devices"]]
        if not self.devices:
            raise cfg.ConfigError("[device] devices must name at least one device URL "
                                  "(device_driver = haproxy)")
        token = values["device_token"]
        if not token:
            raise cfg.ConfigError("[device] device_token is required (device_driver = haproxy)")
        self.timeout = values["timeout"]
        self.max_loadbalancers = values["max_loadbalancers"] or 0
        self.allow_plaintext_keys = values["allow_plaintext_keys"]
        verify = trust(values["ca_file"], "ca_file")
        self._clients = {url: httpx.Client(base_url=url, timeout=self.timeout, verify=verify,
                                           headers={c.DEVICE_AUTH_HEADER: token})
                         for url in self.devices}

    def close(self) -> None:
        """Close the HTTP connections."""
        for client in self._clients.values():
            client.close()

    # --- DeviceDriver ----------------------------------------------------------------

    def verify(self) -> wire.Inventory:
        """Every device answers, runs HAProxy >= 2.4 and offers the required capabilities.

        Raises ``DeviceNotReady`` naming each device that falls short and why.  Each request
        waits at most ``DEVICE_PROBE_TIMEOUT``: the agent verifies again after every outage.
        """
        problems: list[str] = []
        versions: list[str] = []
        offered: list[dict] = []
        for url in self.devices:
            try:
                info = self._json(url, "GET", "/", DeviceNotReady, timeout=self._probe_timeout)
            except DeviceNotReady as exc:
                problems.append(str(exc))
                continue
            versions.append(str(info.get("haproxy_version")))
            offered.append(info.get("capabilities") or {})
            problems.extend(_shortcomings(url, info))
        if problems:
            raise DeviceNotReady("; ".join(problems))
        try:
            held = {e["id"] for entries in self._inventories(DeviceError, timeout=self._probe_timeout).values()
                    for e in entries}
        except DeviceError as exc:
            raise DeviceNotReady(str(exc)) from exc
        # What every device of the group offers: the API refuses the rest.
        capabilities = {key: [v for v in values if all(v in o.get(key, ()) for o in offered)]
                        for key, values in offered[0].items()}
        return wire.Inventory(devices=len(self.devices), haproxy_version=min(versions, key=_version),
                              loadbalancers=len(held), capabilities=capabilities)

    def converge(self, desired: wire.Present) -> None:
        """PUT the desired state to every device; all must accept it.

        Raises ``DeviceError`` naming every device that failed and its answer:
        ``DeviceRejected`` when any device refused the document (retrying cannot help).
        """
        lb_id = desired["id"]
        self._check_channel(desired)
        failures: list[DeviceError] = []
        for url in self.devices:
            try:
                result = self._json(url, "PUT", f"/loadbalancers/{lb_id}", DeviceError,
                                    json=desired)
                LOG.debug("%s on %s: %s", lb_id, url, result.get("applied"))
            except DeviceError as exc:
                failures.append(exc)
        if failures:
            rejected = any(isinstance(exc, DeviceRejected) for exc in failures)
            raise (DeviceRejected if rejected else DeviceError)("; ".join(map(str, failures)))

    def _check_channel(self, desired: wire.Present) -> None:
        """DeviceRejected when private keys would cross plain HTTP without the operator's leave."""
        clear = [url for url in self.devices if url.startswith("http://")]
        if clear and not self.allow_plaintext_keys and holds_private_keys(desired):
            raise DeviceRejected(f"refusing to send private keys to {', '.join(clear)} over plain HTTP: "
                                 f"serve the appliance over HTTPS ([device] tls_cert, tls_key) or set "
                                 f"[device] allow_plaintext_keys on the agent")

    def delete(self, loadbalancer_id: str) -> None:
        """DELETE on every device (an unknown id is fine). Raises ``DeviceError``."""
        failures = []
        for url in self.devices:
            try:
                self._call(url, "DELETE", f"/loadbalancers/{loadbalancer_id}", DeviceError,
                           ok=(204, 404))
            except DeviceError as exc:
                failures.append(str(exc))
        if failures:
            raise DeviceError("; ".join(failures))

    def list_loadbalancers(self) -> dict[str, int]:
        """id -> revision over all devices; where devices disagree, the lowest revision
        (so the agent sees the group as behind and converges again).

        Raises ``DeviceError`` when a device cannot be asked.
        """
        held: dict[str, int] = {}
        for url, entries in self._inventories(DeviceError).items():
            for entry in entries:
                lb_id, revision = entry["id"], int(entry["revision"])
                held[lb_id] = min(revision, held.get(lb_id, revision))
        return held

    def report(self, loadbalancer_id: str) -> wire.DeviceReport | None:
        """The report from the first device that holds the load balancer; None when no
        device holds it. Raises ``DeviceError`` when no device could be asked."""
        errors = []
        for url in self.devices:
            try:
                response = self._call(url, "GET", f"/loadbalancers/{loadbalancer_id}/status",
                                      DeviceError, ok=(200, 404))
            except DeviceError as exc:
                errors.append(str(exc))
                continue
            if response.status_code == 200:
                return device_report(response.json())
        if len(errors) == len(self.devices):
            raise DeviceError("; ".join(errors))
        return None

    def capacity_score(self) -> float:
        """Load balancers on the fullest device / ``max_loadbalancers`` (0.0 when unlimited);
        1.0 when a device cannot be asked, so nothing new is placed on a broken group."""
        if self.max_loadbalancers <= 0:
            return 0.0
        try:
            inventories = self._inventories(DeviceError)
        except DeviceError as exc:
            LOG.warning("capacity unknown, reporting full: %s", exc)
            return 1.0
        return self._score(inventories)

    def probe(self) -> wire.Probe:
        """``GET /loadbalancers`` on every device with a short timeout: how many load
        balancers the group holds and how full it is. Raises ``DeviceError``."""
        inventories = self._inventories(DeviceError, timeout=self._probe_timeout)
        held = {entry["id"] for entries in inventories.values() for entry in entries}
        return wire.Probe(loadbalancers=len(held), capacity_score=self._score(inventories))

    @property
    def _probe_timeout(self) -> float:
        return min(self.timeout, c.DEVICE_PROBE_TIMEOUT)

    def _score(self, inventories: dict[str, list[dict]]) -> float:
        if self.max_loadbalancers <= 0:
            return 0.0
        return max(len(v) for v in inventories.values()) / self.max_loadbalancers

    # --- HTTP --------------------------------------------------------------------------

    def _inventories(self, error: type[Exception], **kwargs: Any) -> dict[str, list[dict]]:
        return {url: self._json(url, "GET", "/loadbalancers", error, **kwargs)["loadbalancers"]
                for url in self.devices}

    def _json(self, url: str, method: str, path: str, error: type[Exception],
              **kwargs: Any) -> dict:
        response = self._call(url, method, path, error, ok=(200,), **kwargs)
        try:
            return response.json()
        except ValueError:
            raise error(f"device {url}: {method} {path} answered with invalid JSON") from None

    def _call(self, url: str, method: str, path: str, error: type[Exception],
              ok: tuple[int, ...], **kwargs: Any) -> httpx.Response:
        """One request; raises ``error`` naming the device unless the status is in ``ok``."""
        try:
            response = self._clients[url].request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise error(f"device {url} is unreachable: {str(exc) or type(exc).__name__}") from exc
        if response.status_code == 401:
            raise error(f"device {url} rejected the device_token (401)")
        if response.status_code not in ok:
            if error is DeviceError and response.status_code in c.DEVICE_REJECTED_STATUSES:
                error = DeviceRejected
            raise error(f"device {url}: {method} {path} failed with "
                        f"{response.status_code}: {_fault(response)}")
        return response


def _shortcomings(url: str, info: dict) -> list[str]:
    """What device ``url`` (its ``GET /`` answer ``info``) lacks, as messages."""
    problems = []
    version = str(info.get("haproxy_version"))
    if _version(version) < c.DEVICE_MIN_HAPROXY_VERSION:
        wanted = ".".join(map(str, c.DEVICE_MIN_HAPROXY_VERSION))
        problems.append(f"device {url} runs HAProxy {version}, at least {wanted} is needed")
    offered = info.get("capabilities") or {}
    for kind, required in c.DEVICE_REQUIRED_CAPABILITIES.items():
        missing = sorted(set(required) - set(offered.get(kind) or ()))
        if missing:
            problems.append(f"device {url} lacks {kind}: {', '.join(missing)}")
    return problems


def _version(text: str) -> tuple[int, ...]:
    """(2, 6, 12) from "2.6.12"; () when there is no version to read."""
    match = re.match(r"(\d+(?:\.\d+)*)", text or "")
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


def _fault(response: httpx.Response) -> str:
    try:
        return str(response.json().get("faultstring"))
    except (ValueError, AttributeError):
        return response.text[:200]


def device_report(status: wire.StatusDocument) -> wire.DeviceReport:
    """The appliance's status document as the agent reports it: the one translation."""
    pools = status["pools"]
    operating = wire.OperatingReport(
        loadbalancer=status["operating_status"],
        listeners={x["id"]: x["operating_status"] for x in status["listeners"]},
        pools={p["id"]: p["operating_status"] for p in pools},
        members={x["id"]: x["operating_status"] for p in pools for x in p["members"]},
        healthmonitors={})  # the appliance reports none: a server keeps its defaults
    return wire.DeviceReport(operating=operating, stats=status["stats"], listener_stats=status["listener_stats"])
