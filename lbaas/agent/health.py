"""What an agent knows about its device.

``DeviceHealth`` is the agent's memory of its device: up, down or not yet
looked at, the last error and since when.  Every device interaction and the
periodic probe update it; the heartbeat only reads it, so a heartbeat never
waits on a device.  Methods are thread-safe and must not raise.
"""

from __future__ import annotations

import datetime as dt
import threading

from lbaas import constants as c


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
                    "device_state_since": self.since.strftime("%Y-%m-%dT%H:%M:%SZ")}  # UTC, as the agents API


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
