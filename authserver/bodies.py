"""The one way a JSON (or form) request body and a query string become a pydantic model.

``@accepts(Model)`` declares a view's body once: it validates the body with ``Model``,
hands the view the result as ``body=``, and describes the body in /openapi.json (the
decorator fills in the view's ``@documented`` body). ``parse_body`` and ``parse_query``
are the same parser for a view that reads its input itself.

A failure raises ``InvalidBody``; each family of views answers it in its own style
(``fields`` in the JSON API, RFC 6749's shape on ``/oauth/otp``, Django REST
Framework's on the seed endpoints):

- a body in a media type the endpoint does not take: status 415;
- JSON that is not an object: 400, no ``fields``;
- fields that do not fit: 400, ``fields`` = ``{"name": ["message", ...]}`` (``body``
  for the body as a whole). An empty body counts as ``{}``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from authserver.errors import InvalidBody
from authserver.openapi import ATTRIBUTE, Operation

Model = TypeVar("Model", bound=BaseModel)
View = TypeVar("View", bound=Callable[..., Any])

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
NOT_AN_OBJECT = "The body is not a JSON object."
REQUIRED = "This field is required."


def parse_body(model: type[Model], *, form: bool = False) -> Model:
    """The request body as ``model``: a JSON object, or (``form``) form data too."""
    return _validate(model, _body_data(form))


def parse_query(model: type[Model]) -> Model:
    """The query string as ``model`` (each parameter once)."""
    for name, values in request.args.lists():
        if len(values) > 1:
            raise InvalidBody({name: ["Give this parameter once."]})
    return _validate(model, request.args.to_dict())


def accepts(model: type[BaseModel], *, form: bool = False) -> Callable[[View], View]:
    """Validate the view's body with ``model`` (JSON, and form data with ``form``), pass it
    as ``body=``, and document it as the operation's request body."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def parsed(*args: Any, **kwargs: Any) -> Any:
            return view(*args, body=parse_body(model, form=form), **kwargs)

        operations = dict(getattr(view, ATTRIBUTE, {}))
        operation = operations.get("*", Operation())
        operations["*"] = dataclasses.replace(
            operation, body=model, form=model if form else None
        )
        setattr(parsed, ATTRIBUTE, operations)
        return parsed  # type: ignore[return-value]

    return decorate


def _body_data(form: bool) -> Any:
    if not request.get_data(cache=True):
        return {}
    if request.is_json:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise InvalidBody({}, description=NOT_AN_OBJECT)
        return data
    if form and request.mimetype in FORM_TYPES:
        return request.form.to_dict()
    raise InvalidBody(
        {},
        status=415,
        description="Send a JSON object or form data." if form else "Send the body as "
        "application/json.",
    )


def _validate(model: type[Model], data: Any) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidBody(fields_of(error)) from None


def fields_of(error: ValidationError) -> dict[str, list[str]]:
    """pydantic's errors as ``{"field": ["message", ...]}``."""
    fields: dict[str, list[str]] = {}
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]) or "body"
        message = REQUIRED if item["type"] == "missing" else item["msg"]
        fields.setdefault(name, []).append(message)
    return fields
