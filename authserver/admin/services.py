"""What the admin API does, below HTTP (the views only translate). Every change records
an audit event naming the acting admin (a user id or a client id) and flushes; the
request commits. Refusals are ``AuthserverError``s (``InvalidField``, ``Conflict``,
``NotFound``), or ``ClientError`` for client metadata."""

from __future__ import annotations

import json
import uuid
from contextlib import suppress
from typing import Any, TypeVar

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import selectinload

from authserver.accounts.models import Group, Permission, User
from authserver.accounts.phones import normalize_phone
from authserver.accounts.services import (
    ADMIN_GROUP,
    ADMIN_PERMISSION,
    REGULAR_GROUP,
    check_account_type,
    check_username,
    create_user,
    groups_named,
    permissions_coded,
    phone_taken,
    set_password,
)
from authserver.audit import AuditEvent, record_event
from authserver.context import settings
from authserver.errors import (
    Conflict,
    InvalidAccountType,
    InvalidField,
    InvalidPhoneNumber,
    NotFound,
    UnknownNames,
)
from authserver.extensions import db
from authserver.oauth.clients import (
    check_client_rules,
    check_redirect_rules,
    normalize_scope,
    registered_uris,
)
from authserver.oauth.models import Client
from authserver.oauth.sessions import revoke_user_sessions

Row = TypeVar("Row")


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
        "permissions": sorted(p.codename for p in group.permissions),
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
        "jwks": json.loads(client.jwks) if client.jwks else None,
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


# --- changes (each records its audit event and flushes; the caller commits) -----------
BUILTIN_GROUPS = (ADMIN_GROUP, REGULAR_GROUP)


def find(model: type[Row], key: Any, what: str) -> Row:
    """The row of ``model`` with primary key ``key``; NotFound naming ``what``."""
    row = db.session.get(model, key)
    if row is None:
        raise NotFound(what)
    return row


def _phone(text: str) -> str:
    try:
        return normalize_phone(text, settings().default_region)
    except InvalidPhoneNumber:
        raise InvalidField("phone", "This is not a valid phone number.") from None


def _groups(names: list[str]) -> list[Group]:
    try:
        return groups_named(names)
    except UnknownNames as error:
        raise InvalidField(error.kind, f"Unknown: {', '.join(error.names)}.") from None


def _permissions(codenames: list[str]) -> list[Permission]:
    try:
        return permissions_coded(codenames)
    except UnknownNames as error:
        raise InvalidField(error.kind, f"Unknown: {', '.join(error.names)}.") from None


def _account_type(value: str) -> str:
    try:
        check_account_type(value)
    except InvalidAccountType as error:
        raise InvalidField("account_type", str(error)) from None
    return value


def add_user(fields: dict[str, Any], *, actor: str) -> User:
    """A new user from the admin API's ``UserCreate`` fields."""
    phone = _phone(fields["phone"])
    if phone_taken(phone):
        raise Conflict("Another account uses this phone number.", "phone")
    if fields.get("username"):
        check_username(fields["username"])
    groups = _groups(fields.get("groups") or [])
    permissions = _permissions(fields.get("permissions") or [])
    user = create_user(
        phone,
        fields.get("password"),
        email=fields.get("email") or None,
        first_name=fields.get("first_name") or "",
        last_name=fields.get("last_name") or "",
        account_type=_account_type(fields.get("account_type") or "regular"),
        username=fields.get("username"),
        groups=[g.name for g in groups],
        admin=bool(fields.get("admin")),
    )
    user.permissions = list(dict.fromkeys([*user.permissions, *permissions]))
    db.session.flush()
    record_event("user.created", actor=actor, user_id=user.id, admin=bool(fields.get("admin")))
    return user


def update_user(user: User, changes: dict[str, Any], *, actor: str) -> list[str]:
    """Apply the admin API's ``UserUpdate`` fields given; a new password or
    ``is_active: false`` ends every session. Returns the names of the fields changed
    (the password's name only, never its value)."""
    values: dict[str, Any] = {}
    for name in ("first_name", "last_name"):
        if name in changes:
            values[name] = changes[name] or ""
    if "email" in changes:
        values["email"] = changes["email"] or None
    if "username" in changes:
        if not changes["username"]:
            raise InvalidField("username", "A username cannot be empty.")
        check_username(changes["username"], user)
        values["username"] = changes["username"]
    if "phone" in changes:
        phone = _phone(changes["phone"] or "")
        if phone_taken(phone, other_than=user):
            raise Conflict("Another account uses this phone number.", "phone")
        values["phone"] = phone
    if "account_type" in changes:
        values["account_type"] = _account_type(changes["account_type"] or "")
    if "is_active" in changes:
        if changes["is_active"] is None:
            raise InvalidField("is_active", "Give true or false.")
        values["is_active"] = changes["is_active"]
    changed = [name for name, value in values.items() if getattr(user, name) != value]
    for name in changed:
        setattr(user, name, values[name])
    if "is_active" in changed and not user.is_active:
        end_sessions(user, actor=actor, reason="deactivated")
    if changes.get("password") is not None:
        set_user_password(user, changes["password"], actor=actor)
        changed.append("password")
    if changed:
        record_event("user.updated", actor=actor, user_id=user.id, fields=sorted(changed))
    db.session.flush()
    return sorted(changed)


def block_user(user: User, *, actor: str) -> int:
    """Block the user (every session ends at once); an admin cannot block themselves."""
    if str(user.id) == actor:
        raise Conflict("You cannot block yourself.")
    return set_blocked(user, True, actor=actor)


def set_user_groups(user: User, names: list[str], *, actor: str) -> None:
    user.groups = _groups(names)
    record_event("user.groups_set", actor=actor, user_id=user.id, groups=user.group_names())
    db.session.flush()


def set_user_permissions(user: User, codenames: list[str], *, actor: str) -> None:
    user.permissions = _permissions(codenames)
    record_event(
        "user.permissions_set",
        actor=actor,
        user_id=user.id,
        permissions=sorted(p.codename for p in user.permissions),
    )
    db.session.flush()


def _group_name_free(name: str) -> None:
    if db.session.scalar(select(Group.id).where(Group.name == name)) is not None:
        raise Conflict("A group with this name already exists.", "name")


def add_group(name: str, codenames: list[str], *, actor: str) -> Group:
    _group_name_free(name)
    group = Group(name=name, permissions=_permissions(codenames))
    db.session.add(group)
    db.session.flush()
    record_event("group.created", actor=actor, group=group.name, permissions=codenames)
    return group


def update_group(
    group: Group, name: str | None, codenames: list[str] | None, *, actor: str
) -> None:
    """Rename (not a built-in group) and/or set its permissions."""
    before = group.name
    if name is not None and name != group.name:
        if group.name in BUILTIN_GROUPS:
            raise Conflict(f"The built-in group '{group.name}' cannot be renamed.", "name")
        _group_name_free(name)
        group.name = name
    if codenames is not None:
        group.permissions = _permissions(codenames)
    record_event(
        "group.updated",
        actor=actor,
        group=group.name,
        previous_name=before,
        permissions=[p.codename for p in group.permissions],
    )
    db.session.flush()


def delete_group(group: Group, *, actor: str) -> None:
    if group.name in BUILTIN_GROUPS:
        raise Conflict(f"The built-in group '{group.name}' cannot be deleted.")
    record_event("group.deleted", actor=actor, group=group.name)
    db.session.delete(group)
    db.session.flush()


def add_permission(codename: str, name: str, *, actor: str) -> Permission:
    exists = select(Permission.id).where(Permission.codename == codename)
    if db.session.scalar(exists) is not None:
        raise Conflict("A permission with this codename already exists.", "codename")
    permission = Permission(codename=codename, name=name)
    db.session.add(permission)
    db.session.flush()
    record_event("permission.created", actor=actor, codename=codename)
    return permission


def rename_permission(permission: Permission, name: str, *, actor: str) -> None:
    permission.name = name
    record_event("permission.updated", actor=actor, codename=permission.codename)
    db.session.flush()


def delete_permission(permission: Permission, *, actor: str) -> None:
    if permission.codename == ADMIN_PERMISSION:
        raise Conflict(f"'{ADMIN_PERMISSION}' cannot be deleted.")
    record_event("permission.deleted", actor=actor, codename=permission.codename)
    db.session.delete(permission)
    db.session.flush()


def update_client(client: Client, changes: dict[str, Any], *, actor: str) -> list[str]:
    """Apply the admin API's ``ClientUpdate`` fields given (None: unchanged), checked by
    the same rules as registration. Raises ClientError. Returns the fields changed."""
    given = {name: value for name, value in changes.items() if value is not None}
    grant_types = given.get("grant_types", client.grant_types.split())
    resource_server = given.get("resource_server", client.is_resource_server)
    check_client_rules(grant_types, public=client.is_public, resource_server=resource_server)
    redirects = (
        registered_uris(given["redirect_uris"])
        if "redirect_uris" in given
        else client.redirect_uris
    )
    check_redirect_rules(grant_types, redirects)
    values: dict[str, Any] = {
        "name": given.get("name", client.name),
        "grant_types": " ".join(dict.fromkeys(grant_types)),
        "scope": normalize_scope(given["scope"]) if "scope" in given else client.scope,
        "is_resource_server": resource_server,
        "first_party": given.get("first_party", client.first_party),
        "is_active": given.get("is_active", client.is_active),
        "redirect_uris": redirects,
        "post_logout_redirect_uris": (
            registered_uris(given["post_logout_redirect_uris"])
            if "post_logout_redirect_uris" in given
            else client.post_logout_redirect_uris
        ),
    }
    changed = sorted(name for name, value in values.items() if getattr(client, name) != value)
    for name in changed:
        setattr(client, name, values[name])
    if changed:
        record_event("client.updated", actor=actor, client_id=client.client_id, fields=changed)
    db.session.flush()
    return changed


def set_client_active(client: Client, active: bool, *, actor: str) -> None:
    """A disabled client can no longer authenticate; its tokens introspect inactive."""
    client.is_active = active
    record_event(
        "client.enabled" if active else "client.disabled",
        actor=actor,
        client_id=client.client_id,
    )
    db.session.flush()
