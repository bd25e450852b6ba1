"""Signing in for authserver's own APIs in tests: the audiences, and token requests that
ask for them with RFC 8707 ``resource`` (authserver/audiences/own.py)."""

from __future__ import annotations

from authserver.otp import OTP_GRANT_TYPE
from tests import helpers
from tests.conftest import ISSUER
from tests.helpers import PASSWORD, PHONE, bearer, token_response  # noqa: F401  (bearer: re-exported)

ACCOUNT = ISSUER + "/account"
ADMIN = ISSUER + "/admin"


def sign_in(http, client, phone=PHONE, password=PASSWORD, resource=ACCOUNT, **extra) -> dict:
    """The password grant's token answer, for ``resource`` (None: the default audience)."""
    if resource:
        extra["resource"] = resource
    return helpers.sign_in(http, client, phone, password, **extra)


def sign_in_by_code(http, client, gateway, phone=PHONE, resource=ACCOUNT) -> dict:
    """The OTP grant's token answer (``http`` of an app whose SMS go to ``gateway``)."""
    assert http.post("/oauth/otp", data={"phone": phone}).status_code == 200
    form = {"grant_type": OTP_GRANT_TYPE, "phone": phone, "otp": gateway.last_code(phone)}
    if resource:
        form["resource"] = resource
    response = token_response(http, client, **form)
    assert response.status_code == 200, response.json
    return response.json
