"""Dependency outages: PostgreSQL or Redis stops and comes back while the app runs.

Each test starts its own servers (tests.services.PostgresCluster / RedisProcess): the
suite's shared ones are never stopped."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import redis
from flask import Flask
from sqlalchemy import func, select

from authserver import create_app, extensions
from authserver.extensions import db
from authserver.limits import limiter
from tests.conftest import PASSWORD, PHONE, build_app, make_settings
from tests.helpers import committed
from tests.services import PostgresCluster, RedisProcess

LOGIN = {"grant_type": "password", "username": PHONE, "password": PASSWORD}


def unavailable(response) -> None:
    """A clean 503: JSON, Retry-After, never a 500."""
    assert response.status_code == 503, (response.status_code, response.data)
    assert response.json["error"] == "temporarily_unavailable"
    assert response.headers["Retry-After"]


def seed(app) -> tuple[str, str]:
    from authserver.accounts.services import create_user
    from authserver.oauth.clients import create_client

    with committed(app):
        create_user(PHONE, PASSWORD)
        db.session.commit()
        client, secret = create_client(
            name="outage",
            grant_types=["password", "refresh_token", "client_credentials"],
            scope="profile",
            actor="tests",
        )
        return client.client_id, secret


def count(app, model) -> int:
    with app.app_context():
        try:
            return db.session.scalar(select(func.count()).select_from(model))
        finally:
            db.session.remove()


@pytest.fixture(scope="module")
def cluster():
    with PostgresCluster() as server:
        yield server


def test_postgresql_outage_gives_503s_then_recovers_without_restart(cluster, keys_dir):
    from authserver.audit import AuditEvent
    from authserver.oauth.models import AuthSession, RefreshToken
    from authserver.signing.keyring import KeyRing

    app = build_app(cluster.url, keys_dir)
    auth = seed(app)
    http = app.test_client()
    tokens = http.post("/oauth/token", data=LOGIN, auth=auth).json
    assert http.get("/readyz").status_code == 200
    rows_before = (count(app, AuthSession), count(app, RefreshToken), count(app, AuditEvent))

    cluster.stop()
    try:
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json["status"] == "not_ready"
        assert ready.json["checks"]["database"].startswith("unreachable")
        assert http.get("/healthz").status_code == 200  # alive: nothing to restart
        unavailable(http.post("/oauth/token", data=LOGIN, auth=auth))
        refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        unavailable(http.post("/oauth/token", data=refresh, auth=auth))
        unavailable(
            http.post("/oauth/introspect", data={"token": tokens["access_token"]}, auth=auth)
        )
        unavailable(http.post("/oauth/revoke", data={"token": tokens["refresh_token"]}, auth=auth))
        # The JWKS is served from the key ring's snapshot while it is fresh...
        assert http.get("/.well-known/jwks.json").status_code == 200
        # ...and answers 503 when the ring must reload from the database.
        keyring: KeyRing = app.extensions["authserver.keyring"]
        keyring.invalidate()
        unavailable(http.get("/.well-known/jwks.json"))
        # Counters can still be scraped (the signing-key gauges need the database).
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        assert b"authserver_http_requests_total" in metrics.data
        assert b"authserver_signing_keys" not in metrics.data
    finally:
        cluster.start()

    # Back by itself: the failed requests dropped the dead connections, no request fails.
    assert http.get("/readyz").status_code == 200
    assert http.get("/.well-known/jwks.json").status_code == 200
    # Nothing was half-written: the refresh attempted during the outage did not spend
    # the token, the failed login opened no session.
    refreshed = http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=auth,
    )
    assert refreshed.status_code == 200, refreshed.json
    assert count(app, AuthSession) == rows_before[0]
    assert count(app, RefreshToken) == rows_before[1] + 1
    introspected = http.post(
        "/oauth/introspect", data={"token": refreshed.json["access_token"]}, auth=auth
    )
    assert introspected.json["active"] is True
    with app.app_context():
        db.engine.dispose()


def test_a_restart_while_no_request_comes_costs_no_request(cluster, keys_dir, monkeypatch):
    """Pooled connections that sat idle through a database restart are pinged and
    replaced at checkout: the first request after it succeeds."""
    app = build_app(cluster.url, keys_dir)
    http = app.test_client()
    assert http.get("/readyz").status_code == 200  # a connection is now idle in the pool
    with app.app_context():
        pooled = db.engine.pool.checkedin()
    assert pooled >= 1
    cluster.stop()
    cluster.start()
    # Idle long enough to be pinged (the real threshold is a second of monotonic time).
    monkeypatch.setattr(extensions, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert http.get("/readyz").status_code == 200
    assert http.get("/.well-known/jwks.json").status_code == 200
    with app.app_context():
        db.engine.dispose()


def test_an_instance_started_during_the_outage_becomes_ready_when_it_ends(cluster, keys_dir):
    build_app(cluster.url, keys_dir)  # schema and key exist
    cluster.stop()
    try:
        # No crash loop: the process starts, says it is alive but not ready.
        app = create_app(make_settings(cluster.url, keys_dir))
        http = app.test_client()
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 503
        unavailable(http.get("/.well-known/jwks.json"))
    finally:
        cluster.start()
    assert http.get("/readyz").status_code == 200
    assert http.get("/.well-known/jwks.json").status_code == 200
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def restore_limiter():
    """The Flask-Limiter extension is a process-wide singleton whose storage the last
    ``init_app`` chose: give it back a memory storage after a Redis test."""
    yield
    spare = Flask("spare")
    spare.config["RATELIMIT_STORAGE_URI"] = "memory://"
    limiter.init_app(spare)


def test_redis_outage_otp_fails_closed_logins_and_other_limits_go_on(
    tmp_path, keys_dir, caplog, time_machine, restore_limiter
):
    caplog.set_level(logging.INFO)
    with RedisProcess() as server:
        app = build_app(
            f"sqlite:///{tmp_path / 'r.db'}", keys_dir, ratelimit_storage_url=server.url
        )
        # A Flask-Limiter limit of our own, to show the policy for decorated routes.
        app.add_url_rule("/limited", "limited", limiter.limit("2 per minute")(lambda: "ok"))
        auth = seed(app)
        http = app.test_client()
        otp = {"phone": "+33612345678"}
        assert http.post("/oauth/otp", data=otp).status_code == 200
        assert [http.get("/limited").status_code for _ in range(3)] == [200, 200, 429]
        assert redis.Redis.from_url(server.url).keys("LIMITS:*")  # counted in Redis

        server.stop()
        caplog.clear()
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json["checks"]["rate_limit_storage"] == "unreachable"
        assert ready.json["checks"]["database"] == "ok"
        # OTP sends fail closed: no SMS while nobody can count them.
        unavailable(http.post("/oauth/otp", data={"phone": "+33612345679"}))
        assert not [
            r
            for r in caplog.records
            if "SMS" in r.getMessage() and "+33612345679" in r.getMessage()
        ]
        # Password logins go on (argon2id still bounds guessing); no 500 anywhere.
        assert http.post("/oauth/token", data=LOGIN, auth=auth).status_code == 200
        # Decorated limits fall back to per-process memory: still limited, never a 500.
        assert [http.get("/limited").status_code for _ in range(3)] == [200, 200, 429]

        server.start()
        assert http.get("/readyz").status_code == 200
        assert http.post("/oauth/otp", data={"phone": "+33612345679"}).status_code == 200
        # Flask-Limiter retries the storage with a backoff: a few seconds later it is back.
        time_machine.move_to(datetime.now(UTC) + timedelta(seconds=120), tick=True)
        assert [http.get("/limited").status_code for _ in range(3)] == [200, 200, 429]
        assert redis.Redis.from_url(server.url).keys("LIMITS:*")  # counted in Redis again


def test_an_otp_send_during_a_database_outage_costs_no_sms_and_no_cooldown(
    cluster, keys_dir, gateway
):
    """The challenge is written before the SMS goes out, and the budgets are given back
    when the write fails: the outage is a 503, no SMS, and the retry once the database is
    back is served at once (issue #15 item 5: it used to send the SMS, answer 503 and
    then refuse the retry for the 60 s cooldown)."""
    from tests.sms_gateway import build_otp_app, dispose

    gateway.reset()
    app = build_otp_app(cluster.url, keys_dir, gateway)
    http = app.test_client()
    phone = {"phone": "+33612345670"}
    cluster.stop()
    try:
        unavailable(http.post("/oauth/otp", data=phone))
        assert gateway.requests == []  # no SMS for a code nobody can use
    finally:
        cluster.start()
    sent = http.post("/oauth/otp", data=phone)
    assert sent.status_code == 200, sent.json  # not 429: the cooldown was given back
    assert len(gateway.delivered) == 1
    code = gateway.last_code("+33612345670")
    from authserver.oauth.clients import create_client
    from authserver.otp import OTP_GRANT_TYPE

    with committed(app):
        client, secret = create_client(
            name="otp outage", grant_types=[OTP_GRANT_TYPE], scope="profile", actor="tests"
        )
        auth = (client.client_id, secret)
    form = {"grant_type": OTP_GRANT_TYPE, **phone, "otp": code}
    signed_in = http.post("/oauth/token", data=form, auth=auth)
    assert signed_in.status_code == 200, signed_in.json  # the code that was sent works
    dispose(app)


def test_a_failed_sms_send_refunds_the_budgets_and_leaves_no_code(cluster, keys_dir, gateway):
    from authserver.otp.models import OtpChallenge
    from tests.sms_gateway import build_otp_app, dispose

    gateway.reset()
    app = build_otp_app(cluster.url, keys_dir, gateway, sms_webhook_attempts="1")
    http = app.test_client()
    gateway.script = [500]
    phone = "+33612345671"

    def codes() -> int:
        with app.app_context():
            query = select(func.count()).where(OtpChallenge.phone == phone)
            return db.session.scalar(query)

    unavailable(http.post("/oauth/otp", data={"phone": phone}))
    assert codes() == 0  # the unsent code is not kept
    gateway.script = []
    assert http.post("/oauth/otp", data={"phone": phone}).status_code == 200  # no cooldown
    assert codes() == 1
    dispose(app)
