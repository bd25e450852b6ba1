"""The refresh_token grant: rotation, reuse detection, grace window, lifetimes, scope,
client binding, and the cost of reuse detection on a long token family."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import event, func, select

from tests.conftest import PASSWORD, build_app
from tests.helpers import introspect, refresh

GRACE = 10  # AUTHSERVER_REFRESH_REUSE_GRACE default


def claims(access_token: str) -> dict:
    return jwt.decode(access_token, options={"verify_signature": False})


def assert_invalid_grant(response) -> None:
    assert response.status_code == 400, response.json
    assert response.json["error"] == "invalid_grant"
    assert response.headers["Cache-Control"] == "no-store"


def session_row(app, sid: str):
    from authserver.extensions import db
    from authserver.oauth.models import AuthSession

    with app.app_context():
        row = db.session.get(AuthSession, uuid.UUID(sid))
        db.session.expunge(row)
        return row


def audit_events(app, name: str) -> list:
    from authserver.audit import AuditEvent
    from authserver.extensions import db

    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).where(AuditEvent.event == name)).all()
        return [(row.outcome, row.user_id, row.client_id, row.details) for row in rows]


def test_refresh_rotates_both_tokens_and_keeps_the_sign_in(http, app_client, password_login):
    first = password_login()
    second = refresh(http, app_client, first["refresh_token"])
    assert second.status_code == 200, second.json
    body = second.json
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    assert body["refresh_token"] != first["refresh_token"]
    assert body["access_token"] != first["access_token"]
    assert body["refresh_token"].count(".") == 0 and len(body["refresh_token"]) >= 43

    before, after = claims(first["access_token"]), claims(body["access_token"])
    for name in ("sid", "sub", "amr", "auth_time", "client_id", "scope"):
        assert after[name] == before[name], name
    assert after["amr"] == ["pwd"]
    assert after["jti"] != before["jti"]

    # The new one carries on the same session (the rotated one, presented again within
    # the grace window, answers this same successor: tests/test_refresh_replay.py).
    third = refresh(http, app_client, body["refresh_token"])
    assert third.status_code == 200, third.json
    assert claims(third.json["access_token"])["sid"] == before["sid"]


def test_reuse_after_the_grace_window_revokes_the_whole_session(
    app, http, app_client, user, password_login, time_machine
):
    first = password_login()
    second = refresh(http, app_client, first["refresh_token"]).json
    time_machine.move_to(datetime.now(UTC) + timedelta(seconds=GRACE + 1))

    reused = refresh(http, app_client, first["refresh_token"])
    assert_invalid_grant(reused)
    assert "revoked" in reused.json["error_description"]

    # Every token of the family is dead now, the newest refresh token included.
    assert_invalid_grant(refresh(http, app_client, second["refresh_token"]))
    for token in (first["access_token"], second["access_token"], second["refresh_token"]):
        assert introspect(http, app_client, token) == {"active": False}
    sid = claims(first["access_token"])["sid"]
    row = session_row(app, sid)
    assert row.revoked_at is not None and row.revoked_reason == "refresh_token_reused"
    assert audit_events(app, "refresh_token.reused") == [
        ("failure", user, app_client.client_id, {"session_id": sid})
    ]


def test_reuse_of_a_token_two_generations_old_revokes_even_within_the_window(
    app, http, app_client, password_login
):
    first = password_login()
    second = refresh(http, app_client, first["refresh_token"]).json
    third = refresh(http, app_client, second["refresh_token"]).json

    # The successor of `first` has been used already: this is not a race but a replay.
    assert_invalid_grant(refresh(http, app_client, first["refresh_token"]))
    assert_invalid_grant(refresh(http, app_client, third["refresh_token"]))
    assert introspect(http, app_client, third["access_token"]) == {"active": False}
    assert len(audit_events(app, "refresh_token.reused")) == 1


def test_reuse_after_the_window_revokes_even_if_the_successor_was_never_used(
    http, app_client, password_login, time_machine
):
    first = password_login()
    second = refresh(http, app_client, first["refresh_token"]).json
    time_machine.move_to(datetime.now(UTC) + timedelta(seconds=GRACE + 1))
    assert_invalid_grant(refresh(http, app_client, first["refresh_token"]))
    assert_invalid_grant(refresh(http, app_client, second["refresh_token"]))


@pytest.mark.parametrize(
    "value", ["", "not-a-token", "x" * 5000, "a.b.c"], ids=["empty", "garbage", "huge", "jwtish"]
)
def test_unknown_refresh_tokens_are_invalid_grant(http, app_client, user, value):
    assert_invalid_grant(refresh(http, app_client, value))


def test_missing_refresh_token_is_invalid_request(http, app_client):
    response = http.post(
        "/oauth/token", data={"grant_type": "refresh_token"}, headers=app_client.basic
    )
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_idle_lifetime_slides_with_use_and_ends_an_unused_session(
    app, http, app_client, password_login, time_machine
):
    idle = app.extensions["authserver.settings"].session_idle_ttl
    first = password_login()
    time_machine.move_to(datetime.now(UTC) + timedelta(seconds=idle - 60))
    second = refresh(http, app_client, first["refresh_token"])
    assert second.status_code == 200, second.json

    time_machine.shift(idle + 1)
    assert_invalid_grant(refresh(http, app_client, second.json["refresh_token"]))
    assert introspect(http, app_client, second.json["refresh_token"]) == {"active": False}


@pytest.fixture
def short_app(app, database_url, keys_dir):
    """A second instance on the same database with short session lifetimes."""
    custom = build_app(database_url, keys_dir, session_idle_ttl=100, session_max_ttl=250)
    yield custom
    from authserver.extensions import db

    with custom.app_context():
        db.engine.dispose()


def test_absolute_lifetime_ends_a_session_despite_regular_refreshes(
    short_app, app_client, user, time_machine
):
    http = short_app.test_client()
    start = datetime.now(UTC).replace(microsecond=0)
    time_machine.move_to(start, tick=False)
    login = http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "+33612975634", "password": PASSWORD},
        headers=app_client.basic,
    )
    assert login.status_code == 200, login.json
    token = login.json
    session_end = int(start.timestamp()) + 250

    for elapsed in (90, 180):  # each refresh comes before the idle limit of 100 s
        time_machine.move_to(start + timedelta(seconds=elapsed), tick=False)
        response = refresh(http, app_client, token["refresh_token"])
        assert response.status_code == 200, response.json
        token = response.json
        info = introspect(http, app_client, token["refresh_token"])
        # Never beyond the session's absolute end, even though idle time would allow it.
        assert info["exp"] == min(int(start.timestamp()) + elapsed + 100, session_end)

    time_machine.move_to(start + timedelta(seconds=251), tick=False)
    assert_invalid_grant(refresh(http, app_client, token["refresh_token"]))
    # The last access token's own exp is still ahead, but its session is over.
    assert claims(token["access_token"])["exp"] > int(start.timestamp()) + 251
    assert introspect(http, app_client, token["access_token"]) == {"active": False}


@pytest.mark.parametrize(
    "change", [{"is_blocked": True}, {"is_active": False}], ids=["blocked", "deactivated"]
)
def test_a_disabled_user_cannot_refresh_and_their_access_tokens_go_inactive(
    app, http, app_client, user, password_login, change
):
    from authserver.accounts.models import User
    from authserver.extensions import db

    token = password_login()
    with app.app_context():
        account = db.session.get(User, uuid.UUID(user))
        for name, value in change.items():
            setattr(account, name, value)
        db.session.commit()

    assert_invalid_grant(refresh(http, app_client, token["refresh_token"]))
    assert introspect(http, app_client, token["access_token"]) == {"active": False}
    assert introspect(http, app_client, token["refresh_token"]) == {"active": False}


def test_refresh_may_narrow_the_scope_but_not_widen_it(http, app_client, password_login):
    token = password_login()
    assert token["scope"] == "profile properties.read"

    wider = refresh(http, app_client, token["refresh_token"], scope="profile admin")
    assert wider.status_code == 400 and wider.json["error"] == "invalid_scope"

    # The refused request did not spend the token.
    narrow = refresh(http, app_client, token["refresh_token"], scope="profile")
    assert narrow.status_code == 200, narrow.json
    assert narrow.json["scope"] == "profile"
    assert claims(narrow.json["access_token"])["scope"] == "profile"

    # The refresh token keeps the scope originally granted (RFC 6749 §6).
    full = refresh(http, app_client, narrow.json["refresh_token"])
    assert full.status_code == 200, full.json
    assert full.json["scope"] == "profile properties.read"


def test_a_refresh_token_is_bound_to_its_client(http, app_client, make_client, password_login):
    token = password_login()
    other = make_client(name="other app")

    assert_invalid_grant(refresh(http, other, token["refresh_token"]))
    # The failed attempt by another client neither consumed the token nor ended the session.
    mine = refresh(http, app_client, token["refresh_token"])
    assert mine.status_code == 200, mine.json
    assert introspect(http, app_client, mine.json["access_token"])["active"] is True


def test_a_client_without_the_refresh_grant_is_refused(http, make_client, user):
    client = make_client(grant_types=("password",))
    login = http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "+33612975634", "password": PASSWORD},
        headers=client.basic,
    )
    assert login.status_code == 200, login.json
    response = refresh(http, client, login.json["refresh_token"])
    assert response.status_code == 400
    assert response.json["error"] == "unauthorized_client"


def test_a_public_client_refreshes_with_its_client_id_only(http, make_client, user):
    client = make_client(grant_types=("password", "refresh_token"), public=True)
    login = http.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "username": "+33612975634",
            "password": PASSWORD,
            "client_id": client.client_id,
        },
    )
    assert login.status_code == 200, login.json
    response = http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": login.json["refresh_token"],
            "client_id": client.client_id,
        },
    )
    assert response.status_code == 200, response.json
    assert claims(response.json["access_token"])["client_id"] == client.client_id


class StatementLog:
    """Every SQL statement the app's engine runs while active."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.statements: list[str] = []

    def _record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.statements.append(" ".join(statement.split()))

    def __enter__(self) -> StatementLog:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def writes(self) -> list[str]:
        """Each statement's first write: "UPDATE <table>" (also as the first part of a
        data-modifying WITH, PostgreSQL's one-statement refresh)."""
        firsts = [s.split(" AS ( ", 1)[1] if s.startswith("WITH ") else s for s in self.statements]
        return [s.split(" SET ")[0] for s in firsts if s.startswith("UPDATE")]


def test_claim_and_family_revocation_cost_does_not_grow_with_the_family(
    app, http, app_client, password_login, time_machine
):
    from authserver.extensions import db
    from authserver.oauth.models import RefreshToken

    with app.app_context():
        engine = db.engine

    short = password_login()
    short_first = short["refresh_token"]
    refresh(http, app_client, short_first)

    long = password_login()
    long_first = current = long["refresh_token"]
    for _ in range(200):
        response = refresh(http, app_client, current)
        assert response.status_code == 200, response.json
        current = response.json["refresh_token"]
    with app.app_context():
        family = db.session.scalar(
            select(func.count())
            .select_from(RefreshToken)
            .where(RefreshToken.session_id == uuid.UUID(claims(long["access_token"])["sid"]))
        )
    assert family == 201

    with StatementLog(engine) as log:
        assert refresh(http, app_client, current).status_code == 200
    # Claiming is one conditional UPDATE of the token; no row-by-row locking. On
    # PostgreSQL the whole refresh is one statement (claim, session, successor, claims).
    if engine.dialect.name == "postgresql":
        assert log.writes() == ["UPDATE refresh_tokens"]
        statements = [s for s in log.statements if "FROM clients" not in s]
        assert len(statements) == 1 and "UPDATE sessions" in statements[0], statements
    else:
        assert log.writes() == ["UPDATE refresh_tokens", "UPDATE sessions"]
    assert not any("FOR UPDATE" in s for s in log.statements)

    time_machine.move_to(datetime.now(UTC) + timedelta(seconds=GRACE + 1))
    costs = []
    for first in (short_first, long_first):
        with StatementLog(engine) as log:
            assert_invalid_grant(refresh(http, app_client, first))
        # The failed claim, then one UPDATE of the session row revokes the whole family.
        assert log.writes() == ["UPDATE refresh_tokens", "UPDATE sessions"]
        # A client's cached row expires on the clock (AUTHSERVER_CLIENT_CACHE_SECONDS),
        # not with the family: its reload is not part of the cost compared.
        costs.append([s for s in log.statements if "FROM clients" not in s])
    assert len(costs[0]) == len(costs[1]), costs
