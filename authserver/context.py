"""Per-application singletons, reached through the current Flask app."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from authserver.accounts.passwords import Passwords
    from authserver.config import Settings
    from authserver.signing.keyring import KeyRing


def settings() -> Settings:
    return current_app.extensions["authserver.settings"]


def passwords() -> Passwords:
    return current_app.extensions["authserver.passwords"]


def keyring() -> KeyRing:
    return current_app.extensions["authserver.keyring"]


def keyed_hash(value: str) -> bytes:
    """HMAC-SHA256 under AUTHSERVER_SECRET_KEY: how every high-entropy secret we issue
    (client secrets, refresh tokens) is stored. Fast, and useless without the key."""
    return hmac.new(settings().secret_key, value.encode(), hashlib.sha256).digest()
