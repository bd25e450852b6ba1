"""Sign-in sessions and their refresh tokens: rotation, reuse detection, revocation.

Claiming a refresh token is one conditional UPDATE, so of two simultaneous requests with
the same token exactly one wins (PostgreSQL serialises them on the row lock; SQLite on
its write lock). The loser, if it comes within ``AUTHSERVER_REFRESH_REUSE_GRACE`` seconds
and the winner's token is still unused, gets an error but the session survives (two
tabs refreshing at once must not log the user out). Any other use of a rotated token is
reuse: the session and so every token of it is revoked, in one UPDATE of one row.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update

from authserver.accounts.models import User
from authserver.audit import record_event
from authserver.context import keyed_hash, settings
from authserver.errors import RefreshRaceLost, RefreshTokenInvalid, RefreshTokenReused
from authserver.extensions import db, utcnow
from authserver.oauth.models import AuthSession, Client, RefreshToken


@dataclass(frozen=True)
class Device:
    name: str = ""
    ip_address: str | None = None
    user_agent: str = ""


def start_session(
    user: User, client: Client, scope: str, amr: list[str], device: Device
) -> AuthSession:
    now = utcnow()
    session = AuthSession(
        id=uuid.uuid4(),
        user_id=user.id,
        client_id=client.client_id,
        scope=scope,
        amr=" ".join(amr),
        device_name=device.name[:200],
        ip_address=device.ip_address,
        user_agent=device.user_agent[:512],
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(seconds=settings().session_max_ttl),
    )
    db.session.add(session)
    return session


def issue_refresh_token(session: AuthSession, parent: RefreshToken | None = None) -> str:
    """A new opaque refresh token (256 random bits); only its keyed hash is stored."""
    value = secrets.token_urlsafe(32)
    now = utcnow()
    expires = min(now + timedelta(seconds=settings().session_idle_ttl), session.expires_at)
    db.session.add(
        RefreshToken(
            token_hash=keyed_hash(value),
            session_id=session.id,
            parent_id=parent.id if parent else None,
            created_at=now,
            expires_at=expires,
        )
    )
    return value


def find_refresh_token(value: str) -> RefreshToken | None:
    return db.session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == keyed_hash(value))
    )


def claim_refresh_token(value: str) -> RefreshToken:
    """Mark the token used and return it, or raise why it cannot be used."""
    now = utcnow()
    digest = keyed_hash(value)
    claimed = db.session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == digest,
            RefreshToken.used_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(RefreshToken.id)
        .execution_options(synchronize_session=False)
    ).scalar()
    if claimed is not None:
        token = db.session.get(RefreshToken, claimed)
        assert token is not None
        if not token.session.is_live(now) or not token.session.user.can_sign_in:
            raise RefreshTokenInvalid()  # the caller's rollback undoes the claim
        token.session.last_used_at = now
        return token

    token = db.session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest))
    if token is None or token.used_at is None or not token.session.is_live(now):
        raise RefreshTokenInvalid()  # unknown, expired, or its session already ended
    successor_unused = db.session.scalar(
        select(RefreshToken.id).where(
            RefreshToken.parent_id == token.id, RefreshToken.used_at.is_(None)
        )
    )
    if successor_unused and now - token.used_at <= timedelta(
        seconds=settings().refresh_reuse_grace
    ):
        raise RefreshRaceLost()
    revoke_session(token.session, reason="refresh_token_reused")
    record_event(
        "refresh_token.reused",
        outcome="failure",
        user_id=token.session.user_id,
        client_id=token.session.client_id,
        session_id=str(token.session_id),
    )
    db.session.commit()  # the OAuth error that follows must not roll the revocation back
    raise RefreshTokenReused()


def revoke_session(session: AuthSession, *, reason: str) -> None:
    db.session.execute(
        update(AuthSession)
        .where(AuthSession.id == session.id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    db.session.expire(session)
