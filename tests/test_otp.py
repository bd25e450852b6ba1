"""Phone-code sign-in, sign-up by phone and password reset, through HTTP, with a real HTTP
server as the SMS gateway. Tokens are checked with PyJWT against the served JWKS."""

from __future__ import annotations

import hashlib
import hmac

import jwt
import pytest
from sqlalchemy import select

from authserver.config import Settings
from authserver.errors import ConfigError
from authserver.otp import OTP_GRANT_TYPE
from tests.conftest import ISSUER, PASSWORD, PHONE
from tests.sms_gateway import WEBHOOK_SECRET

NEW_PHONE = "+33698765432"


@pytest.fixture
def otp_app(make_otp_app):
    return make_otp_app()


@pytest.fixture
def otp_http(otp_app):
    return otp_app.test_client()


@pytest.fixture
def otp_client(make_client):
    return make_client(
        grant_types=(OTP_GRANT_TYPE, "refresh_token", "password"),
        scope="openid phone profile properties.read",
    )


def send_code(http, phone=NEW_PHONE, **extra):
    return http.post("/oauth/otp", data={"phone": phone, **extra})


def otp_token(http, client, phone, code, **extra):
    return http.post(
        "/oauth/token",
        data={"grant_type": OTP_GRANT_TYPE, "phone": phone, "otp": code, **extra},
        headers=client.basic,
    )


def verified_claims(http, access_token: str) -> dict:
    jwks = jwt.PyJWKSet.from_dict(http.get("/.well-known/jwks.json").json)
    kid = jwt.get_unverified_header(access_token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    return jwt.decode(access_token, key.key, algorithms=["RS256"], audience=ISSUER, issuer=ISSUER)


def test_metadata_advertises_the_otp_endpoint_and_grant(otp_http):
    metadata = otp_http.get("/.well-known/oauth-authorization-server").json
    assert metadata["otp_endpoint"] == ISSUER + "/oauth/otp"
    assert OTP_GRANT_TYPE in metadata["grant_types_supported"]


def test_first_code_login_signs_up_the_phone(otp_app, otp_http, otp_client, gateway):
    response = send_code(otp_http, "06 98 76 54 32")
    assert response.status_code == 200
    assert response.json == {"phone": NEW_PHONE, "expires_in": 300, "retry_after": 60}
    assert "code" not in response.json
    assert response.headers["Cache-Control"] == "no-store"

    (sms,) = gateway.requests
    assert sms.headers["Content-Type"] == "application/json"
    assert sms.json["to"] == NEW_PHONE
    assert sms.code in sms.json["message"]
    expected = hmac.new(WEBHOOK_SECRET.encode(), sms.body, hashlib.sha256).hexdigest()
    assert sms.headers["X-Authserver-Signature"] == f"sha256={expected}"

    token = otp_token(otp_http, otp_client, "06 98 76 54 32", sms.code)
    assert token.status_code == 200, token.json
    claims = verified_claims(otp_http, token.json["access_token"])
    assert claims["amr"] == ["otp", "sms"]
    assert claims["client_id"] == otp_client.client_id
    assert {"sid", "jti", "scope"} <= claims.keys()

    profile = otp_http.get(
        "/oauth/userinfo", headers={"Authorization": f"Bearer {token.json['access_token']}"}
    ).json
    assert profile["sub"] == claims["sub"]
    assert profile["phone_number"] == NEW_PHONE

    with otp_app.app_context():
        from authserver.accounts.models import User
        from authserver.audit import AuditEvent
        from authserver.extensions import db

        user = db.session.scalar(select(User).where(User.phone == NEW_PHONE))
        assert user is not None and user.password_hash is None
        events = db.session.scalars(
            select(AuditEvent.event).where(AuditEvent.user_id == str(user.id))
        ).all()
        assert "user.created" in events and "login" in events
        # The code itself is stored nowhere: only its HMAC.
        from authserver.otp.models import OtpChallenge

        stored = db.session.scalars(select(OtpChallenge)).one()
        assert sms.code.encode() not in stored.code_hash and stored.consumed_at is not None

    refreshed = otp_http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token.json["refresh_token"]},
        headers=otp_client.basic,
    )
    assert refreshed.status_code == 200
    assert verified_claims(otp_http, refreshed.json["access_token"])["amr"] == ["otp", "sms"]


def test_existing_user_signs_in_to_own_account(otp_http, otp_client, gateway, user):
    assert send_code(otp_http, PHONE).status_code == 200
    token = otp_token(otp_http, otp_client, PHONE, gateway.last_code(PHONE))
    assert token.status_code == 200
    assert verified_claims(otp_http, token.json["access_token"])["sub"] == user


def test_json_body_is_accepted(otp_http, gateway):
    response = otp_http.post("/oauth/otp", json={"phone": NEW_PHONE})
    assert response.status_code == 200
    assert gateway.delivered[-1].json["to"] == NEW_PHONE


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"phone": "+33 1 42 68 53 00"}, "invalid_phone_number"),  # a Paris landline
        ({"phone": "not a number"}, "invalid_phone_number"),
        ({"phone": "+33 6 12"}, "invalid_phone_number"),
        ({}, "invalid_request"),
        ({"phone": ["+33612975634"]}, "invalid_request"),
        ({"phone": NEW_PHONE, "purpose": "admin"}, "invalid_request"),
    ],
)
def test_bad_requests_get_400_and_send_nothing(otp_http, gateway, body, error):
    response = otp_http.post("/oauth/otp", json=body)
    assert response.status_code == 400
    assert response.json["error"] == error
    assert gateway.requests == []


def test_other_bodies_get_415_or_400(otp_http):
    assert otp_http.post("/oauth/otp", data="phone=1", content_type="text/plain").status_code == 415
    response = otp_http.post("/oauth/otp", data="{nope", content_type="application/json")
    assert response.status_code == 400


def test_region_allow_list(make_otp_app, gateway):
    http = make_otp_app(otp_allowed_regions="FR,BE").test_client()
    refused = send_code(http, "+44 7400 123456")  # a valid UK mobile
    assert refused.status_code == 400
    assert refused.json["error"] == "unsupported_region"
    assert gateway.requests == []
    assert send_code(http, "+32 470 12 34 56").status_code == 200  # Belgium is allowed


def test_five_wrong_codes_kill_the_code(otp_http, otp_client, gateway):
    send_code(otp_http)
    code = gateway.last_code(NEW_PHONE)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for _ in range(5):
        response = otp_token(otp_http, otp_client, NEW_PHONE, wrong)
        assert response.status_code == 400
        assert response.json == {
            "error": "invalid_grant",
            "error_description": "The code is invalid or has expired.",
        }
    # The sixth try, with the right code, fails too: the code is dead.
    assert otp_token(otp_http, otp_client, NEW_PHONE, code).status_code == 400


def test_four_wrong_codes_then_the_right_one_signs_in(otp_http, otp_client, gateway):
    send_code(otp_http)
    code = gateway.last_code(NEW_PHONE)
    for _ in range(4):
        assert otp_token(otp_http, otp_client, NEW_PHONE, "000000x").status_code == 400
    assert otp_token(otp_http, otp_client, NEW_PHONE, code).status_code == 200


def test_a_code_works_once(otp_http, otp_client, gateway):
    send_code(otp_http)
    code = gateway.last_code(NEW_PHONE)
    assert otp_token(otp_http, otp_client, NEW_PHONE, code).status_code == 200
    again = otp_token(otp_http, otp_client, NEW_PHONE, code)
    assert again.status_code == 400 and again.json["error"] == "invalid_grant"


def test_only_the_newest_code_is_valid(otp_http, otp_client, gateway, time_machine):
    time_machine.move_to("2030-01-01 12:00:00+00:00")
    send_code(otp_http)
    first = gateway.last_code(NEW_PHONE)
    time_machine.shift(61)
    assert send_code(otp_http).status_code == 200
    second = gateway.last_code(NEW_PHONE)
    if first != second:  # one chance in a million that both are equal
        assert otp_token(otp_http, otp_client, NEW_PHONE, first).status_code == 400
    assert otp_token(otp_http, otp_client, NEW_PHONE, second).status_code == 200


def test_codes_expire(make_otp_app, otp_client, gateway, time_machine):
    http = make_otp_app(otp_ttl="120").test_client()
    time_machine.move_to("2030-01-01 12:00:00+00:00")
    assert send_code(http).json["expires_in"] == 120
    time_machine.shift(121)
    response = otp_token(http, otp_client, NEW_PHONE, gateway.last_code(NEW_PHONE))
    assert response.status_code == 400


@pytest.mark.parametrize("flag", ["is_blocked", "inactive"])
def test_blocked_and_inactive_users_get_no_tokens(
    otp_app, otp_http, otp_client, gateway, user, flag
):
    from authserver.accounts.models import User
    from authserver.extensions import db

    with otp_app.app_context():
        account = db.session.scalar(select(User).where(User.phone == PHONE))
        account.is_blocked, account.is_active = flag == "is_blocked", flag != "inactive"
        db.session.commit()
    assert send_code(otp_http, PHONE).status_code == 200
    token = otp_token(otp_http, otp_client, PHONE, gateway.last_code(PHONE))
    assert token.status_code == 400
    assert token.json == {
        "error": "invalid_grant",
        "error_description": "This account is disabled.",
    }


def test_client_without_the_grant_and_missing_parameters(otp_http, make_client, otp_client):
    password_only = make_client(grant_types=("password",))
    refused = otp_token(otp_http, password_only, NEW_PHONE, "123456")
    assert refused.status_code == 400 and refused.json["error"] == "unauthorized_client"
    missing = otp_http.post(
        "/oauth/token",
        data={"grant_type": OTP_GRANT_TYPE, "phone": NEW_PHONE},
        headers=otp_client.basic,
    )
    assert missing.status_code == 400 and missing.json["error"] == "invalid_request"
    no_code = otp_token(otp_http, otp_client, NEW_PHONE, "123456")  # nothing was sent
    assert no_code.status_code == 400 and no_code.json["error"] == "invalid_grant"


def test_code_in_response_only_when_exposed(make_otp_app, gateway, tmp_path):
    http = make_otp_app(otp_expose_code="true").test_client()
    response = send_code(http)
    assert response.json["code"] == gateway.last_code(NEW_PHONE)
    with pytest.raises(ConfigError, match="AUTHSERVER_OTP_EXPOSE_CODE"):
        Settings.from_env(
            {
                "AUTHSERVER_ENV": "production",
                "AUTHSERVER_OTP_EXPOSE_CODE": "true",
                "AUTHSERVER_KEYS_DIR": str(tmp_path),
            }
        )


# --- password reset ---


def password_login(http, client, password=PASSWORD):
    return http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": PHONE, "password": password},
        headers=client.basic,
    )


def reset(http, code, new_password="a brand new secret", phone=PHONE):
    return http.post(
        "/oauth/password-reset",
        json={"phone": phone, "code": code, "new_password": new_password},
    )


def test_password_reset_sets_the_password_and_ends_every_session(
    otp_app, otp_http, otp_client, gateway, user
):
    sessions = [password_login(otp_http, otp_client).json for _ in range(2)]
    assert send_code(otp_http, PHONE, purpose="password_reset").status_code == 200
    assert "reset" in gateway.delivered[-1].json["message"]

    response = reset(otp_http, gateway.last_code(PHONE))
    assert response.status_code == 200
    assert response.json == {"password_reset": True, "sessions_revoked": 2}

    for tokens in sessions:
        refreshed = otp_http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            headers=otp_client.basic,
        )
        assert refreshed.status_code == 400
        introspected = otp_http.post(
            "/oauth/introspect",
            data={"token": tokens["access_token"]},
            headers=otp_client.basic,
        )
        assert introspected.json == {"active": False}
    assert password_login(otp_http, otp_client).status_code == 400
    assert password_login(otp_http, otp_client, "a brand new secret").status_code == 200
    with otp_app.app_context():
        from authserver.audit import AuditEvent
        from authserver.extensions import db

        event = db.session.scalar(select(AuditEvent).where(AuditEvent.event == "password.reset"))
        assert event.user_id == user and event.details["sessions_revoked"] == 2


def test_codes_serve_only_their_purpose(otp_http, otp_client, gateway, user, time_machine):
    time_machine.move_to("2030-01-01 12:00:00+00:00")
    send_code(otp_http, PHONE)  # a sign-in code cannot reset the password
    response = reset(otp_http, gateway.last_code(PHONE))
    assert response.status_code == 400 and response.json["error"] == "invalid_code"

    time_machine.shift(61)
    send_code(otp_http, PHONE, purpose="password_reset")  # nor a reset code sign in
    assert otp_token(otp_http, otp_client, PHONE, gateway.last_code(PHONE)).status_code == 400


def test_reset_refuses_a_bad_password_without_spending_the_code(otp_http, gateway, user):
    send_code(otp_http, PHONE, purpose="password_reset")
    code = gateway.last_code(PHONE)
    short = reset(otp_http, code, "short")
    assert short.status_code == 400 and short.json["error"] == "invalid_password"
    assert reset(otp_http, code).status_code == 200


def test_reset_of_an_unknown_phone_looks_like_a_wrong_code(otp_http, gateway):
    send_code(otp_http, NEW_PHONE, purpose="password_reset")
    response = reset(otp_http, gateway.last_code(NEW_PHONE), phone=NEW_PHONE)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_code"
    missing = otp_http.post("/oauth/password-reset", json={"phone": PHONE})
    assert missing.status_code == 400 and missing.json["error"] == "invalid_request"


def test_parallel_wrong_tries_are_all_counted(otp_app, otp_client, gateway):
    """Ten wrong tries at once: at most five are compared, and the code is dead after."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from tests.conftest import LiveServer

    with LiveServer(otp_app) as server:
        requests.post(server.url + "/oauth/otp", data={"phone": NEW_PHONE}, timeout=10)
        code = gateway.last_code(NEW_PHONE)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"

        def attempt(value: str) -> int:
            return requests.post(
                server.url + "/oauth/token",
                data={"grant_type": OTP_GRANT_TYPE, "phone": NEW_PHONE, "otp": value},
                headers=otp_client.basic,
                timeout=30,
            ).status_code

        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = list(pool.map(attempt, [wrong] * 10))
        assert statuses == [400] * 10
        assert attempt(code) == 400
    with otp_app.app_context():
        from authserver.extensions import db
        from authserver.otp.models import OtpChallenge

        assert db.session.scalars(select(OtpChallenge.attempts)).one() == 5
