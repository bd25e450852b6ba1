"""Signed-in devices: list, end one, end the others, log out, and the per-user limit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from tests.conftest import PASSWORD, PHONE, build_app
from tests.helpers import bearer, introspect, refresh
from tests.own_api import ACCOUNT

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def app_client(make_client):
    """The platform's own app: it may ask for tokens for the account API."""
    return make_client(first_party=True)


def login(http, client, *, user_agent: str = "", ip: str = "127.0.0.1", **extra) -> dict:
    """A sign-in whose access token is for the account API."""
    response = http.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "username": PHONE,
            "password": PASSWORD,
            "resource": ACCOUNT,
            **extra,
        },
        headers={**client.basic, "User-Agent": user_agent},
        environ_base={"REMOTE_ADDR": ip},
    )
    assert response.status_code == 200, response.json
    return response.json


def test_list_my_sessions(http, app_client, user, make_user):
    named = login(http, app_client, device_name="Kitchen tablet", user_agent=FIREFOX)
    phone = login(http, app_client, user_agent=IPHONE, ip="203.0.113.9")
    login(http, app_client, user_agent="")
    make_user("+33699999999")  # someone else's session must not show
    http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "+33699999999", "password": PASSWORD},
        headers=app_client.basic,
    )

    response = http.get("/account/sessions", headers=bearer(phone["access_token"]))
    assert response.status_code == 200
    sessions = response.json["sessions"]
    assert len(sessions) == 3
    by_name = {s["device_name"]: s for s in sessions}
    assert set(by_name) == {"Kitchen tablet", "Safari on iPhone", "Unknown device"}
    assert by_name["Safari on iPhone"]["current"] is True
    assert by_name["Safari on iPhone"]["ip_address"] == "203.0.113.9"
    assert by_name["Kitchen tablet"]["current"] is False
    assert by_name["Kitchen tablet"]["user_agent"] == FIREFOX
    for session in sessions:
        assert {"id", "created_at", "last_used_at", "client_id", "amr"} <= session.keys()
        assert session["client_id"] == app_client.client_id and session["amr"] == ["pwd"]
    assert named


def test_end_one_session(http, app_client, user, make_user):
    other = login(http, app_client, user_agent=FIREFOX)
    mine = login(http, app_client)
    me = bearer(mine["access_token"])
    other_id = next(
        s["id"] for s in http.get("/account/sessions", headers=me).json["sessions"]
        if not s["current"]
    )  # fmt: skip
    assert http.delete(f"/account/sessions/{other_id}", headers=me).status_code == 204

    assert refresh(http, app_client, other["refresh_token"]).json["error"] == "invalid_grant"
    assert introspect(http, app_client, other["access_token"]) == {"active": False}
    assert [s["current"] for s in http.get("/account/sessions", headers=me).json["sessions"]] \
        == [True]  # fmt: skip
    assert refresh(http, app_client, mine["refresh_token"]).status_code == 200

    # Unknown ids and other users' sessions are 404, and stay alive.
    assert http.delete(f"/account/sessions/{uuid.uuid4()}", headers=me).status_code == 404
    make_user("+33699999999")
    theirs = http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "+33699999999", "password": PASSWORD},
        headers=app_client.basic,
    ).json
    their_sid = introspect(http, app_client, theirs["access_token"])["sid"]
    response = http.delete(f"/account/sessions/{their_sid}", headers=me)
    assert response.status_code == 404 and response.json["error"] == "not_found"
    assert introspect(http, app_client, theirs["access_token"])["active"] is True


def test_end_all_other_sessions(http, app_client, user):
    others = [login(http, app_client) for _ in range(2)]
    mine = login(http, app_client)
    response = http.post("/account/sessions/end-others", headers=bearer(mine["access_token"]))
    assert response.status_code == 200 and response.json == {"sessions_revoked": 2}
    for tokens in others:
        assert introspect(http, app_client, tokens["refresh_token"]) == {"active": False}
    assert introspect(http, app_client, mine["access_token"])["active"] is True


def test_logout_ends_the_current_session(http, app_client, user):
    other = login(http, app_client)
    mine = login(http, app_client)
    assert http.post("/account/logout", headers=bearer(mine["access_token"])).status_code == 204
    assert http.get("/account/profile", headers=bearer(mine["access_token"])).status_code == 401
    assert refresh(http, app_client, mine["refresh_token"]).json["error"] == "invalid_grant"
    # Only this device.
    assert refresh(http, app_client, other["refresh_token"]).status_code == 200
    assert http.post("/account/logout", headers=bearer(mine["access_token"])).status_code == 401


# --- the limit of live sessions per user ---------------------------------------------
@pytest.fixture
def limited(app, database_url, keys_dir):
    """The app with AUTHSERVER_MAX_SESSIONS_PER_USER=2, on the suite's database."""
    limited_app = build_app(database_url, keys_dir, max_sessions_per_user="2")
    yield limited_app
    from authserver.extensions import db

    with limited_app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_new_sign_in_beyond_the_limit_ends_the_least_recently_used(
    limited, app_client, user, time_machine
):
    time_machine.move_to(datetime.now(UTC))
    http = limited.test_client()
    first = login(http, app_client, device_name="first")
    time_machine.shift(60)
    second = login(http, app_client, device_name="second")
    time_machine.shift(60)
    first = refresh(http, app_client, first["refresh_token"]).json  # used most recently now
    time_machine.shift(60)

    third = login(http, app_client, device_name="third")
    names = {
        s["device_name"]
        for s in http.get("/account/sessions", headers=bearer(third["access_token"])).json[
            "sessions"
        ]
    }
    assert names == {"first", "third"}
    assert refresh(http, app_client, second["refresh_token"]).json["error"] == "invalid_grant"
    assert introspect(http, app_client, second["access_token"]) == {"active": False}
    assert refresh(http, app_client, first["refresh_token"]).status_code == 200


def test_the_limit_applies_to_the_seed_login_too(limited, app_client, user):
    http = limited.test_client()
    tokens = [
        http.post("/api/auth/login/", json={"phone": PHONE, "password": PASSWORD}).json
        for _ in range(3)
    ]
    assert all("access" in t for t in tokens)
    # (The seed's tokens are not for the account API: the sessions counted in the database.)
    with limited.app_context():
        from authserver.extensions import db
        from authserver.oauth.sessions import live_sessions_query

        assert len(db.session.scalars(live_sessions_query(uuid.UUID(user))).all()) == 2
    assert http.post("/api/auth/refresh/", json={"refresh": tokens[0]["refresh"]}).status_code \
        == 401  # fmt: skip


def test_ended_and_expired_sessions_do_not_count(limited, app_client, user, time_machine):
    time_machine.move_to(datetime.now(UTC))
    http = limited.test_client()
    first = login(http, app_client, device_name="first")
    http.post("/account/logout", headers=bearer(first["access_token"]))
    second = login(http, app_client, device_name="second")
    idle = limited.extensions["authserver.settings"].session_idle_ttl
    time_machine.shift(idle + 1)  # the second is now idle beyond refresh
    third = login(http, app_client, device_name="third")
    fourth = login(http, app_client, device_name="fourth")
    listed = http.get("/account/sessions", headers=bearer(fourth["access_token"])).json
    assert {s["device_name"] for s in listed["sessions"]} == {"third", "fourth"}
    assert introspect(http, app_client, third["access_token"])["active"] is True
    assert second
