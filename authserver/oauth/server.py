"""The Authlib authorization server, wired to our storage and token generator."""

from __future__ import annotations

from authlib.integrations.flask_oauth2 import AuthorizationServer as _AuthorizationServer
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import Flask

from authserver.audit import record_event
from authserver.extensions import db
from authserver.oauth.endpoints import IntrospectionEndpoint, RevocationEndpoint
from authserver.oauth.grants import ClientCredentialsGrant, PasswordGrant, RefreshTokenGrant
from authserver.oauth.models import Client
from authserver.oauth.tokens import AccessTokenGenerator, Grantee


class AuthorizationServer(_AuthorizationServer):
    def query_client(self, client_id: str) -> Client | None:
        if not isinstance(client_id, str) or len(client_id) > 64:
            return None
        client = db.session.get(Client, client_id)
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
        db.session.commit()

    def authenticate_client(self, request, methods, endpoint="token"):
        # RFC 6749 §2.3: a client must not use more than one authentication method.
        basic_id, _ = extract_basic_authorization(request.headers)
        form = request.form
        if basic_id and ("client_secret" in form or form.get("client_id", basic_id) != basic_id):
            raise InvalidRequestError("Use exactly one client authentication method.")
        return super().authenticate_client(request, methods, endpoint)


def create_authorization_server(app: Flask) -> AuthorizationServer:
    settings = app.extensions["authserver.settings"]
    server = AuthorizationServer()
    server.init_app(app)
    # After init_app, which installs a default opaque-token generator of its own.
    server.register_token_generator(
        "default", AccessTokenGenerator(settings.issuer, settings.access_token_ttl)
    )
    server.register_grant(PasswordGrant)
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(IntrospectionEndpoint)
    server.register_endpoint(RevocationEndpoint)
    return server
