"""SMS senders: ``console`` (development: logs the message) and ``webhook`` (the contract).

The webhook backend POSTs ``{"to": E.164, "message": text, "reference": challenge id}`` as
JSON; with AUTHSERVER_SMS_WEBHOOK_SECRET set, the header ``X-Authserver-Signature:
sha256=<hex HMAC-SHA256 of the raw body>`` lets the gateway check the sender. The same
``reference`` is sent as ``Idempotency-Key`` on every attempt, so a gateway can drop the
duplicate when a retry follows a request it did receive but answered too late.

Retries: at most AUTHSERVER_SMS_WEBHOOK_ATTEMPTS attempts, on network errors, timeouts,
5xx, 408 and 429, with exponential backoff from AUTHSERVER_SMS_WEBHOOK_BACKOFF_MS. Any
other answer than 2xx ends the delivery. Worst case with the defaults (3 attempts,
2 s connect, 4 s read, 250 ms backoff): about 19 s of one server thread, at most.
Neither the message (it holds the code) nor the URL (it may hold a token) is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import ssl
import time
from typing import Protocol
from urllib.parse import urlsplit

from authserver.config import Settings
from authserver.errors import SmsDeliveryFailed
from authserver.ops.metrics import SMS_GATEWAY_ERRORS

log = logging.getLogger(__name__)
RETRYABLE_STATUSES = {408, 429}


class SmsSender(Protocol):
    def send(self, to: str, message: str, *, reference: str) -> None:
        """Deliver or raise ``SmsDeliveryFailed``."""


class ConsoleSender:
    """Development only (production refuses it): the message, code included, goes to the log."""

    def send(self, to: str, message: str, *, reference: str) -> None:
        log.warning("console SMS to %s: %s", to, message)


class WebhookSender:
    def __init__(
        self,
        url: str,
        secret: str = "",
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 4.0,
        attempts: int = 3,
        backoff: float = 0.25,
    ) -> None:
        self.url = urlsplit(url)
        if self.url.scheme not in ("http", "https") or not self.url.hostname:
            raise ValueError("the SMS webhook URL must be an absolute http(s) URL")
        self.secret = secret.encode()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.attempts = attempts
        self.backoff = backoff

    def send(self, to: str, message: str, *, reference: str) -> None:
        body = json.dumps(
            {"to": to, "message": message, "reference": reference}, separators=(",", ":")
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": reference,
            "User-Agent": "authserver-sms/1",
        }
        if self.secret:
            digest = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            headers["X-Authserver-Signature"] = f"sha256={digest}"
        for attempt in range(1, self.attempts + 1):
            try:
                status = self._post(body, headers)
            except (OSError, http.client.HTTPException) as error:  # refused, reset, timeout
                outcome, retry = type(error).__name__, True
            else:
                if 200 <= status < 300:
                    return
                outcome = f"HTTP {status}"
                retry = status >= 500 or status in RETRYABLE_STATUSES
            log.warning(
                "SMS webhook attempt %d/%d failed: %s (reference %s)",
                attempt,
                self.attempts,
                outcome,
                reference,
            )
            SMS_GATEWAY_ERRORS.labels("http" if outcome.startswith("HTTP") else "network").inc()
            if not retry or attempt == self.attempts:
                break
            time.sleep(self.backoff * 2 ** (attempt - 1))
        raise SmsDeliveryFailed()

    def _post(self, body: bytes, headers: dict[str, str]) -> int:
        host, port = self.url.hostname, self.url.port
        connection: http.client.HTTPConnection
        if self.url.scheme == "https":
            connection = http.client.HTTPSConnection(
                host, port, timeout=self.connect_timeout, context=ssl.create_default_context()
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self.connect_timeout)
        try:
            connection.connect()
            connection.sock.settimeout(self.read_timeout)  # connect and read time differ
            path = (self.url.path or "/") + (f"?{self.url.query}" if self.url.query else "")
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read(64 * 1024)
            return response.status
        finally:
            connection.close()


def sender_from_settings(settings: Settings) -> SmsSender:
    if settings.sms_backend == "webhook":
        return WebhookSender(
            settings.sms_webhook_url,
            settings.sms_webhook_secret,
            connect_timeout=settings.sms_webhook_connect_timeout_ms / 1000,
            read_timeout=settings.sms_webhook_read_timeout_ms / 1000,
            attempts=settings.sms_webhook_attempts,
            backoff=settings.sms_webhook_backoff_ms / 1000,
        )
    return ConsoleSender()


