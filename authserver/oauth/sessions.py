"""Sign-in sessions and their refresh tokens: rotation, reuse detection, revocation.

Claiming a refresh token is one conditional UPDATE, so of two simultaneous requests with
the same token exactly one wins (PostgreSQL serialises them on the row lock; SQLite on
its write lock). The token's client presenting it again within
``AUTHSERVER_REFRESH_REUSE_GRACE`` seconds, while the winner's successor is still unused,
gets that same successor (a lost answer, two tabs refreshing at once): every holder of
the token then shares one chain, so the next fork is reuse. Any other use of a rotated
token is reuse: the session and so every token of it is revoked, in one UPDATE of one row.

The successor is kept only sealed (AES-GCM) under a key derived from its parent's value
(HKDF-SHA256), with the parent's keyed hash as associated data: the database never holds
a usable token, and only who presents the parent can open it.
"""

from __future__ import annotations

import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Select, and_, literal_column, or_, select, text, update
from sqlalchemy.dialects import postgresql

from authserver.accounts.memberships import claims_of, groups_and_permissions_of
from authserver.accounts.models import User
from authserver.audit import record_event
from authserver.context import keyed_hash, settings
from authserver.errors import RefreshRaceLost, RefreshTokenInvalid, RefreshTokenReused
from authserver.extensions import db, utcnow
from authserver.oauth.models import AuthSession, Client, RefreshToken
from authserver.ops.metrics import REFRESH_TOKEN_REPLAYS, REFRESH_TOKEN_REUSE
from authserver.transactions import keep_before_failing


@dataclass(frozen=True)
class Device:
    name: str = ""
    ip_address: str | None = None
    user_agent: str = ""


def start_session(
    user: User,
    client: Client | None,
    scope: str,
    amr: list[str],
    device: Device,
    *,
    authenticated_at: datetime | None = None,
    browser_session_id: uuid.UUID | None = None,
) -> AuthSession:
    """Open a session. ``client`` None opens a browser session (the hosted pages' sign-in
    cookie), which has its own absolute lifetime. ``authenticated_at``: when the user
    proved who they are, if before now (a code exchanged after a browser sign-in): it is
    the session's ``created_at``, so its tokens' ``auth_time`` tells the truth."""
    now = utcnow()
    limit = settings().max_sessions_per_user
    if limit:
        # Simultaneous sign-ins of one user count one after the other (PostgreSQL; SQLite
        # has one writer anyway). Locked before the INSERT, whose foreign-key share lock
        # on the user row would otherwise deadlock two sign-ins upgrading to this one.
        db.session.execute(select(User.id).where(User.id == user.id).with_for_update())
    lifetime = settings().session_max_ttl if client else settings().browser_session_max_ttl
    session = AuthSession(
        id=uuid.uuid4(),
        user_id=user.id,
        client_id=client.client_id if client else None,
        browser_session_id=browser_session_id,
        scope=scope,
        amr=" ".join(amr),
        device_name=device.name[:200],
        ip_address=device.ip_address,
        user_agent=device.user_agent[:512],
        created_at=min(authenticated_at or now, now),
        last_used_at=now,
        expires_at=now + timedelta(seconds=lifetime),
    )
    db.session.add(session)
    if limit:
        _enforce_session_limit(user, now, limit)
    return session


def _enforce_session_limit(user: User, now: datetime, limit: int) -> None:
    """Keep at most AUTHSERVER_MAX_SESSIONS_PER_USER live sessions: a new sign-in ends the
    least recently used ones. Refusing the sign-in instead would lock out a user whose
    old devices are lost (ending sessions needs a sign-in), and let whoever knows the
    password fill every slot to keep the owner out.

    One UPDATE ... RETURNING over the user's live sessions, under the user row's lock
    taken by ``start_session``, instead of loading each session to revoke it."""
    db.session.flush()  # the new session counts, as the most recently used
    oldest = (
        live_sessions_query(user.id, now)
        .with_only_columns(AuthSession.id)
        .order_by(AuthSession.last_used_at.desc(), AuthSession.created_at.desc())
        .offset(limit)
    )
    ended = db.session.execute(
        update(AuthSession)
        .where(AuthSession.id.in_(oldest.scalar_subquery()), AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason="session_limit")
        .returning(AuthSession.id, AuthSession.client_id)
        .execution_options(synchronize_session=False)
    ).all()
    for session_id, client_id in ended:
        if client_id is None:  # a browser session: the sessions opened from it end too
            db.session.execute(
                update(AuthSession)
                .where(
                    AuthSession.browser_session_id == session_id,
                    AuthSession.revoked_at.is_(None),
                )
                .values(revoked_at=now, revoked_reason="session_limit")
                .execution_options(synchronize_session=False)
            )
        record_event(
            "session.revoked",
            actor="system",
            user_id=user.id,
            client_id=client_id,
            session_id=str(session_id),
            reason="session_limit",
        )
    _expire_loaded_sessions({session_id for session_id, _ in ended})


def _expire_loaded_sessions(ended: set[uuid.UUID]) -> None:
    for loaded in list(db.session.identity_map.values()):
        if isinstance(loaded, AuthSession) and loaded.id in ended:
            db.session.expire(loaded)  # must not keep showing as live


def live_sessions_query(user_id: uuid.UUID, now: datetime | None = None) -> Select:
    """The user's sessions that can still be refreshed: not revoked, within their
    absolute lifetime, and used within the idle lifetime."""
    now = now or utcnow()
    s = settings()
    return select(AuthSession).where(
        AuthSession.user_id == user_id,
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > now,
        or_(
            and_(
                AuthSession.client_id.is_not(None),
                AuthSession.last_used_at > now - timedelta(seconds=s.session_idle_ttl),
            ),
            and_(
                AuthSession.client_id.is_(None),
                AuthSession.last_used_at > now - timedelta(seconds=s.browser_session_idle_ttl),
            ),
        ),
    )


def revoke_user_sessions(
    user_id: uuid.UUID, *, reason: str, keep: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """End every live session of the user (but ``keep``) in one UPDATE; their refresh
    and access tokens stop working at once. Returns the ids of the sessions ended."""
    now = utcnow()
    conditions = [AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)]
    if keep is not None:
        conditions.append(AuthSession.id != keep)
    ended = (
        db.session.execute(
            update(AuthSession)
            .where(*conditions, AuthSession.expires_at > now)
            .values(revoked_at=now, revoked_reason=reason)
            .returning(AuthSession.id)
            .execution_options(synchronize_session=False)
        )
        .scalars()
        .all()
    )
    _expire_loaded_sessions(set(ended))
    return list(ended)


def issue_refresh_token(
    session: AuthSession, parent: RefreshToken | None = None, parent_value: str | None = None
) -> str:
    """A new opaque refresh token (256 random bits); only its keyed hash is stored, and
    the value sealed under ``parent_value`` (see the module's docstring)."""
    value = secrets.token_urlsafe(32)
    now = utcnow()
    expires = min(now + timedelta(seconds=settings().session_idle_ttl), session.expires_at)
    sealed = None
    if parent is not None and parent_value is not None:
        sealed = seal_successor(parent_value, parent.token_hash, value)
    db.session.add(
        RefreshToken(
            token_hash=keyed_hash(value),
            session_id=session.id,
            parent_id=parent.id if parent else None,
            created_at=now,
            expires_at=expires,
            sealed_value=sealed,
        )
    )
    return value


def _sealing_key(parent_value: str) -> bytes:
    return HKDF(
        algorithm=SHA256(), length=32, salt=None, info=b"authserver refresh successor"
    ).derive(parent_value.encode())


def seal_successor(parent_value: str, parent_digest: bytes, successor: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_sealing_key(parent_value)).encrypt(
        nonce, successor.encode(), parent_digest
    )


def _unseal(parent_value: str, parent_digest: bytes, sealed: bytes | None) -> str | None:
    if not sealed:
        return None  # rotated before successors were sealed (migration 0009)
    try:
        opened = AESGCM(_sealing_key(parent_value)).decrypt(sealed[:12], sealed[12:], parent_digest)
    except InvalidTag:
        return None
    return opened.decode()


@dataclass(frozen=True)
class Replay:
    """A just-rotated token presented again by its client within the grace window: what
    Authlib's refresh grant asks of a token, and the successor to answer again."""

    token: RefreshToken
    successor: str

    def check_client(self, client: Client) -> bool:
        return self.token.check_client(client)

    def get_scope(self) -> str:
        return self.token.get_scope()


def find_refresh_token(value: str) -> RefreshToken | None:
    return db.session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == keyed_hash(value))
    )


@dataclass(frozen=True)
class SessionState:
    """What a rotation read of its session: enough for the new tokens, no ORM object."""

    id: uuid.UUID
    user_id: uuid.UUID
    client_id: str
    scope: str
    amr: str
    created_at: datetime
    expires_at: datetime
    dpop_jkt: str | None = None


@dataclass(frozen=True)
class Rotation:
    """A refresh token claimed, its session touched and its successor written, all in
    one statement (``rotate_refresh_token``): what Authlib's refresh grant asks of a
    token, and what the token generator needs."""

    id: int
    session: SessionState
    successor: str
    groups: list[str]
    entitlements: list[str]

    def check_client(self, client: Client) -> bool:
        return self.session.client_id == client.client_id

    def get_scope(self) -> str:
        return self.session.scope


# The user's groups and permissions for the session the rotation touched.
_ROTATION_CLAIMS = groups_and_permissions_of(literal_column("live.user_id")).compile(
    dialect=postgresql.dialect()
)
# One round trip and one commit for a refresh (PostgreSQL): claim the token (the same
# conditional UPDATE as ``claim_refresh_token``), touch its session if it is live and
# its user may sign in, write the successor, read the user's groups and permissions.
# Every part of a WITH runs to completion, on one snapshot; a claim whose session is
# not live returns no session, and the caller's rollback undoes the claim.
_ROTATE = text(  # the only value formatted in is the query above, compiled from constants
    f"""
    WITH claimed AS (
        UPDATE refresh_tokens SET used_at = :now
        WHERE token_hash = :digest AND used_at IS NULL AND expires_at > :now
        RETURNING id, session_id
    ), live AS (
        UPDATE sessions SET last_used_at = :now
        FROM claimed, users
        WHERE sessions.id = claimed.session_id AND sessions.revoked_at IS NULL
          AND sessions.expires_at > :now AND users.id = sessions.user_id
          AND users.is_active AND NOT users.is_blocked
        RETURNING sessions.id, sessions.user_id, sessions.client_id, sessions.scope,
                  sessions.amr, sessions.created_at, sessions.expires_at, sessions.dpop_jkt
    ), successor AS (
        INSERT INTO refresh_tokens
            (token_hash, session_id, parent_id, created_at, expires_at, sealed_value)
        SELECT :successor_digest, live.id, claimed.id, :now,
               LEAST(:idle_expiry, live.expires_at), :sealed
        FROM live, claimed
        RETURNING id
    )
    SELECT claimed.id, live.id AS session_id, live.user_id, live.client_id, live.scope,
           live.amr, live.created_at, live.expires_at, live.dpop_jkt,
           EXISTS (SELECT 1 FROM successor) AS issued,
           ARRAY(SELECT kind || ' ' || value FROM ({_ROTATION_CLAIMS}) AS held) AS held
    FROM claimed LEFT JOIN live ON true
    """  # noqa: S608
)


def rotate_refresh_token(value: str, client_id: str) -> Rotation | Replay | None:
    """The refresh in one statement (PostgreSQL), or its client's replay, or raise why
    the token cannot be used (``replay_or_refuse``). None when the database is not
    PostgreSQL: SQLite, which has no data-modifying WITH, takes ``claim_refresh_token``
    and the ORM."""
    if db.session.get_bind().dialect.name != "postgresql":
        return None
    now = utcnow()
    successor = secrets.token_urlsafe(32)
    digest = keyed_hash(value)
    row = (
        db.session.connection()
        .execute(
            _ROTATE,
            {
                "now": now,
                "digest": digest,
                "successor_digest": keyed_hash(successor),
                "sealed": seal_successor(value, digest, successor),
                "idle_expiry": now + timedelta(seconds=settings().session_idle_ttl),
            },
        )
        .first()
    )
    if row is None:
        return replay_or_refuse(value, now, client_id)
    if row.session_id is None or not row.issued:
        raise RefreshTokenInvalid()  # its session ended: the caller's rollback undoes the claim
    groups, entitlements = claims_of(held.split(" ", 1) for held in row.held)
    session = SessionState(
        row.session_id,
        row.user_id,
        row.client_id,
        row.scope,
        row.amr,
        row.created_at,
        row.expires_at,
        row.dpop_jkt,
    )
    return Rotation(row.id, session, successor, groups, entitlements)


def claim_refresh_token(value: str, client_id: str) -> RefreshToken | Replay:
    """Mark the token used and return it (or, for its client within the grace window,
    the replay of its unused successor), or raise why it cannot be used."""
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
    return replay_or_refuse(value, now, client_id)


def replay_or_refuse(value: str, now: datetime, client_id: str) -> Replay:
    """A token whose claim failed: its client's replay within the grace window while the
    successor is unused (answered with that successor); else why it cannot be used:
    unknown, expired or its session ended; otherwise reuse, which ends the session."""
    digest = keyed_hash(value)
    token = db.session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest))
    if token is None or token.used_at is None or not token.session.is_live(now):
        raise RefreshTokenInvalid()  # unknown, expired, or its session already ended
    successor = db.session.execute(
        select(RefreshToken.sealed_value).where(
            RefreshToken.parent_id == token.id, RefreshToken.used_at.is_(None)
        )
    ).first()
    within_grace = now - token.used_at <= timedelta(seconds=settings().refresh_reuse_grace)
    if successor is not None and within_grace and token.session.client_id == client_id:
        replayed = _unseal(value, digest, successor.sealed_value)
        if replayed is None:
            raise RefreshRaceLost()
        if not token.session.user.can_sign_in:
            raise RefreshTokenInvalid()
        token.session.last_used_at = now
        REFRESH_TOKEN_REPLAYS.inc()
        return Replay(token, replayed)
    # A replay racing with another replay of the same family is recorded once.
    if revoke_session(token.session, reason="refresh_token_reused"):
        record_event(
            "refresh_token.reused",
            outcome="failure",
            user_id=token.session.user_id,
            client_id=token.session.client_id,
            session_id=str(token.session_id),
        )
    keep_before_failing()  # the OAuth error that follows must not roll the revocation back
    REFRESH_TOKEN_REUSE.inc()
    raise RefreshTokenReused()


def revoke_session(session: AuthSession, *, reason: str) -> bool:
    """End the session, and so every token of it; a browser session also ends the
    sessions its codes opened. False if it had already ended."""
    now = utcnow()
    result = db.session.execute(
        update(AuthSession)
        .where(AuthSession.id == session.id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    if session.client_id is None:
        db.session.execute(
            update(AuthSession)
            .where(AuthSession.browser_session_id == session.id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
            .execution_options(synchronize_session=False)
        )
    db.session.expire(session)
    return result.rowcount == 1


# (marker, name) pairs, most specific first: enough to tell a person's devices apart.
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("okhttp", "Android app"),
    ("CFNetwork", "iOS app"),
    ("curl/", "curl"),
    ("python-requests", "Python"),
)
_SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("Macintosh", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def device_label(device_name: str, user_agent: str) -> str:
    """The name the device gave at sign-in (``device_name``), else one read from its
    User-Agent ("Firefox on Linux"), else "Unknown device"."""
    if device_name:
        return device_name
    browser = next((name for marker, name in _BROWSERS if marker in user_agent), None)
    system = next((name for marker, name in _SYSTEMS if marker in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or (user_agent[:60] if user_agent else "Unknown device")


def describe_session(session: AuthSession, *, current: uuid.UUID | None = None) -> dict:
    return {
        "id": str(session.id),
        "device_name": device_label(session.device_name, session.user_agent),
        "client_id": session.client_id,
        "browser": session.client_id is None,  # the sign-in of the hosted pages (SSO)
        "ip_address": session.ip_address,
        "user_agent": session.user_agent,
        "amr": session.amr.split(),
        "created_at": session.created_at.isoformat(),
        "last_used_at": session.last_used_at.isoformat(),
        "expires_at": session.expires_at.isoformat(),
        "current": session.id == current,
    }
