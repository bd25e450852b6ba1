"""Domain failures as exceptions, and the JSON answers for failures outside OAuth.

Services raise these; each family of views translates them into its own error style
(RFC 6749 on OAuth endpoints, the seeds' shapes on the compatibility endpoints).
"""

from __future__ import annotations

import logging

from authlib.oauth2.rfc6749.errors import InsecureTransportError
from flask import Flask, jsonify
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class AuthserverError(Exception):
    """Base of every failure a service reports to a view."""

    description = "request refused"

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description or self.description)
        self.description = description or self.description


class InvalidCredentials(AuthserverError):
    description = "Invalid phone number or password."


class AccountDisabled(AuthserverError):
    description = "This account is disabled."


class RefreshTokenInvalid(AuthserverError):
    description = "The refresh token is invalid, expired or revoked."


class RefreshTokenReused(RefreshTokenInvalid):
    """A rotated refresh token came back: its whole session has been revoked."""

    description = "The refresh token was already used; the session has been revoked."


class RefreshRaceLost(RefreshTokenInvalid):
    """Another request rotated this refresh token a moment ago (within the grace window)."""

    description = "The refresh token was just rotated by a concurrent request."


class ServiceUnavailable(AuthserverError):
    description = "A dependency is unavailable; try again shortly."


class RateLimited(AuthserverError):
    """A budget is spent; ``retry_after`` seconds until it allows the request again."""

    description = "Too many requests; try again later."

    def __init__(self, retry_after: int, description: str | None = None) -> None:
        super().__init__(description)
        self.retry_after = max(1, int(retry_after))


class TooManyFailedLogins(RateLimited):
    description = "Too many failed sign-in attempts; try again later."


class InvalidOtp(AuthserverError):
    """Wrong, expired, superseded, spent or exhausted code: one answer for all."""

    description = "The code is invalid or has expired."


class OtpRegionNotAllowed(AuthserverError):
    description = "Codes cannot be sent to numbers of this country."


class PasswordRejected(AuthserverError):
    description = "The new password must be 8 to 256 characters long."


class SmsDeliveryFailed(ServiceUnavailable):
    description = "The SMS could not be sent; try again shortly."


class InvalidField(AuthserverError):
    """One input is refused (400): ``field`` names it; ``error`` is the code."""

    def __init__(self, field: str, description: str, error: str = "invalid_request") -> None:
        super().__init__(description)
        self.field, self.error = field, error


class Conflict(AuthserverError):
    """The request clashes with the current state (409), e.g. a phone number taken."""

    def __init__(self, description: str, field: str | None = None) -> None:
        super().__init__(description)
        self.field = field


class NotFound(AuthserverError):
    """No such thing (404); ``what`` names it."""

    def __init__(self, what: str) -> None:
        super().__init__(f"No such {what}.")
        self.what = what


def register_error_handlers(app: Flask) -> None:
    """Every failure outside the OAuth endpoints answers JSON, never an HTML page."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        body = {"error": _slug(error.name), "error_description": error.description}
        response = jsonify(body)
        response.status_code = error.code or 500
        if error.code == 405 and error.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(InsecureTransportError)
    def insecure_transport(error: InsecureTransportError):
        return jsonify(error="invalid_request", error_description="HTTPS is required."), 400

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def database_unavailable(error: Exception):
        from authserver.extensions import db

        db.session.rollback()
        log.error("database error: %s", type(error.__cause__ or error).__name__)
        return _unavailable("The database is unavailable; try again shortly.")

    @app.errorhandler(RateLimited)
    def rate_limited(error: RateLimited):
        # Views answer their own 429s; this is the safety net for one that does not.
        response = jsonify(error="too_many_requests", error_description=error.description)
        response.status_code = 429
        response.headers["Retry-After"] = str(error.retry_after)
        return response

    @app.errorhandler(ServiceUnavailable)
    def service_unavailable(error: ServiceUnavailable):
        return _unavailable(error.description)


def _unavailable(description: str):
    response = jsonify(error="temporarily_unavailable", error_description=description)
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return response


def _slug(name: str) -> str:
    return name.lower().replace(" ", "_").replace("'", "")
