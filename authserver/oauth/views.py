"""OAuth HTTP endpoints: token, introspection, revocation, metadata, userinfo.

Views only translate HTTP; the checks RFC 6749 asks of every request to these endpoints
(form encoding, no parameters in the URL, no repeated parameters) happen here, answered
in the RFC 6749 §5.2 error shape.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from authserver.accounts.models import User
from authserver.accounts.services import serialize_user
from authserver.context import settings
from authserver.extensions import db
from authserver.oauth.grants import AUTH_METHODS
from authserver.oauth.tokens import InvalidAccessToken, access_token_revoked, decode_access_token

bp = Blueprint("oauth", __name__)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(status: int, error: str, description: str, headers=None) -> Response:
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    response.headers.update(NO_STORE)
    if headers:
        response.headers.update(headers)
    return response


def _malformed_oauth_request() -> Response | None:
    if request.mimetype != "application/x-www-form-urlencoded":
        return oauth_error(
            415, "invalid_request", "Send parameters as application/x-www-form-urlencoded."
        )
    if request.args:
        return oauth_error(400, "invalid_request", "Parameters belong in the request body.")
    for key, values in request.form.lists():
        if len(values) > 1:
            return oauth_error(400, "invalid_request", f"Parameter '{key}' is repeated.")
    return None


def _server():
    return current_app.extensions["authserver.oauth"]


@bp.post("/oauth/token")
def token() -> Response:
    return _malformed_oauth_request() or _server().create_token_response()


@bp.post("/oauth/introspect")
def introspect() -> Response:
    return _malformed_oauth_request() or _server().create_endpoint_response("introspection")


@bp.post("/oauth/revoke")
def revoke() -> Response:
    return _malformed_oauth_request() or _server().create_endpoint_response("revocation")


@bp.get("/.well-known/oauth-authorization-server")
def metadata() -> Response:
    issuer = settings().issuer
    body = {
        "issuer": issuer,
        "token_endpoint": issuer + url_for("oauth.token"),
        "jwks_uri": issuer + url_for("signing.jwks"),
        "introspection_endpoint": issuer + url_for("oauth.introspect"),
        "revocation_endpoint": issuer + url_for("oauth.revoke"),
        "userinfo_endpoint": issuer + url_for("oauth.userinfo"),
        "grant_types_supported": current_app.extensions["authserver.grant_types"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS[:2],
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "scopes_supported": sorted({settings().default_client_scope, "profile", "phone", "email"}),
        "service_documentation": issuer + "/docs",
    }
    body.update(current_app.extensions.get("authserver.metadata_extra", {}))
    response = jsonify(body)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


def bearer_claims() -> dict:
    """Claims of the request's Bearer access token, or raise InvalidAccessToken."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise InvalidAccessToken("Missing Bearer token.")
    claims = decode_access_token(value.strip())
    if access_token_revoked(claims):
        raise InvalidAccessToken("The access token has been revoked.")
    aud = claims.get("aud")
    if settings().audience not in (aud if isinstance(aud, list) else [aud]):
        raise InvalidAccessToken("The access token is for another audience.")
    return claims


@bp.route("/oauth/userinfo", methods=["GET", "POST"])
def userinfo() -> Response:
    """OpenID Connect UserInfo shape for the token's user."""
    try:
        claims = bearer_claims()
    except InvalidAccessToken as error:
        response = jsonify(error="invalid_token", error_description=error.description)
        response.status_code = 401
        response.headers["WWW-Authenticate"] = (
            f'Bearer error="invalid_token", error_description="{error.description}"'
        )
        return response
    if not claims.get("sid"):
        return oauth_error(403, "insufficient_scope", "This token does not belong to a user.")
    user = db.session.get(User, uuid.UUID(claims["sub"]))
    if user is None:
        return oauth_error(401, "invalid_token", "Unknown user.")
    profile = serialize_user(user)
    return jsonify(
        sub=profile["id"],
        preferred_username=profile["username"],
        name=" ".join(p for p in (user.first_name, user.last_name) if p),
        given_name=user.first_name,
        family_name=user.last_name,
        email=user.email,
        phone_number=user.phone,
        phone_number_verified=False,
        groups=profile["groups"],
        entitlements=profile["permissions"],
        updated_at=int(user.updated_at.timestamp()),
    )
