"""Introspection (RFC 7662) and revocation (RFC 7009) for every kind of token we issue:
RFC 9068 access tokens (recognised by signature), encrypted access tokens (by keyed
hash) and opaque refresh tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint

from authserver.audiences.services import encrypted_token_claims
from authserver.audit import record_event
from authserver.context import settings
from authserver.errors import InvalidAccessToken
from authserver.extensions import db, utcnow
from authserver.oauth.grants import CONFIDENTIAL_METHODS
from authserver.oauth.models import Client
from authserver.oauth.sessions import find_refresh_token, revoke_session
from authserver.oauth.tokens import access_token_revoked, decode_access_token, revoke_access_token


@dataclass
class TokenInfo:
    """What introspection and revocation need to know about a presented token."""

    kind: str  # "access_token" or "refresh_token"
    client_id: str
    active: bool
    claims: dict[str, Any]
    expires_at: datetime | None = None
    refresh_token: Any = None

    # --- what Authlib asks ---
    def is_expired(self) -> bool:
        return not self.active

    def is_revoked(self) -> bool:
        return not self.active

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id or client.is_resource_server


def inspect_token(value: str) -> TokenInfo | None:
    # Room for encrypted tokens (4/3 of a signed one, plus their header and key); a plain
    # token gets decode_access_token's own, smaller limit.
    if not isinstance(value, str) or not value or len(value) > 16384:
        return None
    if value.count(".") == 2:
        try:
            claims = decode_access_token(value)
        except InvalidAccessToken:
            return None
        return TokenInfo(
            kind="access_token",
            client_id=claims["client_id"],
            active=not access_token_revoked(claims),
            claims=claims,
        )
    if value.count(".") == 4:
        # An encrypted access token: we hold only the audience's public key, so it is
        # recognised by its keyed hash, recorded when it was issued.
        encrypted = encrypted_token_claims(value)
        if encrypted is None:
            return None
        return TokenInfo(
            kind="access_token",
            client_id=encrypted["client_id"],
            active=not access_token_revoked(encrypted),
            claims=encrypted,
        )
    token = find_refresh_token(value)
    if token is None:
        return None
    now = utcnow()
    session = token.session
    client = db.session.get(Client, session.client_id)
    active = (
        token.used_at is None
        and token.expires_at > now
        and session.is_live(now)
        and session.user.can_sign_in
        and client is not None
        and client.is_active
    )
    claims = {
        "token_type": "refresh_token",
        "client_id": session.client_id,
        "sub": str(session.user_id),
        "scope": session.scope,
        "sid": str(session.id),
        "iat": int(token.created_at.timestamp()),
        "exp": int(token.expires_at.timestamp()),
        "iss": settings().issuer,
    }
    return TokenInfo("refresh_token", session.client_id, active, claims, refresh_token=token)


class IntrospectionEndpoint(_IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = CONFIDENTIAL_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenInfo | None:
        # The hint is only a hint (RFC 7662 §2.1): the token's shape decides.
        return inspect_token(token_string)

    def check_permission(self, token: TokenInfo, client: Client, request) -> bool:
        # Another client's token reads as inactive, revealing nothing about it.
        return token.check_client(client)

    def introspect_token(self, token: TokenInfo) -> dict[str, Any]:
        if token.kind == "refresh_token":
            return {"active": True, **token.claims}
        claims = token.claims
        payload = {
            "active": True,
            "token_type": "Bearer",
            "scope": claims.get("scope", ""),
            "client_id": claims["client_id"],
            "sub": claims["sub"],
            "aud": claims.get("aud"),
            "iss": claims["iss"],
            "exp": claims["exp"],
            "iat": claims["iat"],
            "jti": claims["jti"],
        }
        for optional in ("sid", "amr", "auth_time", "groups", "entitlements", "cnf"):
            if optional in claims:
                payload[optional] = claims[optional]
        if "cnf" in claims:
            payload["token_type"] = "DPoP"
        return payload


class RevocationEndpoint(_RevocationEndpoint):
    # Public clients may revoke their own tokens by client_id alone (RFC 7009 §2.1).
    CLIENT_AUTH_METHODS = [*CONFIDENTIAL_METHODS, "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenInfo | None:
        return inspect_token(token_string)

    def revoke_token(self, token: TokenInfo, request) -> None:
        client_id = request.client.client_id
        if token.kind == "access_token":
            revoke_access_token(token.claims)
            record_event(
                "token.revoked",
                actor=client_id,
                client_id=token.client_id,
                user_id=token.claims.get("sub") if token.claims.get("sid") else None,
                token_type="access_token",
                jti=token.claims["jti"],
            )
        else:
            session = token.refresh_token.session
            if revoke_session(session, reason="revoked"):
                record_event(
                    "session.revoked",
                    actor=client_id,
                    client_id=token.client_id,
                    user_id=session.user_id,
                    session_id=str(session.id),
                    reason="refresh_token_revoked",
                )
        db.session.flush()
