"""Audiences, their public encryption keys, and what authserver keeps of each encrypted
access token it issued."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from authserver.extensions import UTCDateTime, db, utcnow

KEY_ALGORITHMS = ("RSA-OAEP-256", "ECDH-ES")
KEY_STATES = ("active", "replaced")


class Audience(db.Model):
    """A resource server tokens may be issued for: ``identifier`` is the tokens' ``aud``
    and the value clients send as ``resource`` (RFC 8707)."""

    __tablename__ = "audiences"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    identifier: Mapped[str] = mapped_column(String(255), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    keys: Mapped[list[AudienceEncryptionKey]] = relationship(
        back_populates="audience",
        # Deleted by the ORM, not left to ON DELETE CASCADE: SQLite does not enforce
        # foreign keys unless asked per connection.
        cascade="all, delete-orphan",
        order_by="AudienceEncryptionKey.created_at.desc()",
    )

    @property
    def active_key(self) -> AudienceEncryptionKey | None:
        return next((key for key in self.keys if key.state == "active"), None)


class AudienceEncryptionKey(db.Model):
    """A public key tokens for the audience are encrypted to. Immutable but for its state:
    ``active`` (new tokens use it; at most one per audience) or ``replaced`` (no longer
    used; tokens encrypted to it live on until they expire)."""

    __tablename__ = "audience_encryption_keys"
    __table_args__ = (
        # One kid names one key within an audience: services pick their private key by it.
        UniqueConstraint("audience_id", "kid", name="uq_audience_encryption_keys_audience_kid"),
        # At most one active key per audience, enforced by the database itself.
        Index(
            "uq_audience_encryption_keys_one_active",
            "audience_id",
            unique=True,
            postgresql_where=text("state = 'active'"),
            sqlite_where=text("state = 'active'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    audience_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("audiences.id", ondelete="CASCADE"))
    kid: Mapped[str] = mapped_column(String(128))
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(10), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    replaced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    audience: Mapped[Audience] = relationship(back_populates="keys")


class EncryptedAccessToken(db.Model):
    """What introspection and revocation need about an encrypted access token, which
    authserver cannot decrypt: the signed token's claims and signing kid, found by the
    keyed hash of the compact JWE. Never the token itself. Kept until it expires."""

    __tablename__ = "encrypted_access_tokens"

    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    jti: Mapped[str] = mapped_column(String(64))
    signing_kid: Mapped[str] = mapped_column(String(64))
    claims: Mapped[dict[str, Any]] = mapped_column(JSON)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
