"""Structured logs: one JSON line per request, request ids, and never a secret."""

from __future__ import annotations

import json
import logging

from authserver.logs import JsonFormatter, _StderrHandler
from tests.conftest import PASSWORD, PHONE, build_app

FORMAT = JsonFormatter()


def access_lines(caplog) -> list[dict]:
    return [json.loads(FORMAT.format(r)) for r in caplog.records if r.name == "authserver.access"]


def test_logging_setup_is_idempotent(tmp_path, keys_dir):
    for name in ("a", "b", "c"):
        build_app(f"sqlite:///{tmp_path / name}.db", keys_dir)
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, _StderrHandler)]
    assert len(handlers) == 1
    assert not logging.getLogger("authserver").handlers  # no Flask plain-text duplicate


def test_level_comes_from_the_setting(tmp_path, keys_dir):
    root = logging.getLogger()
    previous = root.level
    try:
        build_app(f"sqlite:///{tmp_path / 'w.db'}", keys_dir, log_level="warning")
        assert root.level == logging.WARNING
    finally:
        root.setLevel(previous)


def test_one_json_line_per_request_with_ids(http, app_client, user, caplog, capsys):
    caplog.set_level(logging.INFO)
    response = http.post(
        "/oauth/token?",
        data={"grant_type": "password", "username": PHONE, "password": PASSWORD},
        headers={**app_client.basic, "X-Request-ID": "req-0001"},
    )
    assert response.status_code == 200
    (line,) = access_lines(caplog)
    assert line["message"] == "request"
    assert line["method"] == "POST"
    assert line["path"] == "/oauth/token"
    assert line["endpoint"] == "/oauth/token"
    assert line["status"] == 200
    assert line["duration_ms"] > 0
    assert line["request_id"] == "req-0001"
    assert line["client_id"] == app_client.client_id
    assert line["user_id"] == user
    # What reaches stderr is that same line, as one JSON object.
    written = [json.loads(x) for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert any(e.get("request_id") == "req-0001" and e.get("status") == 200 for e in written)


def test_the_query_string_is_never_logged(http, caplog):
    caplog.set_level(logging.DEBUG)
    http.get("/.well-known/jwks.json?code=SECRET-IN-QUERY")
    http.get("/healthz?token=SECRET-IN-QUERY")
    lines = access_lines(caplog)
    assert [line["path"] for line in lines] == ["/.well-known/jwks.json", "/healthz"]
    assert "SECRET-IN-QUERY" not in caplog.text


def test_probes_and_key_fetches_log_at_debug_and_failures_at_info(http, caplog):
    caplog.set_level(logging.INFO)
    http.get("/healthz")
    http.get("/.well-known/jwks.json")
    http.get("/.well-known/oauth-authorization-server")
    http.get("/nowhere")
    assert [(line["path"], line["level"]) for line in access_lines(caplog)] == [
        ("/nowhere", "INFO")
    ]
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    http.get("/.well-known/jwks.json")
    assert [(line["path"], line["level"]) for line in access_lines(caplog)] == [
        ("/.well-known/jwks.json", "DEBUG")
    ]


def test_a_multiline_message_stays_one_line():
    record = logging.makeLogRecord({"msg": "a\nb", "levelno": 20, "levelname": "INFO"})
    line = FORMAT.format(record)
    assert "\n" not in line and json.loads(line)["message"] == "a\nb"


def test_no_secret_of_a_full_flow_reaches_any_log(http, make_client, user, caplog, capsys):
    """Sign in (Basic and client_secret_post), fail once, refresh, introspect, revoke:
    every log record of every logger, at DEBUG, holds none of the secrets used."""
    caplog.set_level(logging.DEBUG)
    basic = make_client(scope="openid profile")
    post = make_client(auth_method="client_secret_post")
    wrong = "not-the-password-0xBEEF"
    secrets = {PASSWORD, wrong, basic.secret, post.secret, basic.basic["Authorization"].split()[1]}
    as_post = {"client_id": post.client_id, "client_secret": post.secret}

    def token(headers=None, **data):
        return http.post("/oauth/token", data=data, headers=headers or {})

    login = {"grant_type": "password", "username": PHONE}
    assert token(basic.basic, **login, password=wrong).status_code == 400
    first = token(basic.basic, **login, password=PASSWORD).json
    tokens = token(**login, password=PASSWORD, **as_post).json
    refreshed = token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], **as_post)
    refreshed = refreshed.json
    for response in (first, tokens, refreshed):
        secrets |= {response["access_token"], response["refresh_token"]}
    for value in (refreshed["access_token"], refreshed["refresh_token"]):
        r = http.post("/oauth/introspect", data={"token": value, **as_post})
        assert r.json["active"] is True
    r = http.post("/oauth/revoke", data={"token": refreshed["refresh_token"], **as_post})
    assert r.status_code == 200
    # Error paths that carry secrets: a revoked refresh token, a bad client secret.
    assert token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], **as_post)
    assert token(basic.basic, **login, password=PASSWORD, client_secret=post.secret)
    bearer = {"Authorization": "Bearer " + first["access_token"]}
    assert http.get("/oauth/userinfo", headers=bearer).status_code == 200

    records = caplog.records
    assert len(access_lines(caplog)) == 10
    everything = "\n".join(FORMAT.format(r) for r in records)
    everything += "\n" + "\n".join(str(r.args) for r in records)
    everything += "\n" + capsys.readouterr().err
    leaked = [s for s in secrets if s in everything]
    assert not leaked
