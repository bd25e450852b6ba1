"""Per-application singletons: every ``app.extensions`` entry authserver keeps, each with
its key here and a typed accessor. Code reads them only through these functions (the
current app's, or ``app``'s while it is being built), never by key."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

if TYPE_CHECKING:
    from authserver.accounts.passwords import Passwords
    from authserver.config import Settings
    from authserver.limits.budgets import Budgets
    from authserver.oauth.clients import ClientCache
    from authserver.oauth.revocation import RevocationCache
    from authserver.oauth.server import AuthorizationServer
    from authserver.otp.sms import SmsSender
    from authserver.signing.keyring import KeyRing

SETTINGS = "authserver.settings"
PASSWORDS = "authserver.passwords"
KEYRING = "authserver.keyring"
AUTHORIZATION_SERVER = "authserver.oauth"
GRANT_TYPES = "authserver.grant_types"
CLIENT_CACHE = "authserver.client_cache"
REVOCATION_CACHE = "authserver.revocation_cache"
METADATA_EXTRA = "authserver.metadata_extra"
SMS_SENDER = "authserver.sms"
BUDGETS = "authserver.budgets"
MIGRATE = "migrate"  # Flask-Migrate's own entry
# Made on first use by the request that needs it.
RATE_LIMIT_PROBE = "authserver.ops.ratelimit_storage"
OPENAPI_DOCUMENT = "authserver.openapi"


def _extensions(app: Flask | None) -> dict[str, Any]:
    return (app or current_app).extensions


def settings(app: Flask | None = None) -> Settings:
    return _extensions(app)[SETTINGS]


def passwords(app: Flask | None = None) -> Passwords:
    return _extensions(app)[PASSWORDS]


def keyring(app: Flask | None = None) -> KeyRing:
    return _extensions(app)[KEYRING]


def authorization_server(app: Flask | None = None) -> AuthorizationServer:
    """Authlib's server (oauth/server.py): only in the whole app, not the CLI's core app."""
    return _extensions(app)[AUTHORIZATION_SERVER]


def grant_types(app: Flask | None = None) -> list[str]:
    return _extensions(app)[GRANT_TYPES]


def client_cache(app: Flask | None = None) -> ClientCache | None:
    """The per-process client cache, None in the CLI's core app (nothing to invalidate)."""
    return _extensions(app).get(CLIENT_CACHE)


def revocation_cache(app: Flask | None = None) -> RevocationCache:
    """What this process knows of revoked tokens (oauth/revocation.py)."""
    return _extensions(app)[REVOCATION_CACHE]


def metadata_extra(app: Flask | None = None) -> dict[str, Any]:
    """What packages add to the server metadata (authorize: its endpoints)."""
    return _extensions(app).setdefault(METADATA_EXTRA, {})


def sms_sender(app: Flask | None = None) -> SmsSender:
    return _extensions(app)[SMS_SENDER]


def budgets(app: Flask | None = None) -> Budgets:
    return _extensions(app)[BUDGETS]


def migrations_directory(app: Flask | None = None) -> str:
    return _extensions(app)[MIGRATE].directory


def per_app(key: str, make: Any, app: Flask | None = None) -> Any:
    """The entry ``key`` (RATE_LIMIT_PROBE, OPENAPI_DOCUMENT), made by ``make()`` on first
    use. Two first requests at once may both make it; the results are equivalent."""
    extensions = _extensions(app)
    value = extensions.get(key)
    if value is None:
        value = extensions[key] = make()
    return value


def keyed_hash(value: str) -> bytes:
    """HMAC-SHA256 under AUTHSERVER_SECRET_KEY: how every high-entropy secret we issue
    (client secrets, refresh tokens) is stored. Fast, and useless without the key."""
    return hmac.new(settings().secret_key, value.encode(), hashlib.sha256).digest()
