"""A draining server resets no accepted request (issue #15 item 6, docs/operating.md).

Against a real ``authserver serve`` with one worker thread: a slow request (an SMS
gateway that does not answer) is in flight and seven more wait behind it when SIGTERM
comes, together longer than the shutdown grace (before draining, the last ones were
reset when granian killed the worker at the end of its grace).
The slow one finishes; the waiting ones are answered (503 with ``Retry-After`` and
``Connection: close`` once draining, so clients retry elsewhere) instead of being reset
when the workers stop; the server exits within its shutdown grace."""

from __future__ import annotations

import http.client
import os
import threading
import time

import pytest

from tests.conftest import build_app
from tests.services import ServedAuthserver
from tests.sms_gateway import HANG, WEBHOOK_SECRET

# Each waits 3 s for the gateway: together longer than any shutdown grace used here.
WAITING = 7


def ask(port: int, method: str, path: str, body: str | None, results: list, index: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        body = response.read()
        headers = {name.lower(): value for name, value in response.getheaders()}
        results[index] = (response.status, headers, body)
    except (OSError, http.client.HTTPException) as error:
        results[index] = error
    finally:
        connection.close()


@pytest.fixture
def database(tmp_path, keys_dir) -> str:
    url = f"sqlite:///{tmp_path / 'authserver.db'}"
    app = build_app(url, keys_dir)
    with app.app_context():
        from authserver.extensions import db

        db.engine.dispose()
    return url


def test_requests_waiting_behind_a_slow_one_are_answered_while_draining(
    database, keys_dir, gateway
):
    gateway.reset()
    gateway.script = [HANG] * (WAITING + 1)
    server = ServedAuthserver(
        database,
        keys_dir,
        AUTHSERVER_THREADS="1",
        AUTHSERVER_SMS_BACKEND="webhook",
        AUTHSERVER_SMS_WEBHOOK_URL=gateway.url,
        AUTHSERVER_SMS_WEBHOOK_SECRET=WEBHOOK_SECRET,
        AUTHSERVER_SMS_WEBHOOK_ATTEMPTS="1",
        AUTHSERVER_SMS_WEBHOOK_READ_TIMEOUT_MS="3000",
        AUTHSERVER_SHUTDOWN_GRACE="10",
    )
    with server:
        results: list = [None] * (WAITING + 1)
        slow = threading.Thread(
            target=ask, args=(server.port, "POST", "/oauth/otp", "phone=%2B33612345678", results, 0)
        )
        slow.start()
        time.sleep(0.5)  # the slow request holds the only thread
        waiting = [
            threading.Thread(
                target=ask,
                args=(server.port, "POST", "/oauth/otp", f"phone=%2B3361234560{i}", results, i + 1),
            )
            for i in range(WAITING)
        ]
        for thread in waiting:
            thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        code, stderr = server.stop(timeout=30)
        stopped_in = time.monotonic() - started
        for thread in [slow, *waiting]:
            thread.join(timeout=30)

    reset = [r for r in results if not isinstance(r, tuple)]
    assert reset == [], (results, stderr[-2000:])
    assert results[0][0] == 503  # the gateway never answered: a clean 503, not a reset
    for status, headers, _ in results[1:]:
        assert status == 503, results  # the gateway answers nothing, or draining
        if status == 503:
            assert headers["retry-after"] and headers["connection"] == "close"
    assert code == 0, stderr[-2000:]
    assert stopped_in < 10 + 2


def test_a_shutdown_grace_shorter_than_an_sms_send_is_refused(database, keys_dir, gateway):
    import subprocess
    import sys
    from pathlib import Path

    environ = {
        "AUTHSERVER_ENV": "testing",
        "AUTHSERVER_DATABASE_URL": database,
        "AUTHSERVER_KEYS_DIR": str(keys_dir),
        "AUTHSERVER_SMS_BACKEND": "webhook",
        "AUTHSERVER_SMS_WEBHOOK_URL": gateway.url,
        "AUTHSERVER_SMS_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }
    command = [str(Path(sys.executable).parent / "authserver"), "serve", "--shutdown-grace", "15"]
    refused = subprocess.run(
        command, env={**os.environ, **environ}, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2
    assert "18.8 s" in refused.stderr and "AUTHSERVER_SHUTDOWN_GRACE" in refused.stderr
