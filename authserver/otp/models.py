"""One row per code sent: only an HMAC of the code is kept, bound to the row's id."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Index, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from authserver.extensions import UTCDateTime, db, utcnow


class OtpChallenge(db.Model):
    __tablename__ = "otp_challenges"
    __table_args__ = (Index("ix_otp_challenges_phone_created_at", "phone", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    phone: Mapped[str] = mapped_column(String(16))  # E.164
    purpose: Mapped[str] = mapped_column(String(16))  # "login" or "password_reset"
    # HMAC-SHA256(AUTHSERVER_SECRET_KEY, "otp:<id>:<code>"): a stolen table, without the
    # key, gives no code, and the same code in two challenges hashes differently.
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)  # every comparison counts, right or wrong
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
