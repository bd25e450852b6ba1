"""RFC 9068 access tokens: issued through Authlib's JWT generator, checked with joserfc."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from authserver.accounts.models import User
from authserver.accounts.services import groups_and_entitlements
from authserver.audiences.services import encrypt_access_token, token_target
from authserver.context import keyring, revocation_cache, settings
from authserver.errors import InvalidAccessToken, ServiceUnavailable
from authserver.extensions import db, utcnow
from authserver.oauth.dpop import request_key
from authserver.oauth.models import AuthSession, Client, RefreshToken, RevokedAccessToken
from authserver.oauth.sessions import (
    Device,
    Rotation,
    SessionState,
    issue_refresh_token,
    start_session,
)
from authserver.signing.keyring import Signer

ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")
MAX_TOKEN_LENGTH = 8192


@dataclass(frozen=True)
class Subject:
    """A user known by id only: what a refresh rotated in one statement read."""

    id: uuid.UUID


@dataclass
class Grantee:
    """The resource owner as a grant authenticated them, handed to the token generator.

    ``session`` is None until the first token of a sign-in is generated; ``parent`` is
    the refresh token being rotated, if any. A grant that redeems an earlier sign-in (an
    authorization code) says when it happened and in which browser session.
    """

    user: User | Subject
    amr: list[str]
    device: Device = field(default_factory=Device)
    session: AuthSession | SessionState | None = None
    parent: RefreshToken | Rotation | None = None
    # Known already (a refresh rotated in one statement): the user's groups and
    # entitlements, and the successor refresh token, written.
    claims: tuple[list[str], list[str]] | None = None
    successor: str | None = None
    # The refresh token being rotated (the ORM's path): its successor is sealed under it.
    parent_value: str | None = None
    authenticated_at: datetime | None = None
    browser_session_id: uuid.UUID | None = None

    def get_user_id(self) -> str:
        return str(self.user.id)


class AccessTokenGenerator(JWTBearerTokenGenerator):
    """Signs with the one active key; opens the session and its refresh token."""

    def __init__(self, issuer: str, ttl: int) -> None:
        super().__init__(
            issuer=issuer,
            alg="RS256",
            refresh_token_generator=self.new_refresh_token,
            expires_generator=lambda client, grant_type: ttl,
        )

    def signer(self) -> Signer:
        signer = keyring().snapshot().signer
        if signer is None:
            raise ServiceUnavailable("No active signing key: run `authserver keys ensure`.")
        return signer

    def get_audiences(self, client: Client, user: Grantee | None, scope: str) -> str:
        target = token_target()  # the RFC 8707 resource the grant accepted, if any
        return target.identifier if target else settings().audience

    def get_allowed_scope(self, client: Client, scope: str | None) -> str:
        """The client's scopes as asked for, and the scope of the own API (audiences/own.py)
        the request asked for: without it the token would not open that API."""
        allowed = super().get_allowed_scope(client, scope)
        target = token_target()
        if target is None or not target.scope:
            return allowed
        return " ".join(sorted({*allowed.split(), target.scope}))

    def get_jti(self, client, grant_type, user, scope) -> str:
        return secrets.token_urlsafe(16)

    def get_amr(self, user: Grantee | None) -> list[str] | None:
        return user.amr if user else None

    def get_auth_time(self, user: Grantee | None) -> int | None:
        if user is None or user.session is None:
            return None
        return int(user.session.created_at.timestamp())

    def get_extra_claims(self, client, grant_type, user: Grantee | None, scope) -> dict[str, Any]:
        if user is None:
            return {}
        groups, entitlements = user.claims or groups_and_entitlements(user.user)
        return {
            "sid": str(user.session.id) if user.session else None,
            "groups": groups,
            "entitlements": entitlements,
        }

    def access_token_generator(self, client, grant_type, user: Grantee | None, scope):
        if user is not None and user.session is None:
            # The session's id is the token's ``sid``: open it before signing.
            user.session = start_session(
                user.user,
                client,
                scope,
                user.amr,
                user.device,
                authenticated_at=user.authenticated_at,
                browser_session_id=user.browser_session_id,
            )
            if client.is_public:
                # RFC 9449 §5: a public client's refresh tokens are bound to the proof's
                # key (None without a proof: not bound).
                user.session.dpop_jkt = request_key()
        signed = self.signer().sign(self.claims(client, grant_type, user, scope), "at+jwt")
        target = token_target()
        if target is not None and target.key_id is not None:
            # The audience registered an encryption key: a nested JWT only it can open.
            return encrypt_access_token(target, signed)
        return signed

    def claims(self, client: Client, grant_type: str, user: Grantee | None, scope: str) -> dict:
        """RFC 9068 §2.2: the claims Authlib's ``access_token_generator`` writes, in its
        order, through the same ``get_*`` methods; signed by the process's one signer
        instead of a key set imported and searched per token."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "exp": now + self._get_expires_in(client, grant_type),
            "client_id": client.get_client_id(),
            "iat": now,
            "jti": self.get_jti(client, grant_type, user, scope),
            "scope": scope,
            "sub": str(user.get_user_id()) if user else client.get_client_id(),
            "aud": self.get_audiences(client, user, scope),
        }
        if auth_time := self.get_auth_time(user):
            claims["auth_time"] = auth_time
        if acr := self.get_acr(user):
            claims["acr"] = acr
        if amr := self.get_amr(user):
            claims["amr"] = amr
        claims.update(self.get_extra_claims(client, grant_type, user, scope))
        if jkt := request_key():
            claims["cnf"] = {"jkt": jkt}  # RFC 9449 §6
        return claims

    def generate(self, *args, **kwargs) -> dict:
        token = super().generate(*args, **kwargs)
        if request_key() is not None:
            token["token_type"] = "DPoP"
        return token

    @staticmethod
    def new_refresh_token(client, grant_type, user: Grantee | None, scope) -> str | None:
        if user is None or user.session is None:
            return None
        if user.successor is not None:
            return user.successor
        return issue_refresh_token(user.session, parent=user.parent, parent_value=user.parent_value)


def decode_access_token(value: str) -> dict[str, Any]:
    """Claims of a token this server signed with a published key, still unexpired, of
    type at+jwt. Does not consult revocation: see ``access_token_revoked``."""
    if not isinstance(value, str) or len(value) > MAX_TOKEN_LENGTH or value.count(".") != 2:
        raise InvalidAccessToken("The token is not a JWT.")
    try:
        token = jwt.decode(value, keyring().snapshot().verifying, algorithms=["RS256"])
    except (JoseError, ValueError) as error:
        raise InvalidAccessToken(
            f"The token cannot be verified ({type(error).__name__})."
        ) from None
    if str(token.header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
        raise InvalidAccessToken("The token is not an access token (typ).")
    registry = JWTClaimsRegistry(
        leeway=settings().clock_skew,
        iss={"essential": True, "value": settings().issuer},
        exp={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
        sub={"essential": True},
        client_id={"essential": True},
    )
    try:
        registry.validate(token.claims)
    except JoseError as error:
        raise InvalidAccessToken(f"The token is not valid ({error.error}).") from None
    return token.claims


def access_token_revoked(claims: dict[str, Any]) -> bool:
    """Revoked itself, or its session ended, or its user was blocked or its client
    deactivated since it was issued (authserver/oauth/revocation.py: no round trip for
    a token seen lately)."""
    return revocation_cache().revoked(claims)


def revoke_access_token(claims: dict[str, Any]) -> None:
    """Add the token's ``jti`` to the revocation list until the token expires anyway.

    One INSERT that ignores a duplicate: two requests revoking the same token at once
    both succeed instead of one failing on the primary key."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    db.session.execute(
        insert(RevokedAccessToken)
        .values(
            jti=claims["jti"],
            expires_at=datetime.fromtimestamp(claims["exp"], tz=UTC),
            revoked_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["jti"])
    )


def verify_access_token(value: str) -> dict[str, Any]:
    """What a resource served by authserver itself checks: a valid, unrevoked access
    token for our audience. Raises InvalidAccessToken."""
    claims = decode_access_token(value)
    aud = claims.get("aud")
    if settings().audience not in (aud if isinstance(aud, list) else [aud]):
        raise InvalidAccessToken("The access token is for another audience.")
    if access_token_revoked(claims):
        raise InvalidAccessToken("The access token has been revoked.")
    return claims
