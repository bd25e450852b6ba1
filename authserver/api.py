"""The JSON style of the account and admin APIs (``/account/...``, ``/admin/...``).

Requests are validated by pydantic models (the same ones the OpenAPI document is built
from); every failure answers ``{"error", "error_description", "fields"?}``:

- 400 ``invalid_request`` with ``fields`` (``{"name": ["message", ...]}``) for a body or
  query that does not fit its model; 415 for a body that is not JSON;
- 401 / 403 from the Bearer check of authserver/bearer.py, with its ``WWW-Authenticate``
  challenge (``invalid_token``, ``insufficient_user_authentication``,
  ``insufficient_scope``); 404, 409 as they come.
"""

from __future__ import annotations

from typing import Any, TypeVar

from flask import Blueprint, Response
from pydantic import BaseModel, ConfigDict

from authserver.bodies import parse_body, parse_query
from authserver.errors import ApiError, AuthserverError, MalformedInput, answer
from authserver.extensions import db

Model = TypeVar("Model", bound=BaseModel)
Row = TypeVar("Row")


class Schema(BaseModel):
    """Base of every request model: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"No such {what}.")


def get_or_404(model: type[Row], key: Any, what: str) -> Row:
    """The row of ``model`` with primary key ``key``, or a 404 naming ``what``."""
    row = db.session.get(model, key)
    if row is None:
        raise not_found(what)
    return row


def conflict(description: str, field: str | None = None) -> ApiError:
    fields = {field: [description]} if field else None
    return ApiError(409, "conflict", description, fields=fields)


def invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_request", "The request is invalid.", fields={field: [message]})


def json_body(model: type[Model]) -> Model:
    """The JSON object body as ``model`` (authserver/bodies.py). An empty body counts as
    ``{}``."""
    return parse_body(model)


def query(model: type[Model]) -> Model:
    """The query string as ``model`` (each parameter once)."""
    return parse_query(model)


def install(bp: Blueprint) -> None:
    """Answer this blueprint's failures in the API style."""

    @bp.errorhandler(AuthserverError)
    def api_error(error: AuthserverError) -> Response:
        db.session.rollback()  # nothing half-done is kept
        return answer(error)

    @bp.errorhandler(MalformedInput)
    def malformed(error: MalformedInput) -> Response:
        return api_error(invalid(error.field, error.description))

    @bp.after_request
    def no_store(response: Response) -> Response:
        # Answers carry personal data, secrets shown once, session lists: never cached.
        response.headers["Cache-Control"] = "no-store"
        return response
