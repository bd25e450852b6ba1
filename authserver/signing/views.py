from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, request
from pydantic import BaseModel, Field

from authserver.context import keyring, settings
from authserver.openapi import PUBLIC, Reply, documented

bp = Blueprint("signing", __name__)


class Jwk(BaseModel):
    """A public RSA signing key (RFC 7517, RFC 7518 §6.3.1)."""

    kty: Literal["RSA"]
    kid: str = Field(description="The key's RFC 7638 thumbprint; the `kid` of its tokens.")
    use: Literal["sig"]
    alg: Literal["RS256"]
    n: str = Field(description="Modulus, base64url.")
    e: str = Field(description="Exponent, base64url.", examples=["AQAB"])


class Jwks(BaseModel):
    """The JSON Web Key Set: the active key, the next one, and recently retired ones."""

    keys: list[Jwk]


@bp.get("/.well-known/jwks.json")
@documented(
    "Public signing keys (JWKS)",
    tags=["signing"],
    responses={
        200: Reply(
            Jwks,
            headers={"ETag": "Changes with the key set.", "Cache-Control": "public, max-age=…"},
        ),
        304: "Not modified (If-None-Match matched the ETag).",
    },
    security=PUBLIC,
)
def jwks() -> Response:
    """The public signing keys, pre-encoded; cache-friendly with ETag and 304."""
    snap = keyring().snapshot()
    headers = {
        "Cache-Control": f"public, max-age={settings().jwks_max_age}",
        "ETag": f'"{snap.etag}"',
    }
    if request.if_none_match.contains_weak(snap.etag):
        return Response(status=304, headers=headers)
    return Response(snap.jwks_body, mimetype="application/json", headers=headers)
