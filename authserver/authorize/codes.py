"""Spending authorization codes, and forgetting old ones.

A code is claimed by one conditional UPDATE (unused, unexpired, of this client), so of
two exchanges of one code exactly one wins. A code presented again after it was
exchanged ends the session that exchange opened (RFC 6749 §4.1.2); that revocation is
committed at once, before the caller answers with an error that rolls back the rest.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update

from authserver.audit import record_event
from authserver.authorize.models import AuthorizationCode
from authserver.context import keyed_hash
from authserver.extensions import db, utcnow
from authserver.oauth.models import AuthSession, Client
from authserver.oauth.sessions import revoke_session
from authserver.transactions import keep_before_failing


def claim_code(value: str, client: Client) -> AuthorizationCode | None:
    """The unexpired, unused code ``value`` of ``client``, now marked used; else None.

    A code already used ends the session its exchange opened (committed here, before the
    caller's error rolls the request back)."""
    now = utcnow()
    digest = keyed_hash(value)
    claimed = db.session.execute(
        update(AuthorizationCode)
        .where(
            AuthorizationCode.code_hash == digest,
            AuthorizationCode.client_id == client.client_id,
            AuthorizationCode.used_at.is_(None),
            AuthorizationCode.expires_at > now,
        )
        .values(used_at=now)
        .returning(AuthorizationCode.id)
        .execution_options(synchronize_session=False)
    ).scalar()
    if claimed is not None:
        return db.session.get(AuthorizationCode, claimed)
    code = db.session.scalar(
        select(AuthorizationCode).where(
            AuthorizationCode.code_hash == digest,
            AuthorizationCode.client_id == client.client_id,
            AuthorizationCode.used_at.is_not(None),
        )
    )
    if code is not None:
        issued = db.session.get(AuthSession, code.session_id) if code.session_id else None
        if issued is not None and revoke_session(issued, reason="authorization_code_reused"):
            record_event(
                "authorization_code.reused",
                outcome="failure",
                user_id=code.user_id,
                client_id=client.client_id,
                session_id=str(issued.id),
            )
        keep_before_failing()  # the invalid_grant answer must not undo the revocation
    return None


def purge_expired_codes() -> int:
    """Delete codes expired for a day: a replay that late is only an unknown code."""
    cutoff = utcnow() - timedelta(days=1)
    result = db.session.execute(
        delete(AuthorizationCode).where(AuthorizationCode.expires_at < cutoff)
    )
    return result.rowcount or 0  # type: ignore[attr-defined]
