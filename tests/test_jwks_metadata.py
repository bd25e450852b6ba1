"""The public documents: the JWKS (RFC 7517) and the server metadata (RFC 8414)."""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import urlsplit

import jwt
import pytest
import requests

from tests.conftest import ISSUER, build_app

JWKS = "/.well-known/jwks.json"
METADATA = "/.well-known/oauth-authorization-server"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def rfc7638_thumbprint(jwk: dict) -> str:
    """RFC 7638 §3: SHA-256 of the required members, sorted, with no whitespace."""
    required = {name: jwk[name] for name in ("e", "kty", "n")}
    canonical = json.dumps(required, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


# --- JWKS -----------------------------------------------------------------------------------


def test_jwks_holds_only_public_rsa_members(http):
    response = http.get(JWKS)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    keys = response.json["keys"]
    assert keys, "at least the active key is published"
    for key in keys:
        assert not PRIVATE_MEMBERS & key.keys(), key.keys()
        assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
        assert set(key) <= {"kty", "n", "e", "kid", "alg", "use"}


def test_kid_is_the_rfc7638_thumbprint(http):
    for key in http.get(JWKS).json["keys"]:
        assert key["kid"] == rfc7638_thumbprint(key)


def test_kid_matches_rfc7638_example():
    """The thumbprint helper above, checked against RFC 7638 §3.1's worked example."""
    example = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6"
        "tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65Y"
        "GjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"
        "bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
    }
    assert rfc7638_thumbprint(example) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_access_token_kid_is_published(http, password_login):
    kid = jwt.get_unverified_header(password_login()["access_token"])["kid"]
    assert kid in {key["kid"] for key in http.get(JWKS).json["keys"]}


def test_jwks_is_cacheable_with_etag(http, app):
    response = http.get(JWKS)
    cache_control = response.headers["Cache-Control"]
    assert "public" in cache_control
    with app.app_context():
        from authserver.context import settings

        assert f"max-age={settings().jwks_max_age}" in cache_control
    assert response.headers["ETag"].startswith('"')
    # The same document gets the same ETag.
    assert http.get(JWKS).headers["ETag"] == response.headers["ETag"]


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", "W/{etag}", '"something-else", {etag}', "*"],
)
def test_jwks_answers_304_when_unchanged(http, if_none_match):
    etag = http.get(JWKS).headers["ETag"]
    response = http.get(JWKS, headers={"If-None-Match": if_none_match.format(etag=etag)})
    assert response.status_code == 304
    assert response.data == b""
    assert response.headers["ETag"] == etag
    assert "max-age" in response.headers["Cache-Control"]


@pytest.mark.parametrize("stale", ['"0000"', 'W/"0000"', "garbage without quotes"])
def test_jwks_answers_200_for_another_etag(http, stale):
    response = http.get(JWKS, headers={"If-None-Match": stale})
    assert response.status_code == 200
    assert response.json["keys"]


def test_jwks_over_real_http_is_what_pyjwt_reads(live_server):
    response = requests.get(live_server.url + JWKS, timeout=10)
    assert response.status_code == 200
    assert jwt.PyJWKSet.from_dict(response.json()).keys


# --- metadata -------------------------------------------------------------------------------

REQUIRED_METADATA = {
    "issuer",
    "token_endpoint",
    "jwks_uri",
    "introspection_endpoint",
    "revocation_endpoint",
    "grant_types_supported",
    "token_endpoint_auth_methods_supported",
    "userinfo_endpoint",
}
ENDPOINTS = [
    "token_endpoint",
    "jwks_uri",
    "introspection_endpoint",
    "revocation_endpoint",
    "userinfo_endpoint",
]


def test_metadata_has_every_contract_field(http):
    response = http.get(METADATA)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.json
    assert body.keys() >= REQUIRED_METADATA
    assert body["issuer"] == ISSUER
    assert {"password", "refresh_token", "client_credentials"} <= set(body["grant_types_supported"])
    assert set(body["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "none",
    }
    for name in ENDPOINTS:
        assert body[name].startswith(ISSUER + "/"), (name, body[name])


def test_metadata_urls_lead_to_the_endpoints(http):
    body = http.get(METADATA).json
    assert http.get(urlsplit(body["jwks_uri"]).path).json["keys"]
    for name in ("token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        # Reached, and answering as an OAuth endpoint (no client: invalid_client).
        response = http.post(urlsplit(body[name]).path, data={"token": "x", "grant_type": "x"})
        assert response.status_code in (400, 401), name
        assert response.json["error"], name
    assert http.get(urlsplit(body["userinfo_endpoint"]).path).status_code == 401


def test_metadata_follows_the_configured_issuer(database_url, keys_dir):
    other = build_app(database_url, keys_dir, issuer="https://auth.example.com/")
    try:
        body = other.test_client().get(METADATA).json
    finally:
        with other.app_context():
            from authserver.extensions import db

            db.engine.dispose()
    assert body["issuer"] == "https://auth.example.com"
    for name in ENDPOINTS:
        assert body[name].startswith("https://auth.example.com/"), body[name]
