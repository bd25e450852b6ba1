"""GET /openapi.json describes every route; GET /docs renders it from local assets only."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Literal

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from pydantic import BaseModel, Field

from tests.conftest import PASSWORD, build_app

IGNORED = {"HEAD", "OPTIONS"}
FLASK_PARAMETER = re.compile(r"<(?:[^<>:]+:)?([^<>:]+)>")


def document(http) -> dict:
    response = http.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.json


def registered_operations(app) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every rule of the app but static files."""
    operations = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        path = FLASK_PARAMETER.sub(r"{\1}", rule.rule)
        operations |= {(path, method.lower()) for method in rule.methods - IGNORED}
    return operations


def documented_operations(doc: dict) -> set[tuple[str, str]]:
    return {(path, method) for path, item in doc["paths"].items() for method in item}


def resolve(doc: dict, schema: dict) -> dict:
    name = schema.get("$ref", "").rpartition("/")[2]
    return doc["components"]["schemas"][name] if name else schema


def assert_documented(doc: dict, path: str, method: str, response) -> None:
    """The real answer has a documented status, and its body fits the documented schema."""
    operation = doc["paths"][path][method]
    documented = operation["responses"].get(str(response.status_code))
    assert documented, f"{method.upper()} {path}: status {response.status_code} not documented"
    schema = documented["content"][response.mimetype]["schema"]
    body = response.json
    # "#/components/..." references resolve against the root of the schema.
    Draft202012Validator({**schema, "components": doc["components"]}).validate(body)
    target = resolve(doc, schema)
    if isinstance(body, dict) and "properties" in target and not target.get("additionalProperties"):
        assert set(body) <= set(target["properties"]), f"undocumented keys in {path}"


# --- the document ----------------------------------------------------------------------


def test_document_is_valid_openapi_3_1(http):
    doc = document(http)
    assert doc["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(doc).validate()


def test_document_lists_every_registered_route_and_method(app, http):
    registered = registered_operations(app)
    assert ("/oauth/token", "post") in registered  # the comparison is not vacuous
    assert documented_operations(document(http)) == registered


def test_every_operation_has_a_response_and_a_unique_id(http):
    doc = document(http)
    ids = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            assert operation["responses"], f"{method} {path}"
            assert operation["summary"], f"{method} {path}"
            ids.append(operation["operationId"])
    assert len(ids) == len(set(ids))


def test_document_is_cached_and_revalidated_by_etag(http):
    first = http.get("/openapi.json")
    again = http.get("/openapi.json", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert http.get("/openapi.json").data == first.data


def test_security_schemes_and_their_use(http):
    doc = document(http)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["clientBasic"] == {**schemes["clientBasic"], "type": "http", "scheme": "basic"}
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["bearer"]["bearerFormat"] == "JWT"
    paths = doc["paths"]
    # Public clients authenticate with client_id alone: anonymous is an alternative.
    assert paths["/oauth/token"]["post"]["security"] == [{"clientBasic": []}, {}]
    assert paths["/oauth/introspect"]["post"]["security"] == [{"clientBasic": []}]
    # An http scheme's list names the roles needed (OpenAPI 3.1): here token scopes.
    assert paths["/oauth/userinfo"]["get"]["security"] == [{"bearer": ["openid"]}]
    assert paths["/accounts/profile/"]["get"]["security"] == [{"bearer": []}]
    assert paths["/account/profile"]["get"]["security"] == [{"bearer": ["authserver:account"]}]
    assert paths["/admin/users"]["get"]["security"] == [{"bearer": ["authserver:admin"]}]


def test_token_endpoint_documents_the_registered_grants(app, http):
    doc = document(http)
    form = doc["paths"]["/oauth/token"]["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"
    ]["schema"]
    properties = resolve(doc, form)["properties"]
    grant_types = properties["grant_type"]["enum"]
    assert sorted(grant_types) == sorted(app.extensions["authserver.grant_types"])
    assert "urn:authserver:params:oauth:grant-type:otp" in grant_types
    for name in ("username", "password", "refresh_token", "scope", "device_name"):
        assert name in properties
    for name in ("client_id", "client_secret", "phone", "otp"):
        assert name in properties


def test_oauth_errors_are_documented_in_the_rfc_6749_shape(http):
    doc = document(http)
    for path in ("/oauth/token", "/oauth/introspect", "/oauth/revoke"):
        for status in ("400", "401", "415"):
            schema = doc["paths"][path]["post"]["responses"][status]["content"]["application/json"][
                "schema"
            ]
            error = resolve(doc, schema)
            assert error["required"] == ["error"], (path, status)
            assert {"error", "error_description"} <= set(error["properties"])


# --- real answers fit the document ---------------------------------------------------


def test_oauth_answers_fit_their_documented_schemas(http, app_client, user):
    doc = document(http)
    login = {"grant_type": "password", "username": "0612975634", "password": PASSWORD}
    response = http.post("/oauth/token", data=login, headers=app_client.basic)
    assert response.status_code == 200
    assert_documented(doc, "/oauth/token", "post", response)
    tokens = response.json

    wrong = http.post("/oauth/token", data={**login, "password": "wrong"}, headers=app_client.basic)
    assert wrong.status_code == 400
    assert_documented(doc, "/oauth/token", "post", wrong)
    as_json = http.post("/oauth/token", json=login, headers=app_client.basic)
    assert as_json.status_code == 415
    assert_documented(doc, "/oauth/token", "post", as_json)
    unknown_client = http.post("/oauth/token", data={**login, "client_id": "nobody"})
    assert unknown_client.status_code == 401
    assert_documented(doc, "/oauth/token", "post", unknown_client)

    for token in (tokens["access_token"], tokens["refresh_token"]):
        response = http.post("/oauth/introspect", data={"token": token}, headers=app_client.basic)
        assert response.json["active"] is True
        assert_documented(doc, "/oauth/introspect", "post", response)

    bearer = {"Authorization": "Bearer " + tokens["access_token"]}
    assert_documented(doc, "/oauth/userinfo", "get", http.get("/oauth/userinfo", headers=bearer))
    anonymous = http.get("/oauth/userinfo")
    assert anonymous.status_code == 401
    assert_documented(doc, "/oauth/userinfo", "get", anonymous)

    revoked = http.post(
        "/oauth/revoke", data={"token": tokens["refresh_token"]}, headers=app_client.basic
    )
    assert revoked.status_code == 200
    assert_documented(doc, "/oauth/revoke", "post", revoked)

    for path in ("/.well-known/oauth-authorization-server", "/.well-known/jwks.json"):
        assert_documented(doc, path, "get", http.get(path))


def test_seed_answers_fit_their_documented_schemas(http, user):
    doc = document(http)
    login = {"phone": "0612975634", "password": PASSWORD}
    response = http.post("/api/auth/login/", json=login)
    assert response.status_code == 200
    assert_documented(doc, "/api/auth/login/", "post", response)
    tokens = response.json
    failure = http.post("/api/auth/token", json={**login, "password": "wrong"})
    assert failure.status_code == 401
    assert_documented(doc, "/api/auth/token", "post", failure)
    seed003 = http.post("/api/login/", json={"username": "0612975634", "password": "wrong"})
    assert seed003.status_code == 401
    assert_documented(doc, "/api/login/", "post", seed003)

    bearer = {"Authorization": "Bearer " + tokens["access"]}
    assert_documented(
        doc, "/accounts/profile/", "get", http.get("/accounts/profile/", headers=bearer)
    )
    verified = http.post("/auth/token/verify/", json={"token": tokens["access"]})
    assert_documented(doc, "/auth/token/verify/", "post", verified)
    refreshed = http.post("/accounts/refresh/", json={"refresh": tokens["refresh"]})
    assert_documented(doc, "/accounts/refresh/", "post", refreshed)
    logout = http.post("/accounts/logout/", json={"refresh": refreshed.json["refresh"]})
    assert logout.status_code == 200
    assert_documented(doc, "/accounts/logout/", "post", logout)


def test_seed_bodies_are_documented_by_the_models_that_validate_them(http):
    """An empty body is refused for exactly the fields the document says are required."""
    doc = document(http)
    checked = 0
    for path, item in doc["paths"].items():
        operation = item.get("post")
        if not operation or operation["tags"] != ["compat"]:
            continue
        schema = resolve(doc, operation["requestBody"]["content"]["application/json"]["schema"])
        response = http.post(path, json={})
        assert response.status_code == 400, path
        assert_documented(doc, path, "post", response)
        assert set(response.json) == set(schema["required"]), path
        checked += 1
    assert checked >= 10


# --- routes added later -----------------------------------------------------------------


class Filter(BaseModel):
    state: Literal["open", "closed"] = Field(description="Which things.")
    limit: int = 20


class Thing(BaseModel):
    """A thing."""

    name: str = Field(min_length=1)


def test_new_routes_appear_documented_or_not(tmp_path, keys_dir):
    from flask import Blueprint

    from authserver.openapi import api_errors, documented

    app = build_app(f"sqlite:///{tmp_path / 'extra.db'}", keys_dir)
    bp = Blueprint("extra", __name__)

    @bp.get("/extra/things/<int:thing_id>/parts/<uuid:part_id>")
    def undocumented(thing_id: int, part_id):
        """Show one part. More words that are not the summary."""
        return {}

    @bp.route("/extra/things", methods=["GET", "POST"])
    @documented(
        "Make a thing", body=Thing, responses={201: Thing, **api_errors(400)}, method="POST"
    )
    @documented("List things", query=Filter, responses={200: list[Thing]}, method="GET")
    def things():
        return {}

    app.register_blueprint(bp)
    http = app.test_client()
    doc = document(http)
    OpenAPIV31SpecValidator(doc).validate()
    assert documented_operations(doc) == registered_operations(app)

    bare = doc["paths"]["/extra/things/{thing_id}/parts/{part_id}"]["get"]
    assert bare["summary"] == "Show one part"
    assert bare["tags"] == ["extra"]
    assert bare["responses"] == {"default": {"description": "Not documented in detail yet."}}
    assert {p["name"]: p["schema"] for p in bare["parameters"]} == {
        "thing_id": {"type": "integer", "minimum": 0},
        "part_id": {"type": "string", "format": "uuid"},
    }

    listing = doc["paths"]["/extra/things"]["get"]
    assert listing["summary"] == "List things"
    parameters = {p["name"]: p for p in listing["parameters"]}
    assert parameters["state"]["required"] is True
    assert parameters["state"]["schema"]["enum"] == ["open", "closed"]
    assert parameters["limit"]["required"] is False
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Thing"},
    }
    making = doc["paths"]["/extra/things"]["post"]
    assert making["requestBody"]["required"] is True
    assert making["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Thing"
    }
    error = making["responses"]["400"]["content"]["application/json"]["schema"]
    assert set(resolve(doc, error)["properties"]) == {"error", "error_description", "fields"}
    assert listing["operationId"] != making["operationId"]


def test_documented_leaves_the_view_unchanged():
    from authserver.openapi import documented

    def view():
        return "same"

    assert documented("A view", responses={200: "ok"})(view) is view
    assert view() == "same"
    with pytest.raises(ValueError, match="unknown security"):
        documented(security=["cookie"])


# --- /docs ------------------------------------------------------------------------------


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.spec_url: str | None = None
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        self.urls += [attrs[name] for name in ("src", "href") if attrs.get(name)]
        if "data-spec-url" in attrs:
            self.spec_url = attrs["data-spec-url"]
        if tag == "script":
            self._in_script = True
            self.inline_scripts += "src" not in attrs
        if any(name.startswith("on") for name in attrs) or "style" in attrs:
            self.inline_scripts += 1

    def handle_endtag(self, tag) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
}


def test_docs_page_uses_only_local_assets_that_are_served(http):
    response = http.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "connect-src 'self';" in csp

    page = Page()
    page.feed(response.get_data(as_text=True))
    assert page.inline_scripts == 0
    assert page.spec_url == "/openapi.json"
    assert len(page.urls) >= 4
    for url in page.urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = http.get(url)
        assert asset.status_code == 200, url
        suffix = url[url.rfind(".") :]
        assert asset.mimetype == CONTENT_TYPES[suffix], url
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
    scripts = {
        url.rpartition("/")[2]: http.get(url).get_data(as_text=True)
        for url in page.urls
        if url.endswith(".js")
    }
    # Swagger UI itself, started on our document, with no outside validator badge.
    assert "SwaggerUIBundle" in scripts["swagger-ui-bundle.js"]
    assert "data-spec-url" in scripts["docs.js"] and "validatorUrl: null" in scripts["docs.js"]
    assert http.get(page.spec_url).json["openapi"] == "3.1.0"


def test_docs_serves_only_its_own_files(http):
    assert http.get("/docs/static/swagger-editor-bundle.js").status_code == 404
    assert http.get("/docs/static/nothing.js").status_code == 404
    assert http.get("/docs/static/../__init__.py").status_code == 404
