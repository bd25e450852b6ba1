"""OpenID Connect claims of a user, per granted scope (OIDC Core §5.1, §5.4).

One mapping serves the ID token and the userinfo endpoint, so both always agree:
``sub`` always; ``profile``: names, ``preferred_username``, ``updated_at`` and the
platform's ``groups``/``entitlements``; ``phone``: ``phone_number`` (E.164) and
``phone_number_verified``; ``email``: ``email`` and ``email_verified``. A scope not
granted gives none of its claims; an empty value is left out rather than sent as "".
"""

from __future__ import annotations

from typing import Any

from authserver.accounts.models import User
from authserver.accounts.services import groups_and_entitlements

OPENID_SCOPES = ("openid", "profile", "phone", "email")
SCOPE_CLAIMS = {
    "profile": (
        "name",
        "given_name",
        "family_name",
        "preferred_username",
        "updated_at",
        "groups",
        "entitlements",
    ),
    "phone": ("phone_number", "phone_number_verified"),
    "email": ("email", "email_verified"),
}
CLAIMS_SUPPORTED = sorted(
    {"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "at_hash"}
    | {claim for claims in SCOPE_CLAIMS.values() for claim in claims}
)


def user_claims(user: User, scope: str) -> dict[str, Any]:
    """The claims ``scope`` grants about ``user``."""
    granted = set((scope or "").split())
    claims: dict[str, Any] = {"sub": str(user.id)}
    if "profile" in granted:
        groups, entitlements = groups_and_entitlements(user)
        name = " ".join(part for part in (user.first_name, user.last_name) if part)
        claims.update(
            {
                "name": name,
                "given_name": user.first_name,
                "family_name": user.last_name,
                "preferred_username": user.username,
                "updated_at": int(user.updated_at.timestamp()),
                "groups": groups,
                "entitlements": entitlements,
            }
        )
    if "phone" in granted:
        # Numbers are not marked verified: an administrator may have typed one in.
        claims.update({"phone_number": user.phone, "phone_number_verified": False})
    if "email" in granted and user.email:
        claims.update({"email": user.email, "email_verified": False})
    return {key: value for key, value in claims.items() if value != ""}
