"""HTTP/1.1 framing after an early answer (RFC 9112 §9.6).

The app often answers before reading the request body: a 401 for a missing token, a 413
for a body over AUTHSERVER_MAX_BODY_BYTES, a 415 for a wrong content type. On a kept-alive
connection the unread body would then be taken for the next request, or the server drops
the connection under the client's next request (connection-pooling clients see random
``ConnectionError``\\ s). Invariant: when the answer starts, the body has been read to
its end, or the answer says ``Connection: close``. A rest of up to ``DRAIN_LIMIT`` bytes is
read and dropped (cheaper than a new connection); a larger one closes the connection.

Draining: once ``authserver serve`` got SIGTERM, a request that reaches the app is
answered 503 with ``Retry-After`` and ``Connection: close`` before any work, so requests
queued behind busy threads end at once instead of being reset when the shutdown grace
ends; the ones already running finish (within the grace, docs/operating.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

DRAIN_LIMIT = 1024 * 1024
_CHUNK = 64 * 1024
# Set by `authserver serve` for its workers (serve.py): the file that exists once the
# instance drains. Not a setting: nobody else sets it.
DRAIN_FILE = "_AUTHSERVER_DRAIN_FILE"
_DRAINING_BODY = json.dumps(
    {
        "error": "temporarily_unavailable",
        "error_description": "The server is shutting down; retry the request.",
    }
).encode()


class _CountingInput:
    """``wsgi.input`` that remembers how much of the body the app has read."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.consumed = 0
        self.ended = False

    def _count(self, data: bytes, size: int | None) -> bytes:
        self.consumed += len(data)
        if not data and size != 0:
            self.ended = True
        return data

    def read(self, size: int | None = -1) -> bytes:
        return self._count(self.stream.read(-1 if size is None else size), size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._count(self.stream.readline(-1 if size is None else size), size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = self.stream.readlines(hint)
        self.consumed += sum(len(line) for line in lines)
        self.ended = True
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


def _drain(body: _CountingInput, length: int | None) -> bool:
    """Read the rest of the body if it is small enough; False if it was not."""
    if length is not None:
        remaining = length - body.consumed
        if remaining > DRAIN_LIMIT:
            return False
        while remaining > 0 and not body.ended:
            remaining -= len(body.read(min(remaining, _CHUNK)))
        return True
    budget = DRAIN_LIMIT  # chunked: no length announced, read up to the limit
    while not body.ended and budget >= 0:
        budget -= len(body.read(_CHUNK))
    return body.ended


class KeepFraming:
    """WSGI middleware holding the invariant above for every answer of ``app``."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.drain_file = os.environ.get(DRAIN_FILE)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if self.drain_file and os.path.exists(self.drain_file):
            return self._draining(start_response)
        try:
            length: int | None = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked:
            length = None
        elif not length:
            return self.app(environ, start_response)
        body = _CountingInput(environ["wsgi.input"])
        environ["wsgi.input"] = body

        def framed(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if not _drain(body, length):
                headers = [(k, v) for k, v in headers if k.lower() != "connection"]
                headers.append(("Connection", "close"))
            return start_response(status, headers, exc_info)

        return self.app(environ, framed)

    @staticmethod
    def _draining(start_response: Callable) -> Iterable[bytes]:
        """A request that reached the app after SIGTERM: not started, so refused at once
        (the client retries on another instance) instead of waiting for a thread and
        being reset when the grace ends."""
        start_response(
            "503 Service Unavailable",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(_DRAINING_BODY))),
                ("Retry-After", "1"),
                ("Cache-Control", "no-store"),
                ("Connection", "close"),
            ],
        )
        return [_DRAINING_BODY]
