"""The local key store: Barbican-shaped secrets and containers in this server's database.

Contract:

* a payload is written only encrypted with the ``[certificates] encryption_key`` (Fernet:
  AES-128-CBC with an HMAC-SHA256), and read back only through ``payload``; no function here
  logs one;
* everything is scoped by project: another project's secret or container is exactly as absent
  as an unknown one (``None`` from the store, the same ``InvalidReference`` from the manager);
* an expired secret (``expiration`` in the past) is absent too, as in Barbican;
* a container refers only to secrets of its own project.

``LocalStore`` serves the Barbican subset of the API (``lbaas.api.routes.secrets``);
``LocalKeyManager`` resolves references to it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import delete, func, or_, select

from lbaas.db.models import KeyContainer, KeySecret, new_id, utcnow
from lbaas.db.session import Database
from lbaas.keys import InvalidReference, KeyManagerUnavailable
from lbaas.keys.refs import CONTAINER, SECRET, SecretStoreKeyManager, not_found


@dataclasses.dataclass(frozen=True)
class SecretFields:
    """What a client may say about a secret besides its payload (checked by the API)."""

    name: str | None = None
    secret_type: str = "opaque"
    payload_content_type: str | None = None
    algorithm: str | None = None
    bit_length: int | None = None
    mode: str | None = None
    expiration: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class ContainerFields:
    name: str | None
    type: str
    secret_refs: Sequence[tuple[str, str]]  # (part name, secret id)


class LocalStore:
    """Secrets and containers of the local key store."""

    def __init__(self, db: Database, encryption_key: str | None) -> None:
        self.db = db
        self._key = Fernet(encryption_key.encode("ascii")) if encryption_key else None

    @property
    def _fernet(self) -> Fernet:
        if self._key is None:
            raise KeyManagerUnavailable("The local key store has no [certificates] encryption_key.")
        return self._key

    # --- secrets ------------------------------------------------------------------------

    def create_secret(self, project_id: str, fields: SecretFields, payload: bytes) -> KeySecret:
        now = utcnow()
        row = KeySecret(id=new_id(), project_id=project_id, **dataclasses.asdict(fields),
                        encrypted_payload=self._fernet.encrypt(payload).decode("ascii"),
                        created_at=now, updated_at=now)
        with self.db.transaction() as session:
            session.add(row)
            session.flush()
            session.expunge(row)
        return row

    def secrets(self, project_id: str, limit: int, offset: int, name: str | None = None) -> tuple[list[KeySecret], int]:
        """One page of the project's secrets, oldest first, and how many there are."""
        where = [KeySecret.project_id == project_id, _unexpired()]
        if name is not None:
            where.append(KeySecret.name == name)
        with self.db.reading() as session:
            total = session.scalar(select(func.count()).select_from(KeySecret).where(*where)) or 0
            rows = session.scalars(select(KeySecret).where(*where).order_by(KeySecret.created_at, KeySecret.id)
                                   .limit(limit).offset(offset)).all()
            session.expunge_all()
        return list(rows), total

    def secret(self, project_id: str, secret_id: str) -> KeySecret | None:
        with self.db.reading() as session:
            row = session.scalar(select(KeySecret).where(KeySecret.id == secret_id,
                                                         KeySecret.project_id == project_id, _unexpired()))
            session.expunge_all()
        return row

    def payload(self, row: KeySecret) -> bytes:
        """The decrypted payload of a row this store returned."""
        try:
            return self._fernet.decrypt((row.encrypted_payload or "").encode("ascii"))
        except InvalidToken:
            # Another encryption_key than the one it was stored with: the operator's doing.
            raise InvalidReference("The secret cannot be decrypted with this server's encryption_key.") from None

    def delete_secret(self, project_id: str, secret_id: str) -> bool:
        with self.db.transaction() as session:
            result = session.execute(delete(KeySecret).where(KeySecret.id == secret_id,
                                                             KeySecret.project_id == project_id))
        return bool(getattr(result, "rowcount", 0))

    # --- containers ---------------------------------------------------------------------

    def create_container(self, project_id: str, fields: ContainerFields) -> KeyContainer | None:
        """The new container, or None when a secret it names is not one of the project's."""
        now = utcnow()
        row = KeyContainer(id=new_id(), project_id=project_id, name=fields.name, type=fields.type,
                           secret_refs=[{"name": name, "secret_id": ident} for name, ident in fields.secret_refs],
                           created_at=now, updated_at=now)
        wanted = {ident for _, ident in fields.secret_refs}
        with self.db.transaction() as session:
            found = set(session.scalars(select(KeySecret.id).where(KeySecret.id.in_(wanted),
                                                                   KeySecret.project_id == project_id)))
            if found != wanted:
                return None
            session.add(row)
            session.flush()
            session.expunge(row)
        return row

    def containers(self, project_id: str, limit: int, offset: int,
                   name: str | None = None) -> tuple[list[KeyContainer], int]:
        where: list[Any] = [KeyContainer.project_id == project_id]
        if name is not None:
            where.append(KeyContainer.name == name)
        with self.db.reading() as session:
            total = session.scalar(select(func.count()).select_from(KeyContainer).where(*where)) or 0
            rows = session.scalars(select(KeyContainer).where(*where)
                                   .order_by(KeyContainer.created_at, KeyContainer.id).limit(limit).offset(offset)).all()
            session.expunge_all()
        return list(rows), total

    def container(self, project_id: str, container_id: str) -> KeyContainer | None:
        with self.db.reading() as session:
            row = session.scalar(select(KeyContainer).where(KeyContainer.id == container_id,
                                                            KeyContainer.project_id == project_id))
            session.expunge_all()
        return row

    def delete_container(self, project_id: str, container_id: str) -> bool:
        with self.db.transaction() as session:
            result = session.execute(delete(KeyContainer).where(KeyContainer.id == container_id,
                                                                KeyContainer.project_id == project_id))
        return bool(getattr(result, "rowcount", 0))


def _unexpired() -> Any:
    return or_(KeySecret.expiration.is_(None), KeySecret.expiration > utcnow())


class LocalKeyManager(SecretStoreKeyManager):
    """References to the local store, resolved for one project at a time."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store

    def secret_payload(self, secret_id: str, project_id: str) -> bytes:
        row = self.store.secret(project_id, secret_id)
        if row is None:
            raise not_found(SECRET)
        return self.store.payload(row)

    def container_parts(self, container_id: str, project_id: str) -> Mapping[str, str]:
        row = self.store.container(project_id, container_id)
        if row is None:
            raise not_found(CONTAINER)
        return {part["name"]: part["secret_id"] for part in row.secret_refs}
