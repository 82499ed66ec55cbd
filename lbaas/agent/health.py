"""What an agent knows about its device, and how its periodic jobs log.

``DeviceHealth`` is the agent's memory of its device: up, down or not yet
looked at, the last error and since when.  Every device interaction and the
periodic probe update it; the heartbeat only reads it, so a heartbeat never
waits on a device.  Methods are thread-safe and must not raise.

``JobLog`` logs a periodic job's failures once per state change: the first
failure one WARNING line with the reason, repeats at DEBUG, the recovery one
INFO line, so an outage costs two log lines, not one traceback per interval.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from lbaas import constants as c

LOG = logging.getLogger("lbaas.agent.service")


class DeviceHealth:
    """The device's last known state; ``checked`` is set once it was first looked at."""

    def __init__(self) -> None:
        self.state = c.DEVICE_STATE_UNKNOWN
        self.error: str | None = None
        self.since = _utcnow()
        self.verified = False          # verify() passed at least once
        self.checked = threading.Event()
        self._lock = threading.Lock()

    @property
    def up(self) -> bool:
        return self.state == c.DEVICE_STATE_UP

    def answered(self) -> bool:
        """The device answered; True if that is news (it was down or unknown)."""
        return self._set(c.DEVICE_STATE_UP, None)

    def failed(self, reason: str) -> bool:
        """The device did not answer or failed; True if that is news."""
        return self._set(c.DEVICE_STATE_DOWN, reason)

    def _set(self, state: str, error: str | None) -> bool:
        with self._lock:
            changed = state != self.state
            if changed:
                self.state, self.since = state, _utcnow()
            self.error = error
        self.checked.set()
        return changed

    def report(self) -> dict[str, str | None]:
        """The heartbeat's view: ``device_state``, ``device_error``, ``device_state_since``."""
        with self._lock:
            return {"device_state": self.state, "device_error": self.error,
                    "device_state_since": self.since.isoformat(sep=" ", timespec="seconds")}


class JobLog:
    """Logs one periodic job's failures and recovery once per state change."""

    def __init__(self, name: str, logger: logging.Logger = LOG) -> None:
        self.name = name
        self.failing = False
        self.log = logger

    def failed(self, reason: object) -> None:
        if self.failing:
            self.log.debug("periodic %s still failing: %s", self.name, reason)
            return
        self.failing = True
        self.log.warning("periodic %s failed: %s; retrying every interval, logging the recovery",
                         self.name, _describe(reason))

    def succeeded(self) -> None:
        if self.failing:
            self.failing = False
            self.log.info("periodic %s works again", self.name)


def _describe(reason: object) -> str:
    """An exception as ``Type: message`` (the type tells a bug from an outage)."""
    if isinstance(reason, BaseException):
        return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
    return str(reason)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
