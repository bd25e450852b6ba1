"""Early answers keep HTTP/1.1 framing right (RFC 9112 §9.6, authserver/framing.py): a
401, 413 or 415 given before the body was read leaves the kept-alive connection usable
for the next request, or says ``Connection: close``. Against a real ``authserver serve``:
before framing.py, the request after such an answer on the same connection was lost
(``RemoteDisconnected``), as connection-pooling clients saw (issue #15 item 3)."""

from __future__ import annotations

import http.client

import pytest

from tests.conftest import build_app
from tests.services import ServedAuthserver

FORM = "application/x-www-form-urlencoded"
# (method, path, content type, body, the early answer's status)
EARLY_ANSWERS = [
    ("PATCH", "/account/profile", "application/json", b'{"name": "' + b"a" * 30000 + b'"}', 401),
    ("POST", "/oauth/token", "application/json", b'{"grant_type": "' + b"b" * 30000 + b'"}', 415),
    ("POST", "/oauth/token", FORM, b"token=" + b"c" * 1_000_000, 413),
    ("POST", "/admin/users", "application/json", b'{"phone": "' + b"d" * 50000 + b'"}', 401),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory, keys_dir):
    url = f"sqlite:///{tmp_path_factory.mktemp('framing') / 'authserver.db'}"
    app = build_app(url, keys_dir)
    with app.app_context():
        from authserver.extensions import db

        db.engine.dispose()
    with ServedAuthserver(url, keys_dir) as server:
        yield server


@pytest.mark.parametrize(
    ("method", "path", "content_type", "body", "status"),
    EARLY_ANSWERS,
    ids=[f"{status}-{path}" for _, path, _, _, status in EARLY_ANSWERS],
)
def test_the_next_request_on_a_kept_alive_connection_is_answered(
    served, method, path, content_type, body, status
):
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    answered = 0
    try:
        for _ in range(10):
            connection.request(method, path, body=body, headers={"Content-Type": content_type})
            early = connection.getresponse()
            early.read()
            assert early.status == status
            connection.request("GET", "/healthz")
            following = connection.getresponse()
            following.read()
            assert following.status == 200
            answered += 1
    except (http.client.RemoteDisconnected, ConnectionError) as error:
        pytest.fail(f"{answered} of 10 pairs answered, then {type(error).__name__}: {error}")
    finally:
        connection.close()


def test_a_body_too_large_to_drain_closes_the_connection(http):
    response = http.post(
        "/oauth/token", data=b"token=" + b"x" * (2 * 1024 * 1024), content_type=FORM
    )
    assert response.status_code == 413
    assert response.headers["Connection"] == "close"


def test_a_read_body_keeps_the_connection(http, app_client):
    response = http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=app_client.basic
    )
    assert response.status_code == 200
    assert "Connection" not in response.headers
