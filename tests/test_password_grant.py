"""The password grant through HTTP, checked with PyJWT against the served JWKS."""

from __future__ import annotations

import statistics
import time
import uuid

import jwt
import pytest
from jwt import PyJWKClient

from tests.conftest import ISSUER, PASSWORD, PHONE, build_app, django_pbkdf2
from tests.helpers import committed


def test_password_grant_issues_rfc9068_token_verifiable_with_pyjwt(
    live_server, password_login, user, app_client
):
    token = password_login()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 300
    assert token["scope"] == "profile properties.read"
    assert token["refresh_token"].count(".") == 0  # opaque, not a JWT

    header = jwt.get_unverified_header(token["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "RS256"
    signing_key = PyJWKClient(live_server.url + "/.well-known/jwks.json").get_signing_key_from_jwt(
        token["access_token"]
    )
    claims = jwt.decode(
        token["access_token"],
        signing_key.key,
        algorithms=["RS256"],
        audience=ISSUER,
        issuer=ISSUER,
    )
    assert claims["sub"] == user
    assert claims["client_id"] == app_client.client_id
    assert claims["amr"] == ["pwd"]
    assert claims["exp"] - claims["iat"] == 300
    assert {"jti", "sid", "groups", "entitlements", "scope"} <= claims.keys()


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("06 12 97 56 34", "wrong password"),  # known phone, wrong password
        ("+33 6 99 99 99 99", PASSWORD),  # unknown phone
        ("not a phone", PASSWORD),  # unparseable
    ],
)
def test_wrong_credentials_get_one_indistinguishable_answer(
    http, app_client, user, username, password
):
    response = http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": username, "password": password},
        headers=app_client.basic,
    )
    assert response.status_code == 400
    assert response.json == {
        "error": "invalid_grant",
        "error_description": "Invalid phone number or password.",
    }
    assert response.headers["Cache-Control"] == "no-store"


# --- the phone number, written the ways people write it -----------------------------------


@pytest.mark.parametrize(
    "username",
    [
        "0612975634",
        "+33 6 12 97 56 34",
        "06.12.97.56.34",
        "06-12-97-56-34",
        "+33612975634",
        "0033612975634",
        " 06 12 97 56 34 ",
    ],
)
def test_phone_in_any_usual_form_signs_in(http, app_client, user, username):
    response = post_password(http, app_client, username, PASSWORD)
    assert response.status_code == 200, response.json
    assert (
        jwt.decode(response.json["access_token"], options={"verify_signature": False})["sub"]
        == user
    )


def test_unicode_password_round_trips(http, app_client, make_user):
    password = "pàsswörd ключ 🔑"
    make_user(password=password)
    assert post_password(http, app_client, PHONE, password).status_code == 200
    # A differently normalised spelling is a different password: no silent folding.
    assert post_password(http, app_client, PHONE, password.upper()).status_code == 400


# --- accounts that may not sign in --------------------------------------------------------


@pytest.mark.parametrize("flag", [{"is_blocked": True}, {"is_active": False}])
def test_blocked_or_inactive_user_gets_no_tokens(http, app, app_client, user, flag):
    set_user(app, user, **flag)
    response = post_password(http, app_client, PHONE, PASSWORD)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"
    assert "access_token" not in response.json
    with app.app_context():
        assert session_count(app) == 0
    # A wrong password on a disabled account still gets the generic answer.
    wrong = post_password(http, app_client, PHONE, "wrong password")
    assert wrong.json == INVALID_CREDENTIALS


def test_user_without_password_cannot_use_password_grant(http, app_client, make_user):
    make_user(password=None)  # an SMS-code-only account
    for attempt in ("", "None", "null"):
        response = post_password(http, app_client, PHONE, attempt)
        assert response.status_code == 400
        assert response.json["error"] == "invalid_grant"


# --- hashes: argon2id parameters and imported Django hashes --------------------------------


def test_argon2_hash_is_upgraded_when_parameters_change(
    http, app, app_client, database_url, keys_dir
):
    stronger = build_app(database_url, keys_dir, argon2_time_cost="3")
    try:
        with committed(stronger):
            from authserver.accounts.services import create_user
            from authserver.extensions import db

            create_user(PHONE, PASSWORD)
            db.session.commit()
            db.session.remove()
    finally:
        with stronger.app_context():
            from authserver.extensions import db

            db.engine.dispose()
    before = stored_hash(app)
    assert before.startswith("$argon2id$") and ",t=3," in before

    assert post_password(http, app_client, PHONE, PASSWORD).status_code == 200
    after = stored_hash(app)
    assert after.startswith("$argon2id$") and ",t=2," in after
    # The new hash is for the same password.
    assert post_password(http, app_client, PHONE, PASSWORD).status_code == 200
    assert stored_hash(app) == after  # no rehash when parameters already match


def test_wrapped_django_hash_verifies_and_becomes_argon2id(http, app, app_client, make_user):
    user_id = make_user(password=None)
    with app.app_context():
        wrapped = app.extensions["authserver.passwords"].wrap(django_pbkdf2(PASSWORD))
    assert wrapped.startswith("argon2id+pbkdf2_sha256$20000$s4ltS4ltS4lt$$argon2id$")
    set_user(app, user_id, password_hash=wrapped)

    wrong = post_password(http, app_client, PHONE, "wrong password")
    assert wrong.json == INVALID_CREDENTIALS
    assert stored_hash(app) == wrapped  # a failed login changes nothing

    assert post_password(http, app_client, PHONE, PASSWORD).status_code == 200
    upgraded = stored_hash(app)
    assert upgraded.startswith("$argon2id$")
    assert post_password(http, app_client, PHONE, PASSWORD).status_code == 200
    assert post_password(http, app_client, PHONE, "wrong password").status_code == 400


@pytest.mark.parametrize(
    "broken",
    [
        "pbkdf2_sha256$notanumber$salt$abc",
        "pbkdf2_sha256$0$salt$abc",
        "pbkdf2_sha256$999999999999$salt$abc",
        "pbkdf2_sha256$",
        django_pbkdf2(PASSWORD),  # never stored bare: the import and 0007 wrap it
        "argon2id+pbkdf2_sha256$20000$salt$",
        "argon2id+pbkdf2_sha256$0$salt$$argon2id$x",
        "$argon2id$garbage",
        "",
    ],
)
def test_corrupt_stored_hash_is_invalid_grant_not_500(http, app, app_client, make_user, broken):
    user_id = make_user(password=None)
    set_user(app, user_id, password_hash=broken)
    assert post_password(http, app_client, PHONE, PASSWORD).json == INVALID_CREDENTIALS


# --- audit trail --------------------------------------------------------------------------


def test_failed_logins_are_audited_without_the_password(http, app, app_client, user):
    secret_attempt = "my-secret-attempt-123"
    post_password(http, app_client, PHONE, secret_attempt)
    post_password(http, app_client, "+33 6 99 99 99 99", secret_attempt)
    set_user(app, user, is_blocked=True)
    post_password(http, app_client, PHONE, PASSWORD)

    rows = audit_rows(app, "login.password")
    assert [row["outcome"] for row in rows] == ["failure"] * 3
    assert [row["details"]["reason"] for row in rows] == [
        "invalid_credentials",
        "invalid_credentials",
        "account_disabled",
    ]
    assert rows[0]["user_id"] == user and rows[1]["user_id"] is None
    assert all(row["client_id"] == app_client.client_id for row in rows)
    everything = repr(audit_rows(app, None))
    assert secret_attempt not in everything and PASSWORD not in everything


def test_successful_login_is_audited(http, app, app_client, user):
    post_password(http, app_client, PHONE, PASSWORD)
    rows = audit_rows(app, "login")
    assert len(rows) == 1 and rows[0]["outcome"] == "success"
    assert rows[0]["user_id"] == user
    assert PASSWORD not in repr(audit_rows(app, None))


# --- timing: an unknown phone costs a password verification too ---------------------------


def test_unknown_phone_costs_about_as_much_as_a_wrong_password(http, app_client, user):
    """Without the dummy verification an unknown phone answers ~10x faster than a wrong
    password, which tells an attacker which numbers have accounts. Medians of interleaved
    tries and a loose bound keep this stable on a busy machine."""
    timings: dict[str, list[float]] = {"wrong": [], "unknown": [], "unparseable": []}
    usernames = {"wrong": PHONE, "unknown": "+33 6 99 99 99 99", "unparseable": "not a phone"}
    post_password(http, app_client, PHONE, "warm-up")
    for _ in range(7):
        for kind, username in usernames.items():
            started = time.perf_counter()
            response = post_password(http, app_client, username, "wrong password")
            timings[kind].append(time.perf_counter() - started)
            assert response.json == INVALID_CREDENTIALS
    wrong = statistics.median(timings["wrong"])
    assert statistics.median(timings["unknown"]) >= 0.5 * wrong, timings
    assert statistics.median(timings["unparseable"]) >= 0.5 * wrong, timings


# --- helpers ------------------------------------------------------------------------------

INVALID_CREDENTIALS = {
    "error": "invalid_grant",
    "error_description": "Invalid phone number or password.",
}


def post_password(http, client, username: str, password: str):
    return http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": username, "password": password},
        headers=client.basic,
    )


def set_user(app, user_id: str, **values) -> None:
    from authserver.accounts.models import User
    from authserver.extensions import db

    with app.app_context():
        user = db.session.get(User, uuid.UUID(user_id))
        for name, value in values.items():
            setattr(user, name, value)
        db.session.commit()


def stored_hash(app) -> str:
    from sqlalchemy import select

    from authserver.accounts.models import User
    from authserver.extensions import db

    with app.app_context():
        return db.session.scalar(select(User.password_hash).where(User.phone == PHONE))


def session_count(app) -> int:
    from sqlalchemy import func, select

    from authserver.extensions import db
    from authserver.oauth.models import AuthSession

    return db.session.scalar(select(func.count()).select_from(AuthSession))


def audit_rows(app, event: str | None) -> list[dict]:
    """Every column of the audit rows, read back from the database in insertion order."""
    from sqlalchemy import select

    from authserver.audit import AuditEvent
    from authserver.extensions import db

    with app.app_context():
        query = select(AuditEvent).order_by(AuditEvent.id)
        if event is not None:
            query = query.where(AuditEvent.event == event)
        return [
            {c.key: getattr(row, c.key) for c in AuditEvent.__mapper__.column_attrs}
            for row in db.session.scalars(query)
        ]
