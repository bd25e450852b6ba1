"""Seed 004's SMS-code endpoints, against a real local HTTP server as the SMS gateway."""

from __future__ import annotations

import jwt
import pytest

from tests.sms_gateway import build_otp_app, dispose

PHONE = "+33698765432"


@pytest.fixture
def seed_http(app, database_url, keys_dir, gateway):
    gateway.reset()
    otp_app = build_otp_app(database_url, keys_dir, gateway, otp_max_per_phone_per_day="2")
    yield otp_app.test_client()
    dispose(otp_app)


@pytest.mark.parametrize("slash", ["/", ""])
def test_login_verify_signs_up_and_returns_profile_and_tokens(seed_http, gateway, slash):
    sent = seed_http.post("/accounts/login" + slash, json={"phone": "06 98 76 54 32"})
    assert sent.status_code == 200
    assert sent.json["expires_in"] == 300 and "code" not in sent.json
    code = gateway.last_code(PHONE)

    verified = seed_http.post("/accounts/verify" + slash, json={"phone": PHONE, "code": code})
    assert verified.status_code == 200
    body = verified.json
    assert body["phone"] == PHONE and {"access", "refresh", "fullname", "id"} <= body.keys()
    claims = jwt.decode(body["access"], options={"verify_signature": False})
    assert claims["amr"] == ["otp", "sms"] and claims["sub"] == body["id"]

    # The profile and refresh endpoints accept what verify handed out.
    auth = {"Authorization": f"Bearer {body['access']}"}
    assert seed_http.get("/accounts/profile/", headers=auth).json["id"] == body["id"]
    refreshed = seed_http.post("/accounts/refresh/", json={"refresh": body["refresh"]})
    assert refreshed.status_code == 200


def test_wrong_code_is_400_and_spent_code_too(seed_http, gateway):
    seed_http.post("/accounts/login/", json={"phone": PHONE})
    wrong_code = "000000" if gateway.last_code(PHONE) != "000000" else "111111"
    wrong = seed_http.post("/accounts/verify/", json={"phone": PHONE, "code": wrong_code})
    assert wrong.status_code == 400 and wrong.json["code"] == "invalid_code"
    code = gateway.last_code(PHONE)
    assert (
        seed_http.post("/accounts/verify/", json={"phone": PHONE, "code": code}).status_code == 200
    )
    again = seed_http.post("/accounts/verify/", json={"phone": PHONE, "code": code})
    assert again.status_code == 400


def test_bad_number_is_400(seed_http, gateway):
    response = seed_http.post("/accounts/login/", json={"phone": "12"})
    assert response.status_code == 400
    assert gateway.delivered == []


def test_too_many_codes_is_406_with_retry_after(seed_http, gateway, time_machine):
    time_machine.move_to("2030-01-01 12:00:00+00:00")
    assert seed_http.post("/accounts/login/", json={"phone": PHONE}).status_code == 200
    # The resend endpoint shares the cooldown: asking again at once is refused.
    early = seed_http.post("/accounts/verify/resend/", json={"phone": PHONE})
    assert early.status_code == 406 and int(early.headers["Retry-After"]) > 0
    time_machine.shift(120)
    assert seed_http.post("/accounts/verify/resend", json={"phone": PHONE}).status_code == 200
    time_machine.shift(120)
    over = seed_http.post("/accounts/login/", json={"phone": PHONE})  # third code today
    assert over.status_code == 406
    assert len(gateway.delivered) == 2
