"""The authorization code grant (RFC 6749 §4.1) with PKCE and OpenID Connect, on
Authlib's ``AuthorizationCodeGrant``, ``CodeChallenge`` and ``OpenIDCode``.

- PKCE is required of every client, public or confidential, and only ``S256``
  (RFC 9700 §2.1.1): no ``code_challenge``, or ``plain``, is ``invalid_request``.
- A code works once, for the client it was issued to, with the redirect URI of its
  request and the verifier of its challenge, within AUTHSERVER_AUTHORIZATION_CODE_TTL.
  It is claimed by one conditional UPDATE when presented; a refused exchange (wrong
  verifier or redirect URI) gives the claim back, like the refresh grant. A code
  presented again after a successful exchange ends the session that exchange opened,
  and so its tokens (RFC 6749 §4.1.2, RFC 9700 §4.2.3); that revocation is committed
  before the error is answered.
- With the ``openid`` scope the answer carries an ID token signed RS256 by the active
  key, the key that signs access tokens: ``iss``, ``sub``, ``aud`` (the client),
  ``exp``, ``iat``, ``auth_time`` (the browser sign-in), ``nonce``, ``amr``,
  ``at_hash`` and the claims of the granted scopes (claims.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode
from joserfc.jwk import KeySet
from sqlalchemy import select

from authserver.accounts.models import User
from authserver.authorize.claims import user_claims
from authserver.authorize.codes import claim_code
from authserver.authorize.models import AuthorizationCode
from authserver.context import keyed_hash, keyring, settings
from authserver.errors import ServiceUnavailable
from authserver.extensions import db, utcnow
from authserver.oauth.grants import AUTH_METHODS, ClientRulesMixin, RefusalKeepsCredentialMixin
from authserver.oauth.models import AuthSession, Client
from authserver.oauth.sessions import Device
from authserver.oauth.tokens import Grantee


@dataclass
class SignedInUser:
    """Who approved an authorization request: the user of a live browser session."""

    user: User
    session: AuthSession

    def get_user_id(self) -> str:
        return str(self.user.id)


class AuthorizationCodeGrant(
    RefusalKeepsCredentialMixin, ClientRulesMixin, grants.AuthorizationCodeGrant
):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def save_authorization_code(self, code: str, request) -> None:
        approver: SignedInUser = request.user
        data = request.payload.data
        now = utcnow()
        db.session.add(
            AuthorizationCode(
                code_hash=keyed_hash(code),
                client_id=request.client.client_id,
                user_id=approver.user.id,
                browser_session_id=approver.session.id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                nonce=data.get("nonce"),
                code_challenge=data["code_challenge"],
                code_challenge_method=data["code_challenge_method"],
                auth_time=approver.session.created_at,
                amr=approver.session.amr,
                created_at=now,
                expires_at=now + timedelta(seconds=settings().authorization_code_ttl),
            )
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        return claim_code(code, client) if isinstance(code, str) and len(code) <= 128 else None

    def authenticate_user(self, code: AuthorizationCode) -> Grantee | None:
        browser = db.session.get(AuthSession, code.browser_session_id)
        if browser is None or browser.revoked_at is not None or not code.user.can_sign_in:
            return None  # signed out, or disabled, since the code was issued
        return Grantee(
            user=code.user,
            amr=code.get_amr(),
            device=Device(ip_address=browser.ip_address, user_agent=browser.user_agent),
            authenticated_at=code.auth_time,
            browser_session_id=browser.id,
        )

    def save_token(self, token: dict) -> None:
        grantee: Grantee = self.request.user
        assert grantee.session is not None
        self.request.authorization_code.session_id = grantee.session.id
        super().save_token(token)  # commits

    def delete_authorization_code(self, code: AuthorizationCode) -> None:
        """Kept, marked used, until it expires: a replay must be recognised."""


class S256CodeChallenge(CodeChallenge):
    """PKCE for every client, S256 only (RFC 9700 §2.1.1; OAuth 2.1)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def __init__(self) -> None:
        super().__init__(required=True)

    def validate_code_challenge(self, grant, redirect_uri) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError(
                "PKCE is required: send 'code_challenge' with 'code_challenge_method=S256'."
            )
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256.")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant, result) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'.")
        super().validate_code_verifier(grant, result)


class OpenIDConnect(OpenIDCode):
    """ID tokens for code requests with the ``openid`` scope."""

    def __init__(self) -> None:
        super().__init__(require_nonce=False)  # optional in the code flow (OIDC §3.1.2.1)

    def exists_nonce(self, nonce: str, request) -> bool:
        # A nonce this client already had a code for is a replayed authentication request.
        return (
            db.session.scalar(
                select(AuthorizationCode.id).where(
                    AuthorizationCode.client_id == request.payload.client_id,
                    AuthorizationCode.nonce == nonce,
                )
            )
            is not None
        )

    def resolve_client_private_key(self, client: Client) -> KeySet:
        signing = keyring().snapshot().signing
        if signing is None:
            raise ServiceUnavailable("No active signing key: run `authserver keys ensure`.")
        return signing  # the active key only: joserfc names its kid in the header

    def get_client_algorithm(self, client: Client) -> str:
        return "RS256"

    def get_client_claims(self, client: Client) -> dict:
        return {
            "iss": settings().issuer,
            "aud": client.client_id,
            "exp": int(time.time()) + settings().id_token_ttl,
        }

    def get_encode_header(self, client: Client) -> dict:
        return {"alg": "RS256", "typ": "JWT"}

    def generate_user_info(self, user: Grantee, scope: str) -> dict:
        return user_claims(user.user, scope)
