"""Structured logs: every line one JSON object on stderr, one line per request.

What may appear in a log line is decided here, not at each call site: the request line
carries the path without its query string, never a body or a header but the request id;
client and user ids are added only once the server has authenticated them. Loggers
that would print secrets at their chattier levels are pinned (see ``PINNED``).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime

from flask import Response, g, has_request_context, request
from flask.logging import default_handler

ACCESS_LOG = logging.getLogger("authserver.access")
# A well-formed incoming X-Request-ID is kept (a proxy's id ties its logs to ours);
# anything else is replaced, so nobody can write arbitrary text into our logs.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")
MAX_LOGGED_PATH = 256
PINNED = {
    "authlib": logging.INFO,  # DEBUG prints whole token responses
    "sqlalchemy.engine": logging.WARNING,  # INFO prints statements and their parameters
    "werkzeug": logging.WARNING,  # its request lines include the query string
    "alembic.runtime.plugins": logging.WARNING,  # a line per plugin at every start
}
# Attributes every LogRecord has: anything else on a record came from ``extra=`` and is
# written as a field of its own.
_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_context() and "request_id" in g:
            entry["request_id"] = g.request_id
        entry.update({k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(level: str) -> None:
    """Send every log record to stderr as JSON. Idempotent: apps created again (tests
    create many) reuse the one handler and only change the level."""
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    # Flask's plain-text handler would print our records a second time.
    logging.getLogger("authserver").removeHandler(default_handler)
    for name, pinned in PINNED.items():
        logging.getLogger(name).setLevel(pinned)


def request_id_from(header: str | None) -> str:
    if header and REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def annotate_request(*, client_id: str | None = None, user_id: object | None = None) -> None:
    """Name the authenticated client and user in this request's log line."""
    if not has_request_context():
        return
    if client_id is not None:
        g.log_client_id = client_id
    if user_id is not None:
        g.log_user_id = str(user_id)


def log_request(response: Response, endpoint: str, seconds: float, *, quiet: bool) -> None:
    """The request's one line. ``quiet`` lines (probes, scrapes) go out at DEBUG."""
    level = logging.DEBUG if quiet and response.status_code < 400 else logging.INFO
    if not ACCESS_LOG.isEnabledFor(level):
        return
    ACCESS_LOG.log(
        level,
        "request",
        extra={
            "method": request.method,
            "path": request.path[:MAX_LOGGED_PATH],
            "endpoint": endpoint,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 2),
            "ip": request.remote_addr,
            "request_id": g.get("request_id"),
            "client_id": g.get("log_client_id"),
            "user_id": g.get("log_user_id"),
        },
    )
