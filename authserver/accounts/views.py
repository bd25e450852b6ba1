"""Self-service with a Bearer access token: profile, password, phone number, devices.

Every route needs a user's access token issued for ``{issuer}/account`` with the scope
``authserver:account`` (authserver/bearer.py: a first-party app asks for it with
``resource``); a token of another audience gets 401, a client-credentials token 403.
The views only translate: the rules are in authserver/accounts/self_service.py. Errors
take the API style of ``authserver/api.py``.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, jsonify
from sqlalchemy.exc import IntegrityError

from authserver.accounts import self_service
from authserver.accounts.schemas import (
    PasswordChange,
    PasswordChanged,
    PhoneChangeConfirm,
    PhoneChangeStart,
    ProfileUpdate,
    SeedUser,
    SessionsEnded,
    SessionsReply,
)
from authserver.accounts.services import serialize_user
from authserver.api import conflict, install, json_body
from authserver.audiences.own import ACCOUNT_API
from authserver.bearer import authenticate, current_token, current_user
from authserver.extensions import db
from authserver.oauth.models import AuthSession
from authserver.oauth.sessions import describe_session, live_sessions_query
from authserver.openapi import NO_BODY, Reply, api_errors, documented
from authserver.otp.schemas import CodeSentReply
from authserver.otp.services import CodeSent

bp = Blueprint("account", __name__, url_prefix="/account")
install(bp)


def _code_sent(sent: CodeSent) -> Response:
    answer: dict[str, Any] = {
        "phone": sent.phone,
        "expires_in": sent.expires_in,
        "retry_after": sent.retry_after,
    }
    if sent.code is not None:  # development only (AUTHSERVER_OTP_EXPOSE_CODE)
        answer["code"] = sent.code
    return jsonify(answer)


def _flush(what: str, field: str) -> None:
    try:
        db.session.flush()  # the request boundary commits (authserver/transactions.py)
    except IntegrityError:  # a concurrent request got there first
        db.session.rollback()
        raise conflict(what, field) from None


@bp.get("/profile")
@authenticate(ACCOUNT_API)
@documented(
    "My profile",
    tags=["account"],
    responses={200: Reply(SeedUser, "The seed user object.")},
)
def profile() -> Response:
    return jsonify(serialize_user(current_user()))


@bp.patch("/profile")
@authenticate(ACCOUNT_API)
@documented(
    "Change my names, username or email",
    tags=["account"],
    body=ProfileUpdate,
    responses={200: Reply(SeedUser, "My profile as it is now."), **api_errors(400, 409, 415)},
)
def update_profile() -> Response:
    user = current_user()
    body = json_body(ProfileUpdate)
    self_service.update_profile(user, {name: getattr(body, name) for name in body.model_fields_set})
    _flush("This username is taken.", "username")
    return jsonify(serialize_user(user))


@bp.post("/code")
@authenticate(ACCOUNT_API)
@documented(
    "Send a code to my current phone",
    tags=["account"],
    body=NO_BODY,
    responses={
        200: Reply(CodeSentReply, "Sent (`code` only with AUTHSERVER_OTP_EXPOSE_CODE)."),
        **api_errors(429, 503),
    },
)
def send_code() -> Response:
    """Send a code to my current phone: what an account without a password gives as
    `current_code` to change its password or phone number."""
    return _code_sent(self_service.send_account_code(current_user()))


@bp.post("/password")
@authenticate(ACCOUNT_API)
@documented(
    "Change my password",
    tags=["account"],
    body=PasswordChange,
    responses={
        200: Reply(PasswordChanged, "Changed; every other session ended."),
        **api_errors(400, 415, 429),
    },
)
def password() -> Response:
    body = json_body(PasswordChange)
    ended = self_service.change_password(
        current_user(),
        body.new_password,
        current_password=body.current_password,
        current_code=body.current_code,
        keep=current_token().session_id,
    )
    return jsonify(password_changed=True, sessions_revoked=ended)


@bp.post("/phone")
@authenticate(ACCOUNT_API)
@documented(
    "Start changing my phone number",
    tags=["account"],
    body=PhoneChangeStart,
    responses={
        200: Reply(CodeSentReply, "A code went to the new number."),
        **api_errors(400, 415, 429, 503),
    },
)
def start_phone_change() -> Response:
    """Send a code to the new number; ``/account/phone/confirm`` completes the change."""
    body = json_body(PhoneChangeStart)
    sent = self_service.start_phone_change(
        current_user(),
        body.phone,
        current_password=body.current_password,
        current_code=body.current_code,
    )
    return _code_sent(sent)


@bp.post("/phone/confirm")
@authenticate(ACCOUNT_API)
@documented(
    "Confirm my new phone number",
    tags=["account"],
    body=PhoneChangeConfirm,
    responses={
        200: Reply(SeedUser, "My profile with the new number."),
        **api_errors(400, 409, 415),
    },
)
def confirm_phone_change() -> Response:
    """The new number becomes mine; my other sessions end; the old number is told."""
    user = current_user()
    body = json_body(PhoneChangeConfirm)
    self_service.confirm_phone_change(user, body.phone, body.code, keep=current_token().session_id)
    _flush("Another account uses this phone number.", "phone")
    return jsonify(serialize_user(user))


@bp.get("/sessions")
@authenticate(ACCOUNT_API)
@documented(
    "My signed-in devices",
    tags=["account"],
    responses={200: Reply(SessionsReply, "My live sessions, `current` marking this one.")},
)
def sessions() -> Response:
    user, sid = current_user(), current_token().session_id
    rows = db.session.scalars(
        live_sessions_query(user.id).order_by(AuthSession.last_used_at.desc())
    ).all()
    return jsonify(sessions=[describe_session(row, current=sid) for row in rows])


@bp.delete("/sessions/<uuid:session_id>")
@authenticate(ACCOUNT_API)
@documented(
    "End one of my sessions",
    tags=["account"],
    responses={204: "Ended.", **api_errors(404)},
)
def end_session(session_id: uuid.UUID) -> tuple[str, int]:
    self_service.end_session(current_user(), session_id, current=current_token().session_id)
    return "", 204


@bp.post("/sessions/end-others")
@authenticate(ACCOUNT_API)
@documented(
    "End my other sessions",
    tags=["account"],
    body=NO_BODY,
    responses={200: Reply(SessionsEnded, "How many ended.")},
)
def end_other_sessions() -> Response:
    ended = self_service.end_other_sessions(current_user(), keep=current_token().session_id)
    return jsonify(sessions_revoked=ended)


@bp.post("/logout")
@authenticate(ACCOUNT_API)
@documented(
    "Sign out (end this session)",
    tags=["account"],
    body=NO_BODY,
    responses={204: "Ended."},
)
def logout() -> tuple[str, int]:
    sid = current_token().session_id
    assert sid is not None  # authenticate(ACCOUNT_API) lets only users' tokens through
    self_service.end_session(current_user(), sid, current=sid)
    return "", 204
