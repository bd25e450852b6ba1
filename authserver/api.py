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

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, ValidationError

from authserver.bearer import BearerError
from authserver.errors import Conflict, InvalidField, NotFound, RateLimited
from authserver.extensions import db
from authserver.guard import MalformedInput

Model = TypeVar("Model", bound=BaseModel)
Row = TypeVar("Row")


class Schema(BaseModel):
    """Base of every request model: unknown fields are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ApiError(Exception):
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
        self.status, self.error, self.description = status, error, description
        self.fields, self.headers = fields, headers or {}


def error_response(error: ApiError) -> Response:
    body: dict[str, Any] = {"error": error.error, "error_description": error.description}
    if error.fields:
        body["fields"] = error.fields
    response = jsonify(body)
    response.status_code = error.status
    response.headers.update(error.headers)
    response.headers["Cache-Control"] = "no-store"
    return response


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


def _fields_of(error: ValidationError) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "body"
        message = "This field is required." if item["type"] == "missing" else item["msg"]
        fields.setdefault(name, []).append(message)
    return fields


def _validate(model: type[Model], data: Any) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ApiError(
            400, "invalid_request", "The request is invalid.", fields=_fields_of(error)
        ) from None


def json_body(model: type[Model]) -> Model:
    """The JSON object body as ``model``. An empty body counts as ``{}``."""
    if not request.get_data(cache=True):
        return _validate(model, {})
    if not request.is_json:
        raise ApiError(415, "invalid_request", "Send the body as application/json.")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", "The body is not a JSON object.")
    return _validate(model, data)


def query(model: type[Model]) -> Model:
    """The query string as ``model`` (each parameter once)."""
    for name, values in request.args.lists():
        if len(values) > 1:
            raise invalid(name, "Give this parameter once.")
    return _validate(model, request.args.to_dict())


def install(bp: Blueprint) -> None:
    """Answer this blueprint's failures in the API style."""

    @bp.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        db.session.rollback()  # nothing half-done is kept
        return error_response(error)

    @bp.errorhandler(MalformedInput)
    def malformed(error: MalformedInput) -> Response:
        return api_error(invalid(error.field, error.description))

    @bp.errorhandler(BearerError)
    def refused_token(error: BearerError) -> Response:
        db.session.rollback()
        return error_response(
            ApiError(
                error.status,
                error.error,
                error.description,
                headers={"WWW-Authenticate": error.challenge()},
            )
        )

    @bp.errorhandler(InvalidField)
    def invalid_field(error: InvalidField) -> Response:
        db.session.rollback()
        fields = {error.field: [error.description]}
        return error_response(ApiError(400, error.error, error.description, fields=fields))

    @bp.errorhandler(Conflict)
    def conflicting(error: Conflict) -> Response:
        db.session.rollback()
        return error_response(conflict(error.description, error.field))

    @bp.errorhandler(NotFound)
    def missing(error: NotFound) -> Response:
        db.session.rollback()
        return error_response(not_found(error.what))

    @bp.errorhandler(RateLimited)
    def rate_limited(error: RateLimited) -> Response:
        db.session.rollback()
        return error_response(
            ApiError(
                429,
                "too_many_requests",
                error.description,
                headers={"Retry-After": str(error.retry_after)},
            )
        )

    @bp.after_request
    def no_store(response: Response) -> Response:
        # Answers carry personal data, secrets shown once, session lists: never cached.
        response.headers["Cache-Control"] = "no-store"
        return response
