"""Key lifecycle: next -> active -> retired -> (gone), or revoked at once."""

from __future__ import annotations

from typing import Any

from joserfc.jwk import RSAKey
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from authserver.audit import record_event
from authserver.context import keyring, settings
from authserver.extensions import db, utcnow
from authserver.signing.crypto import encrypt_private_key
from authserver.signing.models import SigningKey


class KeyOperationError(RuntimeError):
    """A key operation that cannot be done (unknown kid, unsafe transition, bad PEM)."""


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
        activated_at=utcnow() if state == "active" else None,
    )
    db.session.add(row)
    return row


def generate_key(state: str) -> SigningKey:
    return _store(RSAKey.generate_key(settings().signing_key_bits), state)


def import_key(pem: bytes, *, actor: str) -> SigningKey:
    try:
        key = RSAKey.import_key(pem)
    except Exception as error:  # joserfc raises several types for bad input
        raise KeyOperationError(f"not an RSA private key in PEM: {error}") from None
    if not key.is_private:
        raise KeyOperationError("the PEM holds a public key; a private key is needed")
    if key.raw_value.key_size < 2048:
        raise KeyOperationError("RSA keys below 2048 bits are refused")
    existing_next = _by_state("next")
    if existing_next is not None:
        raise KeyOperationError(f"key {existing_next[0].kid} is already next; rotate first")
    row = _store(key, "next")
    record_event("key.imported", actor=actor, kid=row.kid)
    db.session.commit()
    keyring().invalidate()
    return row


def ensure_active_key(*, actor: str = "system") -> SigningKey:
    """The active key, creating one when there is none (first start)."""
    active = _by_state("active")
    if active:
        return active[0]
    row = generate_key("active")
    record_event("key.created", actor=actor, kid=row.kid, state="active")
    try:
        db.session.commit()
    except IntegrityError:  # another instance created one at the same moment
        db.session.rollback()
        return _by_state("active")[0]
    keyring().invalidate()
    return row


def rotate_signing_keys(*, actor: str) -> dict[str, Any]:
    """Promote ``next`` (or a fresh key) to active, retire the old active key, publish a
    new ``next``."""
    now = utcnow()
    old = _by_state("active")
    nxt = _by_state("next")
    for row in old:
        row.state, row.retired_at = "retired", now
    db.session.flush()  # free the one-active slot before promoting
    promoted = nxt[0] if nxt else generate_key("next")
    promoted.state, promoted.activated_at = "active", now
    new_next = generate_key("next")
    record_event(
        "key.rotated",
        actor=actor,
        active=promoted.kid,
        next=new_next.kid,
        retired=[row.kid for row in old],
    )
    db.session.commit()
    keyring().invalidate()
    return key_summary()


def revoke_key(kid: str, *, actor: str) -> SigningKey:
    row = db.session.get(SigningKey, kid)
    if row is None:
        raise KeyOperationError(f"no key {kid}")
    if row.state == "active":
        raise KeyOperationError("the active key cannot be revoked: rotate first, then revoke it")
    row.state, row.revoked_at = "revoked", utcnow()
    record_event("key.revoked", actor=actor, kid=kid)
    db.session.commit()
    keyring().invalidate()
    return row


def list_keys() -> list[SigningKey]:
    return list(db.session.scalars(select(SigningKey).order_by(SigningKey.created_at)))


def key_summary() -> dict[str, Any]:
    rows = list_keys()
    return {
        "active": next((r.kid for r in rows if r.state == "active"), None),
        "next": next((r.kid for r in rows if r.state == "next"), None),
        "retired": [r.kid for r in rows if r.state == "retired"],
    }


def _by_state(state: str) -> list[SigningKey]:
    return list(db.session.scalars(select(SigningKey).where(SigningKey.state == state)))
