"""The in-process view of the signing keys.

Importing a private RSA key costs ~50 ms and building the JWKS from rows costs more, so
each process keeps an immutable snapshot and checks the database for changes at most
every ``AUTHSERVER_KEY_CACHE_SECONDS``: a rotation made on one instance is used by all
others within that bound, with no restart. Local changes invalidate at once.

A retired key stays published until every token it may have signed has expired: its
retirement, plus the time other instances may still sign with it from their cached
snapshot (``AUTHSERVER_KEY_CACHE_SECONDS``), plus the access-token lifetime, plus the
clock-skew allowance verifiers grant.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from flask import Flask
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from authserver.context import keyring
from authserver.errors import ConfigError, KeyDecryptionError
from authserver.extensions import db, utcnow
from authserver.signing.crypto import decrypt_private_key
from authserver.signing.models import SigningKey

if TYPE_CHECKING:
    from authserver.config import Settings

log = logging.getLogger(__name__)


def retired_window(settings: Settings) -> int:
    """Seconds a retired key stays in the JWKS after its retirement."""
    return settings.access_token_ttl + settings.key_cache_seconds + settings.clock_skew


def is_published(state: str, retired_at: datetime | None, now: datetime, window: int) -> bool:
    """Whether a key in this state belongs in the JWKS at ``now``."""
    if state == "revoked":
        return False
    if state != "retired":
        return True
    return retired_at is not None and retired_at + timedelta(seconds=window) > now


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Signer:
    """RS256 compact JWS (RFC 7515 §7.1) with one private key, built once per key: the
    header is encoded once per ``typ``, each token costs a JSON dump and the RSA
    signature. joserfc's ``jwt.encode`` checks and rebuilds all of that per token,
    which is its job for arbitrary input; ours is fixed (alg RS256, our kid)."""

    def __init__(self, key: RSAKey) -> None:
        self.kid = key.kid
        self._private = key.private_key
        self._headers: dict[str, str] = {}

    def sign(self, claims: dict, typ: str) -> str:
        header = self._headers.get(typ)
        if header is None:
            header = _b64(_compact_json({"typ": typ, "alg": "RS256", "kid": self.kid}))
            self._headers[typ] = header
        signing_input = f"{header}.{_b64(_compact_json(claims))}"
        signature = self._private.sign(signing_input.encode("ascii"), _PKCS1V15, _SHA256)
        return f"{signing_input}.{_b64(signature)}"


_PKCS1V15 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def _compact_json(value: dict) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class KeySnapshot:
    version: tuple[tuple[str, str], ...]
    active_kid: str | None
    signing: KeySet | None  # only the active key: Authlib signs with a random key of a set
    signer: Signer | None  # the same key, for access tokens (one per process and key)
    verifying: KeySet  # public halves of every published key
    jwks_body: bytes
    etag: str
    states: dict[str, str] = field(default_factory=dict)


class KeyRing:
    def __init__(self, kek: bytes, cache_seconds: int, retired_window: int) -> None:
        self._kek = kek
        self._cache_seconds = cache_seconds
        self._retired_window = retired_window
        self._lock = threading.Lock()
        self._snapshot: KeySnapshot | None = None
        self._checked_at = 0.0
        self._private: dict[str, RSAKey] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        return cls(
            settings.key_encryption_key,
            settings.key_cache_seconds,
            retired_window=retired_window(settings),
        )

    @property
    def retired_window(self) -> int:
        return self._retired_window

    def snapshot(self) -> KeySnapshot:
        snap = self._snapshot
        if snap is None or time.monotonic() - self._checked_at >= self._cache_seconds:
            with self._lock:
                if self._snapshot is snap:  # nobody reloaded while we waited
                    self._reload()
            snap = self._snapshot
        assert snap is not None
        return snap

    def invalidate(self) -> None:
        self._checked_at = 0.0
        self._snapshot = None

    def private_key(self, row: SigningKey) -> RSAKey:
        key = self._private.get(row.kid)
        if key is None:
            pem = decrypt_private_key(self._kek, row.kid, row.private_key_encrypted)
            key = RSAKey.import_key(pem, {"kid": row.kid, "alg": row.alg, "use": "sig"})
            self._private[row.kid] = key
        return key

    def _reload(self) -> None:
        now = utcnow()
        rows = db.session.execute(
            select(SigningKey.kid, SigningKey.state, SigningKey.public_jwk, SigningKey.retired_at)
            .where(SigningKey.state != "revoked")
            .order_by(SigningKey.created_at)
        ).all()
        published = [
            row
            for row in rows
            if is_published(row.state, row.retired_at, now, self._retired_window)
        ]
        version = tuple((row.kid, row.state) for row in published)
        current = self._snapshot
        if current is not None and current.version == version:
            self._checked_at = time.monotonic()
            return
        active_kid = next((row.kid for row in published if row.state == "active"), None)
        signing = signer = None
        if active_kid is not None:
            active = db.session.get(SigningKey, active_kid)
            assert active is not None
            signing = KeySet([self.private_key(active)])
            previous = current.signer if current is not None else None
            signer = previous if previous and previous.kid == active_kid else None
            signer = signer or Signer(self.private_key(active))
        public = [RSAKey.import_key(dict(row.public_jwk)) for row in published]
        body = json.dumps(
            {"keys": [key.as_dict(private=False) for key in public]}, separators=(",", ":")
        ).encode()
        self._private = {kid: k for kid, k in self._private.items() if kid == active_kid}
        self._snapshot = KeySnapshot(
            version=version,
            active_kid=active_kid,
            signing=signing,
            signer=signer,
            verifying=KeySet(public),
            jwks_body=body,
            etag=hashlib.sha256(body).hexdigest()[:32],
            states={row.kid: row.state for row in published},
        )
        self._checked_at = time.monotonic()


def check_key_encryption_key(app: Flask) -> None:
    """Open the active key once at start-up, so a wrong AUTHSERVER_KEY_ENCRYPTION_KEY stops
    the process with a clear message instead of failing the first token request. The
    decrypted key stays cached in the key ring, so this costs nothing later."""
    with app.app_context():
        try:
            keyring(app).snapshot()
        except KeyDecryptionError as error:
            raise ConfigError(
                f"{error}. Set AUTHSERVER_KEY_ENCRYPTION_KEY to the key the signing keys were "
                "encrypted with (see `authserver keys rewrap` to change it)."
            ) from None
        except SQLAlchemyError as error:
            # No schema yet (before `authserver db upgrade`) or the database is down: there
            # is nothing to check now; the first use will tell.
            log.info("signing keys not checked at start-up: %s", type(error).__name__)
        finally:
            db.session.remove()
            # A server may create the app before forking workers: no pooled connection may
            # cross a fork.
            db.engine.dispose()
