"""Parallel refreshes with one refresh token, over real HTTP against a threaded server.

Designed outcome: exactly one request rotates the token; the others, within the grace
window, get the same successor (authserver/oauth/sessions.py) without ending the
session; one live refresh token remains. On PostgreSQL this is exact. SQLite serialises
writers, so there a request may also get a clean 503 when its write lock times out, never
a 500.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
import requests
from sqlalchemy import func, select

from tests.conftest import PASSWORD, PHONE, LiveServer, OAuthClient, build_app, wipe
from tests.helpers import committed

THREADS = 8
ROUNDS = 10


@pytest.fixture
def pg_app(pg_url, keys_dir):
    app = build_app(pg_url, keys_dir)
    yield app
    wipe(app)
    from authserver.extensions import db

    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def sqlite_app(tmp_path, keys_dir):
    app = build_app(f"sqlite:///{tmp_path / 'race.db'}", keys_dir)
    yield app
    from authserver.extensions import db

    with app.app_context():
        db.engine.dispose()


def register(app) -> OAuthClient:
    from authserver.accounts.services import create_user
    from authserver.extensions import db
    from authserver.oauth.clients import create_client

    with committed(app):
        create_user(PHONE, PASSWORD)
        db.session.commit()
        client, secret = create_client(
            name="racing app", grant_types=["password", "refresh_token"], actor="tests"
        )
        return OAuthClient(client.client_id, secret)


def sign_in(server: LiveServer, client: OAuthClient) -> dict:
    response = requests.post(
        server.url + "/oauth/token",
        data={"grant_type": "password", "username": PHONE, "password": PASSWORD},
        headers=client.basic,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()


def post_all_at_once(server: LiveServer, client: OAuthClient, calls: list[tuple[str, dict]]):
    """Send (path, form) requests from parallel threads released together by a barrier."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def worker(index: int) -> None:
        path, form = calls[index]
        with requests.Session() as http:
            barrier.wait()
            try:
                results[index] = http.post(
                    server.url + path, data=form, headers=client.basic, timeout=60
                )
            except requests.RequestException as error:  # reported by the assertion below
                results[index] = error

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert all(isinstance(r, requests.Response) for r in results), results
    return results


def refresh_form(token: str) -> dict:
    return {"grant_type": "refresh_token", "refresh_token": token}


def refresh_all_at_once(server: LiveServer, client: OAuthClient, token: str) -> list:
    return post_all_at_once(server, client, [("/oauth/token", refresh_form(token))] * THREADS)


def session_state(app, sid: str) -> tuple[bool, int]:
    """(revoked?, number of live refresh tokens) of a session."""
    from authserver.extensions import db, utcnow
    from authserver.oauth.models import AuthSession, RefreshToken

    with app.app_context():
        revoked_at = db.session.scalar(
            select(AuthSession.revoked_at).where(AuthSession.id == uuid.UUID(sid))
        )
        live = db.session.scalar(
            select(func.count())
            .select_from(RefreshToken)
            .where(
                RefreshToken.session_id == uuid.UUID(sid),
                RefreshToken.used_at.is_(None),
                RefreshToken.expires_at > utcnow(),
            )
        )
        return revoked_at is not None, live


def session_id(access_token: str) -> str:
    import jwt

    return jwt.decode(access_token, options={"verify_signature": False})["sid"]


def test_parallel_refreshes_on_postgresql_have_exactly_one_winner(pg_app):
    client = register(pg_app)
    with LiveServer(pg_app) as server:
        token = sign_in(server, client)
        sid = session_id(token["access_token"])
        current = token["refresh_token"]
        for round_ in range(ROUNDS):
            results = refresh_all_at_once(server, client, current)
            statuses = Counter(r.status_code for r in results)
            assert statuses == {200: THREADS}, (round_, statuses)
            successors = {r.json()["refresh_token"] for r in results}
            assert len(successors) == 1, round_  # one rotation, answered to every request
            assert session_state(pg_app, sid) == (False, 1), round_
            winner = results[0].json()
            assert {session_id(r.json()["access_token"]) for r in results} == {sid}
            # The next round races with the winner's token: it must still work.
            current = winner["refresh_token"]

        final = requests.post(
            server.url + "/oauth/introspect",
            data={"token": current},
            headers=client.basic,
            timeout=30,
        )
        assert final.json()["active"] is True


def test_parallel_refreshes_on_sqlite_never_fail_with_a_server_error(sqlite_app):
    client = register(sqlite_app)
    with LiveServer(sqlite_app) as server:
        token = sign_in(server, client)
        sid = session_id(token["access_token"])
        current = token["refresh_token"]
        for round_ in range(3):
            results = refresh_all_at_once(server, client, current)
            statuses = Counter(r.status_code for r in results)
            assert statuses[200] >= 1, (round_, statuses)
            assert set(statuses) <= {200, 503}, (round_, statuses)
            for response in results:
                if response.status_code != 200:
                    assert response.json()["error"] == "temporarily_unavailable"
            successors = {r.json()["refresh_token"] for r in results if r.status_code == 200}
            assert len(successors) == 1, round_
            assert session_state(sqlite_app, sid) == (False, 1), round_
            current = next(r.json() for r in results if r.status_code == 200)["refresh_token"]


def reuse_events(app) -> int:
    from authserver.audit import AuditEvent
    from authserver.extensions import db

    with app.app_context():
        return db.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.event == "refresh_token.reused")
        )


def test_parallel_replays_of_a_stolen_token_revoke_once_on_postgresql(pg_app, time_machine):
    from datetime import UTC, datetime, timedelta

    client = register(pg_app)
    with LiveServer(pg_app) as server:
        token = sign_in(server, client)
        sid = session_id(token["access_token"])
        rotated = requests.post(
            server.url + "/oauth/token",
            data=refresh_form(token["refresh_token"]),
            headers=client.basic,
            timeout=30,
        )
        assert rotated.status_code == 200, rotated.text
        time_machine.move_to(datetime.now(UTC) + timedelta(seconds=11))

        results = refresh_all_at_once(server, client, token["refresh_token"])
        assert Counter(r.status_code for r in results) == {400: THREADS}
        assert {r.json()["error"] for r in results} == {"invalid_grant"}
        assert session_state(pg_app, sid) == (True, 1)  # its last token is dead with it
        assert reuse_events(pg_app) == 1


def test_refresh_racing_with_revocation_on_postgresql_ends_the_session(pg_app):
    client = register(pg_app)
    with LiveServer(pg_app) as server:
        for _ in range(5):
            token = sign_in(server, client)
            sid = session_id(token["access_token"])
            value = token["refresh_token"]
            results = post_all_at_once(
                server,
                client,
                [("/oauth/token", refresh_form(value))] * 4
                + [("/oauth/revoke", {"token": value})] * 4,
            )
            refreshes, revocations = results[:4], results[4:]
            assert [r.status_code for r in revocations] == [200] * 4
            assert {r.status_code for r in refreshes} <= {200, 400}
            assert session_state(pg_app, sid)[0] is True
            # Whatever a refresh won before the revocation is dead with its session.
            for response in refreshes:
                if response.status_code == 200:
                    info = requests.post(
                        server.url + "/oauth/introspect",
                        data={"token": response.json()["access_token"]},
                        headers=client.basic,
                        timeout=30,
                    ).json()
                    assert info == {"active": False}
