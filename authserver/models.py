"""Every table of the schema, registered in one place for Alembic.

``init_migrations`` imports this module, so ``authserver db migrate`` (autogenerate) and
``/readyz`` compare the database with every model, whichever routes or commands loaded.
A new model module is added here (``tests/test_packaging.py`` compares these tables with
those the whole app registers).
"""

from __future__ import annotations

from authserver.accounts.models import Group, Permission, User
from authserver.audiences.models import Audience, AudienceEncryptionKey, EncryptedAccessToken
from authserver.audit import AuditEvent
from authserver.authorize.models import AuthorizationCode, Consent
from authserver.oauth.models import AuthSession, Client, RefreshToken, RevokedAccessToken
from authserver.otp.models import OtpChallenge
from authserver.signing.models import SigningKey

__all__ = [
    "Audience",
    "AudienceEncryptionKey",
    "AuditEvent",
    "AuthSession",
    "AuthorizationCode",
    "Client",
    "Consent",
    "EncryptedAccessToken",
    "Group",
    "OtpChallenge",
    "Permission",
    "RefreshToken",
    "RevokedAccessToken",
    "SigningKey",
    "User",
]
