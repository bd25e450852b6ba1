"""The Authlib authorization server, wired to our storage and token generator."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote

from authlib.integrations.flask_oauth2 import AuthorizationServer as _AuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError
from flask import Flask, Request
from flask import request as flask_request

from authserver.audit import record_event
from authserver.context import CLIENT_CACHE, REVOCATION_CACHE, client_cache, settings
from authserver.extensions import db
from authserver.logs import annotate_request
from authserver.oauth.client_assertion import METHOD as PRIVATE_KEY_JWT
from authserver.oauth.client_assertion import PrivateKeyJwt
from authserver.oauth.clients import ClientCache
from authserver.oauth.endpoints import IntrospectionEndpoint, RevocationEndpoint
from authserver.oauth.grants import ClientCredentialsGrant, PasswordGrant, RefreshTokenGrant
from authserver.oauth.models import Client
from authserver.oauth.revocation import RevocationCache
from authserver.oauth.tokens import AccessTokenGenerator, Grantee
from authserver.ops import token_issued
from authserver.otp.grant import OtpGrant


class AuthorizationServer(_AuthorizationServer):
    def query_client(self, client_id: str) -> Client | None:
        if not isinstance(client_id, str) or len(client_id) > 64:
            return None
        client = client_cache().get(client_id)
        return client if client is not None and client.is_active else None

    def save_token(self, token: dict, request) -> None:
        grantee: Grantee | None = request.user
        if grantee is not None and grantee.parent is None and grantee.session is not None:
            record_event(
                "login",
                user_id=grantee.user.id,
                client_id=request.client.client_id,
                session_id=str(grantee.session.id),
                amr=grantee.amr,
            )
        db.session.flush()  # committed when the token response is answered
        token_issued(
            request.payload.grant_type, request.client.client_id, grantee and grantee.user.id
        )

    def create_oauth2_request(self, request):
        # A first-party endpoint (the seed compatibility views) hands in a request it
        # built itself; everything else is the current Flask request.
        if isinstance(request, OAuth2Request):
            return request
        return FormRequest(flask_request._get_current_object())

    def authenticate_client(self, request, methods, endpoint="token"):
        basic_id = _basic_client_id(request.headers)
        # RFC 6749 §2.3: a client must not use more than one authentication method.
        form = request.form
        if basic_id and ("client_secret" in form or form.get("client_id", basic_id) != basic_id):
            raise InvalidRequestError("Use exactly one client authentication method.")
        if "client_assertion" in form and (basic_id or "client_secret" in form):
            raise InvalidRequestError("Use exactly one client authentication method.")
        try:
            client = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError:
            # One answer for unknown client, wrong secret and wrong method: the status
            # and text must not tell which client ids exist.
            raise _client_authentication_failed() from None
        annotate_request(client_id=client.client_id)  # the access log names it
        return client


class FormPayload(FlaskOAuth2Payload):
    """Authlib's payload of a Flask request, reading the form directly when the URL has
    no query: Authlib reads ``request.values`` (query and form merged), which Werkzeug
    builds again at each of the ~8 reads per request. Same values either way."""

    @property
    def data(self):
        request = self._request
        return request.values if request.args else request.form


class FormRequest(FlaskOAuth2Request):
    """Authlib's request wrapper without the full URL it builds only to check the
    transport (scheme and host: all ``InsecureTransportError`` looks at). The URL,
    IRI-decoded, cost ~8% of a client-credentials request; nothing else reads it."""

    def __init__(self, request: Request) -> None:
        OAuth2Request.__init__(
            self,
            method=request.method,
            uri=f"{request.scheme}://{request.host}{request.path}",
            headers=request.headers,
        )
        self._request = request
        self.payload = FormPayload(request)


def _client_authentication_failed() -> InvalidClientError:
    return InvalidClientError(status_code=401, description="Client authentication failed.")


def _basic_client_id(headers) -> str | None:
    """The client id of a Basic Authorization header, or None when there is none.

    Authlib's parser raises (an HTTP 500) on an empty or non-UTF-8 Basic value: a
    malformed Basic header is a failed client authentication instead."""
    scheme, _, value = (headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _client_authentication_failed() from None
    client_id, colon, _ = decoded.partition(":")
    if not colon or not client_id:
        raise _client_authentication_failed()
    return unquote(client_id)


def create_authorization_server(app: Flask) -> AuthorizationServer:
    config = settings(app)
    app.extensions[CLIENT_CACHE] = ClientCache(config.client_cache_seconds)
    revocations = RevocationCache(config.revocation_cache_seconds)
    with app.app_context():
        revocations.watch(db.engine)
    app.extensions[REVOCATION_CACHE] = revocations
    server = AuthorizationServer()
    server.init_app(app)
    # After init_app, which installs a default opaque-token generator of its own.
    server.register_token_generator(
        "default", AccessTokenGenerator(config.issuer, config.access_token_ttl)
    )
    server.register_client_auth_method(PRIVATE_KEY_JWT, PrivateKeyJwt(config.clock_skew))
    server.register_grant(PasswordGrant)
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(OtpGrant)
    server.register_endpoint(IntrospectionEndpoint)
    server.register_endpoint(RevocationEndpoint)
    return server
