"""A refresh whose answer was lost is recoverable, and a stolen token still forks
(issue #15 item 4, #14 item 9). Within AUTHSERVER_REFRESH_REUSE_GRACE the same client
presenting the just-rotated token gets the same successor, so every holder shares one
chain and the next fork is reuse; after the window a replay ends the session. The
successor is kept only sealed under a key derived from its parent token: the database
never holds a usable token."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from sqlalchemy import select

from tests.test_refresh import (
    GRACE,
    assert_invalid_grant,
    claims,
    introspect,
    refresh,
    session_row,
)


def replays_counted(http) -> float:
    for line in http.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith("authserver_refresh_token_replays_total "):
            return float(line.split()[1])
    return 0.0


def test_a_replay_within_the_window_gets_the_same_successor(app, http, app_client, password_login):
    first = password_login()
    second = refresh(http, app_client, first["refresh_token"]).json
    before = replays_counted(http)

    again = refresh(http, app_client, first["refresh_token"])
    assert again.status_code == 200, again.json
    assert again.json["refresh_token"] == second["refresh_token"]
    assert claims(again.json["access_token"])["sid"] == claims(second["access_token"])["sid"]
    assert introspect(http, app_client, again.json["access_token"])["active"] is True
    assert replays_counted(http) == before + 1

    # One chain: it carries on from the shared successor.
    third = refresh(http, app_client, second["refresh_token"])
    assert third.status_code == 200, third.json
    assert session_row(app, claims(first["access_token"])["sid"]).revoked_at is None


def test_the_next_fork_is_detected(app, http, app_client, password_login):
    """A thief refreshed first; the victim's replay joins the thief's chain, and whoever
    comes second on it ends the session for both."""
    stolen = password_login()
    thief = refresh(http, app_client, stolen["refresh_token"]).json
    victim = refresh(http, app_client, stolen["refresh_token"]).json
    assert victim["refresh_token"] == thief["refresh_token"]

    assert refresh(http, app_client, thief["refresh_token"]).status_code == 200
    forked = refresh(http, app_client, victim["refresh_token"])
    assert forked.status_code in (200, 400)
    # Whatever the timing, one party now holds a token the other spent: the successor of
    # the shared token is used, so presenting the shared one again is reuse.
    reused = refresh(http, app_client, stolen["refresh_token"])
    assert_invalid_grant(reused)
    assert session_row(app, claims(stolen["access_token"])["sid"]).revoked_at is not None


def test_after_the_window_a_replay_is_reuse(app, http, app_client, password_login, time_machine):
    first = password_login()
    second = refresh(http, app_client, first["refresh_token"]).json
    time_machine.move_to(datetime.now(UTC) + timedelta(seconds=GRACE + 1))
    assert_invalid_grant(refresh(http, app_client, first["refresh_token"]))
    assert_invalid_grant(refresh(http, app_client, second["refresh_token"]))
    row = session_row(app, claims(first["access_token"])["sid"])
    assert row.revoked_reason == "refresh_token_reused"


def test_another_client_gets_nothing_from_a_replay(http, app_client, make_client, password_login):
    first = password_login()
    refresh(http, app_client, first["refresh_token"])
    other = make_client(name="other app")
    assert_invalid_grant(refresh(http, other, first["refresh_token"]))


def test_the_database_holds_no_usable_successor(app, http, app_client, password_login):
    from authserver.extensions import db
    from authserver.oauth.models import RefreshToken

    first = password_login()
    second = refresh(http, app_client, first["refresh_token"]).json
    with app.app_context():
        rows = db.session.execute(select(RefreshToken.__table__)).all()
        db.session.remove()
    dumped = repr(rows).encode()
    assert second["refresh_token"].encode() not in dumped
    assert any(row.sealed_value for row in rows)  # a sealed copy exists, not the token


def test_a_refresh_cut_before_its_answer_is_recovered(app, live_server, app_client, password_login):
    """The client sends the refresh and its connection dies before the answer, as a crash
    or a network cut would; it retries with the same token once the server committed."""
    from authserver.extensions import db
    from authserver.oauth.models import RefreshToken
    from authserver.oauth.sessions import find_refresh_token

    first = password_login()
    body = urlencode({"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    request = (
        f"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {app_client.basic['Authorization']}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
    ).encode()
    with socket.create_connection(("127.0.0.1", live_server.port)) as cut:
        cut.sendall(request)
        cut.shutdown(socket.SHUT_WR)
    # The answer is lost; wait until the server has committed the rotation.
    deadline = time.monotonic() + 10
    while True:
        with app.app_context():
            token: RefreshToken | None = find_refresh_token(first["refresh_token"])
            used = token is not None and token.used_at is not None
            db.session.remove()
        if used or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert used

    retried = live_server_refresh(live_server, app_client, first["refresh_token"])
    assert retried.status_code == 200, retried.text
    following = live_server_refresh(live_server, app_client, retried.json()["refresh_token"])
    assert following.status_code == 200, following.text


def live_server_refresh(live_server, client, token: str):
    import requests

    return requests.post(
        live_server.url + "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        headers=client.basic,
        timeout=10,
    )
