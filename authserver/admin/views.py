"""The admin API. Every route is behind ``require_admin`` (authserver/admin/access.py:
a token issued for ``{issuer}/admin``, an admin user signed in recently with a password,
or an automation client). The views only translate HTTP: the rules, and the audit
event of every change (naming the admin as ``actor``; never a secret), are in
authserver/admin/services.py.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from authserver.accounts.models import Group, Permission, User
from authserver.accounts.schemas import Answer, SeedUser
from authserver.accounts.services import serialize_user
from authserver.admin import services
from authserver.admin.access import actor, require_admin
from authserver.admin.schemas import (
    AuditPage,
    AuditQuery,
    ClientCreate,
    ClientPage,
    ClientQuery,
    ClientReply,
    ClientUpdate,
    ClientWithSecret,
    GroupCreate,
    GroupReply,
    GroupsReply,
    GroupsSet,
    GroupUpdate,
    KeyRotate,
    KeySummary,
    PermissionCreate,
    PermissionReply,
    PermissionsReply,
    PermissionsSet,
    PermissionUpdate,
    SigningKeyReply,
    SigningKeysReply,
    UserBlocked,
    UserCreate,
    UserPage,
    UserQuery,
    UserUpdate,
)
from authserver.admin.services import (
    audit_search,
    client_search,
    find,
    serialize_client,
    serialize_event,
    serialize_group,
    serialize_permission,
    set_blocked,
    user_search,
)
from authserver.api import conflict, install, json_body, not_found, query
from authserver.errors import ApiError, ClientError, KeyOperationError, RotationNotSafe
from authserver.extensions import db
from authserver.oauth.clients import create_client, new_client_secret
from authserver.oauth.models import Client
from authserver.openapi import NO_BODY, Reply, api_errors, documented
from authserver.signing.models import SigningKey
from authserver.signing.services import describe_key, list_keys, revoke_key, rotate_signing_keys

bp = Blueprint("admin", __name__, url_prefix="/admin")
install(bp)


def admin_operation(
    summary: str,
    ok: int = 200,
    *errors: int,
    body: Any = None,
    params: Any = None,
    reply: type[Answer] | None = None,
):
    """The route's OpenAPI entry: its body (``NO_BODY`` for an action named by its path
    alone), its success (``reply``: the answer's model) and failures (401/403 come from
    ``require_admin``)."""
    text = {200: "Done: the resource as it is now.", 201: "Created.", 204: "Done."}[ok]
    return documented(
        summary,
        tags=["admin"],
        body=body,
        query=params,
        responses={ok: Reply(reply, text) if reply else text, **api_errors(*errors)},
    )


def _page(rows: list, limit: int, offset: int) -> tuple[list, int | None]:
    """The page and the offset of the next one (None on the last page); ``rows`` holds
    one row more than the page when there is a next page."""
    more = len(rows) > limit
    return rows[:limit], (offset + limit if more else None)


def _flush(what: str, field: str | None = None) -> None:
    try:
        db.session.flush()  # the request boundary commits (authserver/transactions.py)
    except IntegrityError:  # a concurrent request took the name
        db.session.rollback()
        raise conflict(f"{what} already exists.", field) from None


# --- users ---------------------------------------------------------------------------
@bp.get("/users")
@require_admin
@admin_operation("List users", 200, 400, params=UserQuery, reply=UserPage)
def list_users() -> Response:
    params = query(UserQuery)
    rows = db.session.scalars(
        user_search(params.q).limit(params.limit + 1).offset(params.offset)
    ).all()
    page, next_offset = _page(list(rows), params.limit, params.offset)
    return jsonify(users=[serialize_user(u) for u in page], next_offset=next_offset)


@bp.post("/users")
@require_admin
@admin_operation("Create a user", 201, 400, 409, 415, body=UserCreate, reply=SeedUser)
def create_user_view() -> tuple[Response, int]:
    body = json_body(UserCreate)
    user = services.add_user(body.model_dump(), actor=actor())
    _flush("A user with this phone number or username", "phone")
    return jsonify(serialize_user(user)), 201


@bp.get("/users/<uuid:user_id>")
@require_admin
@admin_operation("A user", 200, 404, reply=SeedUser)
def get_user(user_id: uuid.UUID) -> Response:
    return jsonify(serialize_user(find(User, user_id, "user")))


@bp.patch("/users/<uuid:user_id>")
@require_admin
@admin_operation("Change a user", 200, 400, 404, 409, 415, body=UserUpdate, reply=SeedUser)
def update_user(user_id: uuid.UUID) -> Response:
    user = find(User, user_id, "user")
    body = json_body(UserUpdate)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    services.update_user(user, changes, actor=actor())
    _flush("A user with this phone number or username", "username")
    return jsonify(serialize_user(user))


@bp.post("/users/<uuid:user_id>/block")
@require_admin
@admin_operation(
    "Block a user (every session ends at once)", 200, 404, 409, reply=UserBlocked, body=NO_BODY
)
def block_user(user_id: uuid.UUID) -> Response:
    user = find(User, user_id, "user")
    ended = services.block_user(user, actor=actor())
    return jsonify(user=serialize_user(user), sessions_revoked=ended)


@bp.post("/users/<uuid:user_id>/unblock")
@require_admin
@admin_operation("Unblock a user", 200, 404, reply=UserBlocked, body=NO_BODY)
def unblock_user(user_id: uuid.UUID) -> Response:
    user = find(User, user_id, "user")
    set_blocked(user, False, actor=actor())
    return jsonify(user=serialize_user(user), sessions_revoked=0)


@bp.put("/users/<uuid:user_id>/groups")
@require_admin
@admin_operation("Set a user's groups", 200, 400, 404, 415, body=GroupsSet, reply=SeedUser)
def set_user_groups(user_id: uuid.UUID) -> Response:
    user = find(User, user_id, "user")
    services.set_user_groups(user, json_body(GroupsSet).groups, actor=actor())
    return jsonify(serialize_user(user))


@bp.put("/users/<uuid:user_id>/permissions")
@require_admin
@admin_operation(
    "Set a user's own permissions", 200, 400, 404, 415, body=PermissionsSet, reply=SeedUser
)
def set_user_permissions(user_id: uuid.UUID) -> Response:
    user = find(User, user_id, "user")
    services.set_user_permissions(user, json_body(PermissionsSet).permissions, actor=actor())
    return jsonify(serialize_user(user))


# --- groups --------------------------------------------------------------------------
@bp.get("/groups")
@require_admin
@admin_operation("List groups", reply=GroupsReply)
def list_groups() -> Response:
    groups = db.session.scalars(select(Group).order_by(Group.name)).all()
    return jsonify(groups=[serialize_group(group) for group in groups])


@bp.post("/groups")
@require_admin
@admin_operation("Create a group", 201, 400, 409, 415, body=GroupCreate, reply=GroupReply)
def create_group() -> tuple[Response, int]:
    body = json_body(GroupCreate)
    group = services.add_group(body.name, body.permissions, actor=actor())
    _flush("A group with this name", "name")
    return jsonify(serialize_group(group)), 201


@bp.get("/groups/<int:group_id>")
@require_admin
@admin_operation("A group", 200, 404, reply=GroupReply)
def get_group(group_id: int) -> Response:
    return jsonify(serialize_group(find(Group, group_id, "group")))


@bp.patch("/groups/<int:group_id>")
@require_admin
@admin_operation(
    "Rename a group or set its permissions",
    200,
    400,
    404,
    409,
    415,
    body=GroupUpdate,
    reply=GroupReply,
)
def update_group(group_id: int) -> Response:
    group = find(Group, group_id, "group")
    body = json_body(GroupUpdate)
    services.update_group(group, body.name, body.permissions, actor=actor())
    _flush("A group with this name", "name")
    return jsonify(serialize_group(group))


@bp.delete("/groups/<int:group_id>")
@require_admin
@admin_operation("Delete a group", 204, 404, 409)
def delete_group(group_id: int) -> tuple[str, int]:
    services.delete_group(find(Group, group_id, "group"), actor=actor())
    return "", 204


# --- permissions ---------------------------------------------------------------------
@bp.get("/permissions")
@require_admin
@admin_operation("List permissions", reply=PermissionsReply)
def list_permissions() -> Response:
    rows = db.session.scalars(select(Permission).order_by(Permission.codename)).all()
    return jsonify(permissions=[serialize_permission(p) for p in rows])


@bp.post("/permissions")
@require_admin
@admin_operation(
    "Create a permission", 201, 400, 409, 415, body=PermissionCreate, reply=PermissionReply
)
def create_permission() -> tuple[Response, int]:
    body = json_body(PermissionCreate)
    permission = services.add_permission(body.codename, body.name, actor=actor())
    _flush("A permission with this codename", "codename")
    return jsonify(serialize_permission(permission)), 201


@bp.get("/permissions/<int:permission_id>")
@require_admin
@admin_operation("A permission", 200, 404, reply=PermissionReply)
def get_permission(permission_id: int) -> Response:
    return jsonify(serialize_permission(find(Permission, permission_id, "permission")))


@bp.patch("/permissions/<int:permission_id>")
@require_admin
@admin_operation(
    "Rename a permission", 200, 400, 404, 415, body=PermissionUpdate, reply=PermissionReply
)
def update_permission(permission_id: int) -> Response:
    permission = find(Permission, permission_id, "permission")
    services.rename_permission(permission, json_body(PermissionUpdate).name, actor=actor())
    return jsonify(serialize_permission(permission))


@bp.delete("/permissions/<int:permission_id>")
@require_admin
@admin_operation("Delete a permission", 204, 404, 409)
def delete_permission(permission_id: int) -> tuple[str, int]:
    services.delete_permission(find(Permission, permission_id, "permission"), actor=actor())
    return "", 204


# --- OAuth clients -------------------------------------------------------------------
def _client(client_id: str) -> Client:
    return find(Client, client_id, "client")


@bp.get("/clients")
@require_admin
@admin_operation("List OAuth clients", 200, 400, params=ClientQuery, reply=ClientPage)
def list_clients() -> Response:
    params = query(ClientQuery)
    statement = client_search(params.q)
    rows = db.session.scalars(statement.limit(params.limit + 1).offset(params.offset)).all()
    page, next_offset = _page(list(rows), params.limit, params.offset)
    return jsonify(clients=[serialize_client(c) for c in page], next_offset=next_offset)


@bp.post("/clients")
@require_admin
@admin_operation("Register an OAuth client (its secret is in this answer only)", 201, 400, 415,
                 body=ClientCreate, reply=ClientWithSecret)  # fmt: skip
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
            jwks=body.jwks,
            actor=actor(),
        )
    except ClientError as error:
        raise ApiError(400, "invalid_client_metadata", str(error)) from None
    return jsonify({**serialize_client(client), "client_secret": secret}), 201


@bp.get("/clients/<client_id>")
@require_admin
@admin_operation("An OAuth client", 200, 404, reply=ClientReply)
def get_client(client_id: str) -> Response:
    return jsonify(serialize_client(_client(client_id)))


@bp.patch("/clients/<client_id>")
@require_admin
@admin_operation("Change an OAuth client", 200, 400, 404, 415, body=ClientUpdate, reply=ClientReply)
def update_client(client_id: str) -> Response:
    client = _client(client_id)
    body = json_body(ClientUpdate)
    try:
        services.update_client(client, body.model_dump(), actor=actor())
    except ClientError as error:
        raise ApiError(400, "invalid_client_metadata", str(error)) from None
    return jsonify(serialize_client(client))


@bp.post("/clients/<client_id>/rotate-secret")
@require_admin
@admin_operation("A new client secret (the old one stops working at once)", 200, 404, 409,
                 reply=ClientWithSecret, body=NO_BODY)  # fmt: skip
def rotate_client_secret(client_id: str) -> Response:
    """A new secret, shown in this answer only; the old one stops working at once."""
    client = _client(client_id)
    try:
        secret = new_client_secret(client, actor=actor())
    except ClientError as error:
        raise conflict(str(error)) from None
    return jsonify({**serialize_client(client), "client_secret": secret})


@bp.post("/clients/<client_id>/disable")
@require_admin
@admin_operation("Disable an OAuth client (its tokens introspect inactive)", 200, 404,
                 reply=ClientReply, body=NO_BODY)  # fmt: skip
def disable_client(client_id: str) -> Response:
    client = _client(client_id)
    services.set_client_active(client, False, actor=actor())
    return jsonify(serialize_client(client))


@bp.post("/clients/<client_id>/enable")
@require_admin
@admin_operation("Enable an OAuth client", 200, 404, reply=ClientReply, body=NO_BODY)
def enable_client(client_id: str) -> Response:
    client = _client(client_id)
    services.set_client_active(client, True, actor=actor())
    return jsonify(serialize_client(client))


# --- signing keys (the same services as `authserver keys ...`) -----------------------
@bp.get("/keys")
@require_admin
@admin_operation("List signing keys", reply=SigningKeysReply)
def list_signing_keys() -> Response:
    return jsonify(keys=[describe_key(row) for row in list_keys()])


@bp.post("/keys/rotate")
@require_admin
@admin_operation("Rotate the signing keys", 200, 400, 409, 415, body=KeyRotate, reply=KeySummary)
def rotate_keys() -> Response:
    body = json_body(KeyRotate)
    try:
        return jsonify(rotate_signing_keys(actor=actor(), force=body.force))
    except RotationNotSafe as error:
        raise ApiError(409, "rotation_not_safe", str(error)) from None


@bp.post("/keys/<kid>/revoke")
@require_admin
@admin_operation("Revoke a signing key", 200, 404, 409, reply=SigningKeyReply, body=NO_BODY)
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
@admin_operation("The audit log, newest first", 200, 400, params=AuditQuery, reply=AuditPage)
def audit_log() -> Response:
    """Newest first; filters combine. ``since`` is inclusive, ``until`` exclusive."""
    params = query(AuditQuery)
    rows = db.session.scalars(
        audit_search(params).limit(params.limit + 1).offset(params.offset)
    ).all()
    page, next_offset = _page(list(rows), params.limit, params.offset)
    return jsonify(events=[serialize_event(e) for e in page], next_offset=next_offset)
