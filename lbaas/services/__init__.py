"""The domain work behind the API: changes of a load balancer's graph
(test-and-set, commit, dispatch), new rows from validated bodies, batch
members, quotas, agents.

Every function takes plain arguments (validated bodies, ids, the caller's
``Context``) and a ``Services`` object; none sees a request.  Refusals are
``lbaas.errors`` (each with its HTTP status), which the API renders.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lbaas.config import Config, default_provider
from lbaas.controller.provider import Provider, Unsupported
from lbaas.db.session import Database
from lbaas.errors import BadRequest, Conflict
from lbaas.keys import KeyManager
from lbaas.services.vips import Subnets

LOG = logging.getLogger(__name__)

# Unique constraints, as a client should read them.  Matched on the
# constraint's name (PostgreSQL, MariaDB) or its columns (SQLite).
CONSTRAINT_MESSAGES = {
    ("uq_listener_vip_port", "listener.vip_address, listener.protocol_port"):
        "Another listener already uses this VIP address and protocol port.",
    ("uq_member_address_port", "member.pool_id, member.address, member.protocol_port"):
        "Another member of this pool already uses this address and protocol port.",
    ("health_monitor_pool_id", "health_monitor.pool_id"): "This pool already has a health monitor.",
}


@dataclasses.dataclass
class Services:
    """What the domain work needs: the database, the enabled providers (by
    environment name), the VIP subnets, the key manager that resolves certificate
    references, and the configuration."""

    config: Config
    db: Database
    providers: dict[str, Provider]
    subnets: Subnets
    keys: KeyManager

    def provider(self, name: str | None) -> Provider:
        """The named provider (None: the default one), or BadRequest when it is not enabled."""
        name = name or default_provider(self.config)
        provider = self.providers.get(name)
        if provider is None:
            raise BadRequest(f"Provider '{name}' is not enabled; enabled: {', '.join(sorted(self.providers))}.")
        return provider

    def validate(self, provider: Provider, kind: str, fields: Mapping[str, Any]) -> None:
        """BadRequest when ``provider`` cannot realise ``fields`` of a ``kind``."""
        try:
            provider.validate(kind, fields)
        except Unsupported as exc:
            raise BadRequest(f"Provider '{provider.name}' does not support this: {exc}") from None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A write transaction whose unique-constraint failures answer 409."""
        try:
            with self.db.transaction() as session:
                yield session
        except IntegrityError as exc:
            raise Conflict(_integrity_message(exc)) from None

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self.db.reading() as session:
            yield session


def _integrity_message(exc: IntegrityError) -> str:
    text = str(exc.orig)
    for names, message in CONSTRAINT_MESSAGES.items():
        if any(name in text for name in names):
            return message
    if "UNIQUE" in text.upper() or "Duplicate" in text:
        return "The request conflicts with an existing object."
    LOG.warning("integrity error: %s", text)
    return "The request conflicts with the current state of related objects."
