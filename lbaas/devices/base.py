"""The one interface every device driver implements.

An agent holds one driver instance for the devices of its group and calls it from several
threads, one load balancer at a time per id. The desired state passed to ``converge`` and
the status document returned by ``status`` are the documents of the device API
(``lbaas.device.schema`` and ``lbaas.device.status``).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping


class DeviceNotReady(Exception):
    """verify() failed; the message says which device and what is missing."""


class DeviceError(Exception):
    """A converge or delete (or a query) failed; the message says where and why."""


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
        """id -> revision of what the device(s) hold (union over devices)."""

    @abc.abstractmethod
    def status(self, loadbalancer_id: str) -> dict | None:
        """Operating statuses and counters of one load balancer; None if unknown."""

    def capacity_score(self) -> float:
        """How full the device(s) are: 0.0 empty, 1.0 or more full."""
        return 0.0
