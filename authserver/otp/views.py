"""``POST /oauth/otp`` (send a code) and ``POST /oauth/password-reset`` (use one).

Both take form or JSON bodies and answer JSON errors ``{"error", "error_description"}``.
Signing in with a code is the OTP grant at the token endpoint (grant.py).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, Field

from authserver.errors import (
    AccountDisabled,
    InvalidOtp,
    InvalidPhoneNumber,
    OtpRegionNotAllowed,
    PasswordRejected,
    RateLimited,
)
from authserver.oauth.schemas import OAuthError
from authserver.oauth.views import NO_STORE, oauth_error
from authserver.openapi import Reply, documented
from authserver.otp.schemas import CodeSentReply
from authserver.otp.services import LOGIN, PURPOSES, reset_password, start_challenge

bp = Blueprint("otp", __name__)


class CodeRequest(BaseModel):
    phone: str = Field(description="A mobile number, E.164 or national form.")
    purpose: str = Field(
        "login", description="`login` (default: for the OTP grant) or `password_reset`."
    )


class PasswordResetRequest(BaseModel):
    phone: str
    code: str = Field(description="A code asked for with `purpose=password_reset`.")
    new_password: str = Field(min_length=8, max_length=256)


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


def _params() -> dict[str, Any] | Response:
    if request.mimetype == "application/json":
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return oauth_error(400, "invalid_request", "The body is not a JSON object.")
        return data
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return request.form.to_dict()
    return oauth_error(415, "invalid_request", "Send a JSON object or form data.")


def _text(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    return value if isinstance(value, str) and value.strip() else None


@bp.post("/oauth/otp")
@documented(
    "Send a one-time code by SMS",
    description="The `otp_endpoint` of the metadata. Limits: docs/limits.md.",
    tags=["otp"],
    body=CodeRequest,
    form=CodeRequest,
    responses={
        200: Reply(CodeSentReply, "Code sent.", headers={"Cache-Control": "no-store"}),
        400: Reply(OAuthError, "invalid_phone_number, unsupported_region, invalid_request."),
        415: Reply(OAuthError, "Neither JSON nor form data."),
        429: LIMITED,
        503: UNAVAILABLE,
    },
    security=["none"],
)
def start() -> Response:
    params = _params()
    if isinstance(params, Response):
        return params
    phone = _text(params, "phone")
    purpose = params.get("purpose", LOGIN)
    if phone is None:
        return oauth_error(400, "invalid_request", "Missing 'phone'.")
    if purpose not in PURPOSES:
        return oauth_error(400, "invalid_request", f"'purpose' is one of {', '.join(PURPOSES)}.")
    try:
        sent = start_challenge(phone, purpose)
    except InvalidPhoneNumber:
        return oauth_error(400, "invalid_phone_number", "This is not a valid mobile number.")
    except OtpRegionNotAllowed as error:
        return oauth_error(400, "unsupported_region", error.description)
    except RateLimited as error:
        return oauth_error(
            429,
            "too_many_requests",
            "Too many codes asked for; try again later.",
            {"Retry-After": str(error.retry_after)},
        )
    body: dict[str, Any] = {
        "phone": sent.phone,
        "expires_in": sent.expires_in,
        "retry_after": sent.retry_after,
    }
    if sent.code is not None:
        body["code"] = sent.code
    response = jsonify(body)
    response.headers.update(NO_STORE)
    return response


@bp.post("/oauth/password-reset")
@documented(
    "Reset a password with a code",
    description="Sets the new password and ends every session of the user.",
    tags=["otp"],
    body=PasswordResetRequest,
    form=PasswordResetRequest,
    responses={
        200: Reply(PasswordResetReply, "Password set.", headers={"Cache-Control": "no-store"}),
        400: Reply(OAuthError, "invalid_code, invalid_password, invalid_request."),
        403: Reply(OAuthError, "account_disabled."),
        415: Reply(OAuthError, "Neither JSON nor form data."),
    },
    security=["none"],
)
def password_reset() -> Response:
    params = _params()
    if isinstance(params, Response):
        return params
    phone, code = _text(params, "phone"), _text(params, "code")
    new_password = params.get("new_password")
    if phone is None or code is None or not isinstance(new_password, str):
        return oauth_error(400, "invalid_request", "Send 'phone', 'code' and 'new_password'.")
    try:
        ended = reset_password(phone, code, new_password)
    except PasswordRejected as error:
        return oauth_error(400, "invalid_password", error.description)
    except InvalidOtp as error:
        return oauth_error(400, "invalid_code", error.description)
    except AccountDisabled as error:
        return oauth_error(403, "account_disabled", error.description)
    response = jsonify(password_reset=True, sessions_revoked=ended)
    response.headers.update(NO_STORE)
    return response
