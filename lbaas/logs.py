"""One logging setup for every process (server, agent, device, all-in-one).

Contract:

- ``setup`` makes the root logger write one line per record, to standard error or
  to ``log_file``, in one of ``FORMATS``:

  * ``text``: ``<time> <LEVEL> <logger> [<request id or ->] <message>``;
  * ``json``: one JSON object per line with the keys ``time`` (UTC, ISO 8601 with
    milliseconds), ``level``, ``logger``, ``message`` (a traceback appended) and
    ``request_id`` (null outside a request).

- Every record carries the id of the API request it is about
  (``lbaas.api.request_id``): bound by the API per request, and by agent and
  controller handlers for the messages that carry one.
- A log file is reopened when it was renamed or removed (logrotate's default),
  at the next record and at once on ``reopen`` (SIGHUP, ``lbaas.runtime``).
- ``audit`` writes administrative actions to the ``lbaas.audit`` logger at INFO,
  naming who did them.  Targets and details are identifiers and values the API
  validated; control characters are replaced anyway so no line can be forged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.handlers
import re
import sys
from typing import Protocol

from lbaas.api.request_id import RequestIdFilter

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
AUDIT = logging.getLogger("lbaas.audit")
# One line per HTTP request between our own processes is noise; so is alembic's
# "Context impl" at every start (and a refusal must stay one line on stderr).
CHATTY = ("httpx", "httpcore", "alembic")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class JsonFormatter(logging.Formatter):
    """A record as one JSON object on one line (json.dumps escapes newlines)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        request_id = getattr(record, "request_id", "-")
        return json.dumps({
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
            "request_id": None if request_id == "-" else request_id,
        })


def setup(debug: bool = False, log_file: str = "", log_format: str = "text") -> None:
    """Route every record to one handler in ``log_format``; raises OSError when
    ``log_file`` cannot be opened and ValueError for an unknown format."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {log_format!r}")
    handler: logging.Handler = logging.handlers.WatchedFileHandler(log_file) if log_file \
        else logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    for chatty in CHATTY:
        logging.getLogger(chatty).setLevel(logging.WARNING)


def reopen() -> None:
    """Reopen log files that were moved away (e.g. by logrotate) now, not at the next record."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.handlers.WatchedFileHandler):
            handler.reopenIfNeeded()


class Actor(Protocol):
    """Who acts: an API caller (``lbaas.api.auth.Context``)."""

    @property
    def project_id(self) -> str: ...

    @property
    def user_id(self) -> str: ...


def audit(actor: Actor, action: str, target: str, **details: object) -> None:
    """One ``lbaas.audit`` line: ``audit: project=P user=U action=A target=T key=value...``."""
    extra = "".join(f" {key}={_clean(value)}" for key, value in details.items())
    AUDIT.info("audit: project=%s user=%s action=%s target=%s%s", _clean(actor.project_id),
               _clean(actor.user_id or "-"), action, _clean(target), extra)


def _clean(value: object) -> str:
    return _CONTROL.sub("?", str(value))
