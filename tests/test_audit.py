"""The audit log: security events are recorded with actor, IP, user agent and time, read
and filtered through GET /admin/audit, and never hold a secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.conftest import PASSWORD, PHONE
from tests.helpers import bearer
from tests.own_api import ACCOUNT, ADMIN
from tests.sms_gateway import SmsGateway, build_otp_app, dispose

ADMIN_PHONE = "+33611111111"
NEW_PHONE = "+33698765432"
NEW_PASSWORD = "an entirely new password"


def token_request(http, client, **data):
    return http.post("/oauth/token", data=data, headers={**client.basic, "User-Agent": "audit/1"})


def login(http, client, phone=PHONE, password=PASSWORD, **extra) -> dict:
    response = token_request(
        http, client, grant_type="password", username=phone, password=password, **extra
    )
    assert response.status_code == 200, response.json
    return response.json


@pytest.fixture
def app_client(make_client):
    """The platform's own app: it may ask for account and admin tokens."""
    return make_client(first_party=True)


def all_events(http, admin, **filters) -> list[dict]:
    events, offset = [], 0
    while offset is not None:
        page = http.get("/admin/audit", query_string={**filters, "limit": 200, "offset": offset},
                        headers=admin)  # fmt: skip
        assert page.status_code == 200, page.json
        events += page.json["events"]
        offset = page.json["next_offset"]
    return events


@pytest.fixture(scope="module")
def gateway():
    with SmsGateway() as server:
        yield server


@pytest.fixture
def sms_app(app, database_url, keys_dir, gateway):
    gateway.reset()
    built = build_otp_app(database_url, keys_dir, gateway)
    yield built
    dispose(built)


@pytest.fixture
def admin_id(make_user) -> str:
    return make_user(ADMIN_PHONE, admin=True)


def test_events_are_recorded_and_hold_no_secret(
    sms_app, gateway, app_client, user, admin_id, time_machine
):
    time_machine.move_to(datetime.now(UTC))
    http = sms_app.test_client()
    secrets_used = [PASSWORD, NEW_PASSWORD, app_client.secret]
    admin = bearer(login(http, app_client, ADMIN_PHONE, resource=ADMIN)["access_token"])

    # A failed and a successful sign-in; a refresh token replayed; a token revoked.
    assert token_request(http, app_client, grant_type="password", username=PHONE,
                         password="wrong guess").status_code == 400  # fmt: skip
    secrets_used.append("wrong guess")
    first = login(http, app_client)
    rotated = token_request(
        http, app_client, grant_type="refresh_token", refresh_token=first["refresh_token"]
    ).json
    # Replayed after the grace window: reuse, the session is revoked.
    time_machine.shift(sms_app.extensions["authserver.settings"].refresh_reuse_grace + 5)
    replay = token_request(
        http, app_client, grant_type="refresh_token", refresh_token=first["refresh_token"]
    )
    assert replay.status_code == 400
    second = login(http, app_client)
    revoked = http.post("/oauth/revoke", data={"token": second["access_token"]},
                        headers=app_client.basic)  # fmt: skip
    assert revoked.status_code == 200
    secrets_used += [first["refresh_token"], rotated["refresh_token"], second["refresh_token"],
                     first["access_token"], second["access_token"]]  # fmt: skip

    # Self-service: profile, password, phone (with its code), sessions, logout.
    mine = login(http, app_client, resource=ACCOUNT)
    me = bearer(mine["access_token"])
    secrets_used += [mine["refresh_token"], mine["access_token"]]
    http.patch("/account/profile", json={"first_name": "Ada"}, headers=me)
    assert http.post("/account/password", json={"current_password": PASSWORD,
                     "new_password": NEW_PASSWORD}, headers=me).status_code == 200  # fmt: skip
    http.post("/account/phone", json={"phone": NEW_PHONE, "current_password": NEW_PASSWORD},
              headers=me)  # fmt: skip
    code = gateway.last_code(NEW_PHONE)
    secrets_used.append(code)
    assert http.post("/account/phone/confirm", json={"phone": NEW_PHONE, "code": code},
                     headers=me).status_code == 200  # fmt: skip
    http.post("/account/sessions/end-others", headers=me)
    http.post("/account/logout", headers=me)

    # Admin changes.
    created = http.post("/admin/users", json={"phone": "+33633333333",
                        "password": "admin-chosen pw"}, headers=admin).json  # fmt: skip
    secrets_used.append("admin-chosen pw")
    http.patch(f"/admin/users/{created['id']}", json={"password": "admin-reset pw"},
               headers=admin)  # fmt: skip
    secrets_used.append("admin-reset pw")
    http.post(f"/admin/users/{user}/block", headers=admin)
    http.post(f"/admin/users/{user}/unblock", headers=admin)
    http.post("/admin/permissions", json={"codename": "properties.view"}, headers=admin)
    http.post("/admin/groups", json={"name": "Landlords", "permissions": ["properties.view"]},
              headers=admin)  # fmt: skip
    http.put(f"/admin/users/{created['id']}/groups", json={"groups": ["Landlords"]},
             headers=admin)  # fmt: skip
    client = http.post("/admin/clients", json={"name": "svc",
                       "grant_types": ["client_credentials"]}, headers=admin).json  # fmt: skip
    secrets_used.append(client["client_secret"])
    new_secret = http.post(f"/admin/clients/{client['client_id']}/rotate-secret",
                           headers=admin).json["client_secret"]  # fmt: skip
    secrets_used.append(new_secret)
    http.post(f"/admin/clients/{client['client_id']}/disable", headers=admin)

    events = all_events(http, admin)
    names = {(e["event"], e["outcome"]) for e in events}
    expected = {
        ("login.password", "failure"),
        ("login", "success"),
        ("refresh_token.reused", "failure"),
        ("token.revoked", "success"),
        ("profile.updated", "success"),
        ("password.changed", "success"),
        ("otp.sent", "success"),
        ("phone.changed", "success"),
        ("session.revoked", "success"),
        ("logout", "success"),
        ("user.created", "success"),
        ("user.updated", "success"),
        ("user.blocked", "success"),
        ("user.unblocked", "success"),
        ("permission.created", "success"),
        ("group.created", "success"),
        ("user.groups_set", "success"),
        ("client.created", "success"),
        ("client.secret_rotated", "success"),
        ("client.disabled", "success"),
    }
    assert expected <= names, expected - names

    # Admin changes name the admin; self-service names the user.
    for event in events:
        by_admin = event["event"] in ("user.blocked", "group.created") or (
            event["event"].startswith("client.") and event["client_id"] == client["client_id"]
        )
        if by_admin:
            assert event["actor"] == admin_id, event
        if event["event"] in ("password.changed", "profile.updated", "logout"):
            assert event["actor"] == user and event["user_id"] == user
    blocked = next(e for e in events if e["event"] == "user.blocked")
    assert blocked["user_id"] == user and blocked["details"]["sessions_revoked"] == 0
    assert blocked["ip_address"] == "127.0.0.1"
    login_event = next(e for e in events if e["event"] == "login")
    assert login_event["user_agent"] == "audit/1" and login_event["client_id"]
    assert datetime.fromisoformat(login_event["occurred_at"]) <= datetime.now(UTC)
    updated = next(e for e in events if e["event"] == "user.updated")
    assert updated["details"]["fields"] == ["password"]

    # No secret anywhere, in any form the API or the table holds it.
    dumped = json.dumps(events)
    from authserver.audit import AuditEvent
    from authserver.extensions import db

    with sms_app.app_context():
        rows = db.session.query(AuditEvent).all()
        dumped += json.dumps([r.details for r in rows]) + " ".join(
            f"{r.actor} {r.user_agent} {r.client_id}" for r in rows
        )
    for secret in secrets_used:
        assert secret and secret not in dumped, "a secret reached the audit log"


def test_filters_and_pagination(http, app_client, user, admin_id, time_machine):
    time_machine.move_to(datetime(2030, 1, 1, 12, tzinfo=UTC), tick=False)
    admin = bearer(login(http, app_client, ADMIN_PHONE, resource=ADMIN)["access_token"])
    for _ in range(3):
        token_request(http, app_client, grant_type="password", username=PHONE, password="bad")
    time_machine.move_to(datetime(2030, 1, 2, 12, tzinfo=UTC), tick=False)
    login(http, app_client)
    admin = bearer(login(http, app_client, ADMIN_PHONE, resource=ADMIN)["access_token"])

    failures = all_events(http, admin, outcome="failure")
    assert len(failures) == 3
    assert {e["event"] for e in failures} == {"login.password"}
    assert all(e["user_id"] == user for e in failures)

    mine = all_events(http, admin, user_id=user)
    assert [e["event"] for e in mine] == [
        "login",
        "login.password",
        "login.password",
        "login.password",
    ]  # fmt: skip  (newest first)
    assert all_events(http, admin, event="login", user_id=admin_id)
    assert all_events(http, admin, client_id="nobody") == []
    assert len(all_events(http, admin, client_id=app_client.client_id)) >= 6

    day_one = all_events(http, admin, since="2030-01-01T00:00:00Z", until="2030-01-02T00:00:00")
    assert {e["event"] for e in day_one} == {"login", "login.password"}
    assert len([e for e in day_one if e["event"] == "login.password"]) == 3
    assert all_events(http, admin, since="2030-01-03T00:00:00+00:00") == []

    page = http.get("/admin/audit?limit=2", headers=admin).json
    rest = http.get(f"/admin/audit?limit=2&offset={page['next_offset']}", headers=admin).json
    assert page["events"][0]["id"] > page["events"][1]["id"] > rest["events"][0]["id"]

    for bad in ("since=yesterday", "limit=0", "limit=500", "until=2030-13-01", "colour=red"):
        response = http.get(f"/admin/audit?{bad}", headers=admin)
        assert response.status_code == 400, bad
        assert response.json["fields"]


def test_audit_log_is_admin_only(http, password_login, make_client):
    assert http.get("/admin/audit").status_code == 401
    user_token = password_login(resource=ADMIN)["access_token"]
    assert http.get("/admin/audit", headers=bearer(user_token)).status_code == 403
    service = make_client(grant_types=("client_credentials",), scope="authserver:admin")
    token = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "resource": ADMIN},
        headers=service.basic,
    ).json["access_token"]
    response = http.get("/admin/audit", headers=bearer(token))
    assert response.status_code == 200
    # The client acting as admin is named as the actor of what it changes.
    http.post("/admin/permissions", json={"codename": "x.y"}, headers=bearer(token))
    created = all_events(http, bearer(token), event="permission.created")
    assert [e["actor"] for e in created] == [service.client_id]
