"""JWT ids seen once: client assertions (RFC 7523 §3 item 7) and DPoP proofs are refused
when their ``jti`` was accepted before and has not expired.

Invariant: claiming a ``jti`` is one conditional INSERT (an upsert that may only replace
a row whose JWT has expired), committed at once. Of any number of requests with one
``jti``, on any number of instances sharing the database, exactly one gets True:
PostgreSQL serialises them on the primary key, SQLite on its write lock. The commit comes
before the request's answer is decided, so a refusal later in the request cannot roll the
claim back and leave the JWT replayable.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from authserver.extensions import db, utcnow
from authserver.oauth.models import UsedJti
from authserver.transactions import keep_before_failing


def claim_jti(kind: str, issuer: str, jti: str, expires_at: datetime) -> bool:
    """True the first time ``jti`` of ``issuer`` is presented for ``kind`` before
    ``expires_at``; False for a replay. Commits the session (see the module docstring):
    call it before the request writes anything else."""
    key = hashlib.sha256(f"{kind}\0{issuer}\0{jti}".encode()).digest()
    now = utcnow()
    insert = postgresql_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(UsedJti)
        .values(key_hash=key, expires_at=expires_at)
        .on_conflict_do_update(
            index_elements=[UsedJti.key_hash],
            set_={"expires_at": expires_at},
            # Only a jti whose JWT has expired may be taken again.
            where=UsedJti.expires_at <= now,
        )
        .returning(UsedJti.key_hash)
    )
    claimed = db.session.execute(statement).scalar() is not None
    keep_before_failing()  # a spent jti stays spent, whatever the answer
    return claimed


def purge_used_jtis(before: datetime | None = None) -> int:
    """Delete the ids of JWTs expired before ``before`` (default now): they are refused
    on their ``exp`` already."""
    result = db.session.execute(delete(UsedJti).where(UsedJti.expires_at < (before or utcnow())))
    return result.rowcount or 0  # type: ignore[attr-defined]
