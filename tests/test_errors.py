"""Failures a client can cause or meet: every one answers JSON with a clear status, never
an HTML page or a traceback, and a database outage is a 503 the client may retry."""

from __future__ import annotations

import pytest

from authserver import create_app
from tests.conftest import make_settings
from tests.services import free_port
from tests.test_token_endpoint import TOKEN, assert_oauth_error

OAUTH_POSTS = ["/oauth/token", "/oauth/introspect", "/oauth/revoke"]


def test_unknown_path_is_json_404(http):
    response = http.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert response.json["error"] == "not_found"


@pytest.mark.parametrize("path", OAUTH_POSTS)
def test_wrong_method_is_json_405_with_allow(http, path):
    response = http.get(path)
    assert response.status_code == 405
    assert response.mimetype == "application/json"
    assert response.headers["Allow"]
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize("path", OAUTH_POSTS)
def test_oversized_body_is_json_413_everywhere(http, app_client, path):
    response = http.post(
        path,
        data=b"token=" + b"a" * (64 * 1024 + 1),
        headers=app_client.basic,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 413
    assert response.mimetype == "application/json"
    assert response.json["error"]


@pytest.mark.parametrize("path", OAUTH_POSTS)
def test_malformed_requests_are_refused_on_every_oauth_endpoint(http, app_client, path):
    as_json = http.post(path, json={"token": "x"}, headers=app_client.basic)
    assert_oauth_error(as_json, 415, "invalid_request")
    in_query = http.post(path + "?token=x", data={"token": "x"}, headers=app_client.basic)
    assert_oauth_error(in_query, 400, "invalid_request")
    repeated = http.post(
        path,
        data="token=a&token=b",
        headers=app_client.basic,
        content_type="application/x-www-form-urlencoded",
    )
    assert_oauth_error(repeated, 400, "invalid_request")


def test_plain_http_on_a_public_host_is_400_not_500(http, app_client):
    response = http.post(
        TOKEN,
        data={"grant_type": "client_credentials"},
        headers=app_client.basic,
        base_url="http://auth.example.com",
    )
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_https_terminated_by_a_trusted_proxy_is_accepted(database_url, keys_dir, make_client):
    from tests.conftest import build_app

    proxied = build_app(database_url, keys_dir, trusted_proxies="1")
    service = make_client(grant_types=("client_credentials",))
    try:
        response = proxied.test_client().post(
            TOKEN,
            data={"grant_type": "client_credentials"},
            headers={**service.basic, "X-Forwarded-Proto": "https"},
            base_url="http://auth.example.com",
        )
    finally:
        with proxied.app_context():
            from authserver.extensions import db

            db.engine.dispose()
    assert response.status_code == 200, response.json


@pytest.fixture
def database_down(tmp_path):
    """An app whose PostgreSQL is unreachable (nothing listens on the port)."""
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/authserver"
    app = create_app(make_settings(url, tmp_path / "keys", key_cache_seconds="0"))
    yield app.test_client()


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("post", "/oauth/token", {"grant_type": "client_credentials"}),
        ("post", "/oauth/introspect", {"token": "x"}),
        ("get", "/.well-known/jwks.json", None),
    ],
)
def test_database_outage_is_503_with_retry_after(database_down, method, path, data):
    response = getattr(database_down, method)(path, data=data, auth=("some-client", "secret"))
    assert response.status_code == 503
    assert response.mimetype == "application/json"
    assert response.json["error"] == "temporarily_unavailable"
    assert int(response.headers["Retry-After"]) > 0


def test_unexpected_error_is_json_500_without_details(database_url, keys_dir):
    """A bug must not show a traceback or the exception's text to the caller."""
    from tests.conftest import build_app

    app = build_app(database_url, keys_dir)
    app.testing = False  # answer as in production instead of re-raising into the test

    @app.get("/boom")
    def boom():
        raise RuntimeError("internal detail: secret-ish value")

    try:
        response = app.test_client().get("/boom")
    finally:
        with app.app_context():
            from authserver.extensions import db

            db.engine.dispose()
    assert response.status_code == 500
    assert response.mimetype == "application/json"
    assert response.json["error"] == "internal_server_error"
    assert "secret-ish" not in response.get_data(as_text=True)
