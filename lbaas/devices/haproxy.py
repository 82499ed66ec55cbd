"""The agent-side driver of the HAProxy device service (``lbaas.device``).

A group is a list of device services that all hold the same load balancers (for example the
two hosts of an active/standby pair): a change must reach every one of them.

Options (the agent's ``[device]`` section):

* ``devices`` – comma-separated base URLs, e.g. ``http://127.0.0.1:9443`` (required)
* ``device_token`` – the devices' shared token (required)
* ``ca_file`` – CA bundle to verify ``https://`` devices (default: the system's)
* ``timeout`` – seconds per request (default 10)
* ``max_loadbalancers`` – per device, for ``capacity_score`` (default 0 = unlimited)
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Mapping
from typing import Any

import httpx

from lbaas import constants as c
from lbaas.devices.base import DeviceDriver, DeviceError, DeviceNotReady

LOG = logging.getLogger(__name__)


class HAProxyDriver(DeviceDriver):
    """Talks to every device service of the group over HTTP(S)."""

    name = "haproxy"

    def __init__(self, options: Mapping[str, str]) -> None:
        """Raises ``ValueError`` when an option is missing or malformed."""
        super().__init__(options)
        self.devices = [u.strip().rstrip("/") for u in options.get("devices", "").split(",")
                        if u.strip()]
        if not self.devices:
            raise ValueError("[device] devices must name at least one device URL")
        token = options.get("device_token", "")
        if not token:
            raise ValueError("[device] device_token is required")
        self.timeout = float(options.get("timeout", "10"))
        self.max_loadbalancers = int(options.get("max_loadbalancers", "0"))
        verify: ssl.SSLContext | bool = True
        if options.get("ca_file"):
            verify = ssl.create_default_context(cafile=options["ca_file"])
        self._clients = {url: httpx.Client(base_url=url, timeout=self.timeout, verify=verify,
                                           headers={c.DEVICE_AUTH_HEADER: token})
                         for url in self.devices}

    def close(self) -> None:
        """Close the HTTP connections."""
        for client in self._clients.values():
            client.close()

    # --- DeviceDriver ----------------------------------------------------------------

    def verify(self) -> dict:
        """Every device answers, runs HAProxy >= 2.4 and offers the required capabilities.

        Raises ``DeviceNotReady`` naming each device that falls short and why.
        """
        problems: list[str] = []
        versions: list[str] = []
        offered: list[dict] = []
        for url in self.devices:
            try:
                info = self._json(url, "GET", "/", DeviceNotReady)
            except DeviceNotReady as exc:
                problems.append(str(exc))
                continue
            versions.append(str(info.get("haproxy_version")))
            offered.append(info.get("capabilities") or {})
            problems.extend(_shortcomings(url, info))
        if problems:
            raise DeviceNotReady("; ".join(problems))
        try:
            held = self.list_loadbalancers()
        except DeviceError as exc:
            raise DeviceNotReady(str(exc)) from exc
        # What every device of the group offers: the API refuses the rest.
        capabilities = {key: [v for v in values if all(v in o.get(key, ()) for o in offered)]
                        for key, values in offered[0].items()}
        return {"devices": len(self.devices), "haproxy_version": min(versions, key=_version),
                "loadbalancers": len(held), "capabilities": capabilities}

    def converge(self, desired: dict) -> None:
        """PUT the desired state to every device; all must accept it.

        Raises ``DeviceError`` naming every device that failed and its answer.
        """
        lb_id = desired["id"]
        failures = []
        for url in self.devices:
            try:
                result = self._json(url, "PUT", f"/loadbalancers/{lb_id}", DeviceError,
                                    json=desired)
                LOG.debug("%s on %s: %s", lb_id, url, result.get("applied"))
            except DeviceError as exc:
                failures.append(str(exc))
        if failures:
            raise DeviceError("; ".join(failures))

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

    def status(self, loadbalancer_id: str) -> dict | None:
        """The status document from the first device that holds the load balancer; None
        when no device holds it. Raises ``DeviceError`` when no device could be asked."""
        errors = []
        for url in self.devices:
            try:
                response = self._call(url, "GET", f"/loadbalancers/{loadbalancer_id}/status",
                                      DeviceError, ok=(200, 404))
            except DeviceError as exc:
                errors.append(str(exc))
                continue
            if response.status_code == 200:
                return response.json()
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
        return max(len(v) for v in inventories.values()) / self.max_loadbalancers

    # --- HTTP --------------------------------------------------------------------------

    def _inventories(self, error: type[Exception]) -> dict[str, list[dict]]:
        return {url: self._json(url, "GET", "/loadbalancers", error)["loadbalancers"]
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
