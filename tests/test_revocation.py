"""Token revocation (RFC 7009): a refresh token ends its session, an access token ends
only itself, unknown tokens are fine, other clients' tokens are refused."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.conftest import PASSWORD
from tests.helpers import refresh, revoke


def active(http, client, token: str) -> bool:
    response = http.post("/oauth/introspect", data={"token": token}, headers=client.basic)
    assert response.status_code == 200, response.json
    return response.json["active"]


def audit(app, name: str) -> list:
    from authserver.audit import AuditEvent
    from authserver.extensions import db

    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).where(AuditEvent.event == name)).all()
        return [(row.actor, row.client_id, row.user_id, row.details) for row in rows]


@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token"])
def test_revoking_a_refresh_token_ends_its_session(
    app, http, app_client, user, password_login, hint
):
    first = password_login()
    second = refresh(http, app_client, first["refresh_token"]).json

    extra = {"token_type_hint": hint} if hint else {}
    response = revoke(http, app_client, second["refresh_token"], **extra)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"

    refused = refresh(http, app_client, second["refresh_token"])
    assert refused.status_code == 400 and refused.json["error"] == "invalid_grant"
    # Every access token of the session is dead, not just the newest.
    assert not active(http, app_client, first["access_token"])
    assert not active(http, app_client, second["access_token"])

    import jwt

    sid = jwt.decode(first["access_token"], options={"verify_signature": False})["sid"]
    assert audit(app, "session.revoked") == [
        (
            app_client.client_id,
            app_client.client_id,
            user,
            {"session_id": sid, "reason": "refresh_token_revoked"},
        )
    ]


def test_revoking_an_access_token_ends_only_that_token(app, http, app_client, user, password_login):
    first = password_login()
    second = refresh(http, app_client, first["refresh_token"]).json

    assert revoke(http, app_client, first["access_token"]).status_code == 200
    assert not active(http, app_client, first["access_token"])
    # Its sibling from the same session, and the session itself, carry on.
    assert active(http, app_client, second["access_token"])
    assert refresh(http, app_client, second["refresh_token"]).status_code == 200

    import jwt

    jti = jwt.decode(first["access_token"], options={"verify_signature": False})["jti"]
    events = audit(app, "token.revoked")
    assert len(events) == 1
    actor, client_id, user_id, details = events[0]
    assert (actor, client_id, user_id) == (app_client.client_id, app_client.client_id, user)
    assert details == {"token_type": "access_token", "jti": jti}


def test_revoking_twice_is_fine_and_ends_the_session_once(app, http, app_client, password_login):
    token = password_login()
    for value in (token["access_token"], token["refresh_token"]):
        assert revoke(http, app_client, value).status_code == 200
        assert revoke(http, app_client, value).status_code == 200
    assert len(audit(app, "session.revoked")) == 1


def test_revoking_a_client_credentials_token(http, app_client):
    token = http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=app_client.basic
    ).json["access_token"]
    assert revoke(http, app_client, token).status_code == 200
    assert not active(http, app_client, token)


@pytest.mark.parametrize("value", ["", "unknown-token", "a.b.c", "x" * 9000])
def test_unknown_tokens_are_answered_200(http, app_client, value):
    # RFC 7009 §2.2: an invalid token is not an error; there is nothing to revoke.
    response = revoke(http, app_client, value)
    assert response.status_code == 200


def test_another_clients_token_is_refused_and_stays_valid(
    http, app_client, make_client, password_login
):
    token = password_login()
    other = make_client(name="other app")
    for value in (token["access_token"], token["refresh_token"]):
        response = revoke(http, other, value)
        assert response.status_code == 400
        assert response.json["error"] == "invalid_grant"
    assert active(http, app_client, token["access_token"])
    assert refresh(http, app_client, token["refresh_token"]).status_code == 200


def test_revocation_requires_client_authentication(http, app_client, password_login):
    token = password_login()
    anonymous = http.post("/oauth/revoke", data={"token": token["refresh_token"]})
    assert anonymous.status_code == 401 and anonymous.json["error"] == "invalid_client"
    # A confidential client cannot fall back to naming itself without its secret.
    by_id = http.post(
        "/oauth/revoke",
        data={"token": token["refresh_token"], "client_id": app_client.client_id},
    )
    assert by_id.status_code == 401 and by_id.json["error"] == "invalid_client"
    assert refresh(http, app_client, token["refresh_token"]).status_code == 200


def test_a_public_client_revokes_its_own_refresh_token_with_its_client_id(http, make_client, user):
    client = make_client(grant_types=("password", "refresh_token"), public=True)
    login = http.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "username": "+33612975634",
            "password": PASSWORD,
            "client_id": client.client_id,
        },
    ).json
    response = http.post(
        "/oauth/revoke", data={"token": login["refresh_token"], "client_id": client.client_id}
    )
    assert response.status_code == 200
    refused = http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": login["refresh_token"],
            "client_id": client.client_id,
        },
    )
    assert refused.status_code == 400 and refused.json["error"] == "invalid_grant"


def test_missing_token_parameter_is_invalid_request(http, app_client):
    response = http.post(
        "/oauth/revoke", data={"token_type_hint": "refresh_token"}, headers=app_client.basic
    )
    assert response.status_code == 400 and response.json["error"] == "invalid_request"


def test_parallel_revocations_of_one_access_token_all_succeed(
    app, live_server, app_client, password_login
):
    import threading

    import requests

    token = password_login()["access_token"]
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def worker() -> None:
        with requests.Session() as http:
            barrier.wait()
            response = http.post(
                live_server.url + "/oauth/revoke",
                data={"token": token},
                headers=app_client.basic,
                timeout=60,
            )
            statuses.append(response.status_code)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert statuses == [200] * 8
    assert not active(app.test_client(), app_client, token)


def test_revocations_reach_another_instance_within_the_cache_time(
    app, http, app_client, make_client, user, password_login, database_url, keys_dir
):
    """Each process answers "is this token revoked?" from memory and re-reads one number
    (the revocation generation) every AUTHSERVER_REVOCATION_CACHE_SECONDS: a token
    revoked, a session ended, a user blocked or a client disabled on one instance reads
    as such on the process that did it at once, and on another within that time."""
    import time
    import uuid

    from authserver.accounts.models import User
    from authserver.extensions import db
    from authserver.oauth.models import Client
    from tests.conftest import build_app

    elsewhere = build_app(database_url, keys_dir, revocation_cache_seconds="1")
    there = elsewhere.test_client()
    observer = make_client(grant_types=("client_credentials",), resource_server=True)
    first, second, third = (password_login() for _ in range(3))
    service = http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=app_client.basic
    ).json["access_token"]
    tokens = [first["access_token"], second["access_token"], third["access_token"], service]
    # Both instances have seen every token standing (and remember it).
    assert all(active(http, observer, t) for t in tokens)
    assert all(active(there, observer, t) for t in tokens)

    # An access token revoked here: at once here, within the bound there.
    assert revoke(http, app_client, first["access_token"]).status_code == 200
    assert not active(http, observer, first["access_token"])
    time.sleep(1.1)
    assert not active(there, observer, first["access_token"])
    assert active(there, observer, second["access_token"])

    # A session ended there (its refresh token revoked): here within the bound.
    assert revoke(there, app_client, second["refresh_token"]).status_code == 200
    assert not active(there, observer, second["access_token"])
    time.sleep(1.1)
    assert not active(http, observer, second["access_token"])
    assert active(http, observer, third["access_token"])

    # The user blocked, then the client disabled, there, by any writer (here the ORM).
    with elsewhere.app_context():
        db.session.get(User, uuid.UUID(user)).is_blocked = True
        db.session.commit()
    time.sleep(1.1)
    assert not active(http, observer, third["access_token"])
    assert active(http, observer, service)
    with elsewhere.app_context():
        db.session.get(Client, app_client.client_id).is_active = False
        db.session.commit()
    time.sleep(1.1)
    assert not active(http, observer, service)
