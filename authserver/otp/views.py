"""``POST /oauth/otp`` (send a code) and ``POST /oauth/password-reset`` (use one).

Both take form or JSON bodies (authserver/bodies.py) and answer RFC 6749 §5.2 errors
``{"error", "error_description"}``.
Signing in with a code is the OTP grant at the token endpoint (grant.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import Blueprint, Response, jsonify
from pydantic import AfterValidator, BaseModel, Field

from authserver.bodies import accepts
from authserver.errors import (
    NO_STORE,
    AuthserverError,
    InvalidPhoneNumber,
    RateLimited,
    oauth_answer,
)
from authserver.extensions import db
from authserver.oauth.schemas import OAuthError
from authserver.openapi import Reply, documented
from authserver.otp.schemas import CodeSentReply
from authserver.otp.services import LOGIN, PURPOSES, reset_password, start_challenge

bp = Blueprint("otp", __name__)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("This field is required.")
    return value


Text = Annotated[str, AfterValidator(_not_blank)]


class CodeRequest(BaseModel):
    phone: Text = Field(description="A mobile number, E.164 or national form.")
    purpose: Literal[PURPOSES] = Field(  # type: ignore[valid-type]
        LOGIN, description="`login` (default: for the OTP grant) or `password_reset`."
    )


class PasswordResetRequest(BaseModel):
    phone: Text
    code: Text = Field(description="A code asked for with `purpose=password_reset`.")
    # The length is the service's to check (invalid_password, before the code is spent).
    new_password: str = Field(json_schema_extra={"minLength": 8, "maxLength": 256})


class PasswordResetReply(BaseModel):
    password_reset: bool
    sessions_revoked: int = Field(description="Sessions of the user that were ended.")


LIMITED = Reply(
    OAuthError,
    "too_many_requests: a budget is spent (cooldown, per phone, per IP, global).",
    headers={"Retry-After": "Seconds to wait before asking again."},
)
UNAVAILABLE = Reply(
    OAuthError,
    "temporarily_unavailable: the SMS gateway failed or the rate-limit storage is down.",
    headers={"Retry-After": "Seconds to wait."},
)


# The answers of this blueprint: RFC 6749 §5.2 bodies, with the descriptions the
# endpoints have always given where the failure's own is a developer's.
DESCRIPTIONS = {
    InvalidPhoneNumber: "This is not a valid mobile number.",
    RateLimited: "Too many codes asked for; try again later.",
}


@bp.errorhandler(AuthserverError)
def refused(error: AuthserverError) -> Response:
    db.session.rollback()
    return oauth_answer(error, DESCRIPTIONS.get(type(error)))


@bp.post("/oauth/otp")
@accepts(CodeRequest, form=True)
@documented(
    "Send a one-time code by SMS",
    description="The `otp_endpoint` of the metadata. Limits: docs/limits.md.",
    tags=["otp"],
    responses={
        200: Reply(CodeSentReply, "Code sent.", headers={"Cache-Control": "no-store"}),
        400: Reply(OAuthError, "invalid_phone_number, unsupported_region, invalid_request."),
        415: Reply(OAuthError, "Neither JSON nor form data."),
        429: LIMITED,
        503: UNAVAILABLE,
    },
    security=["none"],
)
def start(body: CodeRequest) -> Response:
    sent = start_challenge(body.phone, body.purpose)
    reply: dict[str, Any] = {
        "phone": sent.phone,
        "expires_in": sent.expires_in,
        "retry_after": sent.retry_after,
    }
    if sent.code is not None:
        reply["code"] = sent.code
    response = jsonify(reply)
    response.headers.update(NO_STORE)
    return response


@bp.post("/oauth/password-reset")
@accepts(PasswordResetRequest, form=True)
@documented(
    "Reset a password with a code",
    description="Sets the new password and ends every session of the user.",
    tags=["otp"],
    responses={
        200: Reply(PasswordResetReply, "Password set.", headers={"Cache-Control": "no-store"}),
        400: Reply(OAuthError, "invalid_code, invalid_password, invalid_request."),
        403: Reply(OAuthError, "account_disabled."),
        415: Reply(OAuthError, "Neither JSON nor form data."),
    },
    security=["none"],
)
def password_reset(body: PasswordResetRequest) -> Response:
    ended = reset_password(body.phone, body.code, body.new_password)
    response = jsonify(password_reset=True, sessions_revoked=ended)
    response.headers.update(NO_STORE)
    return response
