"""The one interface every device driver implements.

An agent holds one driver instance for the devices of its group and calls it from several
threads, one load balancer at a time per id. The desired state passed to ``converge`` and
the status document returned by ``status`` are the documents of the device API
(``lbaas.appliance.schema`` and ``lbaas.appliance.status``).

Failures say whose fault they are: ``DeviceRejected`` when the device answered and refused
the document (the same document fails again: nobody retries it by itself), any other
``DeviceError`` when the device could not be reached or failed (the agent converges again
once it answers).  ``probe`` is the agent's cheap periodic look at the device; it must
return or raise within ``constants.DEVICE_PROBE_TIMEOUT`` per device.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping


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
        """``options`` is the agent's ``[device]`` INI section, values as strings."""
        self.options = options

    @abc.abstractmethod
    def verify(self) -> dict:
        """Check the minimal requirements on every device; return an inventory summary
        (e.g. ``{"devices": 2, "haproxy_version": "2.6.12", "loadbalancers": 12}``).

        Raises ``DeviceNotReady``.
        """

    @abc.abstractmethod
    def converge(self, desired: dict) -> None:
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
    def status(self, loadbalancer_id: str) -> dict | None:
        """Operating statuses and counters of one load balancer; None if unknown.
        Raises ``DeviceError``."""

    def capacity_score(self) -> float:
        """How full the device(s) are: 0.0 empty, 1.0 or more full."""
        return 0.0

    def probe(self) -> dict:
        """A cheap check that every device answers, with a short timeout:
        ``{"loadbalancers": n, "capacity_score": x}``. Raises ``DeviceError``."""
        held = self.list_loadbalancers()
        return {"loadbalancers": len(held), "capacity_score": self.capacity_score()}
