"""The client-credentials grant: service clients get a short-lived RFC 9068 token about
themselves, and nothing that would open a user session."""

from __future__ import annotations

import jwt
import pytest
from jwt import PyJWKClient

from tests.conftest import ISSUER
from tests.test_token_endpoint import TOKEN, assert_oauth_error

CC = {"grant_type": "client_credentials"}


@pytest.fixture
def service(make_client):
    return make_client(grant_types=("client_credentials",), scope="properties.read reports")


def test_token_is_about_the_client_and_verifies_with_pyjwt(http, live_server, service):
    response = http.post(TOKEN, data=CC, headers=service.basic)
    assert response.status_code == 200, response.json
    body = response.json
    assert response.headers["Cache-Control"] == "no-store"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "properties.read reports"
    assert "refresh_token" not in body

    header = jwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256"
    jwks = PyJWKClient(live_server.url + "/.well-known/jwks.json")
    claims = jwt.decode(
        body["access_token"],
        jwks.get_signing_key_from_jwt(body["access_token"]).key,
        algorithms=["RS256"],
        audience=ISSUER,
        issuer=ISSUER,
        options={"require": ["exp", "iat", "jti", "sub", "iss", "aud"]},
    )
    assert claims["sub"] == service.client_id
    assert claims["client_id"] == service.client_id
    assert claims["scope"] == "properties.read reports"
    assert claims["exp"] - claims["iat"] == 300
    # No user, no sign-in: nothing that belongs to a person's session.
    for absent in ("sid", "amr", "groups", "entitlements", "auth_time"):
        assert claims.get(absent) is None, absent


def test_client_secret_post_works_for_client_credentials(http, make_client):
    service = make_client(grant_types=("client_credentials",), auth_method="client_secret_post")
    response = http.post(
        TOKEN, data={**CC, "client_id": service.client_id, "client_secret": service.secret}
    )
    assert response.status_code == 200, response.json
    assert "refresh_token" not in response.json


def test_every_token_has_its_own_jti(http, service):
    tokens = [http.post(TOKEN, data=CC, headers=service.basic).json["access_token"] for _ in "abc"]
    jtis = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens}
    assert len(jtis) == 3


def test_client_credentials_opens_no_session(http, app, service):
    from sqlalchemy import func, select

    from authserver.extensions import db
    from authserver.oauth.models import AuthSession, RefreshToken

    assert http.post(TOKEN, data=CC, headers=service.basic).status_code == 200
    with app.app_context():
        for model in (AuthSession, RefreshToken):
            assert db.session.scalar(select(func.count()).select_from(model)) == 0


def test_client_without_the_grant_is_unauthorized_client(http, make_client):
    app_only = make_client(grant_types=("password", "refresh_token"))
    assert_oauth_error(
        http.post(TOKEN, data=CC, headers=app_only.basic), 400, "unauthorized_client"
    )


def test_wrong_secret_gets_no_token(http, service):
    from tests.test_token_endpoint import basic

    response = http.post(TOKEN, data=CC, headers=basic(service.client_id, service.secret + "x"))
    assert_oauth_error(response, 401, "invalid_client")
    assert "WWW-Authenticate" in response.headers


def test_user_parameters_are_ignored(http, service, user):
    """Sending a username and password along does not turn the token into a user's one."""
    from tests.conftest import PASSWORD, PHONE

    response = http.post(
        TOKEN, data={**CC, "username": PHONE, "password": PASSWORD}, headers=service.basic
    )
    claims = jwt.decode(response.json["access_token"], options={"verify_signature": False})
    assert claims["sub"] == service.client_id and "sid" not in claims
