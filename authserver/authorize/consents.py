"""Consent: what a user allowed a third-party client, remembered per user and client.

First-party clients (``Client.first_party``) never ask. A third-party client asks again
when it wants a scope the user has not allowed it yet, or sends ``prompt=consent``.
Withdrawing a consent also ends the user's sessions with that client, so its refresh
tokens stop working at once (the access tokens with them).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update

from authserver.audit import record_event
from authserver.authorize.models import Consent
from authserver.extensions import db, utcnow
from authserver.oauth.models import AuthSession, Client


def needs_consent(user_id: uuid.UUID, client: Client, scope: str) -> bool:
    if client.first_party:
        return False
    consent = db.session.get(Consent, (user_id, client.client_id))
    return consent is None or not set(scope.split()) <= consent.scopes()


def consent_given_since(user_id: uuid.UUID, client: Client, when: datetime) -> bool:
    consent = db.session.get(Consent, (user_id, client.client_id))
    return consent is not None and consent.granted_at >= when


def grant_consent(user_id: uuid.UUID, client: Client, scope: str) -> Consent:
    """Remember that the user allows ``scope`` (added to what they allowed before)."""
    consent = db.session.get(Consent, (user_id, client.client_id))
    now = utcnow()
    if consent is None:
        consent = Consent(user_id=user_id, client_id=client.client_id, scope="", granted_at=now)
        db.session.add(consent)
    consent.scope = " ".join(sorted(consent.scopes() | set(scope.split())))
    consent.granted_at = now
    record_event(
        "consent.granted",
        actor=str(user_id),
        user_id=user_id,
        client_id=client.client_id,
        scope=consent.scope,
    )
    return consent


def list_consents(user_id: uuid.UUID) -> list[Consent]:
    return list(
        db.session.scalars(
            select(Consent).where(Consent.user_id == user_id).order_by(Consent.client_id)
        )
    )


def withdraw_consent(user_id: uuid.UUID, client_id: str) -> int | None:
    """Forget the consent and end the user's sessions with that client; returns how many
    sessions ended, or None when there was no such consent. The caller commits."""
    consent = db.session.get(Consent, (user_id, client_id))
    if consent is None:
        return None
    db.session.delete(consent)
    now = utcnow()
    ended = db.session.execute(
        update(AuthSession)
        .where(
            AuthSession.user_id == user_id,
            AuthSession.client_id == client_id,
            AuthSession.revoked_at.is_(None),
        )
        .values(revoked_at=now, revoked_reason="consent_withdrawn")
        .execution_options(synchronize_session=False)
    ).rowcount
    record_event(
        "consent.withdrawn",
        actor=str(user_id),
        user_id=user_id,
        client_id=client_id,
        sessions_revoked=ended,
    )
    return ended


def describe_consent(consent: Consent) -> dict:
    return {
        "client_id": consent.client_id,
        "client_name": consent.client.name,
        "scope": consent.scope,
        "granted_at": consent.granted_at.isoformat(),
    }
