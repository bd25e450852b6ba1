"""What the admin API does, below HTTP. Every change records an audit event naming the
acting admin (a user id or a client id) and is committed by the view."""

from __future__ import annotations

import uuid
from contextlib import suppress
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import selectinload

from authserver.accounts.models import Group, Permission, User
from authserver.accounts.phones import InvalidPhoneNumber, normalize_phone
from authserver.accounts.services import set_password
from authserver.audit import AuditEvent, record_event
from authserver.context import settings
from authserver.oauth.models import Client
from authserver.oauth.sessions import revoke_user_sessions


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def user_search(q: str | None) -> Select:
    query = (
        select(User)
        .options(selectinload(User.groups), selectinload(User.permissions))
        .order_by(User.created_at, User.id)
    )
    if not q or not q.strip():
        return query
    pattern = _like(q.strip())
    matches = [
        column.ilike(pattern, escape="\\")
        for column in (User.phone, User.username, User.email, User.first_name, User.last_name)
    ]
    with suppress(InvalidPhoneNumber):  # "06 12 ..." finds "+336 12 ..."
        matches.append(User.phone == normalize_phone(q, settings().default_region))
    return query.where(or_(*matches))


def client_search(q: str | None) -> Select:
    query = select(Client).order_by(Client.created_at, Client.client_id)
    if q and q.strip():
        pattern = _like(q.strip())
        query = query.where(
            or_(*(c.ilike(pattern, escape="\\") for c in (Client.client_id, Client.name)))
        )
    return query


def end_sessions(user: User, *, actor: str, reason: str) -> int:
    return _recorded(user, revoke_user_sessions(user.id, reason=reason), actor, reason)


def _recorded(user: User, ended: list[uuid.UUID], actor: str, reason: str) -> int:
    """Audit the sessions an admin's action ended; returns how many."""
    if ended:
        record_event(
            "session.revoked",
            actor=actor,
            user_id=user.id,
            reason=reason,
            session_ids=[str(s) for s in ended],
        )
    return len(ended)


def set_blocked(user: User, blocked: bool, *, actor: str) -> int:
    """Block (every session ends at once) or unblock; returns the sessions ended."""
    user.is_blocked = blocked
    ended = end_sessions(user, actor=actor, reason="blocked") if blocked else 0
    record_event(
        "user.blocked" if blocked else "user.unblocked",
        actor=actor,
        user_id=user.id,
        sessions_revoked=ended,
    )
    return ended


def set_user_password(user: User, password: str, *, actor: str) -> int:
    """An admin sets the password: every session of the user ends."""
    reason = "password_set_by_admin"
    return _recorded(user, set_password(user, password, reason=reason), actor, reason)


def serialize_group(group: Group) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "permissions": [p.codename for p in group.permissions],
    }


def serialize_permission(permission: Permission) -> dict[str, Any]:
    return {"id": permission.id, "codename": permission.codename, "name": permission.name}


def serialize_client(client: Client) -> dict[str, Any]:
    """Never the secret: only its existence (``public``)."""
    return {
        "client_id": client.client_id,
        "name": client.name,
        "grant_types": client.grant_types.split(),
        "scope": client.scope,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "public": client.is_public,
        "resource_server": client.is_resource_server,
        "first_party": client.first_party,
        "redirect_uris": client.redirect_uri_list(),
        "post_logout_redirect_uris": client.post_logout_redirect_uri_list(),
        "is_active": client.is_active,
        "created_at": client.created_at.isoformat(),
    }


def serialize_event(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "occurred_at": event.occurred_at.isoformat(),
        "event": event.event,
        "outcome": event.outcome,
        "actor": event.actor,
        "user_id": event.user_id,
        "client_id": event.client_id,
        "ip_address": event.ip_address,
        "user_agent": event.user_agent,
        "details": event.details,
    }


def audit_search(filters: Any) -> Select:
    """Newest first. ``filters`` is an ``AuditQuery``."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    for name in ("event", "user_id", "client_id", "outcome"):
        value = getattr(filters, name)
        if value:
            query = query.where(getattr(AuditEvent, name) == value)
    if filters.since is not None:
        query = query.where(AuditEvent.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.occurred_at < filters.until)
    return query
