"""DPoP (RFC 9449): tokens bound to a key the client holds. Proofs are built with PyJWT
and thumbprints computed by hand (RFC 7638), independently of the server's joserfc."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.conftest import ISSUER, PASSWORD, PHONE
from tests.test_token_endpoint import TOKEN, assert_oauth_error

USERINFO = "/oauth/userinfo"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Holder:
    """A client's DPoP key and the proofs it signs."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.jwk = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))

    @property
    def thumbprint(self) -> str:
        members = {name: self.jwk[name] for name in ("crv", "kty", "x", "y")}
        canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
        return b64(hashlib.sha256(canonical).digest())

    def proof(self, method="POST", path=TOKEN, token=None, header=None, **claims) -> str:
        body = {
            "htm": method,
            "htu": ISSUER + path,
            "iat": int(time.time()),
            "jti": str(uuid.uuid4()),
        }
        if token is not None:
            body["ath"] = b64(hashlib.sha256(token.encode()).digest())
        body.update(claims)
        body = {name: value for name, value in body.items() if value is not None}
        headers = {"typ": "dpop+jwt", "jwk": self.jwk, **(header or {})}
        return jwt.encode(body, self.key, algorithm="ES256", headers=headers)


@pytest.fixture
def holder() -> Holder:
    return Holder()


@pytest.fixture
def mobile(make_client):
    """A public app (the mobile apps), allowed openid for userinfo."""
    return make_client(
        grant_types=("password", "refresh_token"), scope="openid profile", public=True
    )


def sign_in(http, client, proof: str | None = None):
    headers = {"DPoP": proof} if proof else {}
    data = {
        "grant_type": "password",
        "username": PHONE,
        "password": PASSWORD,
        "client_id": client.client_id,
        "scope": "openid profile",
    }
    return http.post(TOKEN, data=data, headers=headers)


def test_proof_binds_the_token_to_the_key(http, mobile, user, holder):
    response = sign_in(http, mobile, holder.proof())
    assert response.status_code == 200, response.json
    assert response.json["token_type"] == "DPoP"
    token = response.json["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["cnf"] == {"jkt": holder.thumbprint}

    userinfo = http.get(
        USERINFO,
        headers={"Authorization": f"DPoP {token}", "DPoP": holder.proof("GET", USERINFO, token)},
    )
    assert userinfo.status_code == 200, userinfo.json

    # The same token as a Bearer token: refused, whoever holds it.
    as_bearer = http.get(USERINFO, headers={"Authorization": f"Bearer {token}"})
    assert as_bearer.status_code == 401
    assert as_bearer.json["error"] == "invalid_token"


def test_without_proof_tokens_stay_bearer(http, mobile, user):
    response = sign_in(http, mobile)
    assert response.json["token_type"] == "Bearer"
    assert "cnf" not in jwt.decode(
        response.json["access_token"], options={"verify_signature": False}
    )


@pytest.mark.parametrize(
    "case",
    ["other_key", "no_ath", "wrong_ath", "replayed", "stale", "wrong_htm", "wrong_htu", "no_proof"],
)
def test_resource_refuses_bad_proofs(http, mobile, user, holder, case):
    token = sign_in(http, mobile, holder.proof()).json["access_token"]
    proof = holder.proof("GET", USERINFO, token)
    if case == "other_key":
        proof = Holder().proof("GET", USERINFO, token)
    elif case == "no_ath":
        proof = holder.proof("GET", USERINFO)
    elif case == "wrong_ath":
        proof = holder.proof("GET", USERINFO, token + "x")
    elif case == "replayed":
        headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
        assert http.get(USERINFO, headers=headers).status_code == 200
    elif case == "stale":
        proof = holder.proof("GET", USERINFO, token, iat=int(time.time()) - 600)
    elif case == "wrong_htm":
        proof = holder.proof("POST", USERINFO, token)
    elif case == "wrong_htu":
        proof = holder.proof("GET", "/oauth/other", token)
    headers = {"Authorization": f"DPoP {token}"}
    if case != "no_proof":
        headers["DPoP"] = proof
    response = http.get(USERINFO, headers=headers)
    assert response.status_code == 401, response.json
    assert response.json["error"] == "invalid_dpop_proof"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("DPoP ") and 'algs="' in challenge


def hs256_proof(holder: Holder) -> str:
    header = b64(json.dumps({"typ": "dpop+jwt", "alg": "HS256", "jwk": holder.jwk}).encode())
    body = b64(
        json.dumps(
            {
                "htm": "POST",
                "htu": ISSUER + TOKEN,
                "iat": int(time.time()),
                "jti": str(uuid.uuid4()),
            }
        ).encode()
    )
    signature = b64(hmac_sha256(json.dumps(holder.jwk).encode(), f"{header}.{body}".encode()))
    return f"{header}.{body}.{signature}"


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    import hmac  # only this helper signs with a shared secret

    return hmac.new(key, message, hashlib.sha256).digest()


@pytest.mark.parametrize(
    "case",
    [
        "replayed",
        "stale",
        "future",
        "wrong_htm",
        "wrong_htu",
        "private_jwk",
        "alg_none",
        "hs256",
        "wrong_typ",
        "no_jti",
        "garbage",
        "two_headers",
    ],
)
def test_token_endpoint_refuses_bad_proofs(http, mobile, user, holder, case):
    now = int(time.time())
    proof = holder.proof()
    headers = None
    if case == "replayed":
        assert sign_in(http, mobile, proof).status_code == 200
    elif case == "stale":
        proof = holder.proof(iat=now - 600)
    elif case == "future":
        proof = holder.proof(iat=now + 600)
    elif case == "wrong_htm":
        proof = holder.proof(method="GET")
    elif case == "wrong_htu":
        proof = holder.proof(path="/oauth/introspect")
    elif case == "private_jwk":
        private = json.loads(ECAlgorithm.to_jwk(holder.key))
        proof = holder.proof(header={"jwk": private})
    elif case == "alg_none":
        header = b64(json.dumps({"typ": "dpop+jwt", "alg": "none", "jwk": holder.jwk}).encode())
        proof = header + "." + proof.split(".")[1] + "."
    elif case == "hs256":
        proof = hs256_proof(holder)
    elif case == "wrong_typ":
        proof = holder.proof(header={"typ": "JWT"})
    elif case == "no_jti":
        proof = holder.proof(jti=None)
    elif case == "garbage":
        proof = "not.a.proof"
    else:
        headers = [("DPoP", proof), ("DPoP", holder.proof())]
    data = {
        "grant_type": "password",
        "username": PHONE,
        "password": PASSWORD,
        "client_id": mobile.client_id,
    }
    response = http.post(TOKEN, data=data, headers=headers or {"DPoP": proof})
    assert_oauth_error(response, 400, "invalid_dpop_proof")


def test_public_refresh_token_needs_its_key(http, mobile, user, holder):
    tokens = sign_in(http, mobile, holder.proof()).json
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": mobile.client_id,
    }
    assert_oauth_error(http.post(TOKEN, data=refresh), 400, "invalid_grant")
    other = http.post(TOKEN, data=refresh, headers={"DPoP": Holder().proof()})
    assert_oauth_error(other, 400, "invalid_grant")
    # Refused attempts did not spend the token: its holder refreshes with it.
    renewed = http.post(TOKEN, data=refresh, headers={"DPoP": holder.proof()})
    assert renewed.status_code == 200, renewed.json
    assert renewed.json["token_type"] == "DPoP"
    claims = jwt.decode(renewed.json["access_token"], options={"verify_signature": False})
    assert claims["cnf"]["jkt"] == holder.thumbprint


def test_introspection_shows_the_binding(http, make_client, user, holder):
    app = make_client(grant_types=("password",), scope="profile")
    data = {"grant_type": "password", "username": PHONE, "password": PASSWORD}
    token = http.post(TOKEN, data=data, headers={**app.basic, "DPoP": holder.proof()}).json
    assert token["token_type"] == "DPoP"
    body = http.post(
        "/oauth/introspect", data={"token": token["access_token"]}, headers=app.basic
    ).json
    assert body["active"] is True
    assert body["token_type"] == "DPoP" and body["cnf"] == {"jkt": holder.thumbprint}


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
)
def test_metadata_advertises_dpop(http, path):
    algs = http.get(path).json["dpop_signing_alg_values_supported"]
    assert "ES256" in algs and "none" not in algs and "HS256" not in algs


def test_one_proof_on_two_instances_is_accepted_once(
    app, database_url, keys_dir, mobile, user, holder
):
    """Ten requests with one proof, spread over two instances sharing the database:
    exactly one gets a token."""
    from tests.conftest import build_app
    from tests.sms_gateway import dispose

    other = build_app(database_url, keys_dir)
    proof = holder.proof()
    statuses: list[int] = []
    barrier = threading.Barrier(10)
    data = {
        "grant_type": "password",
        "username": PHONE,
        "password": PASSWORD,
        "client_id": mobile.client_id,
    }

    def post(instance) -> None:
        client = instance.test_client()
        barrier.wait()
        statuses.append(client.post(TOKEN, data=data, headers={"DPoP": proof}).status_code)

    threads = [threading.Thread(target=post, args=(app if n % 2 else other,)) for n in range(10)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        dispose(other)
    assert sorted(statuses) == [200] + [400] * 9
