"""The one interface every device driver implements.

An agent holds one driver instance for the devices of its group and calls it from several
threads, one load balancer at a time per id. What it is given and what it returns are the
documents of ``lbaas.wire``: ``converge`` takes the desired state as a server sends it,
``report`` returns the operating statuses and counters as the agent sends them on, each
driver translating from its device's own form in one place.

Failures say whose fault they are: ``DeviceRejected`` when the device answered and refused
the document (the same document fails again: nobody retries it by itself), any other
``DeviceError`` when the device could not be reached or failed (the agent converges again
once it answers).  ``probe`` is the agent's cheap periodic look at the device; it must
return or raise within ``constants.DEVICE_PROBE_TIMEOUT`` per device.
"""

from __future__ import annotations

import abc
import ssl
from collections.abc import Mapping

from lbaas import config as cfg
from lbaas import wire


def trust(ca_file: str, option: str) -> ssl.SSLContext | bool:
    """What httpx verifies https:// devices with: the system's CAs, or those of ``ca_file``;
    ``ConfigError`` naming the ``[device]`` ``option`` when ca_file is unusable."""
    if not ca_file:
        return True
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise cfg.ConfigError(f"[device] {option} {ca_file} cannot be used: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None


class DeviceNotReady(Exception):
    """verify() failed; the message says which device and what is missing."""


class DeviceError(Exception):
    """A converge or delete (or a query) failed; the message says where and why."""


class DeviceRejected(DeviceError):
    """The device answered and refused the desired state (invalid, clashing with another
    load balancer, or refused by HAProxy); the old configuration stays in place."""


class DeviceDriver(abc.ABC):
    """A data plane as the agent sees it."""

    name: str

    def __init__(self, options: Mapping[str, str]) -> None:
        """``options`` is the agent's ``[device]`` INI section, values as strings, plus
        ``environment`` (the agent's ``environment_prefix``)."""
        self.options = options

    @abc.abstractmethod
    def verify(self) -> wire.Inventory:
        """Check the minimal requirements on every device; return an inventory summary
        (e.g. ``{"devices": 2, "haproxy_version": "2.6.12", "loadbalancers": 12}``).

        Raises ``DeviceNotReady``.
        """

    @abc.abstractmethod
    def converge(self, desired: wire.Present) -> None:
        """Make the device(s) hold exactly this load balancer; idempotent.

        Raises ``DeviceError``.
        """

    @abc.abstractmethod
    def delete(self, loadbalancer_id: str) -> None:
        """Remove one load balancer from the device(s); idempotent. Raises ``DeviceError``."""

    @abc.abstractmethod
    def list_loadbalancers(self) -> dict[str, int]:
        """id -> revision of what the device(s) hold (union over devices). Raises ``DeviceError``."""

    @abc.abstractmethod
    def report(self, loadbalancer_id: str) -> wire.DeviceReport | None:
        """Operating statuses and counters of one load balancer; None if the device(s)
        do not hold it. Raises ``DeviceError``."""

    def capacity_score(self) -> float:
        """How full the device(s) are: 0.0 empty, 1.0 or more full."""
        return 0.0

    def close(self) -> None:
        """Let go of connections to the device(s); the agent is stopping. Must not raise."""

    def probe(self) -> wire.Probe:
        """A cheap check that every device answers, with a short timeout: how many load
        balancers the device(s) hold and how full they are. Raises ``DeviceError``."""
        held = self.list_loadbalancers()
        return wire.Probe(loadbalancers=len(held), capacity_score=self.capacity_score())
