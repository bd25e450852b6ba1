from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from authserver.extensions import UTCDateTime, db, utcnow

KEY_STATES = ("next", "active", "retired", "revoked")


class SigningKey(db.Model):
    """An RSA signing key. ``kid`` is its RFC 7638 thumbprint."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        # At most one active key, enforced by the database itself.
        Index(
            "uq_signing_keys_one_active",
            "state",
            unique=True,
            postgresql_where=text("state = 'active'"),
            sqlite_where=text("state = 'active'"),
        ),
    )

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(10), default="RS256")
    state: Mapped[str] = mapped_column(String(10))
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    # AES-256-GCM under AUTHSERVER_KEY_ENCRYPTION_KEY: nonce || ciphertext, kid as AAD.
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def describe(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "state": self.state,
            "alg": self.alg,
            "created_at": self.created_at.isoformat(),
            "activated_at": self.activated_at.isoformat() if self.activated_at else None,
            "retired_at": self.retired_at.isoformat() if self.retired_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }
