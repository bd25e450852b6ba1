"""OAuth clients, sign-in sessions and refresh tokens.

Written for this server rather than taken from Authlib's mixins: those compare client
secrets in plaintext, size access tokens at 255 characters and keep no session.
"""

from __future__ import annotations

import hmac
import uuid
from datetime import datetime

from authlib.oauth2.rfc6749 import ClientMixin
from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Text, Uuid, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from authserver.accounts.models import User
from authserver.context import keyed_hash
from authserver.extensions import BigIntPK, UTCDateTime, db, utcnow

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")


class Client(db.Model, ClientMixin):
    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # HMAC-SHA256 of a high-entropy generated secret; None for a public client.
    secret_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    grant_types: Mapped[str] = mapped_column(String(500))  # space-separated
    scope: Mapped[str] = mapped_column(String(1000))  # space-separated allowed scopes
    # A resource server may introspect tokens issued to other clients.
    is_resource_server: Mapped[bool] = mapped_column(default=False)
    # The platform's own apps (registered by its operators): they may be given the
    # scopes of authserver's own APIs and skip consent. Third-party apps are not.
    first_party: Mapped[bool] = mapped_column(default=False, server_default=false())
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Browser sign-in (authserver/authorize): the registered redirect URIs, compared as
    # exact strings, and where RP-initiated logout may send the browser. Space-separated
    # (a URI holds no space); checked at registration (authorize/redirect_uris.py).
    redirect_uris: Mapped[str] = mapped_column(Text, default="", server_default="")
    post_logout_redirect_uris: Mapped[str] = mapped_column(Text, default="", server_default="")
    # private_key_jwt (RFC 7523): the client's public keys, a JWKS as JSON text, checked
    # at registration (oauth/client_assertion.py). None for every other method.
    jwks: Mapped[str | None] = mapped_column(Text)

    @property
    def is_public(self) -> bool:
        # Not "has no secret": a private_key_jwt client has none and is confidential.
        return self.token_endpoint_auth_method == "none"

    def redirect_uri_list(self) -> list[str]:
        return self.redirect_uris.split()

    def post_logout_redirect_uri_list(self) -> list[str]:
        return self.post_logout_redirect_uris.split()

    def allowed_scopes(self) -> set[str]:
        return set(self.scope.split())

    # --- what Authlib asks of a client ---
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # OAuth 2.1 §4.1.1: redirect_uri may be left out when exactly one is registered.
        uris = self.redirect_uri_list()
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        """No scope asked: every allowed scope. Scopes beyond those allowed are refused
        before this point (``invalid_scope``), so this only normalises the order."""
        requested = set((scope or "").split())  # blank counts as not asked
        if not requested:
            return " ".join(sorted(self.allowed_scopes()))
        return " ".join(sorted(requested & self.allowed_scopes()))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string comparison (RFC 9700 §4.1.1): no prefix, no pattern, no default.
        return isinstance(redirect_uri, str) and redirect_uri in self.redirect_uri_list()

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret_hash is None:
            return False
        return hmac.compare_digest(self.secret_hash, keyed_hash(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # One registered method per client, on every endpoint (RFC 7591).
        return self.is_active and method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and self.check_grant_type("authorization_code")

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types.split()


class AuthSession(db.Model):
    """One sign-in of a user on one device (the seeds' UserLogin). Its id is the ``sid``.

    A session without a client is a browser session (the sign-in cookie of the hosted
    pages, authserver/web): it holds no token itself; the sessions opened by exchanging
    its authorization codes name it in ``browser_session_id`` and end with it."""

    __tablename__ = "sessions"
    # The user's live sessions, without the ended ones a long-lived account piles up:
    # every sign-in counts them against AUTHSERVER_MAX_SESSIONS_PER_USER.
    __table_args__ = (
        Index(
            "ix_sessions_user_id_live",
            "user_id",
            postgresql_where=text("revoked_at IS NULL"),
            sqlite_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[str | None] = mapped_column(
        ForeignKey("clients.client_id", ondelete="CASCADE")
    )
    browser_session_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(String(1000))
    amr: Mapped[str] = mapped_column(String(100))  # space-separated RFC 8176 values
    device_name: Mapped[str] = mapped_column(String(200), default="")
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str] = mapped_column(String(512), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)  # absolute lifetime
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(64))
    # DPoP (oauth/dpop.py): the thumbprint of the key a public client's refresh tokens
    # are bound to (RFC 9449 §5); None when they are not bound.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship(lazy="joined")

    @property
    def is_browser_session(self) -> bool:
        return self.client_id is None

    def is_live(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


class RefreshToken(db.Model):
    """Stored as a keyed hash only. ``parent_id`` links a token to the one it replaced."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    # Indexed: reuse detection looks a token's successor up by it.
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("refresh_tokens.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set when the token is rotated. A token is usable while this is empty and its
    # session is live, so revoking a whole family is one UPDATE of the session row.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # This token's value sealed under a key derived from its parent's value (AES-GCM,
    # oauth/sessions.py): the parent's holder can get it back within the grace window;
    # the database alone cannot.
    sealed_value: Mapped[bytes | None] = mapped_column(LargeBinary(128))

    session: Mapped[AuthSession] = relationship(lazy="joined")

    # --- what Authlib's refresh grant asks ---
    def check_client(self, client: Client) -> bool:
        return self.session.client_id == client.client_id

    def get_scope(self) -> str:
        return self.session.scope


class RevokedAccessToken(db.Model):
    """A revoked access token's ``jti``, kept until the token would have expired anyway."""

    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RevocationState(db.Model):
    """One row whose ``generation`` moves whenever an access token may have stopped
    standing: bumped by database triggers (migration 0007), read by each process's
    revocation cache (authserver/oauth/revocation.py)."""

    __tablename__ = "revocation_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


class UsedJti(db.Model):
    """A JWT ``jti`` already accepted (client assertions, DPoP proofs), kept until the
    JWT expires: one conditional INSERT claims it (oauth/replay.py), so every instance
    sharing the database refuses a replay. Keyed by a hash of kind, issuer and jti:
    fixed size whatever the sender writes."""

    __tablename__ = "used_jtis"

    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
