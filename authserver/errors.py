"""Every exception authserver raises on purpose, under one base, ``AuthserverError``;
and the JSON answer for a failure (``error_response``, ``answer``).

Services raise these; each family of views answers them in its one style: RFC 6749
§5.2 bodies on the OAuth endpoints and ``/oauth/otp``, the same body with ``fields`` on
``/account`` and ``/admin`` (authserver/api.py), the seeds' shapes on the compatibility
endpoints (authserver/compat/views.py), HTML pages on the sign-in pages
(authserver/web/pages.py). The handlers here are the safety net for the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from authlib.oauth2.rfc6749.errors import InsecureTransportError
from flask import Flask, Response, jsonify
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from authserver.extensions import db

log = logging.getLogger(__name__)


class AuthserverError(Exception):
    """Base of every failure authserver raises on purpose.

    ``status`` and ``error`` are its answer in the JSON styles (RFC 6749 §5.2's
    ``{"error", "error_description"}``, which /account and /admin share); a family of
    views whose outside contract names another code translates in its one mapping."""

    description = "request refused"
    status = 400
    error = "invalid_request"

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description or self.description)
        self.description = description or self.description

    @property
    def headers(self) -> dict[str, str]:
        return {}


class ConfigError(AuthserverError):
    """A setting is missing, malformed or unsafe for the chosen environment."""

    description = "invalid configuration"


# --- requests answered as they come (views raise these; one handler per style answers)
class ApiError(AuthserverError):
    """An answer decided by a view: status, error code, description, and the input fields
    at fault (``{"name": ["message", ...]}``)."""

    def __init__(
        self,
        status: int,
        error: str,
        description: str,
        *,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.status, self.error = status, error
        self.fields, self._headers = fields, headers or {}

    @property
    def headers(self) -> dict[str, str]:
        return self._headers


class InvalidBody(AuthserverError):
    """A request body that does not fit its model: ``fields`` says which input and why
    (``body`` or ``non_field_errors``-style keys for the body as a whole); ``status``
    415 when it is not in a media type the endpoint takes."""

    description = "The request is invalid."

    def __init__(
        self, fields: dict[str, list[str]], *, status: int = 400, description: str | None = None
    ) -> None:
        super().__init__(description)
        self.fields, self.status = fields, status


class FormProblem(AuthserverError):
    """A page's form cannot be used: show the page again with these messages."""

    def __init__(self, status: int, fields: dict[str, str], summary: str | None = None):
        super().__init__(summary or "")
        self.status, self.fields, self.summary = status, fields, summary


class MalformedInput(AuthserverError):
    """A value no endpoint can use: answered 400 in the endpoint's style."""

    description = "The request holds a malformed value."

    def __init__(self, field: str, description: str) -> None:
        super().__init__(description)
        self.field = field


# --- accounts -------------------------------------------------------------------------
class InvalidCredentials(AuthserverError):
    description = "Invalid phone number or password."


class AccountDisabled(AuthserverError):
    description = "This account is disabled."
    status = 403
    error = "account_disabled"


class InvalidPhoneNumber(AuthserverError):
    """The text is not a valid phone number (or not a mobile one, where that matters)."""

    description = "This is not a valid mobile number."
    error = "invalid_phone_number"


class PasswordRejected(AuthserverError):
    description = "The new password must be 8 to 256 characters long."
    error = "invalid_password"


class InvalidAccountType(AuthserverError):
    """``account_type`` is not one of AUTHSERVER_ACCOUNT_TYPES."""


class UnknownNames(AuthserverError):
    """Groups or permissions named that do not exist."""

    def __init__(self, kind: str, names: list[str]) -> None:
        super().__init__(f"unknown {kind}: {', '.join(names)}")
        self.kind, self.names = kind, names


class ImportFileError(AuthserverError):
    """The file is not a Django dumpdata JSON list."""


# --- tokens and sessions --------------------------------------------------------------
class RefreshTokenInvalid(AuthserverError):
    description = "The refresh token is invalid, expired or revoked."
    error = "invalid_grant"


class RefreshTokenReused(RefreshTokenInvalid):
    """A rotated refresh token came back: its whole session has been revoked."""

    description = "The refresh token was already used; the session has been revoked."


class RefreshRaceLost(RefreshTokenInvalid):
    """Another request rotated this refresh token a moment ago (within the grace window)."""

    description = "The refresh token was just rotated by a concurrent request."


class InvalidAccessToken(AuthserverError):
    description = "The access token is invalid."
    status = 401
    error = "invalid_token"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class InvalidDpopProof(AuthserverError):
    """A DPoP proof that does not hold (RFC 9449 §7.1, §5): ``invalid_dpop_proof``;
    bearer.py answers its own at a resource."""

    description = "The DPoP proof is invalid."


# --- clients, redirect URIs, browser sign-in ------------------------------------------
class ClientError(AuthserverError):
    """The client cannot be registered as asked."""


class InvalidRedirectUri(ClientError):
    """A redirect URI that cannot be registered."""


class InvalidJwks(ClientError):
    """A client's JWKS cannot be registered: the message says why."""


class InvalidTicket(AuthserverError):
    """The ticket is forged, damaged or too old."""

    def __init__(self, expired: bool) -> None:
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


# --- audiences ------------------------------------------------------------------------
class AudienceError(AuthserverError):
    """A refused change. ``field`` names the input at fault; ``conflict``: it clashes with
    what exists (409) rather than being malformed (400)."""

    field: str | None = None
    conflict = False

    def __init__(self, description: str, field: str | None = None) -> None:
        super().__init__(description)
        if field is not None:
            self.field = field


class InvalidIdentifier(AudienceError):
    field = "identifier"


class InvalidEncryptionKey(AudienceError):
    field = "encryption_key"


class AudienceConflict(AudienceError):
    conflict = True
    status = 409
    error = "conflict"


class UnknownResource(AuthserverError):
    """A token request's ``resource`` is not an audience we issue tokens for."""

    error = "invalid_target"


# --- signing keys ---------------------------------------------------------------------
class KeyOperationError(AuthserverError):
    """A key operation that cannot be done (unknown kid, unsafe transition, bad PEM)."""


class RotationNotSafe(KeyOperationError):
    """Rotating now could sign tokens with a key that verifiers' cached JWKS lack."""

    status = 409
    error = "conflict"

    def __init__(self, message: str, safe_at: datetime | None) -> None:
        super().__init__(message)
        self.safe_at = safe_at


class KeyDecryptionError(AuthserverError):
    """The key-encryption key does not open a stored signing key."""


# --- one-time codes -------------------------------------------------------------------
class InvalidOtp(AuthserverError):
    """Wrong, expired, superseded, spent or exhausted code: one answer for all."""

    description = "The code is invalid or has expired."
    error = "invalid_code"


class OtpRegionNotAllowed(AuthserverError):
    description = "Codes cannot be sent to numbers of this country."
    error = "unsupported_region"


# --- limits and outages ---------------------------------------------------------------
class RateLimited(AuthserverError):
    """A budget is spent; ``retry_after`` seconds until it allows the request again."""

    description = "Too many requests; try again later."
    status = 429
    error = "too_many_requests"

    def __init__(self, retry_after: int, description: str | None = None) -> None:
        super().__init__(description)
        self.retry_after = max(1, int(retry_after))

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class TooManyFailedLogins(RateLimited):
    description = "Too many failed sign-in attempts; try again later."


class ServiceUnavailable(AuthserverError):
    description = "A dependency is unavailable; try again shortly."
    status = 503
    error = "temporarily_unavailable"

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class LimiterUnavailable(ServiceUnavailable):
    description = "The rate-limit storage is unreachable; try again shortly."


class SmsDeliveryFailed(ServiceUnavailable):
    description = "The SMS could not be sent; try again shortly."


class InvalidField(AuthserverError):
    """One input is refused (400): ``field`` names it; ``error`` is the code."""

    def __init__(self, field: str, description: str, error: str = "invalid_request") -> None:
        super().__init__(description)
        self.field, self.error = field, error
        self.fields = {field: [description]}


class Conflict(AuthserverError):
    """The request clashes with the current state (409), e.g. a phone number taken."""

    status = 409
    error = "conflict"

    def __init__(self, description: str, field: str | None = None) -> None:
        super().__init__(description)
        self.field = field
        self.fields = {field: [description]} if field else None


class NotFound(AuthserverError):
    """No such thing (404); ``what`` names it."""

    status = 404
    error = "not_found"

    def __init__(self, what: str) -> None:
        super().__init__(f"No such {what}.")
        self.what = what


# --- the JSON answer: every style but the seeds' and the pages' ---------------------------
def error_response(
    status: int,
    error: str,
    description: str,
    *,
    fields: dict[str, list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The one builder of ``{"error", "error_description", "fields"?}`` bodies: RFC 6749
    §5.2's shape, which the JSON API and every failure outside the seed endpoints share."""
    body: dict[str, Any] = {"error": error, "error_description": description}
    if fields:
        body["fields"] = fields
    response = jsonify(body)
    response.status_code = status
    if headers:
        response.headers.update(headers)
    return response


def answer(error: AuthserverError, headers: Mapping[str, str] | None = None) -> Response:
    """``error`` in the JSON style: its status, code, description, fields and headers."""
    return error_response(
        error.status,
        error.error,
        error.description,
        fields=getattr(error, "fields", None),
        headers={**error.headers, **(headers or {})},
    )


# --- RFC 6749 §5.2: the OAuth endpoints and /oauth/otp ----------------------------------
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> Response:
    """An RFC 6749 §5.2 error answer (never cached)."""
    return error_response(status, error, description, headers={**NO_STORE, **(headers or {})})


def oauth_answer(error: AuthserverError, description: str | None = None) -> Response:
    """``error`` as an RFC 6749 §5.2 answer: its status, code and headers; ``description``
    instead of its own where an endpoint has always said something else."""
    return oauth_error(
        error.status, error.error, description or _described(error), error.headers
    )


def _described(error: AuthserverError) -> str:
    fields = getattr(error, "fields", None)
    if not fields:
        return error.description
    return " ".join(f"'{name}': {' '.join(messages)}" for name, messages in fields.items())


def register_error_handlers(app: Flask) -> None:
    """Every failure outside the OAuth endpoints answers JSON, never an HTML page."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        headers = {}
        if error.code == 405 and error.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return error_response(
            error.code or 500, _slug(error.name), error.description or "", headers=headers
        )

    @app.errorhandler(InsecureTransportError)
    def insecure_transport(error: InsecureTransportError) -> Response:
        return error_response(400, "invalid_request", "HTTPS is required.")

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def database_unavailable(error: Exception) -> Response:
        db.session.rollback()
        log.error("database error: %s", type(error.__cause__ or error).__name__)
        return answer(ServiceUnavailable("The database is unavailable; try again shortly."))

    # Views answer in their own style; this is the safety net for a failure one leaves.
    app.register_error_handler(AuthserverError, answer)


def _slug(name: str) -> str:
    return name.lower().replace(" ", "_").replace("'", "")
