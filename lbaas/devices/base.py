"""The one interface every device driver implements."""

from __future__ import annotations

import abc
from collections.abc import Mapping


class DeviceNotReady(Exception):
    """verify() failed; the message says what is missing."""


class DeviceError(Exception):
    """A converge or delete failed; the message says why."""


class DeviceDriver(abc.ABC):
    name: str

    def __init__(self, options: Mapping[str, str]) -> None:
        self.options = options

    @abc.abstractmethod
    def verify(self) -> dict:
        """Check the minimal requirements on every device; return an inventory summary."""

    @abc.abstractmethod
    def converge(self, desired: dict) -> None:
        """Make the device(s) hold exactly this load balancer; idempotent."""

    @abc.abstractmethod
    def delete(self, loadbalancer_id: str) -> None:
        """Remove one load balancer; idempotent."""

    @abc.abstractmethod
    def list_loadbalancers(self) -> dict[str, int]:
        """id -> revision of what the device(s) hold."""

    @abc.abstractmethod
    def status(self, loadbalancer_id: str) -> dict | None:
        """Operating statuses and counters of one load balancer; None if unknown."""

    def capacity_score(self) -> float:
        """1.0 or more means full."""
        return 0.0
