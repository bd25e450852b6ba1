"""The one place malformed values are turned away, before any view, query or ORM sees them.

Invariants, for every request the app routes:

- No string from the client holds a C0 control character other than tab, line feed and
  carriage return, DEL, or a lone surrogate: not in the path, the query, a form, a JSON
  body (keys and values), a header, nor in Basic credentials once decoded and
  percent-unquoted (RFC 6749 §2.3.1). PostgreSQL refuses a NUL in text; no database
  stores a lone surrogate; none of them belongs in any value this API takes.
- No JSON body nests deeper than ``MAX_JSON_DEPTH``; no JSON number is beyond 64 bits or
  not finite; no integer path variable is beyond a signed 64-bit integer.

A refusal raises ``MalformedInput`` (field, description); each answer style renders it as
its own 400: the default handler here answers RFC 6749 JSON, and ``api.install``, the
compatibility endpoints and the hosted pages register their own. JSON is checked while it
is parsed (``GuardedJSONProvider``): every ``request.get_json`` in any view goes through it.

As a last line, what the guard did not foresee and the database driver refuses (a
``DataError``, a NUL or a lone surrogate in a parameter, an integer SQLite cannot hold) or
the parser's ``RecursionError`` answers 400, logged as a warning so the gap is seen.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
from typing import Any
from urllib.parse import unquote

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from sqlalchemy.exc import DataError

from authserver.errors import MalformedInput, error_response
from authserver.extensions import db

log = logging.getLogger(__name__)

MAX_JSON_DEPTH = 32
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def check_text(field: str, value: str) -> None:
    if _FORBIDDEN.search(value):
        raise MalformedInput(field, "Control characters and lone surrogates are not allowed.")


def check_integer(field: str, value: int) -> None:
    if not INT64_MIN <= value <= INT64_MAX:
        raise MalformedInput(field, "The number is out of range.")


def check_json(data: Any) -> None:
    """Walk a parsed JSON document without recursion: depth, strings, numbers."""
    stack: list[tuple[str, Any, int]] = [("body", data, 1)]
    while stack:
        field, value, depth = stack.pop()
        if isinstance(value, str):
            check_text(field, value)
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            check_integer(field, value)
        elif isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise MalformedInput(field, f"JSON nested deeper than {MAX_JSON_DEPTH} levels.")
            if isinstance(value, dict):
                for key, item in value.items():
                    name = key if field == "body" else f"{field}.{key}"
                    check_text(name, key)
                    stack.append((name, item, depth + 1))
            else:
                stack.extend((field, item, depth + 1) for item in value)


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise MalformedInput("body", "The number is out of range.")
    return number


def _constant(name: str) -> float:
    raise MalformedInput("body", f"{name} is not JSON.")


class GuardedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, whose parsing refuses what ``check_json`` refuses. Depth is bounded
    by the C parser's recursion guard first (a RecursionError), then by ``check_json``."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            data = json.loads(s, parse_float=_finite, parse_constant=_constant, **kwargs)
        except RecursionError:
            raise MalformedInput(
                "body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels."
            ) from None
        check_json(data)
        return data


def check_request() -> None:
    """Before every view (an app-level before-request function)."""
    check_text("path", request.path)
    for name, value in (request.view_args or {}).items():
        if isinstance(value, int) and not isinstance(value, bool):
            check_integer(name, value)
    for name, value in request.args.items(multi=True):
        check_text(name, name)
        check_text(name, value)
    for name, value in request.headers.items():
        check_text(name, value)
    _check_basic_credentials(request.headers.get("Authorization", ""))
    if request.mimetype in FORM_TYPES:
        # Keep the raw body too: a JSON endpoint tells a form body from an empty one.
        request.get_data(cache=True)
        for name, value in request.form.items(multi=True):
            check_text(name, name)
            check_text(name, value)


def _check_basic_credentials(header: str) -> None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return  # not credentials at all: the endpoint answers it as it answers a wrong one
    if ":" not in decoded:
        return  # not a client id and secret: refused as such by the endpoint
    for part in decoded.split(":", 1):
        check_text("Authorization", part)
        check_text("Authorization", unquote(part))


def malformed_answer(error: MalformedInput) -> Response:
    """The RFC 6749 style (OAuth endpoints and any route without a style of its own)."""
    db.session.rollback()  # nothing half-written is kept
    return error_response(
        400, "invalid_request", error.description, headers={"Cache-Control": "no-store"}
    )


def _refused_by_the_database(error: Exception) -> Response:
    log.warning("input refused by the database or parser: %s", type(error).__name__)
    return malformed_answer(MalformedInput("body", "The request holds a malformed value."))


def _value_error(error: ValueError) -> Response:
    # psycopg2 raises a plain ValueError for a NUL in a parameter; any other ValueError
    # is a bug and stays a 500.
    if isinstance(error, UnicodeEncodeError) or "NUL (0x00)" in str(error):
        return _refused_by_the_database(error)
    raise error


def init_app(app: Flask) -> None:
    app.json = GuardedJSONProvider(app)
    # First of the app's before-request functions (ops puts its clock in front later):
    # nothing, a rate limit or an authentication included, sees an unchecked value.
    app.before_request_funcs.setdefault(None, []).insert(0, check_request)
    app.register_error_handler(MalformedInput, malformed_answer)
    app.register_error_handler(DataError, _refused_by_the_database)
    app.register_error_handler(RecursionError, _refused_by_the_database)
    app.register_error_handler(OverflowError, _refused_by_the_database)
    app.register_error_handler(ValueError, _value_error)
