"""Browser sign-in for web and partner apps: the authorization code grant with PKCE,
OpenID Connect (ID tokens, discovery, RP-initiated logout), consent and the browser
session. The pages a person sees are authserver/web's; docs/browser-sign-in.md tells a
client developer how to use them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from authserver.context import authorization_server, metadata_extra, settings

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    """Register the grant and the logout endpoint with the authorization server, the
    tables, the metadata and ``/.well-known/openid-configuration``."""
    # Here, not at the top: other packages load this one for its services; its views,
    # and what they import, load only when the app is built (else an import cycle).
    from authserver.authorize import models  # noqa: F401  (model registration)
    from authserver.authorize.account_views import bp as account_bp
    from authserver.authorize.claims import CLAIMS_SUPPORTED, OPENID_SCOPES
    from authserver.authorize.grant import (
        AuthorizationCodeGrant,
        OpenIDConnect,
        S256CodeChallenge,
    )
    from authserver.authorize.logout import EndSessionEndpoint
    from authserver.authorize.views import bp

    config = settings(app)
    server = authorization_server(app)
    server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(), OpenIDConnect()])
    server.register_endpoint(EndSessionEndpoint)
    issuer = config.issuer
    metadata_extra(app).update(
        {
            "authorization_endpoint": issuer + "/oauth/authorize",
            "end_session_endpoint": issuer + "/oauth/logout",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "scopes_supported": sorted({config.default_client_scope, *OPENID_SCOPES}),
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": CLAIMS_SUPPORTED,
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
            "prompt_values_supported": ["none", "login", "consent"],
            "ui_locales_supported": ["en", "fa"],
        }
    )
    app.register_blueprint(bp)
    app.register_blueprint(account_bp)  # /account/consents
