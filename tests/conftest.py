"""Fixtures: every storage test runs on SQLite and on a private PostgreSQL server."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import flask_migrate
import pytest
from sqlalchemy import text
from werkzeug.serving import make_server

from authserver import create_app
from authserver.accounts.services import create_user
from authserver.config import Settings
from authserver.extensions import db
from authserver.oauth.clients import create_client
from authserver.signing.services import ensure_active_key
from tests.helpers import PASSWORD, PHONE, committed
from tests.services import free_port, postgres_server, redis_server
from tests.sms_gateway import dispose

ISSUER = "http://127.0.0.1:8000"
# The ``user`` object of the seed login response, everywhere a user is shown.
USER_KEYS = {
    "id",
    "username",
    "email",
    "phone",
    "first_name",
    "last_name",
    "account_type",
    "is_active",
    "is_blocked",
    "groups",
    "permissions",
}


def django_pbkdf2(password: str, iterations: int = 20_000, salt: str = "s4ltS4ltS4lt") -> str:
    """A password hash as the Django services store it (``pbkdf2_sha256``)."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode()}"


def make_settings(database_url: str, keys_dir, **overrides: str) -> Settings:
    environ = {
        "AUTHSERVER_ENV": "testing",
        "AUTHSERVER_DATABASE_URL": database_url,
        "AUTHSERVER_KEYS_DIR": str(keys_dir),
        "AUTHSERVER_ISSUER": ISSUER,
        "AUTHSERVER_DEFAULT_REGION": "FR",
        **{f"AUTHSERVER_{k.upper()}": str(v) for k, v in overrides.items()},
    }
    return Settings.from_env(environ)


def build_app(database_url: str, keys_dir, **overrides: str):
    app = create_app(make_settings(database_url, keys_dir, **overrides))
    with committed(app):
        flask_migrate.upgrade()
        ensure_active_key(actor="tests")
    return app


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def keys_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'authserver.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def server_app(database_url, keys_dir):
    app = build_app(database_url, keys_dir)
    yield app
    with app.app_context():
        db.engine.dispose()


def wipe(app) -> None:
    """Empty every table but the signing keys (generating RSA keys per test is slow) and
    the revocation generation."""
    with app.app_context():
        # The revocation generation's one row stays too: without it nothing is cached
        # (authserver/oauth/revocation.py), and the tests would not exercise the cache.
        kept = {"signing_keys", "revocation_state"}
        tables = [t.name for t in reversed(db.metadata.sorted_tables) if t.name not in kept]
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                db.session.execute(text(f"DELETE FROM {table}"))
        db.session.commit()
        db.session.remove()
    # Rate-limit counters (failed logins, SMS budgets) would otherwise outlive the test.
    app.extensions["authserver.budgets"].storage.reset()


@pytest.fixture
def app(server_app):
    yield server_app
    wipe(server_app)


@pytest.fixture
def make_app(app, database_url, keys_dir):
    """Apps with settings of their own on the suite's database (``app`` wipes it after)."""
    built = []

    def factory(**overrides):
        built.append(build_app(database_url, keys_dir, **overrides))
        return built[-1]

    yield factory
    for each in built:
        dispose(each)


@pytest.fixture
def http(app):
    """Flask's test client: requests go through the whole WSGI app."""
    return app.test_client()


@dataclass
class OAuthClient:
    client_id: str
    secret: str | None

    @property
    def basic(self) -> dict[str, str]:
        raw = f"{self.client_id}:{self.secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.fixture
def make_client(app):
    def factory(
        grant_types=("password", "refresh_token", "client_credentials"),
        scope="profile properties.read",
        **options,
    ) -> OAuthClient:
        with committed(app):
            client, secret = create_client(
                name=options.pop("name", "test app"),
                grant_types=list(grant_types),
                scope=scope,
                actor="tests",
                **options,
            )
            created = OAuthClient(client.client_id, secret)
        return created

    return factory


@pytest.fixture
def make_user(app):
    def factory(phone: str = PHONE, password: str | None = PASSWORD, **fields):
        with committed(app):
            user = create_user(phone, password, **fields)
            db.session.flush()
            user_id = str(user.id)
        return user_id

    return factory


@pytest.fixture
def app_client(make_client) -> OAuthClient:
    return make_client()


@pytest.fixture
def user(make_user) -> str:
    return make_user()


@pytest.fixture
def password_login(http, app_client, user):
    """Sign the default user in with the password grant; return the token response."""

    def login(**extra) -> dict:
        response = http.post(
            "/oauth/token",
            data={
                "grant_type": "password",
                "username": "06 12 97 56 34",
                "password": PASSWORD,
                **extra,
            },
            headers=app_client.basic,
        )
        assert response.status_code == 200, response.json
        return response.json

    return login


@pytest.fixture
def account_login(http, make_client, user):
    """Sign the default user in to the account API (a first-party app asking for
    ``{issuer}/account``); return the token response."""
    platform_app = make_client(first_party=True, name="platform app")

    def login(**extra) -> dict:
        data = {"grant_type": "password", "username": PHONE, "password": PASSWORD}
        data["resource"] = ISSUER + "/account"
        response = http.post("/oauth/token", data={**data, **extra}, headers=platform_app.basic)
        assert response.status_code == 200, response.json
        return response.json

    return login


class LiveServer:
    def __init__(self, app, port: int | None = None) -> None:
        # A fixed port lets an app's AUTHSERVER_ISSUER name its own live URL.
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:
    """The app on a real socket, for clients that speak real HTTP (PyJWKClient, requests)."""
    with LiveServer(app) as server:
        yield server


@pytest.fixture(scope="module")
def gateway():
    """A real local HTTP server standing in for the SMS gateway (tests/sms_gateway.py)."""
    from tests.sms_gateway import SmsGateway

    with SmsGateway() as server:
        yield server


@pytest.fixture
def make_otp_app(app, database_url, keys_dir, gateway):
    """Apps on the suite's database (``app`` wipes it afterwards) sending to ``gateway``."""
    from tests.sms_gateway import build_otp_app, dispose

    gateway.reset()
    built = []

    def factory(**overrides):
        built.append(build_otp_app(database_url, keys_dir, gateway, **overrides))
        return built[-1]

    yield factory
    for each in built:
        dispose(each)


@pytest.fixture
def site(make_otp_app):
    """authserver on a real socket, its issuer its own URL, its SMS going to ``gateway``
    (the browser sign-in tests: tests/oidc_client.py)."""
    from tests.oidc_client import Site

    port = free_port()
    app = make_otp_app(issuer=f"http://127.0.0.1:{port}")
    with LiveServer(app, port) as server:
        yield Site(app, server.url)


@pytest.fixture
def relying_party(site):
    """A web app on Authlib's OpenID Connect client, registered as a third party."""
    from tests.oidc_client import RelyingParty

    party = RelyingParty(site.url)
    party.register(site.app)
    with party:
        yield party
