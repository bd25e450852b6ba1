"""The seed documents' endpoints (../shared/seeds), for the apps of the older Django services.

Each view only translates: it reads the seed's JSON shape, runs the equivalent request
through the same Authlib server as ``/oauth/token`` (``run_token_request``) or the same
services, and answers in the seed's shape. Where a seed shows no error body, the answer
takes SimpleJWT's (``{"detail": ..., "code": ...}``); request validation errors take
Django REST Framework's (``{"field": ["message"]}``), as the Django services did.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field, RootModel

from authserver.accounts.models import User
from authserver.accounts.schemas import SeedUser
from authserver.accounts.self_service import update_profile
from authserver.accounts.services import serialize_user
from authserver.audiences.own import ACCOUNT_API
from authserver.bearer import BearerError, authenticate, current_user
from authserver.bodies import accepts, parse_body
from authserver.errors import (
    AuthserverError,
    InvalidAccessToken,
    InvalidBody,
    InvalidPhoneNumber,
    MalformedInput,
    RateLimited,
)
from authserver.extensions import db
from authserver.oauth.internal import run_internal_request, run_token_request
from authserver.oauth.tokens import decode_access_token, verify_access_token
from authserver.openapi import PUBLIC, Reply, documented
from authserver.otp import OTP_GRANT_TYPE
from authserver.otp.services import start_challenge

bp = Blueprint("compat", __name__)


class PhoneLogin(BaseModel):
    phone: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class UsernameLogin(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class RefreshBody(BaseModel):
    refresh: str = Field(min_length=1, max_length=512)


class TokenBody(BaseModel):
    token: str = Field(min_length=1, max_length=8192)


class ProfileUpdate(BaseModel):
    fullname: str = Field(max_length=300)


# --- answers, described for the OpenAPI document -------------------------------------
class TokenPair(BaseModel):
    """SimpleJWT's pair. On a refresh, `refresh` is the rotated successor."""

    refresh: str = Field(description="Opaque refresh token; each works once.")
    access: str = Field(description="RFC 9068 JWT access token.")


class LoginResponse(TokenPair):
    user: SeedUser


class Profile(SeedUser):
    fullname: str = Field(description="First and last name, space-separated.")


class Empty(BaseModel):
    """An empty JSON object."""

    model_config = ConfigDict(extra="forbid")


class SimpleJwtError(BaseModel):
    """SimpleJWT's error body."""

    detail: str
    code: str | None = Field(examples=["no_active_account", "token_not_valid"])


class Seed003Error(BaseModel):
    """Seed 003's error body."""

    error: str


class FieldErrors(RootModel[dict[str, list[str]]]):
    """Django REST Framework's validation errors: field name -> messages
    (`non_field_errors` when the body is not an object)."""


BAD_BODY = Reply(FieldErrors, "The body (JSON or form) does not fit: which field and why.")
# Failures of the token service that are not the seed's own keep their status.
PASSED_THROUGH = {
    429: Reply(
        SimpleJwtError,
        "Too many attempts.",
        headers={"Retry-After": "Seconds to wait before trying again."},
    ),
    503: Reply(SimpleJwtError, "A dependency is unavailable; try again shortly."),
}
BAD_CREDENTIALS = Reply(SimpleJwtError, "No active account found with the given credentials.")
BAD_TOKEN = Reply(
    SimpleJwtError,
    "Token is invalid or expired.",
    headers={"WWW-Authenticate": 'Bearer realm="api" (profile endpoints)'},
)


def _seed_doc(summary: str, body: type[BaseModel], ok: Any, failure: Reply) -> Callable:
    """A seed endpoint taking ``body`` as JSON or form (passed to the view as ``body``),
    with its metadata."""
    described = documented(
        summary,
        tags=["compat"],
        responses={200: ok, 400: BAD_BODY, 401: failure, **PASSED_THROUGH},
        security=PUBLIC,
    )
    return lambda view: accepts(body, form=True)(described(view))


# --- the seeds' answers: one mapping, three shapes ---------------------------------------
def simplejwt_error(
    status: int, detail: str, code: str | None, headers: Mapping[str, str] | None = None
) -> Response:
    """SimpleJWT's ``{"detail", "code"}``: the seeds' failures where they show no body."""
    response = jsonify(detail=detail, code=code)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def seed003_error(error: str) -> Response:
    """Seed 003's ``{"error"}`` (a 401)."""
    response = jsonify(error=error)
    response.status_code = 401
    return response


@bp.errorhandler(AuthserverError)
def refused(error: AuthserverError) -> Response:
    """Any failure of these views in the Django services' shapes."""
    db.session.rollback()
    if isinstance(error, InvalidBody) and error.status == 400:
        # Django REST Framework's validation errors: field -> messages.
        if not error.fields:
            return _json({"non_field_errors": ["Invalid data. Expected a dictionary."]}, 400)
        fields = {name.partition(".")[0]: messages for name, messages in error.fields.items()}
        return _json({FIELD_NAMES.get(k, k): v for k, v in fields.items()}, 400)
    if isinstance(error, MalformedInput):  # authserver/guard.py
        return _json({FIELD_NAMES.get(error.field, error.field): [error.description]}, 400)
    if isinstance(error, BearerError):
        # The seed answered every refused token this way; its apps sign in again on it.
        return simplejwt_error(
            401,
            "Given token not valid for any token type",
            "token_not_valid",
            {"WWW-Authenticate": 'Bearer realm="api"'},
        )
    status, detail, code = SEED_ANSWERS.get(
        type(error), (error.status, error.description, error.error)
    )
    return simplejwt_error(status, detail, code, error.headers)


FIELD_NAMES = {"body": "non_field_errors"}
# Seed 004's own answers to these failures (406: its status for every code limit).
SEED_ANSWERS = {
    InvalidPhoneNumber: (400, "This is not a valid mobile number.", "invalid_phone"),
    RateLimited: (406, "Too many codes asked for; try again later.", "throttled"),
}


def _json(body: Any, status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def both(rule: str, **options: Any) -> Callable:
    """Answer at ``rule`` with and without its trailing slash, without a redirect."""
    bare = rule.rstrip("/")

    def register(view: Callable) -> Callable:
        bp.add_url_rule(bare + "/", view_func=view, **options)
        bp.add_url_rule(bare, endpoint=view.__name__ + "_bare", view_func=view, **options)
        return view

    return register


def passthrough(status: int, body: dict, headers: dict | None = None) -> Response:
    """Failures that are not the seed's own (rate limit, outage) keep their status."""
    retry = {"Retry-After": headers["Retry-After"]} if headers and "Retry-After" in headers else {}
    return simplejwt_error(
        status, body.get("error_description") or body.get("error"), body.get("error"), retry
    )


def password_tokens(phone: str, password: str, failure: Callable[[], Response]):
    """(tokens, user_id) from the password grant, or the seed's failure response."""
    response = run_token_request(
        {"grant_type": "password", "username": phone, "password": password}
    )
    body = response.get_json()
    if response.status_code == 200:
        return body, None
    if response.status_code == 400 and body.get("error") == "invalid_grant":
        return None, failure()
    return None, passthrough(response.status_code, body, response.headers)


def simplejwt_credentials_failure() -> Response:
    return simplejwt_error(
        401, "No active account found with the given credentials", "no_active_account"
    )


def seed003_credentials_failure() -> Response:
    return seed003_error("Invalid username or password")


def pair(tokens: dict) -> dict[str, str]:
    return {"refresh": tokens["refresh_token"], "access": tokens["access_token"]}


# --- seed 000 -------------------------------------------------------------------------
@both("/api/auth/token/", methods=["POST"])
@_seed_doc("Seed 000: sign in (phone and password)", PhoneLogin, TokenPair, BAD_CREDENTIALS)
def seed000_token(body: PhoneLogin):
    tokens, failure = password_tokens(body.phone, body.password, simplejwt_credentials_failure)
    return failure or jsonify(pair(tokens))


@both("/api/auth/login/", methods=["POST"])
@_seed_doc("Seed 000: sign in, with the user", PhoneLogin, LoginResponse, BAD_CREDENTIALS)
def seed000_login(body: PhoneLogin):
    tokens, failure = password_tokens(body.phone, body.password, simplejwt_credentials_failure)
    if failure:
        return failure
    return jsonify({**pair(tokens), "user": _user_of(tokens["access_token"])})


# --- seeds 002 and 003: username is the phone number ----------------------------------
@both("/auth/token/", methods=["POST"])
@_seed_doc(
    "Seed 002: sign in (username is the phone number)",
    UsernameLogin,
    TokenPair,
    BAD_CREDENTIALS,
)
def seed002_token(body: UsernameLogin):
    tokens, failure = password_tokens(body.username, body.password, simplejwt_credentials_failure)
    return failure or jsonify(pair(tokens))


@both("/api/login/", methods=["POST"])
@_seed_doc(
    "Seed 003: sign in (username is the phone number)",
    UsernameLogin,
    TokenPair,
    Reply(Seed003Error, "Invalid username or password."),
)
def seed003_login(body: UsernameLogin):
    tokens, failure = password_tokens(body.username, body.password, seed003_credentials_failure)
    return failure or jsonify(pair(tokens))


# --- refresh: every seed's variant ----------------------------------------------------
def refresh_with(body: RefreshBody, failure: Callable[[], Response]) -> Response:
    response = run_token_request({"grant_type": "refresh_token", "refresh_token": body.refresh})
    tokens = response.get_json()
    if response.status_code == 200:
        # Refresh tokens rotate here: the new one rides along beside `access`.
        return jsonify(access=tokens["access_token"], refresh=tokens["refresh_token"])
    if response.status_code == 400 and tokens.get("error") in ("invalid_grant", "invalid_request"):
        return failure()
    return passthrough(response.status_code, tokens, response.headers)


def simplejwt_token_failure() -> Response:
    return simplejwt_error(401, "Token is invalid or expired", "token_not_valid")


def seed003_refresh_failure() -> Response:
    return seed003_error("Invalid or expired refresh token")


@both("/api/auth/refresh/", methods=["POST"])
@_seed_doc("Seed 000: refresh (rotating)", RefreshBody, TokenPair, BAD_TOKEN)
def seed000_refresh(body: RefreshBody):
    return refresh_with(body, simplejwt_token_failure)


@both("/auth/token/refresh/", methods=["POST"])
@_seed_doc("Seed 002: refresh (rotating)", RefreshBody, TokenPair, BAD_TOKEN)
def seed002_refresh(body: RefreshBody):
    return refresh_with(body, simplejwt_token_failure)


@both("/accounts/refresh/", methods=["POST"])
@_seed_doc("Seed 004: refresh (rotating)", RefreshBody, TokenPair, BAD_TOKEN)
def seed004_refresh(body: RefreshBody):
    return refresh_with(body, simplejwt_token_failure)


# Seeds 001 (`/api/token/refresh`) and 003 (`/api/token/refresh/`) name one path; 003
# documents its error body, so both spellings answer with it.
@both("/api/token/refresh/", methods=["POST"])
@_seed_doc(
    "Seeds 001 and 003: refresh (rotating)",
    RefreshBody,
    TokenPair,
    Reply(Seed003Error, "Invalid or expired refresh token."),
)
def seed001_003_refresh(body: RefreshBody):
    return refresh_with(body, seed003_refresh_failure)


# --- verify ---------------------------------------------------------------------------
@_seed_doc("Seeds 002 and 004: verify an access token", TokenBody, Empty, BAD_TOKEN)
def verify(body: TokenBody) -> Response:
    try:
        verify_access_token(body.token)
    except InvalidAccessToken:
        return simplejwt_token_failure()
    return jsonify({})


bp.add_url_rule("/auth/token/verify/", view_func=verify, methods=["POST"])
bp.add_url_rule("/auth/token/verify", endpoint="verify_bare", view_func=verify, methods=["POST"])
bp.add_url_rule(
    "/accounts/token/verify/", endpoint="verify_004", view_func=verify, methods=["POST"]
)
bp.add_url_rule(
    "/accounts/token/verify", endpoint="verify_004_bare", view_func=verify, methods=["POST"]
)


# --- seed 004: profile and logout -----------------------------------------------------
# What seed 004's apps send: the token of the seed sign-in in the header or a cookie;
# a token issued for the account API does as well. Never a third-party app's token.
seed_profile_token = authenticate(ACCOUNT_API, cookie=True, seed_tokens=True)


def _user_of(access_token: str) -> dict[str, Any]:
    """The seed's ``user`` object for the token we just issued."""
    claims = decode_access_token(access_token)
    return serialize_user(db.session.get(User, uuid.UUID(claims["sub"])))


def profile_of(user) -> dict[str, Any]:
    return {
        **serialize_user(user),
        "fullname": " ".join(part for part in (user.first_name, user.last_name) if part),
    }


@both("/accounts/profile/", methods=["GET"])
@documented(
    "Seed 004: my profile",
    description="The access token comes in the Authorization header, or in a cookie "
    "named `Authorization` holding `Bearer <token>`.",
    tags=["compat"],
    responses={200: Profile, 401: BAD_TOKEN},
)
@seed_profile_token
def seed004_profile():
    return jsonify(profile_of(current_user()))


@both("/accounts/profile/update/", methods=["PATCH"])
@documented(
    "Seed 004: change my name",
    description="`fullname` is split at its first space into first and last name. The "
    "access token comes in the Authorization header or the `Authorization` cookie.",
    tags=["compat"],
    body=ProfileUpdate,
    form=ProfileUpdate,
    responses={200: Profile, 400: BAD_BODY, 401: BAD_TOKEN},
)
@seed_profile_token
def seed004_profile_update():
    user = current_user()
    body = parse_body(ProfileUpdate, form=True)  # after authentication, as in Django
    first, _, last = body.fullname.strip().partition(" ")
    update_profile(user, {"first_name": first, "last_name": last.strip()})
    return jsonify(profile_of(user))


@both("/accounts/logout/", methods=["POST"])
@accepts(RefreshBody, form=True)
@documented(
    "Seed 004: sign out (ends the refresh token's session)",
    security=PUBLIC,
    tags=["compat"],
    responses={
        200: Empty,
        400: Reply(
            FieldErrors | SimpleJwtError,
            "The body does not fit, or the token is another client's (`invalid_grant`).",
        ),
        **PASSED_THROUGH,
    },
)
def seed004_logout(body: RefreshBody):
    response = run_internal_request(
        "revocation", {"token": body.refresh, "token_type_hint": "refresh_token"}
    )
    if response.status_code == 200:
        return jsonify({})
    return passthrough(response.status_code, response.get_json(), response.headers)


# --- seed 004: sign-in (and sign-up) by SMS code --------------------------------------
class PhoneBody(BaseModel):
    phone: str = Field(min_length=1, max_length=64)


class PhoneCode(BaseModel):
    phone: str = Field(min_length=1, max_length=64)
    code: str = Field(min_length=1, max_length=16)


class CodeSentReply(BaseModel):
    detail: str
    expires_in: int = Field(description="Seconds the code stays valid.")
    retry_after: int = Field(description="Seconds before another code may be asked for.")
    code: str | None = Field(None, description="Only with AUTHSERVER_OTP_EXPOSE_CODE.")


class VerifiedReply(Profile):
    access: str
    refresh: str


@both("/accounts/login/", methods=["POST"])
@accepts(PhoneBody, form=True)
@documented(
    "Seed 004: send a sign-in code by SMS (sign-up on first use)",
    security=PUBLIC,
    tags=["compat"],
    responses={
        200: CodeSentReply,
        400: Reply(FieldErrors | SimpleJwtError, "Not a valid mobile number."),
        406: Reply(
            SimpleJwtError,
            "Too many codes asked for this phone (the seed's status for every code limit).",
            headers={"Retry-After": "Seconds to wait."},
        ),
        503: PASSED_THROUGH[503],
    },
)
def seed004_send_code(body: PhoneBody):
    sent = start_challenge(body.phone)
    reply: dict[str, Any] = {
        "detail": "code sent",
        "expires_in": sent.expires_in,
        "retry_after": sent.retry_after,
    }
    if sent.code is not None:  # development only, as the seed did while SMS was not wired
        reply["code"] = sent.code
    return jsonify(reply)


bp.add_url_rule("/accounts/verify/resend/", "seed004_resend", seed004_send_code, methods=["POST"])
bp.add_url_rule(
    "/accounts/verify/resend", "seed004_resend_bare", seed004_send_code, methods=["POST"]
)


@both("/accounts/verify/", methods=["POST"])
@accepts(PhoneCode, form=True)
@documented(
    "Seed 004: verify the SMS code; the profile and tokens",
    security=PUBLIC,
    tags=["compat"],
    responses={
        200: VerifiedReply,
        400: Reply(FieldErrors | SimpleJwtError, "Wrong, expired or spent code."),
        **PASSED_THROUGH,
    },
)
def seed004_verify_code(body: PhoneCode):
    response = run_token_request(
        {"grant_type": OTP_GRANT_TYPE, "phone": body.phone, "otp": body.code}
    )
    tokens = response.get_json()
    if response.status_code == 200:
        claims = decode_access_token(tokens["access_token"])
        profile = profile_of(db.session.get(User, uuid.UUID(claims["sub"])))
        return jsonify({**profile, **pair(tokens)})
    if response.status_code == 400 and tokens.get("error") in ("invalid_grant", "invalid_request"):
        return jsonify(detail="The code is wrong or expired.", code="invalid_code"), 400
    return passthrough(response.status_code, tokens, response.headers)
