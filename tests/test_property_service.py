"""The example downstream service (examples/property_service) against a live authserver:
what a property-management developer gets by following docs/resource-servers.md."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from joserfc import jws
from joserfc.jwk import RSAKey

from authserver.resource import RemoteJWKS, ResourceProtector
from examples.property_service.app import create_app
from tests.helpers import bearer
from tests.test_resource import AUDIENCE, Authserver, FakeClock, running_authserver

OWNER, OTHER, ADMIN, ENTITLED = "0612975634", "0612975635", "0612975636", "0612975637"
REALM = f'Bearer realm="{AUDIENCE}"'


@pytest.fixture
def authserver(app, database_url, keys_dir) -> Iterator[Authserver]:
    with running_authserver(app, database_url, keys_dir) as server:
        yield server


@pytest.fixture
def users(app, make_user) -> dict[str, str]:
    from authserver.accounts.models import User
    from authserver.accounts.services import get_or_create_permission
    from authserver.extensions import db

    ids = {
        "owner": make_user(OWNER),
        "other": make_user(OTHER),
        "admin": make_user(ADMIN, groups=["Admin User"]),
        "entitled": make_user(ENTITLED),
    }
    with app.app_context():
        user = db.session.get(User, uuid.UUID(ids["entitled"]))
        user.permissions.append(get_or_create_permission("properties.admin", "Edit properties"))
        db.session.commit()
    return ids


def property_service(authserver: Authserver, owner: str, clock=None, audience: str = AUDIENCE):
    keys = RemoteJWKS(authserver.url, clock=clock or FakeClock())
    service = create_app(
        authserver.url,
        audience,
        properties=[
            {"id": "p1", "name": "Harbour view", "address": "1 Quai Rambaud", "owner": owner},
            {"id": "p2", "name": "Old mill", "address": "4 Rue du Moulin", "owner": "someone"},
        ],
        protector=ResourceProtector(issuer=authserver.url, audience=audience, keys=keys),
    )
    return service.test_client()


def assert_invalid_token(response, description: str, realm: str = REALM) -> None:
    assert response.status_code == 401, response.json
    assert response.json == {"error": "invalid_token", "error_description": description}
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(f'{realm}, error="invalid_token", error_description="')
    assert description in challenge


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(header: dict, claims: dict) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


def hs256_with_public_key(header: dict, claims: dict, public_pem: bytes) -> str:
    """The classic key-confusion forgery: HMAC keyed with the RSA public key's PEM."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def test_property_service_end_to_end(authserver, make_client, users, time_machine):
    clock = FakeClock()
    http = property_service(authserver, users["owner"], clock)
    client = make_client()

    # A token obtained from authserver reads properties.
    token = authserver.password_token(client, OWNER)
    listed = http.get("/properties", headers=bearer(token))
    assert listed.status_code == 200
    assert [p["id"] for p in listed.json["properties"]] == ["p1", "p2"]
    shown = http.get("/properties/p1", headers=bearer(token))
    assert shown.status_code == 200
    assert shown.json["owner"] == users["owner"]

    # Not enough scope: 403 naming the scope needed.
    narrow = authserver.password_token(make_client(scope="profile"), OWNER)
    response = http.get("/properties", headers=bearer(narrow))
    assert response.status_code == 403
    assert response.json["error"] == "insufficient_scope"
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="properties.read"' in challenge

    # Rotations (the second promotes a key the service never cached): every token works.
    first_kid = authserver.active_kid()
    authserver.rotate()
    authserver.rotate()
    new = authserver.password_token(client, OWNER)
    assert jws.extract_compact(new.encode()).headers()["kid"] != first_kid
    for each in (new, token):
        assert http.get("/properties/p1", headers=bearer(each)).status_code == 200

    # The first key is revoked: once the service's JWKS cache expires, its tokens fail.
    authserver.revoke(first_kid)
    clock.advance(301)
    assert_invalid_token(
        http.get("/properties/p1", headers=bearer(token)),
        "The access token is signed with an unknown key.",
    )
    assert http.get("/properties/p1", headers=bearer(new)).status_code == 200

    # A token for this service is refused by a service with another audience.
    billing = property_service(authserver, users["owner"], audience="urn:example:billing")
    assert_invalid_token(
        billing.get("/properties", headers=bearer(new)),
        "The access token is for another audience.",
        realm='Bearer realm="urn:example:billing"',
    )

    # Forgeries, each with its own RFC 6750 answer.
    header = jws.extract_compact(new.encode()).headers()
    claims = json.loads(jws.extract_compact(new.encode()).payload)
    jwks = requests.get(f"{authserver.url}/.well-known/jwks.json", timeout=10).json()
    public = RSAKey.import_key(next(k for k in jwks["keys"] if k["kid"] == header["kid"]))
    forged = {
        "alg none": unsigned({**header, "alg": "none"}, claims),
        "HS256 with the public key": hs256_with_public_key(
            {**header, "alg": "HS256"}, claims, public.as_pem()
        ),
    }
    for value in forged.values():
        assert_invalid_token(
            http.get("/properties", headers=bearer(value)),
            "The access token must be signed with RS256.",
        )
    for typ in ({"typ": "JWT"}, {"typ": "id_token+jwt"}):
        assert_invalid_token(
            http.get("/properties", headers=bearer(authserver.sign(claims, **typ))),
            "The token is not an access token (typ must be at+jwt).",
        )
    no_typ = jws.serialize_compact(
        {"alg": "RS256", "kid": header["kid"]}, json.dumps(claims), _active_private_key(authserver)
    )
    assert_invalid_token(
        http.get("/properties", headers=bearer(no_typ)),
        "The token is not an access token (typ must be at+jwt).",
    )
    tampered = authserver.sign({**claims, "scope": "properties.read properties.admin"})
    tampered = ".".join([*tampered.split(".")[:2], new.split(".")[2]])
    assert_invalid_token(
        http.get("/properties", headers=bearer(tampered)),
        "The access token signature is invalid.",
    )

    # Expiry, with the 30 s leeway: just past exp still works, past the leeway does not.
    expires = datetime.fromtimestamp(claims["exp"], UTC)
    time_machine.move_to(expires + timedelta(seconds=10), tick=False)
    assert http.get("/properties", headers=bearer(new)).status_code == 200
    time_machine.move_to(expires + timedelta(seconds=31), tick=False)
    assert_invalid_token(
        http.get("/properties", headers=bearer(new)), "The access token has expired."
    )


def _active_private_key(authserver: Authserver):
    from authserver.context import keyring

    with authserver.app.app_context():
        snap = keyring().snapshot()
        return snap.signing.get_by_kid(snap.active_kid)


def test_only_owners_and_admins_edit(authserver, make_client, users):
    http = property_service(authserver, users["owner"])
    client = make_client()
    owner, other, admin, entitled = (
        authserver.password_token(client, phone) for phone in (OWNER, OTHER, ADMIN, ENTITLED)
    )

    edited = http.put("/properties/p1", json={"name": "Harbour view II"}, headers=bearer(owner))
    assert edited.status_code == 200
    assert edited.json["name"] == "Harbour view II"
    assert http.get("/properties/p1", headers=bearer(other)).json["name"] == "Harbour view II"

    refused = http.put("/properties/p1", json={"name": "Mine now"}, headers=bearer(other))
    assert refused.status_code == 403
    assert refused.json["error"] == "forbidden"
    assert http.get("/properties/p1", headers=bearer(owner)).json["name"] == "Harbour view II"
    # The owner of p1 is not the owner of p2.
    assert http.put("/properties/p2", json={"name": "x"}, headers=bearer(owner)).status_code == 403

    by_group = http.put("/properties/p2", json={"name": "Group edit"}, headers=bearer(admin))
    assert by_group.status_code == 200
    by_entitlement = http.put(
        "/properties/p1", json={"address": "2 Quai Rambaud"}, headers=bearer(entitled)
    )
    assert by_entitlement.status_code == 200
    assert by_entitlement.json["address"] == "2 Quai Rambaud"

    for body in ({}, {"owner": "me"}, {"name": ""}, {"name": 3}):
        bad = http.put("/properties/p1", json=body, headers=bearer(owner))
        assert bad.status_code == 400, body
        assert bad.json["error"] == "invalid_request"
    missing = http.get("/properties/nope", headers=bearer(owner))
    assert missing.status_code == 404
    assert missing.json["error"] == "not_found"


def test_requests_without_a_usable_bearer_token(authserver, users):
    http = property_service(authserver, users["owner"])
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = http.get("/properties", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == REALM  # no error code (RFC 6750 §3.1)
        assert "error" not in response.json
        assert http.put("/properties/p1", json={}, headers=headers).status_code == 401

    for value in ("Bearer", "Bearer  ", "Bearer a b"):
        response = http.get("/properties", headers={"Authorization": value})
        assert response.status_code == 400
        assert response.json["error"] == "invalid_request"
        assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]

    for garbage in ("abc", "a.b.c", "x" * 9000):
        assert_invalid_token(
            http.get("/properties", headers=bearer(garbage)), "The access token is not a JWT."
        )
