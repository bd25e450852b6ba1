"""``/admin/audiences``: register resource servers and their encryption keys. The same
admins, error shape and audit trail as the rest of ``/admin`` (authserver/admin/views.py).
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, jsonify
from sqlalchemy.exc import IntegrityError

from authserver.admin.access import actor, require_admin
from authserver.api import conflict, get_or_404, install, json_body
from authserver.audiences.models import Audience
from authserver.audiences.schemas import (
    AudienceCreate,
    AudienceList,
    AudienceOut,
    EncryptionKeySet,
)
from authserver.audiences.services import (
    create_audience,
    delete_audience,
    describe_audience,
    list_audiences,
    public_key_from_jwk,
    remove_encryption_key,
    set_encryption_key,
)
from authserver.errors import ApiError, AudienceError
from authserver.extensions import db
from authserver.openapi import api_errors, documented

bp = Blueprint("audiences", __name__, url_prefix="/admin/audiences")
install(bp)


def _refused(error: AudienceError) -> ApiError:
    fields = {error.field: [error.description]} if error.field else None
    if error.conflict:
        return ApiError(409, "conflict", error.description, fields=fields)
    return ApiError(400, "invalid_request", error.description, fields=fields)


def _audience(audience_id: uuid.UUID) -> Audience:
    return get_or_404(Audience, audience_id, "audience")


def _flush() -> None:
    try:
        db.session.flush()
    except IntegrityError:  # a concurrent request registered the same identifier or key
        raise conflict("A concurrent change got there first; read the audience again.") from None


@bp.get("")
@require_admin
@documented(
    "List audiences",
    tags=["admin"],
    responses={200: AudienceList, **api_errors(401, 403)},
    security=["bearer"],
)
def list_view() -> Response:
    return jsonify(audiences=[describe_audience(a) for a in list_audiences()])


@bp.post("")
@require_admin
@documented(
    "Register an audience",
    description="""
    A resource server clients may ask tokens for with `resource=<identifier>` (RFC 8707).
    With `encryption_key`, its access tokens are encrypted to that public key.
    """,
    tags=["admin"],
    body=AudienceCreate,
    responses={201: AudienceOut, **api_errors(400, 401, 403, 409, 415)},
    security=["bearer"],
)
def create_view() -> tuple[Response, int]:
    body = json_body(AudienceCreate)
    try:
        key = public_key_from_jwk(body.encryption_key) if body.encryption_key else None
        audience = create_audience(body.identifier, body.name, key, actor=actor())
    except AudienceError as error:
        raise _refused(error) from None
    _flush()
    return jsonify(describe_audience(audience)), 201


@bp.get("/<uuid:audience_id>")
@require_admin
@documented(
    "Show an audience",
    tags=["admin"],
    responses={200: AudienceOut, **api_errors(401, 403, 404)},
    security=["bearer"],
)
def get_view(audience_id: uuid.UUID) -> Response:
    return jsonify(describe_audience(_audience(audience_id)))


@bp.put("/<uuid:audience_id>/encryption-key")
@require_admin
@documented(
    "Register or replace the audience's encryption key",
    description="""
    New tokens are encrypted to this key from now on. A previous key becomes
    `replaced`: tokens already encrypted to it stay valid until they expire
    (`tokens_valid_until`), so the service keeps both private keys until then.
    """,
    tags=["admin"],
    body=EncryptionKeySet,
    responses={200: AudienceOut, **api_errors(400, 401, 403, 404, 409, 415)},
    security=["bearer"],
)
def set_key_view(audience_id: uuid.UUID) -> Response:
    audience = _audience(audience_id)
    body = json_body(EncryptionKeySet)
    try:
        set_encryption_key(audience, public_key_from_jwk(body.encryption_key), actor=actor())
    except AudienceError as error:
        raise _refused(error) from None
    _flush()
    return jsonify(describe_audience(audience))


@bp.delete("/<uuid:audience_id>/encryption-key")
@require_admin
@documented(
    "Remove the audience's encryption key",
    description="From now on the audience gets plain signed tokens.",
    tags=["admin"],
    responses={200: AudienceOut, **api_errors(401, 403, 404)},
    security=["bearer"],
)
def remove_key_view(audience_id: uuid.UUID) -> Response:
    audience = _audience(audience_id)
    remove_encryption_key(audience, actor=actor())
    _flush()
    return jsonify(describe_audience(audience))


@bp.delete("/<uuid:audience_id>")
@require_admin
@documented(
    "Delete an audience",
    description="""
    Token requests for it then get `invalid_target`; tokens already issued stay valid
    until they expire.
    """,
    tags=["admin"],
    responses={204: None, **api_errors(401, 403, 404)},
    security=["bearer"],
)
def delete_view(audience_id: uuid.UUID) -> tuple[str, int]:
    delete_audience(_audience(audience_id), actor=actor())
    _flush()
    return "", 204
