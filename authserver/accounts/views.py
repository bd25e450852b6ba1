"""Self-service with a Bearer access token: profile, password, phone number, devices.

Every route needs a user's access token issued for ``{issuer}/account`` with the scope
``authserver:account`` (authserver/bearer.py: a first-party app asks for it with
``resource``); a token of another audience gets 401, a client-credentials token 403.
Errors take the API style of ``authserver/api.py``.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from authserver.accounts.models import User
from authserver.accounts.phones import InvalidPhoneNumber, normalize_phone
from authserver.accounts.schemas import (
    PasswordChange,
    PhoneChangeConfirm,
    PhoneChangeStart,
    ProfileUpdate,
)
from authserver.accounts.services import (
    change_password,
    phone_taken,
    serialize_user,
    username_taken,
)
from authserver.api import ApiError, conflict, install, invalid, json_body
from authserver.audiences.own import ACCOUNT_API
from authserver.audit import record_event
from authserver.bearer import authenticate, current_token, current_user
from authserver.context import settings
from authserver.errors import InvalidCredentials, InvalidOtp, OtpRegionNotAllowed
from authserver.extensions import db
from authserver.oauth.models import AuthSession
from authserver.oauth.sessions import (
    describe_session,
    live_sessions_query,
    revoke_session,
    revoke_user_sessions,
)
from authserver.otp.services import PHONE_CHANGE, start_challenge, verify_code

bp = Blueprint("account", __name__, url_prefix="/account")
install(bp)


@bp.get("/profile")
@authenticate(ACCOUNT_API)
def profile() -> Response:
    user = current_user()
    return jsonify(serialize_user(user))


@bp.patch("/profile")
@authenticate(ACCOUNT_API)
def update_profile() -> Response:
    user = current_user()
    body = json_body(ProfileUpdate)
    changes: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if name in ("first_name", "last_name"):
            changes[name] = value or ""
        elif name == "username":
            if value is None:
                raise invalid("username", "A username cannot be empty.")
            if username_taken(value, other_than=user):
                raise conflict("This username is taken.", "username")
            changes[name] = value
        elif name == "email":
            changes[name] = value or None
    changed = sorted(name for name, value in changes.items() if getattr(user, name) != value)
    for name in changed:
        setattr(user, name, changes[name])
    if changed:
        record_event("profile.updated", actor=str(user.id), user_id=user.id, fields=changed)
    try:
        db.session.commit()
    except IntegrityError:  # a concurrent request took the username
        raise conflict("This username is taken.", "username") from None
    return jsonify(serialize_user(user))


@bp.post("/password")
@authenticate(ACCOUNT_API)
def password() -> Response:
    user, sid = current_user(), current_token().session_id
    body = json_body(PasswordChange)
    if user.password_hash is not None and not body.current_password:
        raise invalid("current_password", "This field is required.")
    try:
        ended = change_password(user, body.current_password, body.new_password, keep_session=sid)
    except InvalidCredentials as error:
        raise invalid("current_password", error.description) from None
    db.session.commit()
    return jsonify(password_changed=True, sessions_revoked=ended)


@bp.post("/phone")
@authenticate(ACCOUNT_API)
def start_phone_change() -> Response:
    """Send a code to the new number; ``/account/phone/confirm`` completes the change.

    Whether another account uses the number is told only at confirmation, to someone
    who has shown they hold it."""
    user = current_user()
    body = json_body(PhoneChangeStart)
    try:
        if normalize_phone(body.phone, settings().default_region) == user.phone:
            raise invalid("phone", "This is already your phone number.")
        sent = start_challenge(body.phone, PHONE_CHANGE)
    except InvalidPhoneNumber:
        raise invalid("phone", "This is not a valid mobile number.") from None
    except OtpRegionNotAllowed as error:
        raise invalid("phone", error.description) from None
    answer: dict[str, Any] = {
        "phone": sent.phone,
        "expires_in": sent.expires_in,
        "retry_after": sent.retry_after,
    }
    if sent.code is not None:  # development only (AUTHSERVER_OTP_EXPOSE_CODE)
        answer["code"] = sent.code
    return jsonify(answer)


@bp.post("/phone/confirm")
@authenticate(ACCOUNT_API)
def confirm_phone_change() -> Response:
    user = current_user()
    body = json_body(PhoneChangeConfirm)
    try:
        phone = verify_code(body.phone, body.code, PHONE_CHANGE)
    except InvalidOtp as error:
        raise ApiError(400, "invalid_code", error.description) from None
    if phone_taken(phone, other_than=user):
        raise conflict("Another account uses this phone number.", "phone")
    old = user.phone
    user.phone = phone
    record_event("phone.changed", actor=str(user.id), user_id=user.id, old=old, new=phone)
    try:
        db.session.commit()
    except IntegrityError:
        raise conflict("Another account uses this phone number.", "phone") from None
    return jsonify(serialize_user(user))


@bp.get("/sessions")
@authenticate(ACCOUNT_API)
def sessions() -> Response:
    user, sid = current_user(), current_token().session_id
    rows = db.session.scalars(
        live_sessions_query(user.id).order_by(AuthSession.last_used_at.desc())
    ).all()
    return jsonify(sessions=[describe_session(row, current=sid) for row in rows])


@bp.delete("/sessions/<uuid:session_id>")
@authenticate(ACCOUNT_API)
def end_session(session_id: uuid.UUID) -> tuple[str, int]:
    user, sid = current_user(), current_token().session_id
    session = db.session.scalar(
        select(AuthSession).where(AuthSession.id == session_id, AuthSession.user_id == user.id)
    )
    if session is None:
        raise ApiError(404, "not_found", "No such session.")
    _end(session, user, "ended_by_user" if session_id != sid else "logout")
    return "", 204


@bp.post("/sessions/end-others")
@authenticate(ACCOUNT_API)
def end_other_sessions() -> Response:
    user, sid = current_user(), current_token().session_id
    ended = revoke_user_sessions(user.id, reason="ended_by_user", keep=sid)
    record_event(
        "session.revoked",
        actor=str(user.id),
        user_id=user.id,
        reason="ended_by_user",
        session_ids=[str(s) for s in ended],
    )
    db.session.commit()
    return jsonify(sessions_revoked=len(ended))


@bp.post("/logout")
@authenticate(ACCOUNT_API)
def logout() -> tuple[str, int]:
    user, sid = current_user(), current_token().session_id
    session = db.session.get(AuthSession, sid)
    if session is not None:
        _end(session, user, "logout")
    return "", 204


def _end(session: AuthSession, user: User, reason: str) -> None:
    if revoke_session(session, reason=reason):
        record_event(
            "logout" if reason == "logout" else "session.revoked",
            actor=str(user.id),
            user_id=user.id,
            client_id=session.client_id,
            session_id=str(session.id),
            reason=reason,
        )
    db.session.commit()
