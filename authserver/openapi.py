"""The OpenAPI 3.1 document (``GET /openapi.json``), built from the app's own routes.

Every rule of ``app.url_map`` (but ``static``) appears, each method an operation. A view
tells more with ``@documented(...)``: the pydantic models that validate its requests
describe them, and the models of its answers describe those::

    @bp.post("/account/password")
    @documented(
        "Change my password",
        body=PasswordChange,
        responses={204: "Changed; every other session ended.", **api_errors(400, 401)},
        security=["bearer"],
    )
    def change_password(): ...

The decorator only attaches metadata: the view behaves exactly as before. A route
without it still appears, summarised from its docstring, with a generic response.
The document is built once per app, on first request, and served pre-encoded.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from importlib import metadata
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, request
from pydantic import BaseModel, Field, TypeAdapter

from authserver.context import OPENAPI_DOCUMENT, per_app

__all__ = [
    "NO_BODY",
    "PUBLIC",
    "ApiErrorBody",
    "Reply",
    "api_errors",
    "build_document",
    "documented",
    "init_app",
    "operation_of",
    "secured",
]

View = TypeVar("View", bound=Callable[..., Any])

OPENAPI_VERSION = "3.1.0"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
REF_TEMPLATE = "#/components/schemas/{model}"
ATTRIBUTE = "__openapi__"
SECURED_ATTRIBUTE = "__openapi_secured__"
IGNORED_METHODS = {"HEAD", "OPTIONS"}
MAX_SUMMARY = 80

# The names views use in ``security=[...]`` -> the scheme they stand for ("none": the
# operation also works without credentials, e.g. a public client at the token endpoint).
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "clientBasic": {
        "type": "http",
        "scheme": "basic",
        "description": "OAuth client authentication `client_secret_basic` (RFC 6749 §2.3.1): "
        "client_id and client_secret as the Basic user and password. Where an endpoint "
        "also accepts `client_secret_post`, the same values go in the form body instead "
        "(never both).",
    },
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from `POST /oauth/token` (RFC 9068 JWT, "
        "`typ: at+jwt`, RS256).",
    },
    "metricsToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "AUTHSERVER_METRICS_TOKEN, when the server sets one (then required).",
    },
    "browserSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": "authserver",
        "description": "The hosted pages' signed session cookie (`__Host-authserver` when "
        "the issuer is https): who is signed in to the browser, and the CSRF secret of "
        "its forms.",
    },
}
SECURITY_NAMES = {
    "client": "clientBasic",
    "bearer": "bearer",
    "browser": "browserSession",
    "metrics": "metricsToken",
    "none": None,
}
# ``security=PUBLIC``: the operation needs no credentials at all (OpenAPI ``security: []``).
PUBLIC: tuple[str, ...] = ()
REDIRECTS = {301, 302, 303, 307, 308}


class _NoBody:
    """``body=NO_BODY``: the operation reads no request body (a POST that acts on its
    path alone); said so that a test can tell it from a body left undocumented."""

    def __repr__(self) -> str:
        return "NO_BODY"


NO_BODY: Any = _NoBody()

TAG_DESCRIPTIONS = {
    "oauth": "OAuth 2 endpoints: token (RFC 6749), introspection (RFC 7662), revocation "
    "(RFC 7009), metadata (RFC 8414), userinfo. Errors take the RFC 6749 §5.2 shape.",
    "signing": "The public keys that verify access tokens.",
    "otp": "One-time codes sent by SMS.",
    "account": "Self-service with a user's Bearer access token.",
    "admin": "Administration: users, groups, clients, signing keys, audiences, audit log.",
    "compat": "The seed documents' endpoints, in their own request and error shapes "
    "(SimpleJWT / Django REST Framework).",
    "ops": "Liveness, readiness and metrics.",
    "docs": "This document and its human-readable rendering.",
    "pages": "The hosted sign-in pages (HTML, for a person in a browser): sign-in by "
    "password or SMS code, sign-up, password reset, consent. Forms need the page's CSRF "
    "token.",
}


# --- documentation models shared by every family of views -----------------------------
class ApiErrorBody(BaseModel):
    """Error of the account and admin APIs (authserver/api.py)."""

    error: str = Field(
        description="Machine-readable code: invalid_request, invalid_token, "
        "insufficient_scope, not_found, conflict, too_many_requests, …",
        examples=["invalid_request"],
    )
    error_description: str = Field(description="Human-readable explanation.")
    fields: dict[str, list[str]] | None = Field(
        default=None,
        description="Per-field messages when the body or query did not fit its schema.",
        examples=[{"email": ["Enter a valid email address."]}],
    )


@dataclass(frozen=True)
class Reply:
    """One documented response when a bare model or description is not enough."""

    model: Any = None  # a pydantic model, or any type pydantic can describe
    description: str | None = None
    media_type: str | tuple[str, ...] = JSON  # several: the same schema in each
    headers: Mapping[str, str] = field(default_factory=dict)  # name -> description


_API_ERROR_TEXT = {
    400: "The request is invalid (`fields` says which parameter and why).",
    401: "Missing, invalid, expired or revoked access token.",
    403: "The token lacks the permission or scope this needs.",
    404: "No such resource.",
    409: "Conflicts with the current state (e.g. a phone number already taken).",
    415: "The body is not JSON.",
}


def api_errors(*statuses: int) -> dict[int, Reply]:
    """The standard error responses of the account and admin APIs, for ``responses=``."""
    replies: dict[int, Reply] = {}
    for status in statuses:
        headers: dict[str, str] = {}
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        if status == 429:
            headers["Retry-After"] = "Seconds to wait before trying again."
        replies[status] = Reply(
            ApiErrorBody,
            _API_ERROR_TEXT.get(status, HTTPStatus(status).phrase),
            headers=headers,
        )
    return replies


# --- the decorator ---------------------------------------------------------------------
@dataclass(frozen=True)
class Operation:
    summary: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    body: Any = None
    form: Any = None
    query: type[BaseModel] | None = None
    responses: Mapping[int | str, Any] = field(default_factory=dict)
    security: tuple[str | tuple[str, tuple[str, ...]], ...] | None = None
    operation_id: str | None = None
    deprecated: bool = False


def documented(
    summary: str | None = None,
    *,
    description: str | None = None,
    tags: Sequence[str] = (),
    body: Any = None,
    form: Any = None,
    query: type[BaseModel] | None = None,
    responses: Mapping[int | str, Any] | None = None,
    security: Sequence[str] | None = None,
    operation_id: str | None = None,
    deprecated: bool = False,
    method: str | None = None,
) -> Callable[[View], View]:
    """Attach OpenAPI metadata to a view; its behaviour does not change.

    - ``body``: model of a JSON body; ``form``: of a form body (both: either is accepted);
      ``NO_BODY``: the operation reads none.
    - ``query``: model whose fields are the query parameters.
    - ``responses``: status -> a model (JSON body), a description, ``None`` (no body,
      the status phrase) or a ``Reply``. A redirect (3xx but 304) documents its
      ``Location`` header without being told.
    - ``security``: alternatives among ``"bearer"``, ``"client"`` (Basic client
      credentials), ``"browser"`` (the pages' session cookie) and ``"none"``
      (anonymous allowed); ``PUBLIC`` (empty): no credentials at all.
    - ``method``: for a view serving several methods, metadata for that one only
      (stack one decorator per method); otherwise it applies to all of them.
    """
    for name in security or ():
        if name not in SECURITY_NAMES:
            raise ValueError(f"unknown security {name!r}: one of {sorted(SECURITY_NAMES)}")
    operation = Operation(
        summary=summary,
        description=inspect.cleandoc(description) if description else None,
        tags=tuple(tags),
        body=body,
        form=form,
        query=query,
        responses=dict(responses or {}),
        security=tuple(security) if security is not None else None,
        operation_id=operation_id,
        deprecated=deprecated,
    )

    def attach(view: View) -> View:
        # A fresh dict: functools.wraps shares __dict__ values between a wrapper and the
        # view it wraps, and one must not edit the other's metadata.
        operations = dict(getattr(view, ATTRIBUTE, {}))
        key = method.upper() if method else "*"
        declared = operations.get(key)  # the body ``bodies.accepts`` declared, if any
        if declared is not None and operation.body is None and operation.form is None:
            operations[key] = replace(operation, body=declared.body, form=declared.form)
        else:
            operations[key] = operation
        setattr(view, ATTRIBUTE, operations)
        return view

    return attach


@dataclass(frozen=True)
class Secured:
    """What an authentication decorator adds to every operation of its view."""

    security: tuple[tuple[str, tuple[str, ...]], ...]  # (name, scopes) alternatives
    responses: Mapping[int | str, Any]


def secured(
    view: View, security: Sequence[tuple[str, Sequence[str]]], responses: Mapping[int | str, Any]
) -> View:
    """Mark ``view`` as needing ``security`` (names of ``SECURITY_NAMES`` with the scopes
    they need) and answering ``responses`` when it is missing (authserver/bearer.py). A
    view's own ``@documented`` answers win over these, whichever decorator is outside."""
    setattr(
        view,
        SECURED_ATTRIBUTE,
        Secured(tuple((name, tuple(scopes)) for name, scopes in security), dict(responses)),
    )
    return view


def operation_of(view: Callable[..., Any], method: str) -> Operation | None:
    """What ``@documented`` and an authentication decorator declared for ``method`` of
    ``view`` (None: nothing)."""
    view_class = getattr(view, "view_class", None)  # a Flask MethodView
    candidates = [getattr(view_class, method.lower(), None), view_class] if view_class else []
    found = None
    for candidate in [*candidates, view]:
        operations = getattr(candidate, ATTRIBUTE, None) or {}
        found = operations.get(method) or operations.get("*")
        if found is not None:
            break
    guard: Secured | None = getattr(view, SECURED_ATTRIBUTE, None)
    if guard is None:
        return found
    found = found or Operation()
    return replace(
        found,
        responses={**guard.responses, **found.responses},
        security=found.security if found.security is not None else guard.security,
    )


# --- building the document -------------------------------------------------------------
_PARAMETER = re.compile(
    r"<(?:(?P<converter>[A-Za-z_]\w*)(?:\((?P<args>[^)]*)\))?:)?(?P<name>[A-Za-z_]\w*)>"
)


def _path_and_parameters(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """Flask's ``/users/<uuid:id>`` as OpenAPI's ``/users/{id}`` and its parameters."""
    parameters = []
    for match in _PARAMETER.finditer(rule):
        parameters.append(
            {
                "name": match["name"],
                "in": "path",
                "required": True,
                "schema": _converter_schema(match["converter"] or "default", match["args"]),
            }
        )
    return _PARAMETER.sub(lambda match: "{" + match["name"] + "}", rule), parameters


def _converter_schema(converter: str, args: str | None) -> dict[str, Any]:
    if converter == "int":
        signed = bool(args and re.search(r"signed\s*=\s*True", args))
        return {"type": "integer"} if signed else {"type": "integer", "minimum": 0}
    if converter == "float":
        return {"type": "number"}
    if converter == "uuid":
        return {"type": "string", "format": "uuid"}
    if converter == "any" and args:
        return {"type": "string", "enum": [a.strip().strip("'\"") for a in args.split(",")]}
    if converter == "path":
        return {"type": "string", "description": "May contain slashes."}
    return {"type": "string"}


def _summary_of(view: Callable[..., Any], endpoint: str) -> tuple[str, str | None]:
    """(summary, description) from the docstring: its first sentence, and all of it."""
    doc = inspect.getdoc(view)
    if not doc or view.__doc__ is None:
        return endpoint.rpartition(".")[2].replace("_", " ").capitalize(), None
    paragraph = " ".join(doc.split("\n\n")[0].split())
    sentence = re.split(r"(?<=[.!?])\s", paragraph, maxsplit=1)[0].rstrip(".")
    if len(sentence) > MAX_SUMMARY:  # a sentence of explanation, not a title
        return endpoint.rpartition(".")[2].replace("_", " ").capitalize(), doc
    return sentence, doc if doc.rstrip(".") != sentence else None


def _is_type(value: Any) -> bool:
    return value is not None and not isinstance(value, str | Reply)


@dataclass
class _Schemas:
    """Every type the document mentions, described together so that names are unique."""

    types: list[tuple[Any, str]] = field(default_factory=list)
    schemas: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    components: dict[str, Any] = field(default_factory=dict)

    def want(self, value: Any, mode: str) -> None:
        if _is_type(value) and (value, mode) not in self.types:
            self.types.append((value, mode))

    def generate(self) -> None:
        inputs = [
            (index, mode, TypeAdapter(value)) for index, (value, mode) in enumerate(self.types)
        ]
        schemas, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF_TEMPLATE)
        self.schemas = {key: value for key, value in schemas.items()}  # type: ignore[misc]
        self.components = dict(sorted(definitions.get("$defs", {}).items()))

    def of(self, value: Any, mode: str) -> dict[str, Any]:
        return self.schemas[(self.types.index((value, mode)), mode)]

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        ref = schema.get("$ref", "")
        return self.components[ref.rpartition("/")[2]] if ref else schema


def _collect(operation: Operation, schemas: _Schemas) -> None:
    for value in (operation.body, operation.form, operation.query):
        if value is not NO_BODY:
            schemas.want(value, "validation")
    for value in operation.responses.values():
        schemas.want(value.model if isinstance(value, Reply) else value, "serialization")


def _request_body(operation: Operation, schemas: _Schemas) -> dict[str, Any] | None:
    content = {}
    for media_type, model in ((JSON, operation.body), (FORM, operation.form)):
        if model is not None and model is not NO_BODY:
            content[media_type] = {"schema": schemas.of(model, "validation")}
    if not content:
        return None
    required = any(schemas.resolve(item["schema"]).get("required") for item in content.values())
    return {"required": bool(required), "content": content}


def _query_parameters(model: type[BaseModel], schemas: _Schemas) -> list[dict[str, Any]]:
    resolved = schemas.resolve(schemas.of(model, "validation"))
    required = set(resolved.get("required", ()))
    parameters = []
    for name, schema in resolved.get("properties", {}).items():
        parameter = {"name": name, "in": "query", "required": name in required, "schema": schema}
        if "description" in schema:
            parameter["description"] = schema["description"]
        parameters.append(parameter)
    return parameters


def _response(status: int | str, value: Any, schemas: _Schemas) -> dict[str, Any]:
    reply = (
        value
        if isinstance(value, Reply)
        else Reply(
            model=value if _is_type(value) else None,
            description=value if isinstance(value, str) else None,
        )
    )
    description = reply.description
    if description is None and reply.model is not None and inspect.isclass(reply.model):
        description = inspect.getdoc(reply.model) if reply.model.__doc__ else None
    if description is None:
        description = _status_phrase(status)
    answer: dict[str, Any] = {"description": description}
    headers = dict(reply.headers)
    if str(status).isdigit() and int(status) in REDIRECTS:
        headers.setdefault("Location", "Where to go next.")
    if headers:
        answer["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    if reply.model is not None:
        media_types = (reply.media_type,) if isinstance(reply.media_type, str) else reply.media_type
        schema = schemas.of(reply.model, "serialization")
        answer["content"] = {media_type: {"schema": schema} for media_type in media_types}
    return answer


def _status_phrase(status: int | str) -> str:
    try:
        return HTTPStatus(int(status)).phrase
    except ValueError:
        return "Response"


def _security(names: Iterable[str | tuple[str, tuple[str, ...]]]) -> list[dict[str, list[str]]]:
    requirements: list[dict[str, list[str]]] = []
    for item in names:
        # OpenAPI 3.1 §4.8.30: the list of an http scheme names the roles (here the
        # token scopes) the operation needs.
        name, scopes = (item, ()) if isinstance(item, str) else item
        scheme = SECURITY_NAMES[name]
        requirements.append({scheme: list(scopes)} if scheme else {})
    return requirements


def _unique(candidate: str, taken: set[str]) -> str:
    unique, counter = candidate, 1
    while unique in taken:
        counter += 1
        unique = f"{candidate}_{counter}"
    taken.add(unique)
    return unique


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of ``app`` (not cached; see ``init_app``)."""
    routes = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - IGNORED_METHODS):
            routes.append((rule, method, view, operation_of(view, method)))

    schemas = _Schemas()
    for *_, operation in routes:
        if operation is not None:
            _collect(operation, schemas)
    schemas.generate()

    paths: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    tags: set[str] = set()
    for rule, method, view, operation in routes:
        path, parameters = _path_and_parameters(rule.rule)
        several = len((rule.methods or set()) - IGNORED_METHODS) > 1
        default_id = rule.endpoint.replace(".", "_") + (f"_{method.lower()}" if several else "")
        entry = {
            "operationId": _unique((operation and operation.operation_id) or default_id, taken),
            **_operation(rule.endpoint, method, view, operation or Operation(), schemas),
        }
        parameters += entry.pop("parameters", [])
        if parameters:
            entry["parameters"] = parameters
        tags.update(entry["tags"])
        paths.setdefault(path, {})[method.lower()] = entry

    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "authserver",
            "version": _version(),
            "description": "OAuth 2 authorization server: tokens (RFC 6749, RFC 9068 JWT "
            "access tokens), introspection, revocation, metadata, phone one-time codes, "
            "self-service and administration, and the seed documents' endpoints.",
        },
        "tags": [
            {
                "name": tag,
                **({"description": TAG_DESCRIPTIONS[tag]} if tag in TAG_DESCRIPTIONS else {}),
            }
            for tag in sorted(tags)
        ],
        "paths": paths,
        "components": {"schemas": schemas.components, "securitySchemes": SECURITY_SCHEMES},
    }


def _operation(
    endpoint: str, method: str, view: Callable[..., Any], operation: Operation, schemas: _Schemas
) -> dict[str, Any]:
    summary, description = _summary_of(view, endpoint)
    entry: dict[str, Any] = {
        "tags": list(operation.tags)
        or [endpoint.partition(".")[0] if "." in endpoint else "default"],
        "summary": operation.summary or summary,
    }
    if operation.description or description:
        entry["description"] = operation.description or description
    if operation.query is not None:
        entry["parameters"] = _query_parameters(operation.query, schemas)
    body = _request_body(operation, schemas)
    if body is not None:
        entry["requestBody"] = body
    entry["responses"] = {
        str(status): _response(status, value, schemas)
        for status, value in sorted(operation.responses.items(), key=lambda item: str(item[0]))
    } or {"default": {"description": "Not documented in detail yet."}}
    if operation.security is not None:
        entry["security"] = _security(operation.security)
    if operation.deprecated:
        entry["deprecated"] = True
    return entry


def _version() -> str:
    try:
        return metadata.version("authserver")
    except metadata.PackageNotFoundError:
        return "0.0.0"


# --- serving it --------------------------------------------------------------------------
bp = Blueprint("openapi", __name__)


class OpenApiDocument(BaseModel):
    """An OpenAPI 3.1 document (https://spec.openapis.org/oas/v3.1.0)."""

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


@bp.get("/openapi.json")
@documented(
    "This OpenAPI 3.1 document",
    tags=["docs"],
    responses={200: OpenApiDocument, 304: "Not modified (the ETag still matches)."},
    security=PUBLIC,
)
def openapi_json() -> Response:
    # Routes cannot change once the app serves requests: build once, keep the bytes.
    encoded = per_app(
        OPENAPI_DOCUMENT,
        lambda: json.dumps(build_document(current_app), separators=(",", ":")).encode(),
    )
    response = Response(encoded, mimetype=JSON)
    response.set_etag(hashlib.sha256(encoded).hexdigest()[:32])
    response.headers["Cache-Control"] = "no-cache"  # revalidate: cheap with the ETag
    return response.make_conditional(request)


def init_app(app: Flask) -> None:
    """Serve ``/openapi.json`` (``/docs`` renders it: authserver/docs_ui.py)."""
    app.register_blueprint(bp)
