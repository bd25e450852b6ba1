"""What the browser sign-in tests stand on: a relying party built on a real OpenID
Connect client library, and a person who only sends the pages' forms.

``RelyingParty`` is a small web app on its own live server using Authlib's Flask client
(``authlib.integrations.flask_client``): it learns every endpoint from the issuer's
``/.well-known/openid-configuration``, sends the person to the authorization endpoint
with state, nonce and a PKCE S256 challenge, and on ``/callback`` exchanges the code
(with the verifier) and validates the ID token (signature from the JWKS, ``iss``,
``aud``, ``nonce``, expiry) before it answers what it learnt, as JSON.

``FormPerson`` is the same person as the browser test's, without a browser: it follows
redirects and posts the forms of the pages as they are (CSRF token and ticket
included), so the flow is always tested, with or without Chromium.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import jwt
import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, jsonify, request, url_for

from tests.conftest import LiveServer
from tests.helpers import committed
from tests.services import free_port

RP_SCOPE = "openid profile phone"


@dataclass
class Site:
    """authserver on a real socket (fixture ``site``), its issuer its own URL."""

    app: object
    url: str


def verify_id_token(site: Site, party: RelyingParty, id_token: str) -> dict:
    """The ID token checked by PyJWT against the JWKS the discovery document names."""
    metadata = requests.get(site.url + "/.well-known/openid-configuration", timeout=10).json()
    key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key_from_jwt(id_token)
    return jwt.decode(
        id_token,
        key.key,
        algorithms=["RS256"],
        audience=party.client_id,
        issuer=metadata["issuer"],
        options={"require": ["exp", "iat", "auth_time", "sub", "nonce"]},
    )


class RelyingParty:
    """A web app that signs its users in with authserver (confidential client)."""

    def __init__(self, issuer: str, scope: str = RP_SCOPE) -> None:
        self.issuer, self.scope = issuer, scope
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.redirect_uri = f"{self.url}/callback"
        self.post_logout_redirect_uri = f"{self.url}/signed-out"
        self.client_id: str | None = None
        self.client_secret: str | None = None
        self.results: list[dict] = []
        self._server: LiveServer | None = None

    def register(self, app, *, first_party: bool = False) -> None:
        """Register this app at authserver, as `authserver clients create` would."""
        from authserver.oauth.clients import create_client

        with committed(app):
            client, secret = create_client(
                name="Tenant portal",
                grant_types=["authorization_code", "refresh_token"],
                scope=self.scope,
                redirect_uris=[self.redirect_uri],
                post_logout_redirect_uris=[self.post_logout_redirect_uri],
                first_party=first_party,
                actor="tests",
            )
            self.client_id, self.client_secret = client.client_id, secret

    def __enter__(self) -> RelyingParty:
        assert self.client_id, "register() first"
        app = Flask("relying_party")
        app.secret_key = secrets.token_bytes(32)
        app.config["SESSION_COOKIE_NAME"] = "rp_session"
        oauth = OAuth(app)
        oauth.register(
            "authserver",
            client_id=self.client_id,
            client_secret=self.client_secret,
            server_metadata_url=self.issuer + "/.well-known/openid-configuration",
            client_kwargs={"scope": self.scope, "code_challenge_method": "S256"},
        )
        party = self

        @app.get("/login")
        def login():
            extra = {
                name: value
                for name, value in request.args.items()
                if name in ("prompt", "login_hint", "ui_locales", "max_age")
            }
            return oauth.authserver.authorize_redirect(url_for("callback", _external=True), **extra)

        @app.get("/callback")
        def callback():
            try:
                token = oauth.authserver.authorize_access_token()
            except OAuthError as error:
                result = {"error": error.error, "description": error.description}
                party.results.append(result)
                return jsonify(result), 400
            userinfo = oauth.authserver.userinfo(token=token)
            result = {
                "id_token": token["id_token"],
                "id_token_claims": dict(token["userinfo"]),
                "userinfo": dict(userinfo),
                "access_token": token["access_token"],
                "refresh_token": token.get("refresh_token"),
                "scope": token["scope"],
                "iss": request.args.get("iss"),
            }
            party.results.append(result)
            return jsonify(result)

        @app.get("/signed-out")
        def signed_out():
            return jsonify(signed_out=True, state=request.args.get("state"))

        self._server = LiveServer(app, self.port).__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.__exit__(*exc)


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: dict[str, str] = field(default_factory=dict)  # name -> value


class PageParser(HTMLParser):
    """The forms of a page and the id/for pairs an accessibility check needs."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.inputs: list[dict[str, str]] = []
        self.labels: set[str] = set()
        self.links: list[str] = []
        self.assets: list[str] = []
        self.scripts = 0
        self.alerts = 0
        self.html_attrs: dict[str, str] = {}

    def handle_starttag(self, tag, attrs) -> None:
        attrs = {name: value or "" for name, value in attrs}
        if tag == "html":
            self.html_attrs = attrs
        if tag == "form":
            self.forms.append(Form(attrs.get("action", ""), attrs.get("method", "get").lower()))
        if tag == "input":
            self.inputs.append(attrs)
            if self.forms and attrs.get("name"):
                self.forms[-1].fields[attrs["name"]] = attrs.get("value", "")
        if tag == "button" and self.forms and attrs.get("name"):
            self.forms[-1].buttons[attrs["name"]] = attrs.get("value", "")
        if tag == "label" and attrs.get("for"):
            self.labels.add(attrs["for"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag in ("link", "img", "script", "iframe") and (attrs.get("href") or attrs.get("src")):
            self.assets.append(attrs.get("href") or attrs.get("src"))
        if tag == "script" or any(name.startswith("on") for name in attrs):
            self.scripts += 1
        if attrs.get("role") == "alert":
            self.alerts += 1


def parse_page(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


class FormPerson:
    """Someone with a browser that has no JavaScript: follows links and posts forms."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.page: requests.Response | None = None

    def open(self, url: str, **params) -> requests.Response:
        self.page = self.session.get(url, params=params or None, timeout=30)
        return self.page

    @property
    def parsed(self) -> PageParser:
        assert self.page is not None
        return parse_page(self.page.text)

    def submit(self, values: dict[str, str] | None = None, *, index: int = 0, button=None):
        """Post form ``index`` of the current page with ``values`` typed in."""
        assert self.page is not None
        form = self.parsed.forms[index]
        data = {**form.fields, **(values or {})}
        if button:
            data[button[0]] = button[1]
        target = urljoin(self.page.url, form.action)
        self.page = self.session.post(target, data=data, timeout=30)
        return self.page


# --- the same, through Flask's test client ---------------------------------------------
def pkce() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge (RFC 7636 §4.1, §4.2)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def post_form(http, response, values: dict[str, str] | None = None, *, index=0, button=None):
    """Post form ``index`` of the page ``response`` (a Flask test response)."""
    form = parse_page(response.get_data(as_text=True)).forms[index]
    data = {**form.fields, **(values or {})}
    if button:
        data[button[0]] = button[1]
    return http.post(form.action, data=data)
