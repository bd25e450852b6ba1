"""An append-only record of security events. Never holds a secret."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import has_request_context
from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from authserver.extensions import BigIntPK, UTCDateTime, db, utcnow
from authserver.net import client_ip, user_agent


class AuditEvent(db.Model):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    event: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16), default="success")
    actor: Mapped[str | None] = mapped_column(String(128))  # who did it: user id, client id, "cli"
    user_id: Mapped[str | None] = mapped_column(String(36), index=True)  # whom it concerns
    client_id: Mapped[str | None] = mapped_column(String(64))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


def record_event(
    event: str,
    *,
    outcome: str = "success",
    actor: str | None = None,
    user_id: object | None = None,
    client_id: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Add an event to the current transaction; it is written with the change it describes."""
    entry = AuditEvent(
        event=event,
        outcome=outcome,
        actor=actor,
        user_id=str(user_id) if user_id is not None else None,
        client_id=client_id,
        ip_address=client_ip() if has_request_context() else None,
        user_agent=user_agent() if has_request_context() else None,
        details=details,
    )
    db.session.add(entry)
    return entry
