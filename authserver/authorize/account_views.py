"""``/account/consents``: the apps a user allowed, and withdrawing one (with a user's
Bearer access token, in the account API's style, authserver/api.py)."""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, Field

from authserver.api import install
from authserver.audiences.own import ACCOUNT_API
from authserver.authorize.consents import describe_consent, list_consents, withdraw_consent
from authserver.bearer import authenticate, current_user
from authserver.errors import ApiError
from authserver.openapi import api_errors, documented

CLIENT_ID = re.compile(r"[\w.:-]{1,64}")
bp = Blueprint("account_consents", __name__, url_prefix="/account")
install(bp)


class ConsentOut(BaseModel):
    client_id: str
    client_name: str
    scope: str = Field(description="The scopes allowed, space-separated.")
    granted_at: str = Field(description="When they were last widened (ISO 8601).")


class Consents(BaseModel):
    """The third-party apps the user allowed (first-party apps never ask)."""

    consents: list[ConsentOut]


class ConsentWithdrawn(BaseModel):
    sessions_revoked: int = Field(description="The user's sessions with that app, now ended.")


@bp.get("/consents")
@documented(
    "The apps I allowed",
    tags=["account"],
    responses={200: Consents},
)
@authenticate(ACCOUNT_API)
def consents() -> Response:
    user = current_user()
    return jsonify(consents=[describe_consent(row) for row in list_consents(user.id)])


@bp.delete("/consents/<client_id>")
@documented(
    "Withdraw what I allowed an app",
    description="The app asks again next time; its sessions (and so its tokens) end now.",
    tags=["account"],
    responses={200: ConsentWithdrawn, **api_errors(404)},
)
@authenticate(ACCOUNT_API)
def withdraw(client_id: str) -> Response:
    user = current_user()
    # Client ids are short printable text: anything else (a NUL would even break the
    # PostgreSQL query) names no consent.
    known = CLIENT_ID.fullmatch(client_id) is not None
    ended = withdraw_consent(user.id, client_id) if known else None
    if ended is None:
        raise ApiError(404, "not_found", "No consent for this app.")
    return jsonify(sessions_revoked=ended)
