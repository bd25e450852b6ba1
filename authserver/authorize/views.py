"""``GET /.well-known/openid-configuration``: OpenID Connect Discovery 1.0.

The same document as RFC 8414's ``/.well-known/oauth-authorization-server`` (one
issuer, one JWKS, the same endpoints), so a client configured from either agrees."""

from __future__ import annotations

from flask import Blueprint, Response

from authserver.authorize.schemas import OpenIDProviderMetadata
from authserver.oauth.metadata import metadata_response
from authserver.openapi import PUBLIC, documented

bp = Blueprint("authorize", __name__)


@bp.get("/.well-known/openid-configuration")
@documented(
    "OpenID Provider metadata (OpenID Connect Discovery 1.0)",
    tags=["oauth"],
    responses={200: OpenIDProviderMetadata},
    security=PUBLIC,
)
def openid_configuration() -> Response:
    return metadata_response()
