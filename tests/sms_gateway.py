"""A real HTTP server on a free port that plays the SMS gateway of the webhook backend.

It records every request (raw body, headers). ``script`` holds the answers to give the
next requests (an HTTP status, or ``HANG``: answer nothing until the caller's read timeout
has passed); once it is empty, every request gets 200.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.services import free_port

HANG = 0


@dataclass
class Delivery:
    body: bytes
    headers: dict[str, str]
    status: int

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def code(self) -> str:
        match = re.search(r"\b(\d{6})\b", self.json["message"])
        assert match, self.json["message"]
        return match.group(1)


class SmsGateway:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/sms/send"
        self.requests: list[Delivery] = []
        self.script: list[int] = []
        self._release = threading.Event()
        self._lock = threading.Lock()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with gateway._lock:
                    status = gateway.script.pop(0) if gateway.script else 200
                    gateway.requests.append(Delivery(body, dict(self.headers.items()), status))
                if status == HANG:
                    gateway._release.wait(10)
                    return
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}' if status == 200 else b'{"ok": false}')

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def delivered(self) -> list[Delivery]:
        """Requests the gateway accepted (answered 2xx): SMS that really went out."""
        return [r for r in self.requests if r.status == 200]

    def last_code(self, phone: str) -> str:
        return [d for d in self.delivered if d.json["to"] == phone][-1].code

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.script.clear()

    def __enter__(self) -> SmsGateway:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


WEBHOOK_SECRET = "gateway-shared-secret"


def build_otp_app(database_url: str, keys_dir, gateway: SmsGateway, **overrides):
    """An app whose SMS go to ``gateway``, with near-zero retry backoff."""
    from tests.conftest import build_app

    settings = {
        "sms_backend": "webhook",
        "sms_webhook_url": gateway.url,
        "sms_webhook_secret": WEBHOOK_SECRET,
        "sms_webhook_backoff_ms": "1",
        **overrides,
    }
    return build_app(database_url, keys_dir, **settings)


def dispose(app) -> None:
    from authserver.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()
