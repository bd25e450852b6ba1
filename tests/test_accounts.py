"""Self-service with a Bearer access token: profile, password change, phone change."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from authserver.otp import OTP_GRANT_TYPE
from tests.conftest import PASSWORD, PHONE, USER_KEYS
from tests.helpers import bearer, refresh
from tests.own_api import ACCOUNT, sign_in
from tests.sms_gateway import build_otp_app, dispose

NEW_PHONE = "+33698765432"


def login(http, client, password=PASSWORD, phone=PHONE) -> dict:
    """A token for the account API (tests/own_api.py)."""
    return sign_in(http, client, phone, password)


@pytest.fixture
def app_client(make_client):
    """The platform's own app: it may ask for tokens for the account API."""
    return make_client(first_party=True)


@pytest.fixture
def me(http, app_client, user) -> dict[str, str]:
    return bearer(login(http, app_client)["access_token"])


# --- authentication ------------------------------------------------------------------
def test_profile_needs_a_users_access_token(http, make_client, user, me):
    missing = http.get("/account/profile")
    assert missing.status_code == 401
    assert missing.json["error"] == "invalid_token"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert http.get("/account/profile", headers=bearer("x.y.z")).status_code == 401
    assert http.get("/account/profile", headers={"Authorization": "Basic abc"}).status_code == 401

    # A client's own token, even one issued for the account API, is not a user's.
    service = make_client(grant_types=("client_credentials",), scope="authserver:account")
    token = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "resource": ACCOUNT},
        headers=service.basic,
    ).json["access_token"]
    refused = http.get("/account/profile", headers=bearer(token))
    assert refused.status_code == 403 and refused.json["error"] == "insufficient_scope"

    assert http.get("/account/profile", headers=me).status_code == 200


# --- profile -------------------------------------------------------------------------
def test_profile_is_the_seed_user_object(http, user, me):
    body = http.get("/account/profile", headers=me).json
    assert set(body) == USER_KEYS
    assert body["id"] == user and body["phone"] == PHONE
    assert http.get("/account/profile", headers=me).headers["Cache-Control"] == "no-store"


def test_update_profile(http, user, me):
    response = http.patch(
        "/account/profile",
        json={
            "first_name": " Ada ",
            "last_name": "Lovelace",
            "username": "ada.l",
            "email": "Ada@Example.org",
        },
        headers=me,
    )
    assert response.status_code == 200, response.json
    body = response.json
    assert (body["first_name"], body["last_name"]) == ("Ada", "Lovelace")
    assert (body["username"], body["email"]) == ("ada.l", "ada@example.org")
    assert http.get("/account/profile", headers=me).json == body

    # Only what is given changes; an empty email clears it.
    cleared = http.patch("/account/profile", json={"email": ""}, headers=me).json
    assert cleared["email"] == "" and cleared["username"] == "ada.l"
    # The seed's own profile endpoint sees the same account.
    assert http.get("/accounts/profile/", headers=me).json["fullname"] == "Ada Lovelace"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"username": "has space"}, "username"),
        ({"username": ""}, "username"),
        ({"username": None}, "username"),
        ({"first_name": "x" * 151}, "first_name"),
        ({"first_name": 42}, "first_name"),
        ({"phone": "+33600000000"}, "phone"),  # phone changes need a code: not here
        ({"is_blocked": False}, "is_blocked"),
    ],
)
def test_update_profile_refuses_bad_input(http, user, me, body, field):
    response = http.patch("/account/profile", json=body, headers=me)
    assert response.status_code == 400, response.json
    assert response.json["error"] == "invalid_request"
    assert field in response.json["fields"]
    assert http.get("/account/profile", headers=me).json["is_blocked"] is False


def test_username_taken_is_a_conflict(http, make_user, user, me):
    make_user("+33655555555", username="taken")
    response = http.patch("/account/profile", json={"username": "taken"}, headers=me)
    assert response.status_code == 409
    assert response.json["fields"] == {"username": ["This username is taken."]}


def test_profile_body_must_be_a_json_object(http, user, me):
    response = http.patch("/account/profile", data="first_name=x", headers=me,
                          content_type="application/x-www-form-urlencoded")  # fmt: skip
    assert response.status_code == 415
    response = http.patch("/account/profile", data="{", headers=me,
                          content_type="application/json")  # fmt: skip
    assert response.status_code == 400 and response.json["error"] == "invalid_request"


# --- password ------------------------------------------------------------------------
def test_password_change_ends_every_other_session(http, app_client, user):
    other = login(http, app_client)
    mine = login(http, app_client)
    response = http.post(
        "/account/password",
        json={"current_password": PASSWORD, "new_password": "a brand new secret"},
        headers=bearer(mine["access_token"]),
    )
    assert response.status_code == 200, response.json
    assert response.json == {"password_changed": True, "sessions_revoked": 1}

    assert refresh(http, app_client, other["refresh_token"]).json["error"] == "invalid_grant"
    assert http.get("/account/profile", headers=bearer(other["access_token"])).status_code == 401
    # This device stays signed in.
    assert refresh(http, app_client, mine["refresh_token"]).status_code == 200
    # The old password no longer works; the new one does.
    stale = http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": PHONE, "password": PASSWORD},
        headers=app_client.basic,
    )
    assert stale.status_code == 400
    login(http, app_client, password="a brand new secret")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"current_password": "wrong", "new_password": "a brand new secret"}, 400,
         "current_password"),
        ({"new_password": "a brand new secret"}, 400, "current_password"),
        ({"current_password": PASSWORD, "new_password": "short"}, 400, "new_password"),
        ({"current_password": PASSWORD, "new_password": "x" * 257}, 400, "new_password"),
        ({"current_password": PASSWORD}, 400, "new_password"),
    ],
)  # fmt: skip
def test_password_change_refusals(http, app_client, user, body, status, field):
    other = login(http, app_client)
    mine = login(http, app_client)
    response = http.post("/account/password", json=body, headers=bearer(mine["access_token"]))
    assert response.status_code == status, response.json
    assert field in response.json["fields"]
    # Nothing changed: the other session lives, the old password works.
    assert refresh(http, app_client, other["refresh_token"]).status_code == 200
    login(http, app_client)


def test_wrong_current_passwords_are_throttled(http, app, app_client, user):
    headers = bearer(login(http, app_client)["access_token"])
    limit = app.extensions["authserver.settings"].login_max_failures
    for _ in range(limit):
        wrong = http.post(
            "/account/password",
            json={"current_password": "wrong", "new_password": "a brand new secret"},
            headers=headers,
        )
        assert wrong.status_code == 400
    throttled = http.post(
        "/account/password",
        json={"current_password": PASSWORD, "new_password": "a brand new secret"},
        headers=headers,
    )
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0


# --- phone number --------------------------------------------------------------------
@pytest.fixture
def sms_http(app, database_url, keys_dir, gateway):
    """The app with a webhook SMS backend pointing at ``gateway``, on the suite's database."""
    gateway.reset()
    otp_app = build_otp_app(database_url, keys_dir, gateway)
    yield otp_app.test_client()
    dispose(otp_app)


def test_phone_change_needs_a_code_sent_to_the_new_number(sms_http, gateway, app_client, user):
    tokens = login(sms_http, app_client)
    me = bearer(tokens["access_token"])
    started = sms_http.post(
        "/account/phone",
        json={"phone": "06 98 76 54 32", "current_password": PASSWORD},
        headers=me,
    )
    assert started.status_code == 200, started.json
    assert started.json["phone"] == NEW_PHONE and "code" not in started.json
    code = gateway.last_code(NEW_PHONE)

    wrong = sms_http.post(
        "/account/phone/confirm", json={"phone": NEW_PHONE, "code": "000000"}, headers=me
    )
    assert wrong.status_code == 400 and wrong.json["error"] == "invalid_code"
    assert sms_http.get("/account/profile", headers=me).json["phone"] == PHONE

    confirmed = sms_http.post(
        "/account/phone/confirm", json={"phone": NEW_PHONE, "code": code}, headers=me
    )
    assert confirmed.status_code == 200, confirmed.json
    assert confirmed.json["phone"] == NEW_PHONE
    login(sms_http, app_client, phone=NEW_PHONE)  # the new number signs in
    # The code is spent.
    again = sms_http.post(
        "/account/phone/confirm", json={"phone": NEW_PHONE, "code": code}, headers=me
    )
    assert again.status_code == 400


def test_a_login_code_cannot_change_a_phone(sms_http, gateway, app_client, user):
    me = bearer(login(sms_http, app_client)["access_token"])
    assert sms_http.post("/oauth/otp", data={"phone": NEW_PHONE}).status_code == 200
    response = sms_http.post(
        "/account/phone/confirm",
        json={"phone": NEW_PHONE, "code": gateway.last_code(NEW_PHONE)},
        headers=me,
    )
    assert response.status_code == 400
    # Nor may the public OTP endpoint ask for a phone-change code.
    refused = sms_http.post("/oauth/otp", data={"phone": NEW_PHONE, "purpose": "phone_change"})
    assert refused.status_code == 400


def test_phone_change_refusals(sms_http, gateway, app_client, user, make_user):
    make_user(NEW_PHONE)
    me = bearer(login(sms_http, app_client)["access_token"])
    for phone in ("not a phone", "+33 1 23 45 67 89"):  # a landline cannot get an SMS
        response = sms_http.post(
            "/account/phone", json={"phone": phone, "current_password": PASSWORD}, headers=me
        )
        assert response.status_code == 400 and "phone" in response.json["fields"]
    same = sms_http.post(
        "/account/phone", json={"phone": PHONE, "current_password": PASSWORD}, headers=me
    )
    assert same.status_code == 400

    # A number another account holds: told only once the code proves it is held.
    assert sms_http.post("/account/phone", json={"phone": NEW_PHONE,
                         "current_password": PASSWORD}, headers=me).status_code \
        == 200  # fmt: skip
    taken = sms_http.post(
        "/account/phone/confirm",
        json={"phone": NEW_PHONE, "code": gateway.last_code(NEW_PHONE)},
        headers=me,
    )
    assert taken.status_code == 409 and taken.json["fields"]["phone"]
    assert sms_http.get("/account/profile", headers=me).json["phone"] == PHONE


def test_sms_sign_up_sets_a_first_password_with_a_code_to_its_phone(
    sms_http, gateway, make_client, time_machine
):
    time_machine.move_to(datetime.now(UTC))
    client = make_client(grant_types=(OTP_GRANT_TYPE, "password", "refresh_token"),
                         first_party=True)  # fmt: skip
    tokens = sms_sign_up(sms_http, gateway, client)
    time_machine.shift(61)  # the sign-up code's resend cooldown
    assert sms_http.post("/account/code", headers=bearer(tokens["access_token"])).status_code \
        == 200  # fmt: skip
    response = sms_http.post(
        "/account/password",
        json={"new_password": "my first password", "current_code": gateway.last_code(NEW_PHONE)},
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 200, response.json
    login(sms_http, client, password="my first password", phone=NEW_PHONE)
    # From now on the current password is required.
    again = sms_http.post(
        "/account/password",
        json={"new_password": "another password"},
        headers=bearer(tokens["access_token"]),
    )
    assert again.status_code == 400 and "current_password" in again.json["fields"]


# --- usernames never collide with phones (issue #14 item 2) ------------------------------
VICTIM_PHONE = "+33612555001"


@pytest.mark.parametrize("username", ["+33612555001", "0612555001", "06-12-55-50-01"])
def test_a_phone_shaped_username_is_refused(http, user, me, username):
    response = http.patch("/account/profile", json={"username": username}, headers=me)
    assert response.status_code == 400, response.json
    assert "username" in response.json["fields"]


def test_keeping_ones_own_phone_username_is_no_change(http, user, me):
    response = http.patch("/account/profile", json={"username": PHONE}, headers=me)
    assert response.status_code == 200 and response.json["username"] == PHONE


def test_a_recycled_number_signs_up_by_code(sms_http, gateway, app, make_user):
    # The number's previous holder moved to another number and kept their username (the
    # old number, derived at their own sign-up): the new holder's sign-up must not 500.
    import uuid as uuid_module

    from authserver.accounts.models import User
    from authserver.extensions import db

    previous = make_user(VICTIM_PHONE)
    with app.app_context():
        db.session.get(User, uuid_module.UUID(previous)).phone = "+33612555999"
        db.session.commit()
    assert sms_http.post("/accounts/login/", json={"phone": VICTIM_PHONE}).status_code == 200
    verified = sms_http.post(
        "/accounts/verify/", json={"phone": VICTIM_PHONE, "code": gateway.last_code(VICTIM_PHONE)}
    )
    assert verified.status_code == 200, verified.json
    assert verified.json["phone"] == VICTIM_PHONE
    assert verified.json["username"] != VICTIM_PHONE  # taken: another one was chosen
    assert verified.json["id"] != previous


def test_an_imported_phone_shaped_username_does_not_block_an_otp_sign_up(
    sms_http, gateway, make_user, make_client
):
    make_user("+33655555555", username=VICTIM_PHONE)  # e.g. imported from Django as it was
    client = make_client(grant_types=(OTP_GRANT_TYPE,), first_party=True)
    assert sms_http.post("/oauth/otp", data={"phone": VICTIM_PHONE}).status_code == 200
    response = sms_http.post(
        "/oauth/token",
        data={"grant_type": OTP_GRANT_TYPE, "phone": VICTIM_PHONE,
              "otp": gateway.last_code(VICTIM_PHONE)},
        headers=client.basic,
    )  # fmt: skip
    assert response.status_code == 200, response.json


# --- account changes need the account holder (issue #14) ---------------------------------
def test_a_phone_change_needs_the_current_password(sms_http, gateway, app_client, user):
    me = bearer(login(sms_http, app_client)["access_token"])
    for body, status in (
        ({"phone": NEW_PHONE}, 400),
        ({"phone": NEW_PHONE, "current_password": "not the password"}, 400),
    ):
        refused = sms_http.post("/account/phone", json=body, headers=me)
        assert refused.status_code == status, refused.json
        assert "current_password" in refused.json["fields"]
    assert [d.json["to"] for d in gateway.delivered] == []  # no code went out
    started = sms_http.post(
        "/account/phone", json={"phone": NEW_PHONE, "current_password": PASSWORD}, headers=me
    )
    assert started.status_code == 200, started.json


def test_a_phone_change_tells_the_old_phone_and_ends_the_other_sessions(
    sms_http, gateway, app_client, user
):
    other = login(sms_http, app_client)
    mine = login(sms_http, app_client)
    me = bearer(mine["access_token"])
    started = sms_http.post(
        "/account/phone", json={"phone": NEW_PHONE, "current_password": PASSWORD}, headers=me
    )
    assert started.status_code == 200, started.json
    confirmed = sms_http.post(
        "/account/phone/confirm",
        json={"phone": NEW_PHONE, "code": gateway.last_code(NEW_PHONE)},
        headers=me,
    )
    assert confirmed.status_code == 200, confirmed.json
    told = [d.json for d in gateway.delivered if d.json["to"] == PHONE]
    assert len(told) == 1 and "changed" in told[0]["message"]
    assert refresh(sms_http, app_client, other["refresh_token"]).json["error"] == "invalid_grant"
    assert sms_http.get("/account/profile", headers=bearer(other["access_token"])).status_code \
        == 401  # fmt: skip
    assert sms_http.get("/account/profile", headers=me).status_code == 200


def sms_sign_up(sms_http, gateway, client, phone=NEW_PHONE) -> dict:
    assert sms_http.post("/oauth/otp", data={"phone": phone}).status_code == 200
    response = sms_http.post(
        "/oauth/token",
        data={"grant_type": OTP_GRANT_TYPE, "phone": phone, "otp": gateway.last_code(phone),
              "resource": ACCOUNT},
        headers=client.basic,
    )  # fmt: skip
    assert response.status_code == 200, response.json
    return response.json


def test_without_a_password_a_fresh_code_to_the_current_phone_is_needed(
    sms_http, gateway, make_client, time_machine
):
    time_machine.move_to(datetime.now(UTC))
    client = make_client(grant_types=(OTP_GRANT_TYPE, "refresh_token"), first_party=True)
    me = bearer(sms_sign_up(sms_http, gateway, client)["access_token"])
    other_phone = "+33677777777"
    refused = sms_http.post("/account/phone", json={"phone": other_phone}, headers=me)
    assert refused.status_code == 400 and "current_code" in refused.json["fields"]
    refused = sms_http.post("/account/password", json={"new_password": "x" * 12}, headers=me)
    assert refused.status_code == 400 and "current_code" in refused.json["fields"]

    time_machine.shift(61)  # the sign-up code's resend cooldown
    sent = sms_http.post("/account/code", headers=me)
    assert sent.status_code == 200, sent.json
    assert sent.json["phone"] == NEW_PHONE
    code = gateway.last_code(NEW_PHONE)
    wrong = sms_http.post(
        "/account/phone", json={"phone": other_phone, "current_code": "000000"}, headers=me
    )
    assert wrong.status_code == 400 and "current_code" in wrong.json["fields"]
    started = sms_http.post(
        "/account/phone", json={"phone": other_phone, "current_code": code}, headers=me
    )
    assert started.status_code == 200, started.json
    # A code proves the holder once.
    again = sms_http.post(
        "/account/password", json={"new_password": "x" * 12, "current_code": code}, headers=me
    )
    assert again.status_code == 400 and "current_code" in again.json["fields"]
