"""Token introspection (RFC 7662): who may ask, what an active token reveals, and the
forged, expired and revoked tokens that must all read as {"active": false}."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from tests.conftest import ISSUER, PASSWORD
from tests.helpers import introspection


def unverified(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signing_material(app) -> tuple[str, bytes, bytes]:
    """kid, private PEM and public PEM of the server's active signing key."""
    from authserver.context import keyring

    with app.app_context():
        key = keyring().snapshot().signing.keys[0]
        return key.kid, key.as_pem(private=True), key.as_pem(private=False)


def test_introspection_requires_client_authentication(http, password_login, app_client):
    token = password_login()["access_token"]
    anonymous = http.post("/oauth/introspect", data={"token": token})
    assert anonymous.status_code == 401
    assert anonymous.json["error"] == "invalid_client"
    assert "WWW-Authenticate" in anonymous.headers

    wrong = http.post(
        "/oauth/introspect",
        data={"token": token},
        auth=(app_client.client_id, "wrong secret"),
    )
    assert wrong.status_code == 401 and wrong.json["error"] == "invalid_client"


def test_public_clients_cannot_introspect(http, make_client, password_login):
    token = password_login()["access_token"]
    public = make_client(grant_types=("password", "refresh_token"), public=True)
    response = http.post("/oauth/introspect", data={"token": token, "client_id": public.client_id})
    assert response.status_code == 401
    assert response.json["error"] == "invalid_client"


def test_missing_token_parameter_is_invalid_request(http, app_client):
    response = http.post(
        "/oauth/introspect", data={"token_type_hint": "access_token"}, headers=app_client.basic
    )
    assert response.status_code == 400 and response.json["error"] == "invalid_request"


def test_an_active_access_token_reports_every_rfc7662_field(http, password_login, app_client, user):
    token = password_login()["access_token"]
    response = introspection(http, app_client, token)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    info = response.json
    claims = unverified(token)
    assert info["active"] is True
    assert info["token_type"] == "Bearer"
    assert info["scope"] == "profile properties.read"
    assert info["client_id"] == app_client.client_id
    assert info["sub"] == user
    assert info["iss"] == ISSUER
    assert info["aud"] == ISSUER
    for name in ("exp", "iat", "jti", "sid"):
        assert info[name] == claims[name], name
    assert info["exp"] - info["iat"] == 300


def test_an_active_refresh_token_reports_its_type_and_session(
    http, password_login, app_client, user
):
    token = password_login()
    info = introspection(http, app_client, token["refresh_token"]).json
    assert info["active"] is True
    assert info["token_type"] == "refresh_token"
    assert info["client_id"] == app_client.client_id
    assert info["sub"] == user
    assert info["sid"] == unverified(token["access_token"])["sid"]
    assert info["scope"] == "profile properties.read"
    assert info["exp"] > info["iat"]


def test_a_client_credentials_token_is_active_without_a_session(http, app_client):
    token = http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=app_client.basic
    ).json["access_token"]
    info = introspection(http, app_client, token).json
    assert info["active"] is True
    assert info["client_id"] == app_client.client_id
    assert "sid" not in info


@pytest.mark.parametrize(
    ("which", "hint"),
    [("access_token", "refresh_token"), ("refresh_token", "access_token")],
)
def test_a_wrong_token_type_hint_does_not_change_the_answer(
    http, password_login, app_client, which, hint
):
    token = password_login()[which]
    info = introspection(http, app_client, token, token_type_hint=hint).json
    assert info["active"] is True
    assert info["token_type"] == ("Bearer" if which == "access_token" else "refresh_token")


def test_another_clients_token_reads_inactive_unless_asked_by_a_resource_server(
    http, password_login, make_client
):
    token = password_login()
    other = make_client(name="other app")
    api = make_client(name="orders api", grant_types=("client_credentials",), resource_server=True)
    for value in (token["access_token"], token["refresh_token"]):
        assert introspection(http, other, value).json == {"active": False}
        assert introspection(http, api, value).json["active"] is True


def test_a_deactivated_clients_tokens_are_inactive(app, http, app_client, make_client, user):
    from authserver.extensions import db
    from authserver.oauth.models import Client

    api = make_client(name="orders api", grant_types=("client_credentials",), resource_server=True)
    signed_in = http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "+33612975634", "password": PASSWORD},
        headers=app_client.basic,
    ).json
    service = http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=app_client.basic
    ).json
    tokens = [signed_in["access_token"], signed_in["refresh_token"], service["access_token"]]
    assert all(introspection(http, api, value).json["active"] for value in tokens)

    with app.app_context():
        db.session.get(Client, app_client.client_id).is_active = False
        db.session.commit()
    for value in tokens:
        assert introspection(http, api, value).json == {"active": False}


def test_an_expired_access_token_is_inactive_once_past_the_clock_skew(
    http, password_login, app_client, time_machine
):
    token = password_login()["access_token"]
    exp = unverified(token)["exp"]
    time_machine.move_to(datetime.fromtimestamp(exp - 5, tz=UTC))
    assert introspection(http, app_client, token).json["active"] is True
    time_machine.move_to(datetime.fromtimestamp(exp, tz=UTC) + timedelta(seconds=61))
    assert introspection(http, app_client, token).json == {"active": False}


def test_revoked_tokens_are_inactive(http, password_login, app_client):
    token = password_login()
    assert (
        http.post(
            "/oauth/revoke", data={"token": token["refresh_token"]}, headers=app_client.basic
        ).status_code
        == 200
    )
    assert introspection(http, app_client, token["access_token"]).json == {"active": False}
    assert introspection(http, app_client, token["refresh_token"]).json == {"active": False}


def forge(app, access_token: str, kind: str) -> str:
    """A token derived from a real one that this server must not accept."""
    kid, private_pem, public_pem = signing_material(app)
    claims = unverified(access_token)
    header = {"alg": "RS256", "typ": "at+jwt", "kid": kid}
    if kind == "garbage":
        return "certainly-not-a-token"
    if kind == "tampered":
        head, payload, signature = access_token.split(".")
        raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
        raw[len(raw) // 2] ^= 0x01
        return f"{head}.{payload}.{b64(bytes(raw))}"
    if kind == "escalated":  # claims edited, original signature kept
        head, _, signature = access_token.split(".")
        payload = b64(json.dumps({**claims, "scope": "admin"}).encode())
        return f"{head}.{payload}.{signature}"
    if kind in ("alg_none", "hs256_with_public_key"):
        alg = "none" if kind == "alg_none" else "HS256"
        head = b64(json.dumps({**header, "alg": alg}).encode())
        signing_input = f"{head}.{b64(json.dumps(claims).encode())}"
        signature = b""
        if alg == "HS256":
            signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64(signature)}"
    if kind == "typ_jwt":
        return jwt.encode(claims, private_pem, algorithm="RS256", headers={**header, "typ": "JWT"})
    if kind == "no_typ":
        return jwt.encode(claims, private_pem, algorithm="RS256", headers={"kid": kid})
    if kind == "wrong_iss":
        forged = {**claims, "iss": "https://evil.example"}
        return jwt.encode(forged, private_pem, algorithm="RS256", headers=header)
    if kind == "unknown_kid":
        return jwt.encode(claims, private_pem, algorithm="RS256", headers={**header, "kid": "x"})
    raise AssertionError(kind)


FORGERIES = [
    "garbage",
    "tampered",
    "escalated",
    "alg_none",
    "hs256_with_public_key",
    "typ_jwt",
    "no_typ",
    "wrong_iss",
    "unknown_kid",
]


@pytest.mark.parametrize("kind", FORGERIES)
def test_forged_tokens_are_inactive(app, http, password_login, app_client, kind):
    token = password_login()["access_token"]
    forged = forge(app, token, kind)
    assert forged != token
    response = introspection(http, app_client, forged)
    assert response.status_code == 200
    assert response.json == {"active": False}


def test_the_forgery_helper_can_produce_an_accepted_token(app, http, password_login, app_client):
    """The forgeries above differ from a valid token only in what they test: the same
    helper with the right header and claims yields a token the server accepts."""
    kid, private_pem, _ = signing_material(app)
    claims = unverified(password_login()["access_token"])
    genuine = jwt.encode(
        claims, private_pem, algorithm="RS256", headers={"typ": "at+jwt", "kid": kid}
    )
    assert introspection(http, app_client, genuine).json["active"] is True


@pytest.mark.parametrize("value", ["", "a.b.c", "x" * 9000, "é" * 10])
def test_malformed_token_values_are_inactive_not_errors(http, app_client, value):
    response = introspection(http, app_client, value)
    assert response.status_code == 200
    assert response.json == {"active": False}
