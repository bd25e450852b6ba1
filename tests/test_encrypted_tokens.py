"""Encrypted access tokens (issue #10): an audience registered with a public encryption key
gets nested JWTs (the signed RFC 9068 token encrypted to its key). Through HTTP against a
live authserver: the client cannot read them, the resource server can (with
authserver.resource and, independently, with joserfc and the JWKS fetched over HTTP),
introspection and revocation still work, and every kind of tampering is refused."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt as pyjwt
import pytest
import requests
from joserfc import jwe, jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey
from joserfc.jwt import JWTClaimsRegistry

from authserver.otp import OTP_GRANT_TYPE
from authserver.resource import InvalidToken, RemoteJWKS, ResourceProtector
from examples.property_service.app import create_app as property_service
from tests.conftest import PASSWORD, PHONE
from tests.helpers import committed
from tests.test_resource import AUDIENCE as DEFAULT_AUDIENCE
from tests.test_resource import Authserver, FakeClock, protected_app

PROPERTIES = "https://properties.example.com"
BILLING = "urn:example:billing"
PLAIN = "https://plain.example.com"
ALGORITHMS = ["RSA-OAEP-256", "ECDH-ES", "A256GCM"]


# --- keys: generated once (RSA generation is slow), each an audience's private key -----
@pytest.fixture(scope="module")
def rsa_keys() -> list[RSAKey]:
    return [RSAKey.generate_key(2048, private=True) for _ in range(2)]


@pytest.fixture(scope="module")
def ec_keys() -> list[ECKey]:
    return [ECKey.generate_key("P-256", private=True) for _ in range(2)]


@pytest.fixture(params=["RSA-OAEP-256", "ECDH-ES"])
def alg(request) -> str:
    return request.param


@pytest.fixture
def keys(alg, rsa_keys, ec_keys) -> list[RSAKey] | list[ECKey]:
    """Two private keys of the kind ``alg`` needs: the service's current and next key."""
    return rsa_keys if alg == "RSA-OAEP-256" else ec_keys


@pytest.fixture
def authserver(app, database_url, keys_dir):
    from tests.test_resource import running_authserver

    with running_authserver(app, database_url, keys_dir) as server:
        yield server


# --- helpers ---------------------------------------------------------------------------
def public(key) -> dict:
    return key.as_dict(private=False)


def register(app, identifier: str, key=None, name: str = "") -> str:
    """Register an audience (with the public half of ``key``) through the service layer,
    as the admin API and the CLI do; returns its id."""
    from authserver.audiences.services import create_audience, public_key_from_jwk
    from authserver.extensions import db

    with committed(app):
        parsed = public_key_from_jwk(public(key)) if key is not None else None
        audience = create_audience(identifier, name, parsed, actor="tests")
        db.session.commit()
        return str(audience.id)


def set_key(app, identifier: str, key) -> None:
    from authserver.audiences.services import (
        find_audience,
        public_key_from_jwk,
        set_encryption_key,
    )
    from authserver.extensions import db

    with committed(app):
        set_encryption_key(find_audience(identifier), public_key_from_jwk(public(key)), actor="t")
        db.session.commit()


def remove_key(app, identifier: str) -> None:
    from authserver.audiences.services import find_audience, remove_encryption_key
    from authserver.extensions import db

    with app.app_context():
        remove_encryption_key(find_audience(identifier), actor="tests")
        db.session.commit()


def b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwe_header(token: str) -> dict:
    return json.loads(b64decode(token.split(".")[0]))


def token_response(server: Authserver, client, **data: str) -> requests.Response:
    return requests.post(f"{server.url}/oauth/token", data=data, headers=client.basic, timeout=10)


def password_tokens(server: Authserver, client, **extra: str) -> dict:
    response = token_response(
        server, client, grant_type="password", username=PHONE, password=PASSWORD, **extra
    )
    assert response.status_code == 200, response.text
    return response.json()


def introspect(server: Authserver, client, token: str) -> dict:
    response = requests.post(
        f"{server.url}/oauth/introspect", data={"token": token}, headers=client.basic, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def revoke(server: Authserver, client, token: str) -> None:
    response = requests.post(
        f"{server.url}/oauth/revoke", data={"token": token}, headers=client.basic, timeout=10
    )
    assert response.status_code == 200, response.text


def service(server: Authserver, audience: str = PROPERTIES, **options) -> ResourceProtector:
    keys = RemoteJWKS(server.url, clock=FakeClock())
    return ResourceProtector(issuer=server.url, audience=audience, keys=keys, **options)


def independently_verified(server: Authserver, token: str, private_key, audience: str) -> dict:
    """What any resource server can do with joserfc alone: decrypt with its private key,
    then verify the inner JWS against the JWKS fetched over HTTP."""
    decrypted = jwe.decrypt_compact(token, private_key, algorithms=ALGORITHMS)
    assert decrypted.protected["cty"] == "JWT"
    inner = decrypted.plaintext.decode()
    jwks = KeySet.import_key_set(
        requests.get(f"{server.url}/.well-known/jwks.json", timeout=10).json()
    )
    verified = jwt.decode(inner, jwks, algorithms=["RS256"])
    assert verified.header["typ"] == "at+jwt"
    JWTClaimsRegistry(
        iss={"essential": True, "value": server.url},
        aud={"essential": True, "value": audience},
        exp={"essential": True},
        jti={"essential": True},
    ).validate(verified.claims)
    return verified.claims


# --- the client's side -----------------------------------------------------------------
def test_client_receives_an_encrypted_token_it_cannot_decode(
    authserver, make_client, user, keys, alg
):
    register(authserver.app, PROPERTIES, keys[0])
    answer = password_tokens(authserver, make_client(), resource=PROPERTIES)

    # The token response is otherwise the usual one.
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == 300
    assert answer["refresh_token"] and answer["scope"] == "profile properties.read"
    token = answer["access_token"]
    assert token.count(".") == 4  # compact JWE
    assert jwe_header(token) == {
        "alg": alg,
        "enc": "A256GCM",
        "cty": "JWT",  # a nested JWT (RFC 7519 §5.2); the inner token keeps typ at+jwt
        "kid": keys[0].thumbprint(),
        **({"epk": jwe_header(token)["epk"]} if alg == "ECDH-ES" else {}),
    }
    # Nothing a client might try reads it: not a JWS, no claims in the clear.
    with pytest.raises(pyjwt.DecodeError):
        pyjwt.decode(token, options={"verify_signature": False})
    with pytest.raises((JoseError, ValueError)):
        jws.extract_compact(token.encode())
    for part in token.split(".")[1:]:
        assert b"sub" not in b64decode(part) and user.encode() not in b64decode(part)
    # ...and authserver keeps no copy of it, only its keyed hash and what introspection needs.
    from authserver.audiences.models import EncryptedAccessToken
    from authserver.extensions import db

    with authserver.app.app_context():
        (row,) = db.session.query(EncryptedAccessToken).all()
        assert token.encode() not in row.token_hash and len(row.token_hash) == 32
        assert row.claims["aud"] == PROPERTIES and row.claims["sub"] == user


def test_resource_server_accepts_it_with_the_toolkit_and_independently(
    authserver, make_client, user, keys, alg
):
    register(authserver.app, PROPERTIES, keys[0])
    token = password_tokens(authserver, make_client(), resource=PROPERTIES)["access_token"]

    protect = service(authserver, decryption_keys=keys[0].as_pem(private=True))
    http = protected_app(protect).test_client()
    response = http.get("/read", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.json
    assert response.json == {"sub": user}

    claims = independently_verified(authserver, token, keys[0], PROPERTIES)
    assert claims == protect.validator.verify(token, ["properties.read"])
    assert claims["aud"] == PROPERTIES and claims["sub"] == user
    assert claims["amr"] == ["pwd"] and claims["sid"]


def test_introspection_answers_active_and_revocation_makes_it_inactive(
    authserver, make_client, user, keys, alg
):
    from authserver.oauth.clients import create_client

    register(authserver.app, PROPERTIES, keys[0])
    client = make_client()
    token = password_tokens(authserver, client, resource=PROPERTIES)["access_token"]
    inner = independently_verified(authserver, token, keys[0], PROPERTIES)

    info = introspect(authserver, client, token)
    assert info["active"] is True
    assert info["token_type"] == "Bearer"
    assert info["aud"] == PROPERTIES
    for name in ("jti", "sub", "client_id", "exp", "iat", "sid", "scope"):
        assert info[name] == inner[name], name
    # As for plain tokens: another client learns nothing, a resource server may ask.
    assert introspect(authserver, make_client(name="other"), token) == {"active": False}
    with committed(authserver.app):
        rs, secret = create_client(
            name="properties", grant_types=["client_credentials"], resource_server=True, actor="t"
        )
        rs_id = rs.client_id
    checking = service(
        authserver, decryption_keys=keys[0].as_dict(private=True), introspection=(rs_id, secret)
    )
    assert checking.validator.verify(token)["sub"] == user

    revoke(authserver, client, token)
    assert introspect(authserver, client, token) == {"active": False}
    with pytest.raises(InvalidToken) as caught:
        checking.validator.verify(token)
    assert caught.value.description == "The access token has been revoked."


def test_revoking_the_session_or_the_signing_key_ends_encrypted_tokens(
    authserver, make_client, user, rsa_keys
):
    register(authserver.app, PROPERTIES, rsa_keys[0])
    client = make_client()
    first = password_tokens(authserver, client, resource=PROPERTIES)
    revoke(authserver, client, first["refresh_token"])  # ends the session
    assert introspect(authserver, client, first["access_token"]) == {"active": False}

    second = password_tokens(authserver, client, resource=PROPERTIES)["access_token"]
    assert introspect(authserver, client, second)["active"] is True
    old_kid = authserver.active_kid()
    authserver.rotate()
    assert introspect(authserver, client, second)["active"] is True  # retired, still published
    authserver.revoke(old_kid)
    assert introspect(authserver, client, second) == {"active": False}


def test_introspection_of_an_expired_encrypted_token_is_inactive(
    authserver, make_client, user, ec_keys, time_machine
):
    from authserver.audiences.services import purge_expired_token_records

    register(authserver.app, PROPERTIES, ec_keys[0])
    client = make_client()
    token = password_tokens(authserver, client, resource=PROPERTIES)["access_token"]
    revoked = password_tokens(authserver, client, resource=PROPERTIES)["access_token"]
    revoke(authserver, client, revoked)
    exp = independently_verified(authserver, token, ec_keys[0], PROPERTIES)["exp"]

    time_machine.move_to(datetime.fromtimestamp(exp - 5, tz=UTC))
    assert introspect(authserver, client, token)["active"] is True
    with authserver.app.app_context():  # nothing has expired yet: nothing purged
        assert purge_expired_token_records() == {
            "encrypted_access_tokens": 0,
            "revoked_access_tokens": 0,
        }
    time_machine.move_to(datetime.fromtimestamp(exp, tz=UTC) + timedelta(seconds=61))
    assert introspect(authserver, client, token) == {"active": False}
    time_machine.move_to(datetime.fromtimestamp(exp, tz=UTC) + timedelta(seconds=120))
    with authserver.app.app_context():
        from authserver.extensions import db

        assert purge_expired_token_records() == {
            "encrypted_access_tokens": 2,
            "revoked_access_tokens": 1,
        }
        db.session.commit()
    assert introspect(authserver, client, token) == {"active": False}


# --- what the resource server refuses -------------------------------------------------
def test_a_token_encrypted_to_another_audiences_key_is_refused(
    authserver, make_client, user, rsa_keys, ec_keys
):
    register(authserver.app, PROPERTIES, rsa_keys[0])
    register(authserver.app, BILLING, ec_keys[0])
    client = make_client()
    for_billing = password_tokens(authserver, client, resource=BILLING)["access_token"]
    assert jwe_header(for_billing)["kid"] == ec_keys[0].thumbprint()

    properties = service(authserver, decryption_keys=rsa_keys[0].as_pem(private=True))
    http = protected_app(properties).test_client()
    response = http.get("/read", headers={"Authorization": f"Bearer {for_billing}"})
    assert response.status_code == 401
    assert response.json == {
        "error": "invalid_token",
        "error_description": "The access token is encrypted to an unknown key.",
    }
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    # Even a service that (wrongly) holds both private keys refuses it: its aud is not ours.
    greedy = service(
        authserver,
        decryption_keys=[rsa_keys[0].as_pem(private=True), ec_keys[0].as_pem(private=True)],
    )
    with pytest.raises(InvalidToken) as caught:
        greedy.validator.verify(for_billing)
    assert caught.value.description == "The access token is for another audience."
    with pytest.raises(JoseError):  # nor can anyone decrypt it with the wrong key
        jwe.decrypt_compact(for_billing, rsa_keys[0], algorithms=ALGORITHMS)


def tamper(token: str, index: int) -> str:
    """The token with one part changed: the protected header gains a member, any other
    part gets one bit flipped (or, if empty as ECDH-ES's encrypted key is, some bytes)."""
    parts = token.split(".")
    if index == 0:
        parts[0] = b64encode(json.dumps({**jwe_header(token), "x": 1}).encode())
    else:
        raw = bytearray(b64decode(parts[index]))
        if raw:
            raw[len(raw) // 2] ^= 0x01
        else:
            raw = bytearray(32)
        parts[index] = b64encode(bytes(raw))
    return ".".join(parts)


@pytest.mark.parametrize(
    "index", [0, 1, 2, 3, 4], ids=["header", "encrypted_key", "iv", "ciphertext", "tag"]
)
def test_tampering_with_any_jwe_part_is_refused(authserver, make_client, user, keys, alg, index):
    register(authserver.app, PROPERTIES, keys[0])
    client = make_client()
    token = password_tokens(authserver, client, resource=PROPERTIES)["access_token"]
    forged = tamper(token, index)
    assert forged != token

    protect = service(authserver, decryption_keys=keys[0].as_pem(private=True))
    response = (
        protected_app(protect)
        .test_client()
        .get("/read", headers={"Authorization": f"Bearer {forged}"})
    )
    assert response.status_code == 401, response.json
    assert response.json == {
        "error": "invalid_token",
        "error_description": "The access token cannot be decrypted.",
    }
    assert introspect(authserver, client, forged) == {"active": False}
    with pytest.raises((JoseError, ValueError)):
        jwe.decrypt_compact(forged, keys[0], algorithms=ALGORITHMS)
    assert protect.validator.verify(token)["sub"] == user  # the genuine one still passes


def forged_header(token: str, **changes) -> str:
    header = {**jwe_header(token), **changes}
    return ".".join([b64encode(json.dumps(header).encode()), *token.split(".")[1:]])


@pytest.mark.parametrize(
    ("changes", "description"),
    [
        ({"alg": "RSA1_5"}, "must be encrypted with RSA-OAEP-256 or ECDH-ES and A256GCM."),
        ({"alg": "dir"}, "must be encrypted with RSA-OAEP-256 or ECDH-ES and A256GCM."),
        ({"enc": "A128CBC-HS256"}, "must be encrypted with RSA-OAEP-256 or ECDH-ES and A256GCM."),
        ({"cty": "json"}, "The encrypted token does not hold a JWT (cty)."),
        ({"zip": "DEF"}, "Compressed tokens are not accepted."),
        ({"kid": "someone-else"}, "The access token is encrypted to an unknown key."),
        (
            {"alg": "ECDH-ES"},
            "The access token is encrypted with an algorithm its key does not use.",
        ),
    ],
)
def test_unexpected_jwe_headers_are_refused_before_decryption(
    authserver, make_client, user, rsa_keys, changes, description
):
    register(authserver.app, PROPERTIES, rsa_keys[0])
    token = password_tokens(authserver, make_client(), resource=PROPERTIES)["access_token"]
    protect = service(authserver, decryption_keys=rsa_keys[0].as_pem(private=True))
    with pytest.raises(InvalidToken) as caught:
        protect.validator.verify(forged_header(token, **changes))
    assert caught.value.description.endswith(description)


def test_an_encrypted_token_holding_another_jwe_or_garbage_is_refused(
    authserver, make_client, user, rsa_keys
):
    """Whatever an attacker encrypts to the service's public key, only a JWS signed by
    authserver passes."""
    register(authserver.app, PROPERTIES, rsa_keys[0])
    token = password_tokens(authserver, make_client(), resource=PROPERTIES)["access_token"]
    pub = RSAKey.import_key(public(rsa_keys[0]))
    header = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT", "kid": pub.thumbprint()}
    protect = service(authserver, decryption_keys=rsa_keys[0].as_pem(private=True))
    for plaintext, description in (
        (token, "The encrypted token does not hold a signed JWT."),
        ("not a token", "The encrypted token does not hold a signed JWT."),
        ("a.b.c", "The access token is not a JWT."),
    ):
        forged = jwe.encrypt_compact(header, plaintext, pub, algorithms=ALGORITHMS)
        with pytest.raises(InvalidToken) as caught:
            protect.validator.verify(forged)
        assert caught.value.description == description
    # A well-formed inner token signed by someone else fails its signature check.
    impostor = RSAKey.generate_key(2048, private=True, auto_kid=True)
    inner = jwt.encode(
        {"alg": "RS256", "typ": "at+jwt", "kid": authserver.active_kid()},
        {"iss": authserver.url, "aud": PROPERTIES, "sub": "x", "exp": 2**31},
        impostor,
    )
    forged = jwe.encrypt_compact(header, inner, pub, algorithms=ALGORITHMS)
    with pytest.raises(InvalidToken) as caught:
        protect.validator.verify(forged)
    assert caught.value.description == "The access token signature is invalid."


def test_without_decryption_keys_an_encrypted_token_is_invalid_and_plain_ones_can_be_refused(
    authserver, make_client, user, ec_keys
):
    register(authserver.app, PROPERTIES, ec_keys[0])
    register(authserver.app, PLAIN)
    client = make_client()
    encrypted = password_tokens(authserver, client, resource=PROPERTIES)["access_token"]
    plain = password_tokens(authserver, client, resource=PLAIN)["access_token"]

    unprepared = protected_app(service(authserver)).test_client()
    response = unprepared.get("/read", headers={"Authorization": f"Bearer {encrypted}"})
    assert response.status_code == 401
    assert response.json["error_description"] == (
        "The access token is encrypted and this service cannot read it."
    )

    strict = service(
        authserver, audience=PLAIN, decryption_keys=[ec_keys[0]], require_encryption=True
    )
    with pytest.raises(InvalidToken) as caught:
        strict.validator.verify(plain)
    assert caught.value.description == "This service accepts only encrypted access tokens."
    lenient = service(authserver, audience=PLAIN, decryption_keys=[ec_keys[0]])
    assert lenient.validator.verify(plain)["aud"] == PLAIN

    with pytest.raises(ValueError, match="private"):
        service(authserver, decryption_keys=public(ec_keys[0]))
    with pytest.raises(ValueError, match="decryption_keys"):
        service(authserver, require_encryption=True)


def test_authserver_itself_does_not_accept_encrypted_tokens(
    authserver, make_client, user, rsa_keys
):
    register(authserver.app, PROPERTIES, rsa_keys[0])
    token = password_tokens(authserver, make_client(), resource=PROPERTIES)["access_token"]
    response = requests.get(
        f"{authserver.url}/oauth/userinfo",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


# --- asking for an audience -----------------------------------------------------------
def test_plain_tokens_without_resource_or_for_audiences_without_a_key(
    authserver, make_client, user, rsa_keys
):
    register(authserver.app, PROPERTIES, rsa_keys[0])
    register(authserver.app, PLAIN)
    client = make_client()
    cases = [({}, DEFAULT_AUDIENCE), ({"resource": DEFAULT_AUDIENCE}, DEFAULT_AUDIENCE)]
    cases.append(({"resource": PLAIN}, PLAIN))
    for extra, audience in cases:
        token = password_tokens(authserver, client, **extra)["access_token"]
        assert token.count(".") == 2, extra
        header = pyjwt.get_unverified_header(token)
        assert header["typ"] == "at+jwt" and header["alg"] == "RS256"
        claims = service(authserver, audience=audience).validator.verify(token)
        assert claims["aud"] == audience
        assert introspect(authserver, client, token)["aud"] == audience


@pytest.mark.parametrize(
    "resource",
    [
        ["https://unknown.example.com"],
        ["properties.example.com"],  # not an absolute URI
        [""],
        [PROPERTIES, BILLING],
        [PROPERTIES, PROPERTIES],
    ],
    ids=["unknown", "relative", "empty", "two", "repeated"],
)
def test_unknown_or_several_resources_are_invalid_target(
    authserver, make_client, user, rsa_keys, ec_keys, resource
):
    register(authserver.app, PROPERTIES, rsa_keys[0])
    register(authserver.app, BILLING, ec_keys[0])
    client = make_client()
    refresh = password_tokens(authserver, client)["refresh_token"]
    for data in (
        {"grant_type": "password", "username": PHONE, "password": PASSWORD},
        {"grant_type": "client_credentials"},
        {"grant_type": "refresh_token", "refresh_token": refresh},
    ):
        response = token_response(authserver, client, **data, resource=resource)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_target"  # RFC 8707 §2
        assert set(response.json()) == {"error", "error_description"}
        assert response.headers["Cache-Control"] == "no-store"
    # The refused refresh did not spend the refresh token.
    again = token_response(
        authserver, client, grant_type="refresh_token", refresh_token=refresh, resource=PROPERTIES
    )
    assert again.status_code == 200, again.text
    assert again.json()["access_token"].count(".") == 4


def test_refresh_with_resource_gets_an_encrypted_token_and_without_a_plain_one(
    authserver, make_client, user, rsa_keys
):
    register(authserver.app, PROPERTIES, rsa_keys[0])
    client = make_client()
    first = password_tokens(authserver, client, resource=PROPERTIES)

    def refresh(token: str, **extra: str) -> dict:
        response = token_response(
            authserver, client, grant_type="refresh_token", refresh_token=token, **extra
        )
        assert response.status_code == 200, response.text
        return response.json()

    second = refresh(first["refresh_token"], resource=PROPERTIES)
    assert second["access_token"].count(".") == 4
    claims = independently_verified(authserver, second["access_token"], rsa_keys[0], PROPERTIES)
    first_claims = independently_verified(
        authserver, first["access_token"], rsa_keys[0], PROPERTIES
    )
    assert claims["sid"] == first_claims["sid"] and claims["jti"] != first_claims["jti"]
    third = refresh(second["refresh_token"])  # no resource: the default audience
    assert third["access_token"].count(".") == 2
    assert pyjwt.decode(third["access_token"], options={"verify_signature": False})["aud"] == (
        DEFAULT_AUDIENCE
    )


def test_every_grant_takes_resource(app, make_otp_app, gateway, make_client, user, ec_keys):
    """password, refresh_token, client_credentials and the OTP grant (on an app that sends
    its codes to a real local SMS gateway)."""
    otp_app = make_otp_app()
    http = otp_app.test_client()
    register(otp_app, BILLING, ec_keys[1])
    client = make_client(
        grant_types=("password", "refresh_token", "client_credentials", OTP_GRANT_TYPE)
    )
    jwks = KeySet.import_key_set(http.get("/.well-known/jwks.json").json)

    def issued(data: dict) -> dict:
        response = http.post(
            "/oauth/token", data={**data, "resource": BILLING}, headers=client.basic
        )
        assert response.status_code == 200, response.json
        token = response.json["access_token"]
        inner = jwe.decrypt_compact(token, ec_keys[1], algorithms=ALGORITHMS).plaintext
        claims = jwt.decode(inner, jwks, algorithms=["RS256"]).claims
        assert claims["aud"] == BILLING
        return response.json

    signed_in = issued({"grant_type": "password", "username": PHONE, "password": PASSWORD})
    issued({"grant_type": "refresh_token", "refresh_token": signed_in["refresh_token"]})
    issued({"grant_type": "client_credentials"})
    assert http.post("/oauth/otp", data={"phone": PHONE}).status_code == 200
    code = gateway.last_code(PHONE)
    issued({"grant_type": OTP_GRANT_TYPE, "phone": PHONE, "otp": code})


# --- the audience's key changes -------------------------------------------------------
def test_replacing_the_key_keeps_old_tokens_working_for_services_holding_both(
    authserver, make_client, user, keys, alg
):
    register(authserver.app, PROPERTIES, keys[0])
    client = make_client()
    old = password_tokens(authserver, client, resource=PROPERTIES)["access_token"]

    set_key(authserver.app, PROPERTIES, keys[1])
    new = password_tokens(authserver, client, resource=PROPERTIES)["access_token"]
    assert jwe_header(old)["kid"] == keys[0].thumbprint()
    assert jwe_header(new)["kid"] == keys[1].thumbprint()

    # The service configures both private keys until the old tokens have expired.
    both = service(
        authserver,
        decryption_keys=[keys[1].as_pem(private=True), keys[0].as_dict(private=True)],
    )
    assert both.validator.verify(old)["sub"] == user
    assert both.validator.verify(new)["sub"] == user
    new_only = service(authserver, decryption_keys=keys[1])
    assert new_only.validator.verify(new)["sub"] == user
    with pytest.raises(InvalidToken):
        new_only.validator.verify(old)
    # authserver still introspects tokens encrypted to the replaced key.
    assert introspect(authserver, client, old)["active"] is True
    assert introspect(authserver, client, new)["active"] is True


def test_removing_the_key_gives_plain_tokens_again(authserver, make_client, user, rsa_keys):
    register(authserver.app, PROPERTIES, rsa_keys[0])
    client = make_client()
    encrypted = password_tokens(authserver, client, resource=PROPERTIES)["access_token"]
    remove_key(authserver.app, PROPERTIES)
    plain = password_tokens(authserver, client, resource=PROPERTIES)["access_token"]
    assert plain.count(".") == 2
    protect = service(authserver, decryption_keys=rsa_keys[0])
    assert protect.validator.verify(plain)["aud"] == PROPERTIES
    assert protect.validator.verify(encrypted)["aud"] == PROPERTIES  # until it expires
    assert introspect(authserver, client, encrypted)["active"] is True


def test_the_example_property_service_with_its_decryption_key(
    authserver, make_client, user, rsa_keys
):
    register(authserver.app, PROPERTIES, rsa_keys[0])
    client = make_client()
    encrypted = password_tokens(authserver, client, resource=PROPERTIES)["access_token"]
    plain = password_tokens(authserver, client)["access_token"]
    app = property_service(
        authserver.url,
        PROPERTIES,
        properties=[{"id": "p1", "name": "Harbour view", "address": "Quai", "owner": user}],
        decryption_keys=[rsa_keys[0].as_pem(private=True)],
        require_encryption=True,
    )
    http = app.test_client()
    listed = http.get("/properties", headers={"Authorization": f"Bearer {encrypted}"})
    assert listed.status_code == 200, listed.json
    assert [p["id"] for p in listed.json["properties"]] == ["p1"]
    edited = http.put(
        "/properties/p1",
        json={"name": "Renovated"},
        headers={"Authorization": f"Bearer {encrypted}"},
    )
    assert edited.status_code == 200 and edited.json["name"] == "Renovated"
    refused = http.get("/properties", headers={"Authorization": f"Bearer {plain}"})
    assert refused.status_code == 401
    assert refused.json["error_description"] == "This service accepts only encrypted access tokens."
