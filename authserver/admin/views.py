"""The admin API. Every route is behind ``require_admin`` (authserver/admin/access.py:
a token issued for ``{issuer}/admin``, an admin user signed in recently with a password,
or an automation client). Every change is audited with the admin (user id or client id)
as ``actor``; secrets never reach the audit log.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from authserver.accounts.models import Group, Permission, User
from authserver.accounts.phones import InvalidPhoneNumber, normalize_phone
from authserver.accounts.services import (
    ADMIN_GROUP,
    ADMIN_PERMISSION,
    REGULAR_GROUP,
    InvalidAccountType,
    UnknownNames,
    check_account_type,
    check_username,
    create_user,
    groups_named,
    permissions_coded,
    phone_taken,
    serialize_user,
)
from authserver.admin.access import actor, require_admin
from authserver.admin.schemas import (
    AuditQuery,
    ClientCreate,
    ClientQuery,
    ClientUpdate,
    GroupCreate,
    GroupsSet,
    GroupUpdate,
    KeyRotate,
    PermissionCreate,
    PermissionsSet,
    PermissionUpdate,
    UserCreate,
    UserQuery,
    UserUpdate,
)
from authserver.admin.services import (
    audit_search,
    client_search,
    end_sessions,
    serialize_client,
    serialize_event,
    serialize_group,
    serialize_permission,
    set_blocked,
    set_user_password,
    user_search,
)
from authserver.api import (
    ApiError,
    conflict,
    get_or_404,
    install,
    invalid,
    json_body,
    not_found,
    query,
)
from authserver.audit import record_event
from authserver.context import settings
from authserver.extensions import db
from authserver.oauth.clients import (
    ClientError,
    check_client_rules,
    check_redirect_rules,
    create_client,
    new_client_secret,
    normalize_scope,
    registered_uris,
)
from authserver.oauth.models import Client
from authserver.signing.models import SigningKey
from authserver.signing.services import (
    KeyOperationError,
    RotationNotSafe,
    describe_key,
    list_keys,
    revoke_key,
    rotate_signing_keys,
)

bp = Blueprint("admin", __name__, url_prefix="/admin")
install(bp)

BUILTIN_GROUPS = (ADMIN_GROUP, REGULAR_GROUP)


def _page(rows: list, limit: int, offset: int) -> tuple[list, int | None]:
    """The page and the offset of the next one (None on the last page); ``rows`` holds
    one row more than the page when there is a next page."""
    more = len(rows) > limit
    return rows[:limit], (offset + limit if more else None)


def _commit(what: str, field: str | None = None) -> None:
    try:
        db.session.commit()
    except IntegrityError:  # a concurrent request took the name
        db.session.rollback()
        raise conflict(f"{what} already exists.", field) from None


def _unknown(error: UnknownNames) -> ApiError:
    return invalid(error.kind, f"Unknown: {', '.join(error.names)}.")


# --- users ---------------------------------------------------------------------------
def _user(user_id: uuid.UUID) -> User:
    return get_or_404(User, user_id, "user")


@bp.get("/users")
@require_admin
def list_users() -> Response:
    params = query(UserQuery)
    rows = db.session.scalars(
        user_search(params.q).limit(params.limit + 1).offset(params.offset)
    ).all()
    page, next_offset = _page(list(rows), params.limit, params.offset)
    return jsonify(users=[serialize_user(u) for u in page], next_offset=next_offset)


@bp.post("/users")
@require_admin
def create_user_view() -> tuple[Response, int]:
    body = json_body(UserCreate)
    try:
        phone = normalize_phone(body.phone, settings().default_region)
    except InvalidPhoneNumber:
        raise invalid("phone", "This is not a valid phone number.") from None
    if phone_taken(phone):
        raise conflict("Another account uses this phone number.", "phone")
    if body.username:
        check_username(body.username)
    try:
        groups = groups_named(body.groups)
        permissions = permissions_coded(body.permissions)
    except UnknownNames as error:
        raise _unknown(error) from None
    try:
        user = create_user(
            phone,
            body.password,
            email=body.email or None,
            first_name=body.first_name,
            last_name=body.last_name,
            account_type=body.account_type,
            username=body.username,
            groups=[g.name for g in groups],
            admin=body.admin,
        )
    except InvalidAccountType as error:
        raise invalid("account_type", str(error)) from None
    user.permissions = list(dict.fromkeys([*user.permissions, *permissions]))
    db.session.flush()
    record_event("user.created", actor=actor(), user_id=user.id, admin=body.admin)
    _commit("A user with this phone number or username", "phone")
    return jsonify(serialize_user(user)), 201


@bp.get("/users/<uuid:user_id>")
@require_admin
def get_user(user_id: uuid.UUID) -> Response:
    return jsonify(serialize_user(_user(user_id)))


@bp.patch("/users/<uuid:user_id>")
@require_admin
def update_user(user_id: uuid.UUID) -> Response:
    user = _user(user_id)
    body = json_body(UserUpdate)
    given = body.model_fields_set
    changed: list[str] = []

    def change(name: str, value: Any) -> None:
        if getattr(user, name) != value:
            setattr(user, name, value)
            changed.append(name)

    for name in ("first_name", "last_name"):
        if name in given:
            change(name, getattr(body, name) or "")
    if "email" in given:
        change("email", body.email or None)
    if "username" in given:
        if not body.username:
            raise invalid("username", "A username cannot be empty.")
        check_username(body.username, user)
        change("username", body.username)
    if "phone" in given:
        try:
            phone = normalize_phone(body.phone or "", settings().default_region)
        except InvalidPhoneNumber:
            raise invalid("phone", "This is not a valid phone number.") from None
        if phone_taken(phone, other_than=user):
            raise conflict("Another account uses this phone number.", "phone")
        change("phone", phone)
    if "account_type" in given:
        try:
            check_account_type(body.account_type or "")
        except InvalidAccountType as error:
            raise invalid("account_type", str(error)) from None
        change("account_type", body.account_type)
    if "is_active" in given:
        if body.is_active is None:
            raise invalid("is_active", "Give true or false.")
        change("is_active", body.is_active)
        if not body.is_active:
            end_sessions(user, actor=actor(), reason="deactivated")
    if "password" in given and body.password is not None:
        set_user_password(user, body.password, actor=actor())
        changed.append("password")  # the name only, never the value
    if changed:
        record_event("user.updated", actor=actor(), user_id=user.id, fields=sorted(changed))
    _commit("A user with this phone number or username", "username")
    return jsonify(serialize_user(user))


@bp.post("/users/<uuid:user_id>/block")
@require_admin
def block_user(user_id: uuid.UUID) -> Response:
    user = _user(user_id)
    if str(user.id) == actor():
        raise conflict("You cannot block yourself.")
    ended = set_blocked(user, True, actor=actor())
    db.session.commit()
    return jsonify(user=serialize_user(user), sessions_revoked=ended)


@bp.post("/users/<uuid:user_id>/unblock")
@require_admin
def unblock_user(user_id: uuid.UUID) -> Response:
    user = _user(user_id)
    set_blocked(user, False, actor=actor())
    db.session.commit()
    return jsonify(user=serialize_user(user), sessions_revoked=0)


@bp.put("/users/<uuid:user_id>/groups")
@require_admin
def set_user_groups(user_id: uuid.UUID) -> Response:
    user = _user(user_id)
    body = json_body(GroupsSet)
    try:
        user.groups = groups_named(body.groups)
    except UnknownNames as error:
        raise _unknown(error) from None
    record_event("user.groups_set", actor=actor(), user_id=user.id, groups=user.group_names())
    db.session.commit()
    return jsonify(serialize_user(user))


@bp.put("/users/<uuid:user_id>/permissions")
@require_admin
def set_user_permissions(user_id: uuid.UUID) -> Response:
    user = _user(user_id)
    body = json_body(PermissionsSet)
    try:
        user.permissions = permissions_coded(body.permissions)
    except UnknownNames as error:
        raise _unknown(error) from None
    record_event(
        "user.permissions_set",
        actor=actor(),
        user_id=user.id,
        permissions=sorted(p.codename for p in user.permissions),
    )
    db.session.commit()
    return jsonify(serialize_user(user))


# --- groups --------------------------------------------------------------------------
def _group(group_id: int) -> Group:
    return get_or_404(Group, group_id, "group")


@bp.get("/groups")
@require_admin
def list_groups() -> Response:
    groups = db.session.scalars(select(Group).order_by(Group.name)).all()
    return jsonify(groups=[serialize_group(group) for group in groups])


@bp.post("/groups")
@require_admin
def create_group() -> tuple[Response, int]:
    body = json_body(GroupCreate)
    if db.session.scalar(select(Group.id).where(Group.name == body.name)) is not None:
        raise conflict("A group with this name already exists.", "name")
    try:
        permissions = permissions_coded(body.permissions)
    except UnknownNames as error:
        raise _unknown(error) from None
    group = Group(name=body.name, permissions=permissions)
    db.session.add(group)
    db.session.flush()
    record_event("group.created", actor=actor(), group=group.name, permissions=body.permissions)
    _commit("A group with this name", "name")
    return jsonify(serialize_group(group)), 201


@bp.get("/groups/<int:group_id>")
@require_admin
def get_group(group_id: int) -> Response:
    return jsonify(serialize_group(_group(group_id)))


@bp.patch("/groups/<int:group_id>")
@require_admin
def update_group(group_id: int) -> Response:
    group = _group(group_id)
    body = json_body(GroupUpdate)
    before = group.name
    if body.name is not None and body.name != group.name:
        if group.name in BUILTIN_GROUPS:
            raise conflict(f"The built-in group '{group.name}' cannot be renamed.", "name")
        if db.session.scalar(select(Group.id).where(Group.name == body.name)) is not None:
            raise conflict("A group with this name already exists.", "name")
        group.name = body.name
    if body.permissions is not None:
        try:
            group.permissions = permissions_coded(body.permissions)
        except UnknownNames as error:
            raise _unknown(error) from None
    record_event(
        "group.updated",
        actor=actor(),
        group=group.name,
        previous_name=before,
        permissions=[p.codename for p in group.permissions],
    )
    _commit("A group with this name", "name")
    return jsonify(serialize_group(group))


@bp.delete("/groups/<int:group_id>")
@require_admin
def delete_group(group_id: int) -> tuple[str, int]:
    group = _group(group_id)
    if group.name in BUILTIN_GROUPS:
        raise conflict(f"The built-in group '{group.name}' cannot be deleted.")
    record_event("group.deleted", actor=actor(), group=group.name)
    db.session.delete(group)
    db.session.commit()
    return "", 204


# --- permissions ---------------------------------------------------------------------
def _permission(permission_id: int) -> Permission:
    return get_or_404(Permission, permission_id, "permission")


@bp.get("/permissions")
@require_admin
def list_permissions() -> Response:
    rows = db.session.scalars(select(Permission).order_by(Permission.codename)).all()
    return jsonify(permissions=[serialize_permission(p) for p in rows])


@bp.post("/permissions")
@require_admin
def create_permission() -> tuple[Response, int]:
    body = json_body(PermissionCreate)
    exists = select(Permission.id).where(Permission.codename == body.codename)
    if db.session.scalar(exists) is not None:
        raise conflict("A permission with this codename already exists.", "codename")
    permission = Permission(codename=body.codename, name=body.name)
    db.session.add(permission)
    db.session.flush()
    record_event("permission.created", actor=actor(), codename=body.codename)
    _commit("A permission with this codename", "codename")
    return jsonify(serialize_permission(permission)), 201


@bp.get("/permissions/<int:permission_id>")
@require_admin
def get_permission(permission_id: int) -> Response:
    return jsonify(serialize_permission(_permission(permission_id)))


@bp.patch("/permissions/<int:permission_id>")
@require_admin
def update_permission(permission_id: int) -> Response:
    permission = _permission(permission_id)
    body = json_body(PermissionUpdate)
    permission.name = body.name
    record_event("permission.updated", actor=actor(), codename=permission.codename)
    db.session.commit()
    return jsonify(serialize_permission(permission))


@bp.delete("/permissions/<int:permission_id>")
@require_admin
def delete_permission(permission_id: int) -> tuple[str, int]:
    permission = _permission(permission_id)
    if permission.codename == ADMIN_PERMISSION:
        raise conflict(f"'{ADMIN_PERMISSION}' cannot be deleted.")
    record_event("permission.deleted", actor=actor(), codename=permission.codename)
    db.session.delete(permission)
    db.session.commit()
    return "", 204


# --- OAuth clients -------------------------------------------------------------------
def _client(client_id: str) -> Client:
    return get_or_404(Client, client_id, "client")


@bp.get("/clients")
@require_admin
def list_clients() -> Response:
    params = query(ClientQuery)
    statement = client_search(params.q)
    rows = db.session.scalars(statement.limit(params.limit + 1).offset(params.offset)).all()
    page, next_offset = _page(list(rows), params.limit, params.offset)
    return jsonify(clients=[serialize_client(c) for c in page], next_offset=next_offset)


@bp.post("/clients")
@require_admin
def create_client_view() -> tuple[Response, int]:
    """The secret is in this answer only; only its keyed hash is stored."""
    body = json_body(ClientCreate)
    try:
        client, secret = create_client(
            name=body.name,
            grant_types=body.grant_types,
            scope=body.scope,
            public=body.public,
            auth_method=body.auth_method,
            resource_server=body.resource_server,
            first_party=body.first_party,
            client_id=body.client_id,
            redirect_uris=body.redirect_uris,
            post_logout_redirect_uris=body.post_logout_redirect_uris,
            actor=actor(),
        )
    except ClientError as error:
        raise ApiError(400, "invalid_client_metadata", str(error)) from None
    return jsonify({**serialize_client(client), "client_secret": secret}), 201


@bp.get("/clients/<client_id>")
@require_admin
def get_client(client_id: str) -> Response:
    return jsonify(serialize_client(_client(client_id)))


@bp.patch("/clients/<client_id>")
@require_admin
def update_client(client_id: str) -> Response:
    client = _client(client_id)
    body = json_body(ClientUpdate)
    grant_types = body.grant_types if body.grant_types is not None else client.grant_types.split()
    resource_server = (
        body.resource_server if body.resource_server is not None else client.is_resource_server
    )
    try:
        check_client_rules(grant_types, public=client.is_public, resource_server=resource_server)
        scope = normalize_scope(body.scope) if body.scope is not None else client.scope
        redirects = (
            registered_uris(body.redirect_uris)
            if body.redirect_uris is not None
            else client.redirect_uris
        )
        check_redirect_rules(grant_types, redirects)
        logout_redirects = (
            registered_uris(body.post_logout_redirect_uris)
            if body.post_logout_redirect_uris is not None
            else client.post_logout_redirect_uris
        )
    except ClientError as error:
        raise ApiError(400, "invalid_client_metadata", str(error)) from None
    changes: dict[str, Any] = {
        "name": body.name if body.name is not None else client.name,
        "grant_types": " ".join(dict.fromkeys(grant_types)),
        "scope": scope,
        "is_resource_server": resource_server,
        "first_party": body.first_party if body.first_party is not None else client.first_party,
        "is_active": body.is_active if body.is_active is not None else client.is_active,
        "redirect_uris": redirects,
        "post_logout_redirect_uris": logout_redirects,
    }
    changed = sorted(name for name, value in changes.items() if getattr(client, name) != value)
    for name in changed:
        setattr(client, name, changes[name])
    if changed:
        record_event("client.updated", actor=actor(), client_id=client.client_id, fields=changed)
    db.session.commit()
    return jsonify(serialize_client(client))


@bp.post("/clients/<client_id>/rotate-secret")
@require_admin
def rotate_client_secret(client_id: str) -> Response:
    """A new secret, shown in this answer only; the old one stops working at once."""
    client = _client(client_id)
    try:
        secret = new_client_secret(client, actor=actor())
    except ClientError as error:
        raise conflict(str(error)) from None
    db.session.commit()
    return jsonify({**serialize_client(client), "client_secret": secret})


def _set_active(client_id: str, active: bool) -> Response:
    client = _client(client_id)
    client.is_active = active
    record_event(
        "client.enabled" if active else "client.disabled",
        actor=actor(),
        client_id=client.client_id,
    )
    db.session.commit()
    return jsonify(serialize_client(client))


@bp.post("/clients/<client_id>/disable")
@require_admin
def disable_client(client_id: str) -> Response:
    """The client can no longer authenticate; its tokens introspect inactive."""
    return _set_active(client_id, False)


@bp.post("/clients/<client_id>/enable")
@require_admin
def enable_client(client_id: str) -> Response:
    return _set_active(client_id, True)


# --- signing keys (the same services as `authserver keys ...`) -----------------------
@bp.get("/keys")
@require_admin
def list_signing_keys() -> Response:
    return jsonify(keys=[describe_key(row) for row in list_keys()])


@bp.post("/keys/rotate")
@require_admin
def rotate_keys() -> Response:
    body = json_body(KeyRotate)
    try:
        return jsonify(rotate_signing_keys(actor=actor(), force=body.force))
    except RotationNotSafe as error:
        raise ApiError(409, "rotation_not_safe", str(error)) from None


@bp.post("/keys/<kid>/revoke")
@require_admin
def revoke_signing_key(kid: str) -> Response:
    if len(kid) > 128 or db.session.get(SigningKey, kid) is None:
        raise not_found("key")
    try:
        return jsonify(describe_key(revoke_key(kid, actor=actor())))
    except KeyOperationError as error:
        raise conflict(str(error)) from None


# --- audit log -----------------------------------------------------------------------
@bp.get("/audit")
@require_admin
def audit_log() -> Response:
    """Newest first; filters combine. ``since`` is inclusive, ``until`` exclusive."""
    params = query(AuditQuery)
    rows = db.session.scalars(
        audit_search(params).limit(params.limit + 1).offset(params.offset)
    ).all()
    page, next_offset = _page(list(rows), params.limit, params.offset)
    return jsonify(events=[serialize_event(e) for e in page], next_offset=next_offset)
