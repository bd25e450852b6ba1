"""SMS budgets and gateway failures of ``POST /oauth/otp``, through HTTP, with a real HTTP
server as the gateway and a real Redis for the limits shared by two app instances."""

from __future__ import annotations

import time

import pytest
import redis

from authserver.otp import OTP_GRANT_TYPE
from tests.services import free_port
from tests.sms_gateway import HANG

PHONES = ["+33612000001", "+33612000002", "+33612000003", "+33612000004"]
NOON = "2030-01-01 12:00:00+00:00"


@pytest.fixture
def redis_storage(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    yield redis_url
    redis.Redis.from_url(redis_url).flushdb()


def send(http, phone=PHONES[0], ip="198.51.100.1"):
    return http.post("/oauth/otp", data={"phone": phone}, environ_base={"REMOTE_ADDR": ip})


def assert_limited(response, at_least: int, at_most: int) -> None:
    assert response.status_code == 429, response.json
    assert response.json["error"] == "too_many_requests"
    assert at_least <= int(response.headers["Retry-After"]) <= at_most


# --- the gateway ---


def test_every_attempt_sends_the_same_signed_body(make_otp_app, gateway):
    http = make_otp_app().test_client()
    gateway.script = [500, 502]
    response = send(http)
    assert response.status_code == 200
    assert [r.status for r in gateway.requests] == [500, 502, 200]
    bodies = {r.body for r in gateway.requests}
    signatures = {r.headers["X-Authserver-Signature"] for r in gateway.requests}
    keys = {r.headers["Idempotency-Key"] for r in gateway.requests}
    assert len(bodies) == len(signatures) == len(keys) == 1


def test_no_signature_without_a_secret(make_otp_app, gateway):
    http = make_otp_app(sms_webhook_secret="").test_client()
    assert send(http).status_code == 200
    assert "X-Authserver-Signature" not in gateway.requests[0].headers
    assert set(gateway.requests[0].json) >= {"to", "message"}


def test_a_failing_gateway_gives_503_and_burns_no_quota(make_otp_app, gateway):
    # A daily cap of one code: had the failure counted, the retry would be refused.
    http = make_otp_app(otp_max_per_phone_per_day="1").test_client()
    gateway.script = [500, 503, 500]
    response = send(http)
    assert response.status_code == 503
    assert response.json["error"] == "temporarily_unavailable"
    assert "Retry-After" in response.headers
    assert len(gateway.requests) == 3  # the bounded retry: three attempts, then stop
    assert gateway.delivered == []

    assert send(http).status_code == 200  # no cooldown, no daily unit spent
    assert len(gateway.delivered) == 1


def test_a_hanging_gateway_times_out(make_otp_app, gateway):
    http = make_otp_app(sms_webhook_read_timeout_ms="200", sms_webhook_attempts="2").test_client()
    gateway.script = [HANG, HANG]
    started = time.monotonic()
    response = send(http)
    assert response.status_code == 503
    assert time.monotonic() - started < 3
    assert len(gateway.requests) == 2


def test_an_unreachable_gateway_is_a_503(make_otp_app, gateway):
    http = make_otp_app(
        sms_webhook_url=f"http://127.0.0.1:{free_port()}/sms", sms_webhook_attempts="2"
    ).test_client()
    assert send(http).status_code == 503


def test_a_4xx_from_the_gateway_is_not_retried(make_otp_app, gateway):
    http = make_otp_app().test_client()
    gateway.script = [400]
    assert send(http).status_code == 503
    assert [r.status for r in gateway.requests] == [400]


# --- the budgets ---


def test_resend_cooldown(make_otp_app, gateway, time_machine):
    time_machine.move_to(NOON)
    http = make_otp_app().test_client()
    assert send(http).json["retry_after"] == 60
    assert_limited(send(http), 59, 60)
    time_machine.shift(30)
    assert_limited(send(http), 29, 30)
    time_machine.shift(31)
    assert send(http).status_code == 200
    assert len(gateway.delivered) == 2


def test_per_phone_daily_cap(make_otp_app, time_machine):
    time_machine.move_to(NOON)
    http = make_otp_app(otp_max_per_phone_per_day="2").test_client()
    assert send(http).status_code == 200
    time_machine.shift(61)
    second = send(http)
    assert second.status_code == 200
    assert second.json["retry_after"] > 23 * 3600  # the answer tells the real wait
    time_machine.shift(61)
    assert_limited(send(http), 23 * 3600, 24 * 3600)
    assert send(http, PHONES[1]).status_code == 200  # another phone is not affected
    time_machine.shift(24 * 3600)
    assert send(http).status_code == 200


def test_per_ip_hourly_cap(make_otp_app, time_machine):
    time_machine.move_to(NOON)
    http = make_otp_app(otp_max_per_ip_per_hour="2").test_client()
    assert send(http, PHONES[0]).status_code == 200
    assert send(http, PHONES[1]).status_code == 200
    assert_limited(send(http, PHONES[2]), 3500, 3600)
    # The refused request spent nothing: that phone can still get a code elsewhere.
    assert send(http, PHONES[2], ip="198.51.100.2").status_code == 200
    time_machine.shift(3601)
    assert send(http, PHONES[3]).status_code == 200


def test_global_hourly_budget(make_otp_app, gateway, time_machine):
    time_machine.move_to(NOON)
    http = make_otp_app(otp_global_per_hour="3").test_client()
    for number, phone in enumerate(PHONES[:3]):
        assert send(http, phone, ip=f"203.0.113.{number}").status_code == 200
    assert_limited(send(http, PHONES[3], ip="203.0.113.9"), 3500, 3600)
    assert len(gateway.delivered) == 3


def test_limits_hold_across_two_instances_on_redis(make_otp_app, make_client, redis_storage):
    first = make_otp_app(ratelimit_storage_url=redis_storage, otp_max_per_ip_per_hour="3")
    second = make_otp_app(ratelimit_storage_url=redis_storage, otp_max_per_ip_per_hour="3")
    one, two = first.test_client(), second.test_client()

    assert send(one, PHONES[0]).status_code == 200
    assert_limited(send(two, PHONES[0]), 55, 60)  # the cooldown is shared
    assert send(two, PHONES[1]).status_code == 200
    assert send(one, PHONES[2]).status_code == 200
    assert_limited(send(two, PHONES[3]), 3500, 3600)  # so is the per-IP budget
    assert_limited(send(one, PHONES[3]), 3500, 3600)


def test_a_code_from_one_instance_signs_in_on_the_other(
    make_otp_app, make_client, gateway, redis_storage
):
    first = make_otp_app(ratelimit_storage_url=redis_storage).test_client()
    second = make_otp_app(ratelimit_storage_url=redis_storage).test_client()
    client = make_client(grant_types=(OTP_GRANT_TYPE,))
    assert send(first).status_code == 200
    response = second.post(
        "/oauth/token",
        data={
            "grant_type": OTP_GRANT_TYPE,
            "phone": PHONES[0],
            "otp": gateway.last_code(PHONES[0]),
        },
        headers=client.basic,
    )
    assert response.status_code == 200


def test_unreachable_redis_fails_closed_for_sms(make_otp_app, gateway):
    http = make_otp_app(ratelimit_storage_url=f"redis://127.0.0.1:{free_port()}/0").test_client()
    response = send(http)
    assert response.status_code == 503
    assert response.json["error"] == "temporarily_unavailable"
    assert gateway.requests == []


def test_parallel_requests_send_one_code_across_instances(make_otp_app, gateway, redis_storage):
    """Twenty requests at once for one phone, spread over two instances: one SMS."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from tests.conftest import LiveServer

    first = make_otp_app(ratelimit_storage_url=redis_storage)
    second = make_otp_app(ratelimit_storage_url=redis_storage)
    with LiveServer(first) as one, LiveServer(second) as two:
        urls = [one.url, two.url] * 10

        def ask(url: str) -> int:
            return requests.post(
                url + "/oauth/otp", data={"phone": PHONES[0]}, timeout=30
            ).status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = sorted(pool.map(ask, urls))
    assert statuses == [200] + [429] * 19
    assert len(gateway.delivered) == 1
