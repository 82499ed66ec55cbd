"""The local token file: salted hashes only, never a token.

A token is ``<id>.<secret>``: ``id`` (16 hex digits) names its entry, so a
check is one dictionary lookup and one SHA-256, never a scan.  The file::

    {"format": 2, "tokens": {"<id>": {"salt": hex, "hash": hex, "project_id": str,
                                      "roles": [str], "created": ISO 8601, "expires": ISO 8601 | null}}}

``hash`` is SHA-256(salt + secret).  A slow password hash (scrypt, bcrypt)
protects guessable secrets; these secrets are 256 random bits, which no
offline search can cover, so one SHA-256 (a microsecond, on every request)
is as safe here and keeps authentication cheap.  The salt only keeps two
files from showing that they share a token.

The previous format (``{"<token>": {project_id, roles}}``, tokens in clear)
is refused with ``TokenFileError`` naming how to move on: it cannot be
migrated in place, since its tokens carry no id.  Writes go through a
temporary file and ``os.replace`` (mode 0600), so a reader never sees half a
file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterable
from typing import Any

from lbaas import constants as c

LOG = logging.getLogger(__name__)
FORMAT = 2
ID_BYTES = 8


class TokenFileError(ValueError):
    """The token file cannot be used; the message names the file, never a token."""


@dataclasses.dataclass(frozen=True)
class Entry:
    id: str
    salt: str
    hash: str
    project_id: str
    roles: tuple[str, ...]
    created: dt.datetime
    expires: dt.datetime | None

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(_hash(self.salt, secret), self.hash)

    def expired(self, now: dt.datetime) -> bool:
        return self.expires is not None and now >= self.expires

    def document(self) -> dict[str, Any]:
        return {"salt": self.salt, "hash": self.hash, "project_id": self.project_id, "roles": list(self.roles),
                "created": self.created.isoformat(), "expires": self.expires.isoformat() if self.expires else None}


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def split(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    ident, dot, secret = token.partition(".")
    if not dot or len(ident) != 2 * ID_BYTES or not secret:
        return None
    return ident, secret


def read(path: str) -> dict[str, Entry]:
    """Every entry of the file (none if it does not exist), or TokenFileError."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"token file {os.path.abspath(path)} cannot be read: {exc}") from None
    except ValueError as exc:  # the message quotes no content, only where
        raise TokenFileError(f"token file {os.path.abspath(path)} is not valid JSON: {exc}") from None
    return _entries(os.path.abspath(path), document)


def _entries(path: str, document: Any) -> dict[str, Entry]:
    if isinstance(document, dict) and document.get("format") == FORMAT and isinstance(document.get("tokens"), dict):
        found = {}
        for number, (ident, fields) in enumerate(document["tokens"].items(), 1):
            try:
                found[ident] = _entry(ident, fields)
            except (KeyError, TypeError, ValueError):
                raise TokenFileError(f"token file {path}: entry {number} is malformed") from None
        return found
    if document == {}:
        return {}
    if isinstance(document, dict) and all(isinstance(v, dict) and "project_id" in v for v in document.values()):
        raise TokenFileError(
            f"token file {path} holds tokens in clear (the old format); move it aside and issue new "
            "tokens with `lbaas token create --project P --role R` (they are stored hashed)")
    raise TokenFileError(f'token file {path} is not {{"format": {FORMAT}, "tokens": {{...}}}}')


def _entry(ident: str, fields: dict[str, Any]) -> Entry:
    roles = fields["roles"]
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise ValueError("roles")
    bytes.fromhex(fields["salt"])
    expires = fields.get("expires")
    return Entry(ident, str(fields["salt"]), str(fields["hash"]), str(fields["project_id"]), tuple(roles),
                 dt.datetime.fromisoformat(fields["created"]),
                 dt.datetime.fromisoformat(expires) if expires else None)


def _write(path: str, entries: Iterable[Entry]) -> None:
    document = {"format": FORMAT, "tokens": {entry.id: entry.document() for entry in entries}}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1)
    os.replace(tmp, path)


def create(path: str, project_id: str, role: str, expires_in: float | None = None) -> str:
    """Add a new random token for ``project_id`` with ``role``; return it (the only time it is seen)."""
    if role not in c.ROLES + c.LEGACY_ROLES:
        raise ValueError(f"role must be one of {', '.join(c.ROLES + c.LEGACY_ROLES)}")
    if not project_id:
        raise ValueError("the project must not be empty")
    entries = read(path)
    ident, secret, salt = secrets.token_hex(ID_BYTES), secrets.token_urlsafe(32), secrets.token_hex(16)
    created = now()
    expires = created + dt.timedelta(seconds=expires_in) if expires_in is not None else None
    entries[ident] = Entry(ident, salt, _hash(salt, secret), project_id, (role,), created, expires)
    _write(path, entries.values())
    return f"{ident}.{secret}"


def revoke(path: str, ident: str) -> bool:
    """Remove the token ``ident``; False if there was none."""
    entries = read(path)
    if entries.pop(ident, None) is None:
        return False
    _write(path, entries.values())
    return True
