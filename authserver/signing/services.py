"""Key lifecycle: next -> active -> retired -> (unpublished), or revoked at once.

Every change takes one database-wide lock first (``_lock_keys``), so two instances, or an
operator and a cron job, acting at the same moment are applied one after the other: a
scheduled rotation runs once, and a revocation cannot interleave with a promotion. The
lock lasts until the caller's transaction ends (the command or request commits it); the
process's cached keys are dropped once it commits (``transactions.after_commit``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from joserfc.jwk import RSAKey
from sqlalchemy import select, text

from authserver.audit import record_event
from authserver.context import keyring, settings
from authserver.errors import KeyDecryptionError, KeyOperationError, RotationNotSafe
from authserver.extensions import db, utcnow
from authserver.signing.crypto import decrypt_private_key, encrypt_private_key
from authserver.signing.keyring import is_published
from authserver.signing.models import SigningKey
from authserver.transactions import after_commit, keep_before_failing

# pg_advisory_xact_lock key for signing-key changes ("KEYS" in ASCII).
_ADVISORY_LOCK_ID = 0x4B455953


def _lock_keys() -> None:
    """Serialise key changes across every instance until the transaction ends.

    Must be the first statement of the transaction. PostgreSQL: a transaction-scoped
    advisory lock (works even when there is no row to lock yet). SQLite: a write as the
    first statement takes the database's single write lock, as ``BEGIN IMMEDIATE`` does;
    other writers wait on the busy timeout.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ADVISORY_LOCK_ID})
    else:
        db.session.execute(text("UPDATE signing_keys SET state = state WHERE state = 'active'"))


def _store(key: RSAKey, state: str) -> SigningKey:
    kid = key.thumbprint()
    if db.session.get(SigningKey, kid) is not None:
        raise KeyOperationError(f"key {kid} is already known")
    pem = key.as_pem(private=True)
    row = SigningKey(
        kid=kid,
        alg="RS256",
        state=state,
        public_jwk={**key.as_dict(private=False), "kid": kid, "alg": "RS256", "use": "sig"},
        private_key_encrypted=encrypt_private_key(settings().key_encryption_key, kid, pem),
        created_at=utcnow(),
        activated_at=utcnow() if state == "active" else None,
    )
    db.session.add(row)
    return row


def generate_key(state: str) -> SigningKey:
    """A new RSA key of AUTHSERVER_SIGNING_KEY_BITS, added to the session (not committed)."""
    return _store(RSAKey.generate_key(settings().signing_key_bits), state)


def _created(state: str, actor: str) -> SigningKey:
    row = generate_key(state)
    record_event("key.created", actor=actor, kid=row.kid, state=state)
    return row


def ensure_active_key(*, actor: str = "system") -> SigningKey:
    """The active key, creating the missing ones: an active key (first start) and a
    ``next`` key, so that the first scheduled rotation finds one already published."""
    _lock_keys()
    active = _one("active")
    created = False
    if active is None:
        active, created = _created("active", actor), True
    if _one("next") is None:
        _created("next", actor)
        created = True
    db.session.flush()
    if created:
        after_commit(keyring().invalidate)
    return active


def rotate_signing_keys(*, actor: str, force: bool = False, if_due: bool = False) -> dict[str, Any]:
    """Promote ``next`` to active, retire the old active key, publish a new ``next``.

    Refuses (``RotationNotSafe``) unless ``next`` has been published for
    AUTHSERVER_KEY_PREPUBLISH_SECONDS; ``force`` overrides and is audited as forced.
    With ``if_due`` (cron), rotates only when the active key is older than
    AUTHSERVER_KEY_ROTATION_INTERVAL, never refuses, and publishes a missing ``next`` so
    that a later run can rotate safely; the answer then carries ``rotated``.
    """
    config = settings()
    now = utcnow()
    _lock_keys()
    active, nxt = _one("active"), _one("next")
    if if_due and active is not None and active.activated_at is not None:
        due_at = active.activated_at + timedelta(seconds=config.key_rotation_interval)
        if due_at > now:
            return {**key_summary(), "rotated": False, "due_at": due_at.isoformat()}
    safe_at = nxt.created_at + timedelta(seconds=config.key_prepublish_seconds) if nxt else None
    unsafe = safe_at is None or safe_at > now
    if unsafe and not force:
        if if_due:
            if nxt is None:
                nxt = _created("next", actor)
                safe_at = now + timedelta(seconds=config.key_prepublish_seconds)
            db.session.flush()
            after_commit(keyring().invalidate)  # the new ``next``, if any, is published
            return {**key_summary(), "rotated": False, "safe_at": safe_at.isoformat()}
        record_event(
            "key.rotation_refused",
            outcome="refused",
            actor=actor,
            active=active.kid if active else None,
            next=nxt.kid if nxt else None,
        )
        keep_before_failing()
        raise RotationNotSafe(_refusal(nxt, safe_at, now), safe_at)
    retired = []
    if active is not None:
        active.state, active.retired_at = "retired", now
        retired.append(active.kid)
        db.session.flush()  # free the one-active slot before promoting
    promoted = nxt if nxt is not None else generate_key("next")
    promoted.state, promoted.activated_at = "active", now
    new_next = generate_key("next")
    record_event(
        "key.rotated",
        actor=actor,
        forced=unsafe,
        scheduled=if_due,
        active=promoted.kid,
        next=new_next.kid,
        retired=retired,
    )
    db.session.flush()
    after_commit(keyring().invalidate)
    summary = key_summary()
    return {**summary, "rotated": True} if if_due else summary


def _refusal(nxt: SigningKey | None, safe_at: datetime | None, now: datetime) -> str:
    lead = settings().key_prepublish_seconds
    if nxt is None or safe_at is None:
        return (
            "no next key is published, so verifiers' cached JWKS cannot know the key that "
            "would sign: run `authserver keys ensure` to publish one and rotate "
            f"{lead} s later, or pass --force to rotate now anyway"
        )
    wait = int((safe_at - now).total_seconds()) + 1
    return (
        f"next key {nxt.kid} has been published only since {nxt.created_at.isoformat()}; "
        f"rotation is safe from {safe_at.isoformat()} (in {wait} s, "
        f"AUTHSERVER_KEY_PREPUBLISH_SECONDS={lead}), or pass --force to rotate now anyway"
    )


def import_key(pem: bytes, *, actor: str) -> SigningKey:
    """Add an existing RSA private key as ``next``. An unused ``next`` key it replaces is
    deleted: it never signed anything, so no verifier needs it."""
    try:
        key = RSAKey.import_key(pem)
    except Exception as error:  # joserfc raises several types for bad input
        raise KeyOperationError(f"not an RSA private key in PEM: {error}") from None
    if not key.is_private:
        raise KeyOperationError("the PEM holds a public key; a private key is needed")
    if key.raw_value.key_size < 2048:
        raise KeyOperationError("RSA keys below 2048 bits are refused")
    _lock_keys()
    if _get(key.thumbprint()) is not None:
        raise KeyOperationError(f"key {key.thumbprint()} is already known")
    replaced = _one("next")
    if replaced is not None:
        db.session.delete(replaced)
        db.session.flush()
    row = _store(key, "next")
    record_event(
        "key.imported", actor=actor, kid=row.kid, replaced=replaced.kid if replaced else None
    )
    db.session.flush()
    after_commit(keyring().invalidate)
    return row


def revoke_key(kid: str, *, actor: str) -> SigningKey:
    """Withdraw a key from the JWKS at once; tokens it signed stop verifying. Revoking a
    key that is already revoked changes nothing."""
    _lock_keys()
    row = _get(kid)
    if row is None:
        raise KeyOperationError(f"no key {kid}")
    if row.state == "active":
        raise KeyOperationError(
            "the active key cannot be revoked: `authserver keys rotate --force` first, "
            "then revoke it"
        )
    if row.state != "revoked":
        previous = row.state
        row.state, row.revoked_at = "revoked", utcnow()
        record_event("key.revoked", actor=actor, kid=kid, previous_state=previous)
    db.session.flush()
    after_commit(keyring().invalidate)
    return row


def rewrap_keys(new_kek: bytes, *, actor: str) -> list[str]:
    """Re-encrypt every stored private key under ``new_kek``, in one transaction: either
    every row is rewrapped or none is. Returns the kids."""
    old_kek = settings().key_encryption_key
    if new_kek == old_kek:
        raise KeyOperationError("the new key-encryption key is the one already in use")
    _lock_keys()
    rows = list(
        db.session.scalars(
            select(SigningKey)
            .order_by(SigningKey.created_at)
            .execution_options(populate_existing=True)
        )
    )
    for row in rows:
        try:
            pem = decrypt_private_key(old_kek, row.kid, row.private_key_encrypted)
        except KeyDecryptionError as error:
            raise KeyOperationError(f"{error}; nothing was rewrapped") from None
        row.private_key_encrypted = encrypt_private_key(new_kek, row.kid, pem)
    kids = [row.kid for row in rows]
    record_event("key.rewrapped", actor=actor, kids=kids)
    db.session.flush()
    return kids


def list_keys() -> list[SigningKey]:
    return list(db.session.scalars(select(SigningKey).order_by(SigningKey.created_at)))


def describe_key(row: SigningKey, now: datetime | None = None) -> dict[str, Any]:
    """A key as ``keys list`` shows it: its state, and whether the JWKS publishes it now.

    A retired key keeps the state ``retired`` for good; ``published`` turns false once
    its window (``published_until``) has passed, and then it is simply no longer served.
    """
    now = now or utcnow()
    window = keyring().retired_window
    described = {
        **row.describe(),
        "published": is_published(row.state, row.retired_at, now, window),
    }
    if row.state == "retired" and row.retired_at is not None:
        described["published_until"] = (row.retired_at + timedelta(seconds=window)).isoformat()
    if row.state == "next":
        lead = timedelta(seconds=settings().key_prepublish_seconds)
        described["rotation_safe_at"] = (row.created_at + lead).isoformat()
    return described


def key_summary() -> dict[str, Any]:
    """The contract's rotation answer; ``retired`` lists the retired keys still published
    (those verifiers may still need)."""
    now = utcnow()
    window = keyring().retired_window
    rows = list_keys()
    return {
        "active": next((r.kid for r in rows if r.state == "active"), None),
        "next": next((r.kid for r in rows if r.state == "next"), None),
        "retired": [
            r.kid
            for r in rows
            if r.state == "retired" and is_published(r.state, r.retired_at, now, window)
        ],
    }


def _get(kid: str) -> SigningKey | None:
    return db.session.get(SigningKey, kid, populate_existing=True)


def _one(state: str) -> SigningKey | None:
    """The newest key in ``state``, read fresh (another instance may just have changed it)."""
    return db.session.scalars(
        select(SigningKey)
        .where(SigningKey.state == state)
        .order_by(SigningKey.created_at.desc())
        .limit(1)
        .execution_options(populate_existing=True)
    ).first()
