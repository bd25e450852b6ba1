"""OAuth HTTP endpoints: token, introspection, revocation, metadata, userinfo.

Views only translate HTTP; the checks RFC 6749 asks of every request to these endpoints
(form encoding, no parameters in the URL, no repeated parameters) happen here, answered
in the RFC 6749 §5.2 error shape.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from authserver.authorize.claims import user_claims
from authserver.bearer import BearerError, authenticate, current_token, current_user
from authserver.context import authorization_server
from authserver.errors import oauth_error
from authserver.oauth import dpop
from authserver.oauth.metadata import metadata_response
from authserver.oauth.schemas import (
    AuthorizationServerMetadata,
    IntrospectionRequest,
    IntrospectionResponse,
    OAuthError,
    RevocationRequest,
    RevocationResponse,
    TokenRequest,
    TokenResponse,
    UserInfo,
)
from authserver.openapi import NO_BODY, PUBLIC, Reply, documented

bp = Blueprint("oauth", __name__)

# Documented answers shared by the form endpoints (RFC 6749 §5.2 bodies).
FORM_ERRORS = {
    400: Reply(
        OAuthError,
        "invalid_request (missing, repeated or URL parameter; Basic and body credentials "
        "together), invalid_grant, invalid_scope, invalid_target (RFC 8707 resource), "
        "unauthorized_client, unsupported_grant_type, unsupported_token_type.",
    ),
    401: Reply(
        OAuthError,
        "invalid_client: client authentication failed.",
        headers={"WWW-Authenticate": "Basic, when the client tried Basic authentication."},
    ),
    415: Reply(OAuthError, "invalid_request: the body is not application/x-www-form-urlencoded."),
    503: Reply(
        OAuthError,
        "temporarily_unavailable: a dependency is down.",
        headers={"Retry-After": "Seconds to wait."},
    ),
}


def _malformed_oauth_request() -> Response | None:
    if request.mimetype != "application/x-www-form-urlencoded":
        return oauth_error(
            415, "invalid_request", "Send parameters as application/x-www-form-urlencoded."
        )
    if request.args:
        return oauth_error(400, "invalid_request", "Parameters belong in the request body.")
    if request.content_length and not request.form:
        # Werkzeug drops the whole form when it is not UTF-8: say so, rather than
        # answer about a missing grant_type the client did send.
        return oauth_error(400, "invalid_request", "The body is not UTF-8 form data.")
    for key, values in request.form.lists():
        # A repeated RFC 8707 resource is the grant's to refuse, as invalid_target.
        if len(values) > 1 and key != "resource":
            return oauth_error(400, "invalid_request", f"Parameter '{key}' is repeated.")
    return None


def _server():
    return authorization_server()


@bp.post("/oauth/token")
@documented(
    "Issue tokens",
    description="""
    One endpoint for every grant (`grant_type`): password, refresh_token (rotating:
    each refresh token works once), client_credentials and the OTP grant. Clients
    authenticate with `client_secret_basic`, `client_secret_post`, `private_key_jwt`
    (RFC 7523: `client_assertion_type` and `client_assertion`), or only `client_id`
    for a public client.
    """,
    tags=["oauth"],
    form=TokenRequest,
    responses={
        200: Reply(TokenResponse, "Tokens issued.", headers={"Cache-Control": "no-store"}),
        **FORM_ERRORS,
        429: Reply(
            OAuthError,
            "too_many_requests: too many failed sign-ins for this phone number or address.",
            headers={"Retry-After": "Seconds to wait before trying again."},
        ),
    },
    security=["client", "none"],
)
def token() -> Response:
    malformed = _malformed_oauth_request()
    if malformed is None and not request.form.get("grant_type"):
        # Authlib would answer "grant_type=None is unsupported"; RFC 6749 §5.2 calls a
        # missing parameter invalid_request.
        malformed = oauth_error(400, "invalid_request", "Missing 'grant_type' parameter.")
    if malformed is not None:
        return malformed
    try:
        dpop.bind_request(dpop.check_proof())
    except dpop.InvalidDpopProof as error:
        return oauth_error(400, "invalid_dpop_proof", error.description)
    return _server().create_token_response()


@bp.post("/oauth/introspect")
@documented(
    "Introspect a token (RFC 7662)",
    description="""
    For confidential clients. A client sees only its own tokens as active, unless it is
    a resource server. Access tokens of a revoked session read as inactive.
    """,
    tags=["oauth"],
    form=IntrospectionRequest,
    responses={200: IntrospectionResponse, **FORM_ERRORS},
    security=["client"],
)
def introspect() -> Response:
    return _malformed_oauth_request() or _server().create_endpoint_response("introspection")


@bp.post("/oauth/revoke")
@documented(
    "Revoke a token (RFC 7009)",
    description="""
    A refresh token ends its whole session (its access tokens then introspect
    inactive); an access token is revoked alone. Another client's token:
    400 invalid_grant. Public clients authenticate with `client_id` alone.
    """,
    tags=["oauth"],
    form=RevocationRequest,
    responses={200: RevocationResponse, **FORM_ERRORS},
    security=["client", "none"],
)
def revoke() -> Response:
    return _malformed_oauth_request() or _server().create_endpoint_response("revocation")


@bp.get("/.well-known/oauth-authorization-server")
@documented(
    "Authorization server metadata (RFC 8414)",
    tags=["oauth"],
    responses={200: AuthorizationServerMetadata},
    security=PUBLIC,
)
def metadata() -> Response:
    return metadata_response()


@bp.errorhandler(BearerError)
def refused_token(error: BearerError) -> Response:
    """Userinfo's refusals (OpenID Connect Core §5.3.3: RFC 6750's answers)."""
    return oauth_error(error.status, error.error, error.description, error.headers)


@bp.route("/oauth/userinfo", methods=["GET", "POST"])
@documented(
    "The token's user (OpenID Connect UserInfo)",
    description="""
    For a user's access token with the scope `openid`, issued for any of authserver's
    own audiences (the issuer, `{issuer}/account`, `{issuer}/admin`): the claims of its
    scopes (`profile`, `phone`, `email`), as in its ID token. Claims without a value are
    left out.
    """,
    tags=["oauth"],
    body=NO_BODY,  # the token comes in the Authorization header only
    responses={200: UserInfo},
)
@authenticate(None, scopes=["openid"])
def userinfo() -> Response:
    """OpenID Connect UserInfo for the token's user."""
    token = current_token()
    return jsonify(user_claims(current_user(), str(token.claims.get("scope", ""))))
