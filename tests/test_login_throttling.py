"""Failed password logins are throttled per phone+IP, per phone and per IP; through HTTP,
with a real Redis for the counters shared by two instances."""

from __future__ import annotations

import pytest
import redis

from tests.conftest import PASSWORD, PHONE
from tests.services import free_port

ATTACKER = "198.51.100.66"
OWNER = "192.0.2.10"
UNKNOWN = "+33699999999"


@pytest.fixture
def redis_storage(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    yield redis_url
    redis.Redis.from_url(redis_url).flushdb()


def login(http, client, password, phone=PHONE, ip=ATTACKER):
    return http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": phone, "password": password},
        headers=client.basic,
        environ_base={"REMOTE_ADDR": ip},
    )


def assert_invalid(response) -> None:
    assert response.status_code == 400
    assert response.json == {
        "error": "invalid_grant",
        "error_description": "Invalid phone number or password.",
    }


def assert_throttled(response, window: int = 900) -> None:
    assert response.status_code == 429, response.json
    assert response.json["error"] == "too_many_requests"
    assert 0 < int(response.headers["Retry-After"]) <= window
    assert response.headers["Cache-Control"] == "no-store"


def test_failures_throttle_the_phone_and_ip_pair_not_the_owner(make_app, app_client, user):
    http = make_app(login_max_failures="3").test_client()
    for _ in range(3):
        assert_invalid(login(http, app_client, "guess"))
    # The right password does not help from the throttled address...
    assert_throttled(login(http, app_client, PASSWORD))
    # ...but the owner, elsewhere, signs in: nobody can lock a victim out this way.
    assert login(http, app_client, PASSWORD, ip=OWNER).status_code == 200


@pytest.mark.parametrize("phone", [UNKNOWN, "not a phone at all"])
def test_unknown_phones_are_throttled_alike(make_app, app_client, user, phone):
    http = make_app(login_max_failures="3").test_client()
    for _ in range(3):
        assert_invalid(login(http, app_client, "guess", phone=phone))
    assert_throttled(login(http, app_client, "guess", phone=phone))


def test_a_success_resets_the_account_counter(make_app, app_client, user):
    http = make_app(login_max_failures="3").test_client()
    for _ in range(2):
        assert_invalid(login(http, app_client, "guess"))
    assert login(http, app_client, PASSWORD).status_code == 200
    for _ in range(3):
        assert_invalid(login(http, app_client, "guess"))
    assert_throttled(login(http, app_client, "guess"))


def test_per_phone_cap_across_addresses(make_app, app_client, user):
    http = make_app(login_max_failures="10", login_max_failures_per_phone="4").test_client()
    for n in range(4):
        assert_invalid(login(http, app_client, "guess", ip=f"203.0.113.{n}"))
    assert_throttled(login(http, app_client, PASSWORD, ip="203.0.113.99"))


def test_per_ip_cap_across_phones(make_app, app_client, user):
    http = make_app(login_max_failures_per_ip="3").test_client()
    for n in range(3):
        assert_invalid(login(http, app_client, "guess", phone=f"+3369999990{n}"))
    assert_throttled(login(http, app_client, PASSWORD))  # even a right password, from there
    assert login(http, app_client, PASSWORD, ip=OWNER).status_code == 200


def test_the_throttle_lifts_after_the_window(make_app, app_client, user, time_machine):
    time_machine.move_to("2030-01-01 12:00:00+00:00")
    http = make_app(login_max_failures="2", login_lockout_seconds="600").test_client()
    for _ in range(2):
        assert_invalid(login(http, app_client, "guess"))
    assert_throttled(login(http, app_client, PASSWORD), window=600)
    time_machine.shift(601)
    assert login(http, app_client, PASSWORD).status_code == 200


def test_throttled_attempts_are_audited(make_app, app_client, user):
    from sqlalchemy import select

    from authserver.audit import AuditEvent
    from authserver.extensions import db

    application = make_app(login_max_failures="1")
    http = application.test_client()
    assert_invalid(login(http, app_client, "guess"))
    assert_throttled(login(http, app_client, "guess"))
    with application.app_context():
        reasons = db.session.scalars(
            select(AuditEvent.details).where(AuditEvent.event == "login.password")
        ).all()
    assert [r["reason"] for r in reasons] == ["invalid_credentials", "throttled"]


def test_counters_are_shared_by_two_instances_on_redis(make_app, app_client, user, redis_storage):
    one = make_app(ratelimit_storage_url=redis_storage, login_max_failures="4").test_client()
    two = make_app(ratelimit_storage_url=redis_storage, login_max_failures="4").test_client()
    for http in (one, two, one, two):
        assert_invalid(login(http, app_client, "guess"))
    assert_throttled(login(one, app_client, PASSWORD))
    assert_throttled(login(two, app_client, PASSWORD))
    assert login(two, app_client, PASSWORD, ip=OWNER).status_code == 200


def test_unreachable_redis_does_not_stop_password_logins(make_app, app_client, user):
    """Documented policy: login throttling fails open (argon2id still bounds guessing)."""
    http = make_app(
        ratelimit_storage_url=f"redis://127.0.0.1:{free_port()}/0", login_max_failures="1"
    ).test_client()
    assert_invalid(login(http, app_client, "guess"))
    assert_invalid(login(http, app_client, "guess"))
    assert login(http, app_client, PASSWORD).status_code == 200
