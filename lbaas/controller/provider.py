"""The provider seam: what the API hands a change to after it commits.

A provider names an environment.  ``validate`` refuses, before anything is
written, what the provider's data plane cannot do; ``route`` runs inside
the transaction of every change (the agent provider picks the agent and,
for a new load balancer, writes the binding there); ``dispatch`` runs
after commit and must not raise: a change it fails to
hand on stays PENDING and the pending sweep hands it on again.
"""

from __future__ import annotations

import abc
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from lbaas import constants as c
from lbaas.db import lifecycle
from lbaas.db import models as m
from lbaas.db.session import Database

LOG = logging.getLogger(__name__)


class Unsupported(Exception):
    """The provider cannot do what the request asks; the message says what."""


class Provider(abc.ABC):
    name: str
    description: str
    # Keys of a flavor profile's flavor_data / a zone profile's availability_zone_data that
    # this provider honours -> what each does; any other key is refused.
    flavor_capabilities: Mapping[str, str] = {}
    availability_zone_capabilities: Mapping[str, str] = {}

    def validate(self, kind: str, fields: Mapping[str, Any]) -> None:
        """Raise Unsupported if this provider cannot realise ``fields`` of a ``kind``."""

    def route(self, session: Session, lb: m.LoadBalancer) -> str | None:
        """Called in the transaction of each change of ``lb``: where the work
        goes (handed to ``dispatch`` as ``target``)."""
        return None

    @abc.abstractmethod
    def dispatch(self, lb_id: str, revision: int, target: str | None = None) -> None:
        """Hand the change that reached ``revision`` on; must not raise.
        Without a ``target`` (sweeps), the provider routes it itself."""

    def stop(self) -> None:
        """Release threads and connections."""


class NoopProvider(Provider):
    """Completes every change after ``delay`` seconds, in a background thread,
    so the whole lifecycle runs without any data plane."""

    name = c.NOOP_PROVIDER
    description = "Completes changes without a data plane (testing and development)."

    def __init__(self, db: Database, delay: float = 0.05) -> None:
        self.db = db
        self.delay = delay
        self._due: list[tuple[float, int, str, int]] = []
        self._counter = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="noop-provider", daemon=True)
        self._thread.start()

    def dispatch(self, lb_id: str, revision: int, target: str | None = None) -> None:
        with self._wake:
            heapq.heappush(self._due, (time.monotonic() + self.delay, next(self._counter), lb_id, revision))
            self._wake.notify()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify()
        self._thread.join(timeout=5)

    def _next(self) -> tuple[str, int] | None:
        with self._wake:
            while not self._stopped:
                if self._due and self._due[0][0] <= time.monotonic():
                    _, _, lb_id, revision = heapq.heappop(self._due)
                    return lb_id, revision
                timeout = self._due[0][0] - time.monotonic() if self._due else None
                self._wake.wait(timeout)
            return None

    def _run(self) -> None:
        while (job := self._next()) is not None:
            lb_id, revision = job
            try:
                with self.db.transaction() as session:
                    lifecycle.complete(session, lb_id, revision)
            except Exception:  # the pending sweep retries what this misses
                LOG.exception("noop provider could not complete %s", lb_id)
