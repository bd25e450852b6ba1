"""Probes and metrics: /healthz, /readyz, /metrics, request ids, and `authserver serve` with
several workers on one PostgreSQL (metrics summed across processes)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import flask_migrate
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from authserver import create_app
from tests.conftest import PASSWORD, PHONE, build_app, make_settings, wipe
from tests.helpers import committed
from tests.services import ServedAuthserver

ROOT = Path(__file__).resolve().parent.parent


def scrape(http, **headers) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, keyed by (sample name, sorted labels)."""
    response = http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/plain"
    return samples(response.get_data(as_text=True))


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: dict, name: str, **labels) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def login(http, client, password=PASSWORD):
    return http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": PHONE, "password": password},
        headers=client.basic,
    )


# --- probes ---


def test_healthz_answers_without_touching_anything(http):
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_is_green_on_a_migrated_database_with_an_active_key(http):
    response = http.get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "signing_key": "ok"},
    }


def test_readyz_names_an_unmigrated_database(tmp_path, keys_dir):
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'empty.db'}", keys_dir))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["status"] == "not_ready"
    checks = response.json["checks"]
    assert checks["database"] == "ok"
    assert checks["migrations"] == "not migrated: run `authserver db upgrade`"
    assert checks["signing_key"] != "ok"


def test_readyz_names_migrations_behind_head_and_a_missing_key(tmp_path, keys_dir):
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'old.db'}", keys_dir))
    with app.app_context():
        flask_migrate.upgrade()
        flask_migrate.stamp(revision="0001")  # as if a newer release's migration was not run
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    checks = response.json["checks"]
    assert checks["migrations"].startswith("database at ['0001'], code expects [")
    assert checks["signing_key"] == "no active signing key: run `authserver keys ensure`"


def test_readyz_checks_redis_only_when_it_is_the_limiter_storage(tmp_path, keys_dir, redis_url):
    app = build_app(f"sqlite:///{tmp_path / 'r.db'}", keys_dir, ratelimit_storage_url=redis_url)
    response = app.test_client().get("/readyz")
    assert response.status_code == 200, response.json
    assert response.json["checks"]["rate_limit_storage"] == "ok"


# --- request ids ---


def test_a_well_formed_request_id_is_echoed(http):
    response = http.get("/healthz", headers={"X-Request-ID": "edge-7f3a:42"})
    assert response.headers["X-Request-ID"] == "edge-7f3a:42"


@pytest.mark.parametrize("bad", ["x" * 129, "has space", '<script>"', "a;b", "", "é"])
def test_a_malformed_request_id_is_replaced(http, bad):
    response = http.get("/healthz", headers={"X-Request-ID": bad})
    generated = response.headers["X-Request-ID"]
    assert generated != bad
    assert uuid.UUID(hex=generated)


def test_every_response_gets_its_own_request_id_errors_included(http, app_client):
    ids = {
        http.get("/no/such/page").headers["X-Request-ID"],
        http.post("/oauth/token", data={"grant_type": "password"}).headers["X-Request-ID"],
        http.get("/.well-known/jwks.json").headers["X-Request-ID"],
    }
    assert len(ids) == 3


# --- metrics ---


def test_metrics_count_what_requests_did(http, app_client, user):
    before = scrape(http)
    assert login(http, app_client).status_code == 200
    first = login(http, app_client).json
    assert login(http, app_client, password="wrong password").status_code == 400
    refreshed = http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        headers=app_client.basic,
    )
    assert refreshed.status_code == 200
    etag = http.get("/.well-known/jwks.json").headers["ETag"]
    assert http.get("/.well-known/jwks.json", headers={"If-None-Match": etag}).status_code == 304
    unique = uuid.uuid4().hex
    assert http.get(f"/not-here/{unique}").status_code == 404
    after = scrape(http)
    text = http.get("/metrics").get_data(as_text=True)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    requests_total = "authserver_http_requests_total"
    token = {"endpoint": "/oauth/token", "method": "POST"}
    assert delta(requests_total, **token, status="200") == 3
    assert delta(requests_total, **token, status="400") == 1
    assert delta("authserver_http_request_duration_seconds_count", **token) == 4
    assert delta("authserver_tokens_issued_total", grant_type="password") == 2
    assert delta("authserver_tokens_issued_total", grant_type="refresh_token") == 1
    assert (
        delta("authserver_failed_logins_total", grant_type="password", reason="invalid_credentials")
        == 1
    )
    jwks = {"endpoint": "/.well-known/jwks.json", "method": "GET"}
    assert delta(requests_total, **jwks, status="200") == 1
    assert delta(requests_total, **jwks, status="304") == 1
    # Unknown paths share one label value: no request can create a new series.
    assert delta(requests_total, endpoint="unmatched", method="GET", status="404") == 1
    assert unique not in text


def test_metrics_count_refresh_token_reuse(http, password_login, app_client, time_machine):
    before = scrape(http)
    old = password_login()["refresh_token"]
    grant = {"grant_type": "refresh_token", "refresh_token": old}
    assert http.post("/oauth/token", data=grant, headers=app_client.basic).status_code == 200
    # Presented again after the grace window: reuse, the session is revoked.
    time_machine.move_to(datetime.now(UTC) + timedelta(seconds=60), tick=True)
    assert http.post("/oauth/token", data=grant, headers=app_client.basic).status_code == 400
    after = scrape(http)
    name = "authserver_refresh_token_reuse_detections_total"
    assert value(after, name) - value(before, name) == 1


def test_metrics_report_signing_key_state_and_age(http):
    metrics = scrape(http)
    kid = http.get("/.well-known/jwks.json").json["keys"][0]["kid"]
    assert value(metrics, "authserver_signing_keys", state="active") == 1
    actives = [
        (labels, age)
        for (name, labels), age in metrics.items()
        if name == "authserver_signing_key_age_seconds" and ("state", "active") in labels
    ]
    assert len(actives) == 1
    labels, age = actives[0]
    assert dict(labels)["kid"] in {
        k["kid"] for k in http.get("/.well-known/jwks.json").json["keys"]
    }
    assert kid
    assert 0 <= age < 24 * 3600


def test_metrics_can_require_a_bearer_token(tmp_path, keys_dir):
    app = build_app(f"sqlite:///{tmp_path / 'm.db'}", keys_dir, metrics_token="s3cret-scrape")
    http = app.test_client()
    assert http.get("/metrics").status_code == 401
    assert http.get("/metrics").headers["WWW-Authenticate"].startswith("Bearer")
    assert http.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert http.get("/metrics", headers={"Authorization": "Basic s3cret-scrape"}).status_code == 401
    assert scrape(http, Authorization="Bearer s3cret-scrape")


# --- authserver serve: several worker processes, a second instance, graceful shutdown ---


@pytest.fixture
def pg_app(pg_url, keys_dir):
    app = build_app(pg_url, keys_dir)
    yield app
    wipe(app)


def test_server_workers_share_metrics_and_a_second_instance_shares_tokens(
    pg_app, pg_url, keys_dir, tmp_path
):
    from authserver.oauth.clients import create_client

    with committed(pg_app):
        client, secret = create_client(
            name="ops", grant_types=["client_credentials"], scope="profile", actor="tests"
        )
        client_id = client.client_id
    auth = (client_id, secret)
    metrics_dir = tmp_path / "metrics"
    (metrics_dir).mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale file of an earlier run")
    server = ServedAuthserver(
        pg_url, keys_dir, AUTHSERVER_WORKERS="2", AUTHSERVER_METRICS_DIR=str(metrics_dir)
    )
    try:
        assert requests.get(server.url + "/readyz", timeout=5).status_code == 200
        # Fresh connections: the kernel hands them to whichever worker accepts first.
        issued = []
        for _ in range(20):
            response = requests.post(
                server.url + "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=auth,
                headers={"Connection": "close"},
                timeout=10,
            )
            assert response.status_code == 200, response.text
            issued.append(response.json()["access_token"])
        pids = {p.name.split("_")[-1] for p in metrics_dir.glob("counter_*.db")}
        assert len(pids) >= 2, pids  # both workers counted something
        assert "999999.db" not in pids  # the stale file was cleared at start
        # Whichever worker answers the scrape reports the sum of both.
        for _ in range(4):
            text = requests.get(
                server.url + "/metrics", headers={"Connection": "close"}, timeout=5
            ).text
            metrics = samples(text)
            assert (
                value(metrics, "authserver_tokens_issued_total", grant_type="client_credentials")
                == 20
            )
        # Tokens from the served instance introspect on this process's instance...
        http = pg_app.test_client()
        introspected = http.post("/oauth/introspect", data={"token": issued[0]}, auth=auth).json
        assert introspected["active"] is True and introspected["client_id"] == client_id
        # ...and the other way round, revocation included.
        mine = http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth).json[
            "access_token"
        ]
        remote = requests.post(server.url + "/oauth/introspect", data={"token": mine}, auth=auth)
        assert remote.json()["active"] is True
        assert http.post("/oauth/revoke", data={"token": mine}, auth=auth).status_code == 200
        # Seen by another instance within AUTHSERVER_REVOCATION_CACHE_SECONDS (1).
        time.sleep(1.1)
        remote = requests.post(server.url + "/oauth/introspect", data={"token": mine}, auth=auth)
        assert remote.json() == {"active": False}
    finally:
        code, stderr = server.stop()
    assert code == 0  # SIGTERM: a graceful stop, not a crash
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(e.get("logger") == "authserver.access" and e["status"] == 200 for e in entries)
    assert any(e.get("logger") == "_granian" and "Shutting down" in e["message"] for e in entries)
    assert secret not in stderr and issued[0] not in stderr


def test_metrics_count_otp_sends_blocks_and_429s(http):
    import secrets

    # A fresh number each run (budgets outlive a test); +33 612 is a valid mobile range.
    phone = "+33612" + "".join(secrets.choice("0123456789") for _ in range(6))
    before = scrape(http)
    assert http.post("/oauth/otp", data={"phone": phone}).status_code == 200
    again = http.post("/oauth/otp", data={"phone": phone})  # inside the resend cooldown
    assert again.status_code == 429
    after = scrape(http)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("authserver_otp_sent_total", purpose="login") == 1
    assert delta("authserver_otp_blocked_total", limit="rate_limit") == 1
    assert delta("authserver_rate_limit_hits_total", endpoint="/oauth/otp") == 1
    # The seed 004 endpoint sends codes through the same service: counted the same.
    seed = http.post("/accounts/login/", json={"phone": phone})
    assert seed.status_code == 406
    assert value(scrape(http), "authserver_otp_blocked_total", limit="rate_limit") == (
        value(after, "authserver_otp_blocked_total", limit="rate_limit") + 1
    )


def test_limits_of_every_kind_apply_where_declared(tmp_path, keys_dir):
    """The limiter's before-request check is skipped while no default, application or
    blueprint limit exists (limits.rates.init_rates): a limit on a route is enforced
    by its decorator, and a blueprint limit declared later turns the check back on."""
    from flask import Blueprint

    from authserver.limits import limiter

    app = build_app(f"sqlite:///{tmp_path / 'l.db'}", keys_dir)
    shared = Blueprint("limited_for_test", __name__)

    # Named functions: Flask-Limiter tells decorated views apart by qualified name.
    def page() -> str:
        return "ok"

    def route() -> str:
        return "ok"

    shared.add_url_rule("/bp-limited", "page", page)
    app.register_blueprint(shared)
    app.add_url_rule("/route-limited", "route", limiter.limit("1 per minute")(route))
    http = app.test_client()
    assert [http.get("/route-limited").status_code for _ in range(2)] == [200, 429]
    assert [http.get("/bp-limited").status_code for _ in range(3)] == [200, 200, 200]
    limiter.limit("2 per minute")(shared)
    assert [http.get("/bp-limited").status_code for _ in range(3)] == [200, 200, 429]
    assert http.get("/healthz").status_code == 200
