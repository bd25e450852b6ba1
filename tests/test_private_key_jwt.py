"""``private_key_jwt`` client authentication (RFC 7523, OpenID Connect Core §9): a
service client registers its public keys and signs a short assertion instead of sending
a secret. Assertions are built with PyJWT, tokens checked with PyJWT: neither shares code
with the server's joserfc/Authlib side."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt import PyJWKClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.conftest import ISSUER
from tests.test_admin import admin, admin_id, console  # noqa: F401  (fixtures)
from tests.test_cli import Installation
from tests.test_token_endpoint import TOKEN, assert_oauth_error

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CC = {"grant_type": "client_credentials"}


def public_jwk(private_key, kid: str) -> dict:
    algorithm = RSAAlgorithm if isinstance(private_key, rsa.RSAPrivateKey) else ECAlgorithm
    return {**json.loads(algorithm.to_jwk(private_key.public_key())), "kid": kid}


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def service(make_client, rsa_key, ec_key):
    jwks = {"keys": [public_jwk(rsa_key, "rsa-1"), public_jwk(ec_key, "ec-1")]}
    client = make_client(
        grant_types=("client_credentials",),
        scope="properties.read",
        auth_method="private_key_jwt",
        jwks=jwks,
    )
    assert client.secret is None  # nothing to leak
    return client


def assertion(client_id: str, key, *, kid="rsa-1", alg="RS256", headers=None, **claims) -> str:
    now = int(time.time())
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER + TOKEN,
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    body = {name: value for name, value in body.items() if value is not None}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid, **(headers or {})})


def hs256_by_hand(claims: dict, secret: bytes) -> str:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = b64(b'{"alg":"HS256","kid":"rsa-1"}') + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


def authenticated(value: str, **extra) -> dict:
    return {**CC, "client_assertion_type": ASSERTION_TYPE, "client_assertion": value, **extra}


def test_assertion_gets_a_token_that_verifies_with_pyjwt(http, live_server, service, rsa_key):
    response = http.post(TOKEN, data=authenticated(assertion(service.client_id, rsa_key)))
    assert response.status_code == 200, response.json
    token = response.json["access_token"]
    key = PyJWKClient(live_server.url + "/.well-known/jwks.json").get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=ISSUER, issuer=ISSUER)
    assert claims["sub"] == claims["client_id"] == service.client_id
    assert claims["scope"] == "properties.read"


def test_ec_key_and_issuer_audience_work_too(http, service, ec_key):
    value = assertion(service.client_id, ec_key, kid="ec-1", alg="ES256", aud=ISSUER)
    response = http.post(TOKEN, data=authenticated(value, client_id=service.client_id))
    assert response.status_code == 200, response.json


def test_replayed_jti_is_refused(http, service, rsa_key):
    value = assertion(service.client_id, rsa_key)
    assert http.post(TOKEN, data=authenticated(value)).status_code == 200
    assert_oauth_error(http.post(TOKEN, data=authenticated(value)), 401, "invalid_client")
    # Another assertion of the same client with the same jti: still a replay.
    same_jti = assertion(
        service.client_id,
        rsa_key,
        jti=jwt.decode(value, options={"verify_signature": False})["jti"],
        exp=int(time.time()) + 90,
    )
    assert_oauth_error(http.post(TOKEN, data=authenticated(same_jti)), 401, "invalid_client")


def test_refused_request_does_not_free_the_jti(http, service, rsa_key):
    """A grant refused after the client authenticated (here invalid_scope) rolls its
    transaction back: the jti claim was committed before, so the assertion stays spent."""
    value = assertion(service.client_id, rsa_key)
    refused = http.post(TOKEN, data=authenticated(value, scope="admin.everything"))
    assert_oauth_error(refused, 400, "invalid_scope")
    assert_oauth_error(http.post(TOKEN, data=authenticated(value)), 401, "invalid_client")


def test_parallel_replays_one_wins(app, service, rsa_key):
    value = assertion(service.client_id, rsa_key)
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def post() -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(client.post(TOKEN, data=authenticated(value)).status_code)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [401] * 7


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "too_long_lived",
        "wrong_audience",
        "wrong_key",
        "unknown_kid",
        "alg_none",
        "hs256",
        "iss_not_sub",
        "no_jti",
        "other_client_id",
        "future_iat",
    ],
)
def test_bad_assertions_are_invalid_client(http, service, rsa_key, case):
    now = int(time.time())
    cid = service.client_id
    extra = {}
    if case == "expired":
        value = assertion(cid, rsa_key, iat=now - 600, exp=now - 300)
    elif case == "too_long_lived":
        value = assertion(cid, rsa_key, exp=now + 3600)
    elif case == "wrong_audience":
        value = assertion(cid, rsa_key, aud="https://elsewhere.example/token")
    elif case == "wrong_key":
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        value = assertion(cid, other)
    elif case == "unknown_kid":
        value = assertion(cid, rsa_key, kid="nobody")
    elif case == "alg_none":
        value = assertion(cid, None, alg="none")
    elif case == "hs256":
        # The registered public key's text as an HMAC secret (the classic confusion);
        # signed by hand: PyJWT refuses to do it.
        secret = json.dumps(public_jwk(rsa_key, "rsa-1")).encode()
        value = hs256_by_hand(
            jwt.decode(assertion(cid, rsa_key), options={"verify_signature": False}), secret
        )
    elif case == "iss_not_sub":
        value = assertion(cid, rsa_key, iss="someone-else")
    elif case == "no_jti":
        value = assertion(cid, rsa_key, jti=None)
    elif case == "other_client_id":
        value = assertion(cid, rsa_key)
        extra = {"client_id": "someone-else"}
    else:
        value = assertion(cid, rsa_key, iat=now + 600, exp=now + 660)
    response = http.post(TOKEN, data=authenticated(value, **extra))
    assert_oauth_error(response, 401, "invalid_client")
    assert "access_token" not in response.json


def test_malformed_assertions_are_invalid_client_never_500(http, service):
    for value in ("", "abc", "a.b.c", "e30.e30.", "eyJhbGciOiJSUzI1NiJ9.W10.AAAA", "é" * 40):
        response = http.post(TOKEN, data=authenticated(value))
        assert response.status_code in (400, 401), (value, response.status_code)
        assert response.json["error"] in ("invalid_client", "invalid_request")


def test_secret_and_assertion_together_are_refused(http, service, rsa_key):
    value = assertion(service.client_id, rsa_key)
    response = http.post(TOKEN, data=authenticated(value, client_secret="anything"))
    assert_oauth_error(response, 400, "invalid_request")


def test_secret_client_cannot_use_an_assertion(http, make_client, rsa_key):
    secretive = make_client(grant_types=("client_credentials",))
    response = http.post(TOKEN, data=authenticated(assertion(secretive.client_id, rsa_key)))
    assert_oauth_error(response, 401, "invalid_client")


def test_introspection_and_revocation_accept_the_assertion(http, service, rsa_key):
    token = http.post(TOKEN, data=authenticated(assertion(service.client_id, rsa_key)))
    access = token.json["access_token"]
    introspected = http.post(
        "/oauth/introspect",
        data={
            "token": access,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(service.client_id, rsa_key, aud=ISSUER),
        },
    )
    assert introspected.status_code == 200, introspected.json
    assert introspected.json["active"] is True
    revoked = http.post(
        "/oauth/revoke",
        data={
            "token": access,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(service.client_id, rsa_key, aud=ISSUER),
        },
    )
    assert revoked.status_code == 200, revoked.json


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
)
def test_metadata_advertises_private_key_jwt(http, path):
    body = http.get(path).json
    assert "private_key_jwt" in body["token_endpoint_auth_methods_supported"]
    assert "private_key_jwt" in body["introspection_endpoint_auth_methods_supported"]
    algs = body["token_endpoint_auth_signing_alg_values_supported"]
    assert "RS256" in algs and "ES256" in algs
    assert "none" not in algs and not any(alg.startswith("HS") for alg in algs)


@pytest.mark.parametrize(
    "jwks, message",
    [
        (None, "needs its public keys"),
        ({"keys": []}, "between 1 and"),
        ({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}, "RSA, EC or OKP"),
        ("private", "private key material"),
        ("no kid", "its own kid"),
    ],
)
def test_registration_refuses_unusable_jwks(app, rsa_key, jwks, message):
    from authserver.oauth.clients import ClientError, create_client

    if jwks == "private":
        jwk = json.loads(RSAAlgorithm.to_jwk(rsa_key))
        jwks = {"keys": [{**jwk, "kid": "k"}]}
    elif jwks == "no kid":
        jwks = {"keys": [json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))]}
    with app.app_context(), pytest.raises(ClientError, match=message):
        create_client(
            name="svc",
            grant_types=["client_credentials"],
            auth_method="private_key_jwt",
            jwks=jwks,
            actor="tests",
        )


def test_admin_api_registers_a_private_key_jwt_client(http, admin, rsa_key):  # noqa: F811
    jwks = {"keys": [public_jwk(rsa_key, "rsa-1")]}
    response = http.post(
        "/admin/clients",
        json={
            "name": "reports",
            "grant_types": ["client_credentials"],
            "auth_method": "private_key_jwt",
            "jwks": jwks,
        },
        headers=admin,
    )
    assert response.status_code == 201, response.json
    body = response.json
    assert body["client_secret"] is None and body["public"] is False
    assert body["token_endpoint_auth_method"] == "private_key_jwt"
    assert body["jwks"]["keys"][0]["kid"] == "rsa-1"
    token = http.post(TOKEN, data=authenticated(assertion(body["client_id"], rsa_key)))
    assert token.status_code == 200, token.json


def test_cli_registers_with_a_jwks_file(tmp_path, rsa_key):
    installation = Installation(tmp_path)
    assert installation.run("db", "upgrade").code == 0
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [public_jwk(rsa_key, "rsa-1")]}))
    created = installation.run(
        "clients",
        "create",
        "--name",
        "svc",
        "--grant-type",
        "client_credentials",
        "--jwks-file",
        str(jwks_file),
    )
    assert created.code == 0, created.stderr
    assert created.json["token_endpoint_auth_method"] == "private_key_jwt"
    assert created.json["client_secret"] is None
    refused = installation.run(
        "clients",
        "create",
        "--name",
        "svc2",
        "--grant-type",
        "client_credentials",
        "--auth-method",
        "private_key_jwt",
    )
    assert "needs its public keys" in refused.error["error"]
