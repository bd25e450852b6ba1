"""Authorization codes and remembered consents.

A code is stored as a keyed hash only, bound to its client, redirect URI, PKCE challenge,
user and the browser session that signed in. It is spent by one conditional UPDATE
(``used_at``), so of two exchanges of one code exactly one wins; the row stays until it
expires, so a replay is recognised and ends the session the first exchange opened
(``session_id``, RFC 6749 §4.1.2).

A consent is one row per user and client: the scopes the user allowed, as a set. A
request is covered when its scopes are a subset; allowing more widens the row.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from authlib.oidc.core import AuthorizationCodeMixin
from sqlalchemy import ForeignKey, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from authserver.accounts.models import User
from authserver.extensions import BigIntPK, UTCDateTime, db, utcnow
from authserver.oauth.models import Client


class AuthorizationCode(db.Model, AuthorizationCodeMixin):
    __tablename__ = "authorization_codes"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    browser_session_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    # None when the request named no redirect_uri (one registered): then the token
    # request need not name it either (RFC 6749 §4.1.3).
    redirect_uri: Mapped[str | None] = mapped_column(String(2000))
    scope: Mapped[str] = mapped_column(String(1000))
    nonce: Mapped[str | None] = mapped_column(String(255))
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(8))
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    amr: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The session the exchange opened: a replay of the code ends it.
    session_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="SET NULL")
    )

    user: Mapped[User] = relationship(lazy="joined")

    # --- what Authlib asks of a code ---
    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(self.auth_time.timestamp())

    def get_amr(self) -> list[str]:
        return self.amr.split()

    def get_acr(self) -> None:
        # One level of assurance (one factor, RFC 8176 amr says which): no acr claimed.
        return None


class Consent(db.Model):
    __tablename__ = "consents"

    user_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True
    )
    scope: Mapped[str] = mapped_column(String(1000))  # space-separated, sorted
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # last widened

    client: Mapped[Client] = relationship(lazy="joined")

    def scopes(self) -> set[str]:
        return set(self.scope.split())
