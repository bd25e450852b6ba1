"""GET /openapi.json describes every route; GET /docs renders it from local assets only."""

from __future__ import annotations

import re
import uuid
from html.parser import HTMLParser
from typing import Literal

import pytest
from joserfc.jwk import ECKey
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from pydantic import BaseModel, Field

from authserver.accounts.services import create_user
from authserver.authorize.consents import grant_consent
from authserver.extensions import db
from authserver.oauth.clients import create_client
from authserver.oauth.models import Client
from authserver.openapi import NO_BODY, operation_of
from tests.conftest import PASSWORD, OAuthClient, build_app
from tests.own_api import ACCOUNT, ADMIN, bearer, sign_in

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


BODILESS_METHODS = {"get", "delete"}
NO_CONTENT = {"204", "304"}  # answers that never have a body


def completeness_problems(app, doc: dict) -> list[str]:
    """What each operation lacks: ``security``; an answer it succeeds with; a schema for
    every answer that has a body; ``Location`` on a redirect; a request body, unless its
    declaration says it reads none (``body=NO_BODY``)."""
    problems = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        path = FLASK_PARAMETER.sub(r"{\1}", rule.rule)
        for method in sorted(m.lower() for m in rule.methods - IGNORED):
            where = f"{method.upper()} {path}"
            operation = doc["paths"][path][method]
            if "security" not in operation:
                problems.append(f"{where}: no security")
            answers = operation["responses"]
            if not any(status[0] in "23" for status in answers):
                problems.append(f"{where}: no 2xx or 3xx answer")
            for status, answer in answers.items():
                redirect = status[0] == "3" and status not in NO_CONTENT
                if redirect and "Location" not in answer.get("headers", {}):
                    problems.append(f"{where}: {status} without Location")
                elif not redirect and status not in NO_CONTENT and not answer.get("content"):
                    problems.append(f"{where}: {status} without a schema")
            declared = operation_of(app.view_functions[rule.endpoint], method.upper())
            takes_none = declared is not None and declared.body is NO_BODY
            if method not in BODILESS_METHODS and "requestBody" not in operation and not takes_none:
                problems.append(f"{where}: no request body, and not declared NO_BODY")
    return problems


def test_every_operation_documents_its_schemas_and_security(app, http):
    """Schemas and security come from the declarations of each route (``@documented``,
    ``secured``); a route missing one fails here, named."""
    assert completeness_problems(app, document(http)) == []


def test_an_undeclared_route_is_named_as_incomplete(tmp_path, keys_dir):
    from flask import Blueprint

    from authserver.openapi import NO_BODY, documented

    extra = build_app(f"sqlite:///{tmp_path / 'extra.db'}", keys_dir)
    bp = Blueprint("extra", __name__)

    @bp.post("/extra/bare")
    def bare():
        return {}

    @bp.post("/extra/told")
    @documented("Act", body=NO_BODY, responses={204: None}, security=[])
    def told():
        return "", 204

    extra.register_blueprint(bp)
    problems = completeness_problems(extra, document(extra.test_client()))
    assert problems == [
        "POST /extra/bare: no security",
        "POST /extra/bare: no 2xx or 3xx answer",
        "POST /extra/bare: default without a schema",
        "POST /extra/bare: no request body, and not declared NO_BODY",
    ]


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


class Checked:
    """A test client whose every answer must be documented and fit its schema; it notes
    (path, method, status) of each answer it checked."""

    def __init__(self, app, http) -> None:
        self.http, self.doc, self.seen = http, document(http), set()
        self.urls = app.url_map.bind("localhost")

    def __call__(self, method: str, url: str, status: int, **options):
        response = self.http.open(url, method=method, **options)
        assert response.status_code == status, (method, url, response.status_code, response.data)
        rule, _ = self.urls.match(url.partition("?")[0], method=method, return_rule=True)
        path = FLASK_PARAMETER.sub(r"{\1}", rule.rule)
        if response.status_code != 204:
            assert_documented(self.doc, path, method.lower(), response)
        else:
            assert "204" in self.doc["paths"][path][method.lower()]["responses"], (method, url)
        self.seen.add((path, method.lower(), str(response.status_code)))
        return response.json if response.data else None

    def successes_not_seen(self, prefixes: tuple[str, ...]) -> set[tuple[str, str, str]]:
        documented = {
            (path, method, status)
            for path, item in self.doc["paths"].items()
            if path.startswith(prefixes)
            for method, operation in item.items()
            for status in operation["responses"]
            if status.startswith("2")
        }
        return documented - self.seen


@pytest.fixture
def admin_token(http, make_client, make_user) -> dict[str, str]:
    make_user("+33611111111", admin=True)
    console = make_client(grant_types=("password",), first_party=True, name="console")
    return bearer(sign_in(http, console, "+33611111111", resource=ADMIN)["access_token"])


# Rotating and revoking signing keys would change the suite's shared keys: the next test
# walks them in an app of its own.
KEY_CHANGES = {("/admin/keys/rotate", "post", "200"), ("/admin/keys/{kid}/revoke", "post", "200")}


def test_admin_and_account_answers_fit_their_documented_schemas(
    app, make_otp_app, gateway, make_client, user, admin_token
):
    """Every success the admin and account APIs document, reached through HTTP: each
    answer's body fits the schema /openapi.json gives for it (keys exactly)."""
    otp_app = make_otp_app()
    check = Checked(otp_app, otp_app.test_client())
    admin = {"headers": admin_token}

    check("GET", "/admin/permissions", 200, **admin)
    check("POST", "/admin/permissions", 201, json={"codename": "kept.view"}, **admin)
    permission = check("POST", "/admin/permissions", 201, json={"codename": "a.b"}, **admin)
    one = f"/admin/permissions/{permission['id']}"
    check("GET", one, 200, **admin)
    check("PATCH", one, 200, json={"name": "A b"}, **admin)
    check("DELETE", one, 204, **admin)

    check("GET", "/admin/groups", 200, **admin)
    kept = {"name": "Kept", "permissions": ["kept.view"]}
    check("POST", "/admin/groups", 201, json=kept, **admin)
    group = check("POST", "/admin/groups", 201, json={"name": "Staff"}, **admin)
    check("GET", f"/admin/groups/{group['id']}", 200, **admin)
    check("PATCH", f"/admin/groups/{group['id']}", 200, json={"name": "Crew"}, **admin)
    check("DELETE", f"/admin/groups/{group['id']}", 204, **admin)

    check("GET", "/admin/users?q=0612", 200, **admin)
    made = check("POST", "/admin/users", 201, json={"phone": "+33612000001"}, **admin)
    one = f"/admin/users/{made['id']}"
    check("GET", one, 200, **admin)
    check("PATCH", one, 200, json={"first_name": "Ada"}, **admin)
    check("PUT", one + "/groups", 200, json={"groups": ["Kept"]}, **admin)
    check("PUT", one + "/permissions", 200, json={"permissions": ["kept.view"]}, **admin)
    check("POST", one + "/block", 200, **admin)
    check("POST", one + "/unblock", 200, **admin)

    check("GET", "/admin/clients", 200, **admin)
    for public in (False, True):
        body = {"name": "app", "grant_types": ["password"], "public": public}
        client = check("POST", "/admin/clients", 201, json=body, **admin)
    client = check("POST", "/admin/clients", 201, json={**body, "public": False}, **admin)
    one = f"/admin/clients/{client['client_id']}"
    check("GET", one, 200, **admin)
    check("PATCH", one, 200, json={"name": "renamed"}, **admin)
    check("POST", one + "/rotate-secret", 200, **admin)
    check("POST", one + "/disable", 200, **admin)
    check("POST", one + "/enable", 200, **admin)
    check("GET", "/admin/keys", 200, **admin)
    check("GET", "/admin/audit?limit=200", 200, **admin)

    check("GET", "/admin/audiences", 200, **admin)
    key = ECKey.generate_key("P-256", private=True).as_dict(private=False)
    body = {"identifier": "https://api.example.com", "encryption_key": key}
    audience = check("POST", "/admin/audiences", 201, json=body, **admin)
    one = f"/admin/audiences/{audience['id']}"
    check("GET", one, 200, **admin)
    other_key = ECKey.generate_key("P-256", private=True).as_dict(private=False)
    check("PUT", one + "/encryption-key", 200, json={"encryption_key": other_key}, **admin)
    check("DELETE", one + "/encryption-key", 200, **admin)
    check("DELETE", one, 204, **admin)

    platform = make_client(first_party=True, name="platform app")
    other = sign_in(check.http, platform, resource=ACCOUNT)
    me = {"headers": bearer(sign_in(check.http, platform, resource=ACCOUNT)["access_token"])}
    check("GET", "/account/profile", 200, **me)
    with otp_app.app_context():
        partner = make_client(name="partner")
        grant_consent(uuid.UUID(user), db.session.get(Client, partner.client_id), "profile")
        db.session.commit()
    check("GET", "/account/consents", 200, **me)
    check("DELETE", f"/account/consents/{partner.client_id}", 200, **me)
    check("PATCH", "/account/profile", 200, json={"last_name": "Lovelace"}, **me)
    sessions = check("GET", "/account/sessions", 200, **me)["sessions"]
    (other_session,) = [s["id"] for s in sessions if not s["current"]]
    assert other["access_token"]
    check("DELETE", f"/account/sessions/{other_session}", 204, **me)
    check("POST", "/account/sessions/end-others", 200, **me)
    check("POST", "/account/code", 200, **me)
    change = {"current_password": PASSWORD, "new_password": "another good secret"}
    check("POST", "/account/password", 200, json=change, **me)
    new_phone = "+33698765432"
    start = {"phone": new_phone, "current_password": "another good secret"}
    check("POST", "/account/phone", 200, json=start, **me)
    confirm = {"phone": new_phone, "code": gateway.last_code(new_phone)}
    check("POST", "/account/phone/confirm", 200, json=confirm, **me)
    check("POST", "/account/logout", 204, **me)

    assert check.successes_not_seen(("/admin/", "/account/")) - KEY_CHANGES == set()


def test_signing_key_answers_fit_their_documented_schemas(tmp_path):

    own = build_app(f"sqlite:///{tmp_path / 'keys.db'}", tmp_path / "keys")
    with own.app_context():
        create_user("+33611111111", PASSWORD, admin=True)
        made, secret = create_client(
            name="console", grant_types=["password"], first_party=True, actor="tests"
        )
        db.session.commit()
        console = OAuthClient(made.client_id, secret)
    check = Checked(own, own.test_client())
    token = sign_in(check.http, console, "+33611111111", resource=ADMIN)["access_token"]
    admin = {"headers": bearer(token)}
    before = check("GET", "/admin/keys", 200, **admin)["keys"]
    rotated = check("POST", "/admin/keys/rotate", 200, json={"force": True}, **admin)
    (retired,) = [key["kid"] for key in before if key["state"] == "active"]
    assert rotated["retired"] == [retired]
    listed = check("GET", "/admin/keys", 200, **admin)["keys"]
    assert {key["state"] for key in listed} == {"active", "next", "retired"}
    check("POST", f"/admin/keys/{retired}/revoke", 200, **admin)
    assert check.seen >= KEY_CHANGES


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
