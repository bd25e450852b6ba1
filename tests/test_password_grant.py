"""The password grant through HTTP, checked with PyJWT against the served JWKS."""

from __future__ import annotations

import jwt
import pytest
from jwt import PyJWKClient

from tests.conftest import ISSUER, PASSWORD


def test_password_grant_issues_rfc9068_token_verifiable_with_pyjwt(
    live_server, password_login, user, app_client
):
    token = password_login()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 300
    assert token["scope"] == "profile properties.read"
    assert token["refresh_token"].count(".") == 0  # opaque, not a JWT

    header = jwt.get_unverified_header(token["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256"
    signing_key = PyJWKClient(live_server.url + "/.well-known/jwks.json").get_signing_key_from_jwt(
        token["access_token"]
    )
    claims = jwt.decode(
        token["access_token"],
        signing_key.key,
        algorithms=["RS256"],
        audience=ISSUER,
        issuer=ISSUER,
    )
    assert claims["sub"] == user
    assert claims["client_id"] == app_client.client_id
    assert claims["amr"] == ["pwd"]
    assert claims["exp"] - claims["iat"] == 300
    assert {"jti", "sid", "groups", "entitlements", "scope"} <= claims.keys()


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("06 12 97 56 34", "wrong password"),  # known phone, wrong password
        ("+33 6 99 99 99 99", PASSWORD),  # unknown phone
        ("not a phone", PASSWORD),  # unparseable
    ],
)
def test_wrong_credentials_get_one_indistinguishable_answer(
    http, app_client, user, username, password
):
    response = http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": username, "password": password},
        headers=app_client.basic,
    )
    assert response.status_code == 400
    assert response.json == {
        "error": "invalid_grant",
        "error_description": "Invalid phone number or password.",
    }
    assert response.headers["Cache-Control"] == "no-store"
