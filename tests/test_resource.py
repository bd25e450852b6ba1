"""authserver.resource: offline verification in a downstream service, against a live
authserver over real HTTP (its issuer is its own live URL, so tokens verify as they would
in production)."""

from __future__ import annotations

import inspect
import json
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import jwt as pyjwt
import pytest
import requests
from flask import Flask, jsonify
from joserfc import jws, jwt
from sqlalchemy import delete

from authserver.resource import (
    AuthserverUnavailable,
    InsufficientScope,
    InvalidToken,
    RemoteJWKS,
    ResourceProtector,
    current_claims,
)
from tests.conftest import PASSWORD, LiveServer, build_app
from tests.helpers import committed
from tests.services import free_port

AUDIENCE = "urn:example:property-service"


class FakeClock:
    """A monotonic clock the test steps by hand (time-machine leaves monotonic alone)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Authserver:
    """A dedicated authserver app whose issuer is its own live URL, served over real HTTP
    and counting the requests it answers (path, status)."""

    def __init__(self, database_url: str, keys_dir, **overrides: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = build_app(
            database_url,
            keys_dir,
            issuer=self.url,
            access_token_audience=AUDIENCE,
            **overrides,
        )
        self.hits: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()
        self._server: LiveServer | None = None
        self.keys_changed = False

    def _counting(self, environ, start_response):
        def counted_start(status, headers, exc_info=None):
            with self._lock:
                self.hits[(environ["PATH_INFO"], int(status.split()[0]))] += 1
            return start_response(status, headers, exc_info)

        return self.app(environ, counted_start)

    def jwks_fetches(self, status: int | None = None) -> int:
        return sum(
            n
            for (path, code), n in self.hits.items()
            if path == "/.well-known/jwks.json" and status in (None, code)
        )

    def start(self) -> None:
        self._server = LiveServer(self._counting, port=self.port).__enter__()

    def stop(self) -> None:
        if self._server is not None:
            self._server.__exit__(None, None, None)
            self._server._server.server_close()  # refuse connections, as a stopped server does
            self._server = None

    # --- tokens ---

    def password_token(self, client, phone: str, **extra: str) -> str:
        response = requests.post(
            f"{self.url}/oauth/token",
            data={"grant_type": "password", "username": phone, "password": PASSWORD, **extra},
            headers=client.basic,
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        """A token signed with the real active key (to test checks beyond the signature)."""
        from authserver.context import keyring

        with self.app.app_context():
            snap = keyring().snapshot()
            key = snap.signing.get_by_kid(snap.active_kid)
        return jwt.encode(
            {"alg": "RS256", "kid": snap.active_kid, "typ": "at+jwt", **header}, claims, key
        )

    def active_kid(self) -> str:
        from authserver.context import keyring

        with self.app.app_context():
            return keyring().snapshot().active_kid

    # --- key lifecycle, through authserver's own services ---

    def rotate(self) -> None:
        from authserver.signing.services import rotate_signing_keys

        self.keys_changed = True
        with committed(self.app):
            if "force" in inspect.signature(rotate_signing_keys).parameters:
                rotate_signing_keys(actor="tests", force=True)
            else:
                rotate_signing_keys(actor="tests")

    def revoke(self, kid: str) -> None:
        from authserver.signing.services import revoke_key

        self.keys_changed = True
        with committed(self.app):
            revoke_key(kid, actor="tests")


def reset_signing_keys(*apps: Flask) -> None:
    """Back to one fresh active key, as conftest's wipe() leaves signing keys alone."""
    from authserver.context import keyring
    from authserver.extensions import db
    from authserver.signing.models import SigningKey
    from authserver.signing.services import ensure_active_key

    with committed(apps[0]):
        db.session.execute(delete(SigningKey))
        db.session.commit()
        ensure_active_key(actor="tests")
        db.session.remove()
    for app in apps:
        with app.app_context():
            keyring().invalidate()


@contextmanager
def running_authserver(server_app: Flask, database_url: str, keys_dir) -> Iterator[Authserver]:
    from authserver.extensions import db

    server = Authserver(database_url, keys_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        if server.keys_changed:
            reset_signing_keys(server.app, server_app)
        with server.app.app_context():
            db.engine.dispose()


@pytest.fixture
def authserver(app, database_url, keys_dir) -> Iterator[Authserver]:
    with running_authserver(app, database_url, keys_dir) as server:
        yield server


def protected_app(protect: ResourceProtector) -> Flask:
    service = Flask("downstream")

    @service.get("/read")
    @protect("properties.read")
    def read():
        return jsonify(sub=current_claims["sub"])

    return service


def garbage_kid_token(real_token: str) -> str:
    """The real token's claims and signature under a header naming an unknown kid."""
    _, payload, signature = real_token.split(".")
    header = {"alg": "RS256", "typ": "at+jwt", "kid": secrets.token_urlsafe(12)}
    return ".".join([_b64(json.dumps(header).encode()), payload, signature])


def _b64(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- tests ----------------------------------------------------------------------------


def test_importable_without_the_server_database_or_config():
    probe = "import json, sys, authserver.resource; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    loaded = set(json.loads(result.stdout))
    assert "authserver.resource" in loaded
    forbidden = {"flask_sqlalchemy", "sqlalchemy", "flask_migrate", "dotenv", "psycopg2"}
    forbidden |= {"authserver.config", "authserver.extensions", "authserver.context"}
    assert loaded & forbidden == set()
    assert not [m for m in loaded if m.startswith(("authserver.signing", "authserver.oauth"))]


def test_token_verified_offline_with_discovered_jwks(authserver, make_client, user):
    client = make_client()
    token = authserver.password_token(client, "0612975634")
    protect = ResourceProtector(issuer=authserver.url, audience=AUDIENCE)
    http = protected_app(protect).test_client()

    for _ in range(5):
        response = http.get("/read", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.json
        assert response.json == {"sub": user}
    # One discovery and one JWKS fetch served all five requests.
    assert authserver.hits[("/.well-known/oauth-authorization-server", 200)] == 1
    assert authserver.jwks_fetches() == 1

    # PyJWT, as docs/resource-servers.md shows it, agrees with the toolkit.
    jwks = pyjwt.PyJWKClient(f"{authserver.url}/.well-known/jwks.json", lifespan=300)
    assert pyjwt.get_unverified_header(token)["typ"] == "at+jwt"
    claims = pyjwt.decode(
        token,
        jwks.get_signing_key_from_jwt(token).key,
        algorithms=["RS256"],
        issuer=authserver.url,
        audience=AUDIENCE,
        leeway=30,
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )
    assert claims == protect.validator.verify(token, ["properties.read"])


def test_unknown_kids_cause_a_bounded_number_of_fetches(authserver, make_client, user):
    token = authserver.password_token(make_client(), "0612975634")
    clock = FakeClock()
    keys = RemoteJWKS(authserver.url, refetch_interval=30, clock=clock)
    protect = ResourceProtector(issuer=authserver.url, audience=AUDIENCE, keys=keys)
    assert protect.validator.verify(token)["sub"] == user
    assert authserver.jwks_fetches() == 1

    def attempt(_):
        with pytest.raises(InvalidToken) as caught:
            protect.validator.verify(garbage_kid_token(token))
        return caught.value.description

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(attempt, range(200)))
    assert set(answers) == {"The access token is signed with an unknown key."}
    assert authserver.jwks_fetches() == 2  # the first unknown kid refetched; no other did

    clock.advance(31)  # a new interval: one more refetch allowed, then quiet again
    for _ in range(20):
        attempt(None)
    assert authserver.jwks_fetches() == 3
    assert protect.validator.verify(token)["sub"] == user  # the good key still serves


def test_rotation_is_picked_up_at_once_and_old_tokens_still_verify(authserver, make_client, user):
    client = make_client()
    first = authserver.password_token(client, "0612975634")
    protect = ResourceProtector(issuer=authserver.url, audience=AUDIENCE)
    assert protect.validator.verify(first)["sub"] == user
    kids = [authserver.active_kid()]

    # The promoted key was published as ``next`` before: the cached JWKS already has it.
    authserver.rotate()
    second = authserver.password_token(client, "0612975634")
    kids.append(authserver.active_kid())
    assert protect.validator.verify(second)["sub"] == user
    assert authserver.jwks_fetches() == 1

    # Rotating again at once promotes a key this service has never seen: one refetch.
    authserver.rotate()
    third = authserver.password_token(client, "0612975634")
    kids.append(authserver.active_kid())
    assert [jws.extract_compact(t.encode()).headers()["kid"] for t in (first, second, third)] == (
        kids
    )
    assert len(set(kids)) == 3
    for token in (third, second, first):  # retired keys stay published until tokens expire
        assert protect.validator.verify(token)["sub"] == user
    assert authserver.jwks_fetches() == 2


def test_revoked_key_is_refused_once_the_cache_expires_and_at_once_by_introspection(
    authserver, make_client, user
):
    from authserver.oauth.clients import create_client

    client = make_client()
    old = authserver.password_token(client, "0612975634")
    old_kid = authserver.active_kid()
    clock = FakeClock()
    offline = ResourceProtector(
        issuer=authserver.url,
        audience=AUDIENCE,
        keys=RemoteJWKS(authserver.url, clock=clock),
    )
    with committed(authserver.app):
        rs, secret = create_client(
            name="property service",
            grant_types=["client_credentials"],
            resource_server=True,
            actor="tests",
        )
        rs_id = rs.client_id
    introspecting = ResourceProtector(
        issuer=authserver.url, audience=AUDIENCE, introspection=(rs_id, secret)
    )
    assert offline.validator.verify(old)["sub"] == user
    assert introspecting.validator.verify(old)["sub"] == user

    authserver.rotate()
    authserver.revoke(old_kid)

    with pytest.raises(InvalidToken) as caught:
        introspecting.validator.verify(old)
    assert caught.value.description == "The access token has been revoked."
    # Offline, the cached JWKS still holds the key until its max-age (documented)...
    assert offline.validator.verify(old)["sub"] == user
    clock.advance(301)  # ...authserver's JWKS max-age is 300 s
    with pytest.raises(InvalidToken) as caught:
        offline.validator.verify(old)
    assert caught.value.description == "The access token is signed with an unknown key."
    new = authserver.password_token(client, "0612975634")
    assert offline.validator.verify(new)["sub"] == user
    assert introspecting.validator.verify(new)["sub"] == user

    # Introspection with wrong credentials fails closed, as unavailable, not as the token.
    wrong = ResourceProtector(
        issuer=authserver.url, audience=AUDIENCE, introspection=(rs_id, "not-the-secret")
    )
    with pytest.raises(AuthserverUnavailable):
        wrong.validator.verify(new)


def test_introspection_mode_sees_a_revoked_access_token(authserver, make_client, user):
    from authserver.oauth.clients import create_client

    client = make_client()
    token = authserver.password_token(client, "0612975634")
    with committed(authserver.app):
        rs, secret = create_client(
            name="rs", grant_types=["client_credentials"], resource_server=True, actor="tests"
        )
        rs_id = rs.client_id
    offline = ResourceProtector(issuer=authserver.url, audience=AUDIENCE)
    introspecting = ResourceProtector(
        issuer=authserver.url, audience=AUDIENCE, introspection=(rs_id, secret)
    )
    revoked = requests.post(
        f"{authserver.url}/oauth/revoke",
        data={"token": token, "token_type_hint": "access_token"},
        headers=client.basic,
        timeout=10,
    )
    assert revoked.status_code == 200
    assert offline.validator.verify(token)["sub"] == user  # offline cannot know
    with pytest.raises(InvalidToken) as caught:
        introspecting.validator.verify(token)
    assert caught.value.description == "The access token has been revoked."


def test_jwks_is_revalidated_with_etag_after_max_age(authserver, make_client, user):
    token = authserver.password_token(make_client(), "0612975634")
    clock = FakeClock()
    protect = ResourceProtector(
        issuer=authserver.url, audience=AUDIENCE, keys=RemoteJWKS(authserver.url, clock=clock)
    )
    protect.validator.verify(token)
    clock.advance(299)
    protect.validator.verify(token)
    assert authserver.jwks_fetches() == 1  # fresh within max-age=300
    clock.advance(2)
    protect.validator.verify(token)
    assert authserver.jwks_fetches(200) == 1
    assert authserver.jwks_fetches(304) == 1  # If-None-Match answered 304: nothing refetched
    clock.advance(100)
    protect.validator.verify(token)
    assert authserver.jwks_fetches() == 2  # the 304 renewed the freshness


def test_cached_keys_keep_verifying_while_authserver_is_down(authserver, make_client, user):
    token = authserver.password_token(make_client(), "0612975634")
    clock = FakeClock()
    protect = ResourceProtector(
        issuer=authserver.url,
        audience=AUDIENCE,
        keys=RemoteJWKS(authserver.url, clock=clock, timeout=2),
    )
    http = protected_app(protect).test_client()
    bearer = {"Authorization": f"Bearer {token}"}
    assert http.get("/read", headers=bearer).status_code == 200
    authserver.stop()

    clock.advance(3600)  # long past max-age: the refresh fails, the stale set serves
    started = time.monotonic()
    for _ in range(20):
        response = http.get("/read", headers=bearer)
        assert response.status_code == 200, response.json
        assert response.json == {"sub": user}
    unknown = http.get("/read", headers={"Authorization": f"Bearer {garbage_kid_token(token)}"})
    assert unknown.status_code == 401
    assert 'error="invalid_token"' in unknown.headers["WWW-Authenticate"]
    assert time.monotonic() - started < 5  # no request waited on the dead server for long

    # A service that never reached authserver cannot verify anything: 503, not 401 or 500.
    cold = protected_app(ResourceProtector(issuer=authserver.url, audience=AUDIENCE))
    response = cold.test_client().get("/read", headers=bearer)
    assert response.status_code == 503
    assert response.json["error"] == "temporarily_unavailable"
    assert "Retry-After" in response.headers

    authserver.start()  # back again: the next refresh succeeds
    clock.advance(31)
    assert http.get("/read", headers=bearer).status_code == 200
    assert authserver.jwks_fetches(304) == 1


def test_metadata_naming_another_issuer_is_refused(authserver, make_client, user):
    token = authserver.password_token(make_client(), "0612975634")
    # Configured with a different spelling of the issuer: discovery must not trust it.
    lying = authserver.url.replace("127.0.0.1", "localhost")
    metadata_url = f"{authserver.url}/.well-known/oauth-authorization-server"
    protect = ResourceProtector(
        issuer=lying,
        audience=AUDIENCE,
        keys=RemoteJWKS(lying, metadata_url=metadata_url),
    )
    with pytest.raises(AuthserverUnavailable):
        protect.validator.verify(token)


def test_groups_scopes_and_entitlements_take_one_value_or_a_list(authserver):
    """A string is one value (a group name may hold spaces: never split into words or
    characters); a list is alternatives, any one of which will do."""
    now = int(time.time())

    def token(**claims: Any) -> str:
        return authserver.sign(
            {"iss": authserver.url, "aud": AUDIENCE, "sub": "someone", "client_id": "app",
             "jti": secrets.token_urlsafe(8), "iat": now, "exp": now + 300, **claims}
        )  # fmt: skip

    member = token(groups=["Admin User"], scope="p", entitlements=["properties.admin"])
    other = token(groups=["Admin", "User"], scope="properties.read", entitlements=["properties"])
    protect = ResourceProtector(issuer=authserver.url, audience=AUDIENCE)
    verify = protect.validator.verify

    assert verify(member, groups="Admin User")["sub"] == "someone"
    assert verify(other, groups=["Admin User", "Admin"])["sub"] == "someone"
    assert verify(other, "properties.read", entitlements=["x", "properties"])["sub"]
    assert verify(member, ["properties.read", "p"], entitlements="properties.admin")["sub"]
    refused = [
        lambda: verify(other, groups="Admin User"),  # not a member of "Admin User"
        lambda: verify(member, groups=["Admin", "User"]),
        lambda: verify(member, "properties.read"),  # its scope is "p": not its letters
        lambda: verify(other, entitlements="properties.admin"),
        lambda: verify(member, entitlements=("properties",)),
    ]
    for attempt in refused:
        with pytest.raises(InsufficientScope):
            attempt()

    service = Flask("groups")

    @service.get("/admins")
    @protect(groups="Admin User")
    def admins():
        return jsonify(sub=current_claims["sub"])

    http = service.test_client()
    assert http.get("/admins", headers={"Authorization": f"Bearer {member}"}).status_code == 200
    denied = http.get("/admins", headers={"Authorization": f"Bearer {other}"})
    assert denied.status_code == 403 and denied.json["error"] == "insufficient_scope"
