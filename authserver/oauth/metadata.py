"""The server's metadata document (RFC 8414), which OpenID Connect Discovery repeats:
served at ``/.well-known/oauth-authorization-server`` (oauth/views.py) and
``/.well-known/openid-configuration`` (authorize/views.py)."""

from __future__ import annotations

from flask import Response, jsonify, url_for

from authserver.context import grant_types, metadata_extra, settings
from authserver.oauth import dpop
from authserver.oauth.client_assertion import SIGNING_ALGS
from authserver.oauth.grants import AUTH_METHODS, CONFIDENTIAL_METHODS


def metadata_response() -> Response:
    """The metadata document as served at both well-known addresses."""
    response = jsonify(metadata_document())
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


def metadata_document() -> dict:
    """The server's metadata: RFC 8414's document, which OpenID Connect Discovery's
    repeats (authserver/authorize adds its endpoints through ``metadata_extra``)."""
    issuer = settings().issuer
    body = {
        "issuer": issuer,
        "token_endpoint": issuer + url_for("oauth.token"),
        "jwks_uri": issuer + url_for("signing.jwks"),
        "introspection_endpoint": issuer + url_for("oauth.introspect"),
        "revocation_endpoint": issuer + url_for("oauth.revoke"),
        "userinfo_endpoint": issuer + url_for("oauth.userinfo"),
        "otp_endpoint": issuer + url_for("otp.start"),
        "grant_types_supported": grant_types(),
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": SIGNING_ALGS,
        "introspection_endpoint_auth_methods_supported": CONFIDENTIAL_METHODS,
        "introspection_endpoint_auth_signing_alg_values_supported": SIGNING_ALGS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": SIGNING_ALGS,
        "dpop_signing_alg_values_supported": dpop.SIGNING_ALGS,
        "scopes_supported": sorted({settings().default_client_scope, "profile", "phone", "email"}),
        "service_documentation": issuer + "/docs",
    }
    body.update(metadata_extra())
    return body
