"""The userinfo endpoint: OpenID Connect claims for a user's Bearer access token with the
scope ``openid``."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD, PHONE


def userinfo(http, access_token: str | None = None, method: str = "get"):
    headers = {"Authorization": f"Bearer {access_token}"} if access_token is not None else {}
    return getattr(http, method)("/oauth/userinfo", headers=headers)


@pytest.fixture
def named_user(make_user) -> str:
    return make_user(
        email="ada@example.com", first_name="Ada", last_name="Lovelace", groups=["Regular User"]
    )


@pytest.fixture
def app_client(make_client):
    return make_client(scope="openid profile phone email properties.read")


def sign_in(http, client, scope: str = "openid profile phone email") -> dict:
    response = http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": PHONE, "password": PASSWORD, "scope": scope},
        headers=client.basic,
    )
    assert response.status_code == 200, response.json
    return response.json


@pytest.mark.parametrize("method", ["get", "post"])
def test_userinfo_returns_the_users_claims(http, app_client, named_user, method):
    token = sign_in(http, app_client)
    response = userinfo(http, token["access_token"], method)
    assert response.status_code == 200, response.json
    body = response.json
    assert body["sub"] == named_user
    assert body["phone_number"] == PHONE
    assert body["email"] == "ada@example.com"
    assert body["given_name"] == "Ada" and body["family_name"] == "Lovelace"
    assert body["name"] == "Ada Lovelace"
    assert body["preferred_username"] == PHONE
    assert body["groups"] == ["Regular User"]
    assert isinstance(body["updated_at"], int)


@pytest.mark.parametrize(
    "header", ["Bearer not-a-token", "Bearer a.b.c"], ids=["garbage", "jwt-shaped"]
)
def test_a_bad_token_is_401_invalid_token(http, user, header):
    response = http.get("/oauth/userinfo", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


@pytest.mark.parametrize("header", [None, "Bearer ", "Basic dXNlcjpwYXNz"])
def test_no_bearer_token_is_401_with_a_bare_challenge(http, user, header):
    # RFC 6750 §3.1: no credentials, no error code in the challenge.
    headers = {"Authorization": header} if header is not None else {}
    response = http.get("/oauth/userinfo", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_token_in_the_query_string_is_not_accepted(http, app_client, user):
    token = sign_in(http, app_client)["access_token"]
    response = http.get(f"/oauth/userinfo?access_token={token}")
    assert response.status_code == 401


def test_a_client_credentials_token_is_403(http, app_client):
    token = http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=app_client.basic
    ).json["access_token"]
    response = userinfo(http, token)
    assert response.status_code == 403
    assert response.json["error"] == "insufficient_scope"


@pytest.mark.parametrize("revoked", ["refresh_token", "access_token"])
def test_after_revocation_the_token_is_401(http, app_client, user, revoked):
    token = sign_in(http, app_client)
    assert userinfo(http, token["access_token"]).status_code == 200
    revocation = http.post(
        "/oauth/revoke", data={"token": token[revoked]}, headers=app_client.basic
    )
    assert revocation.status_code == 200
    response = userinfo(http, token["access_token"])
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_a_blocked_users_token_is_401(app, http, app_client, user):
    import uuid

    from authserver.accounts.models import User
    from authserver.extensions import db

    token = sign_in(http, app_client)["access_token"]
    with app.app_context():
        db.session.get(User, uuid.UUID(user)).is_blocked = True
        db.session.commit()
    assert userinfo(http, token).status_code == 401


def test_absent_claims_are_left_out(http, app_client, make_user):
    make_user(first_name="Ada")  # no email, no last name
    token = sign_in(http, app_client)["access_token"]
    body = userinfo(http, token).json
    assert body["given_name"] == "Ada" and body["phone_number"] == PHONE
    assert "email" not in body and "family_name" not in body
    assert all(value is not None and value != "" for value in body.values()), body


def test_a_token_without_openid_is_403_and_tells_nothing(http, app_client, user):
    token = sign_in(http, app_client, scope="profile properties.read")["access_token"]
    response = userinfo(http, token)
    assert response.status_code == 403
    assert response.json == {
        "error": "insufficient_scope",
        "error_description": "The access token lacks the scope 'openid'.",
    }
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')
