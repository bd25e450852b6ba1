"""Rotation as downstream services live it: tokens keep verifying offline (PyJWT's
PyJWKClient over real HTTP) across a rotation until they expire, a key is published before
it signs, a retired key leaves the JWKS after its window, scheduled rotation happens once
however many instances run it, and every instance follows a rotation within the bound."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import jwt
import pytest

from tests.conftest import ISSUER, build_app
from tests.helpers import committed
from tests.test_keys import (  # noqa: F401  (restore_keys is an autouse fixture)
    age_keys,
    app_settings,
    introspect,
    jwks_kids,
    key_events,
    kid_of,
    make_safe_to_rotate,
    restore_keys,
    run_cli,
    service_token,
)

CONTRACT_KEYS = {"active", "next", "retired"}


def verify_offline(jwks_url: str, token: str) -> dict:
    """What a downstream service does: fetch the JWKS, pick the key by kid, verify."""
    client = jwt.PyJWKClient(jwks_url, cache_jwk_set=False)
    key = client.get_signing_key_from_jwt(token)
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=ISSUER, issuer=ISSUER)


def refresh_keyring(app) -> None:
    """Skip this instance's cache (AUTHSERVER_KEY_CACHE_SECONDS runs on the monotonic
    clock, which time travel does not move)."""
    app.extensions["authserver.keyring"].invalidate()


def retired_window(app) -> int:
    return app.extensions["authserver.keyring"].retired_window


# --- a rotation, as verifiers see it ------------------------------------------------------


def test_tokens_signed_before_a_rotation_verify_until_they_expire(
    app, http, app_client, live_server, time_machine
):
    jwks_url = live_server.url + "/.well-known/jwks.json"
    before = run_cli(app, "keys", "ensure")[1]
    old_token = service_token(http, app_client)
    assert kid_of(old_token) == before["active"]

    make_safe_to_rotate(app)
    status, summary = run_cli(app, "keys", "rotate")
    assert status == 0
    assert set(summary) == CONTRACT_KEYS
    assert summary["active"] == before["next"]  # the pre-published key now signs
    assert summary["retired"] == [before["active"]]
    assert summary["next"] not in (None, before["active"], before["next"])

    # The old token still verifies offline, and new tokens carry the new kid.
    assert verify_offline(jwks_url, old_token)["client_id"] == app_client.client_id
    new_token = service_token(http, app_client)
    assert kid_of(new_token) == summary["active"]
    assert verify_offline(jwks_url, new_token)["client_id"] == app_client.client_id
    assert introspect(http, app_client, old_token)["active"] is True

    # Until the old token expires, its key stays published.
    exp = jwt.decode(old_token, options={"verify_signature": False})["exp"]
    time_machine.move_to(datetime.fromtimestamp(exp - 5).astimezone())
    refresh_keyring(app)
    assert verify_offline(jwks_url, old_token)["client_id"] == app_client.client_id

    # After retirement + token lifetime + cache + skew the key is gone from the JWKS;
    # `keys list` still reports it as retired, no longer published.
    listed = {k["kid"]: k for k in run_cli(app, "keys", "list")[1]["keys"]}
    assert listed[before["active"]]["published"] is True
    retired_at = datetime.fromisoformat(listed[before["active"]]["retired_at"])
    time_machine.move_to(retired_at + timedelta(seconds=retired_window(app) - 2))
    refresh_keyring(app)
    assert before["active"] in jwks_kids(http)
    time_machine.move_to(retired_at + timedelta(seconds=retired_window(app) + 1))
    refresh_keyring(app)
    assert before["active"] not in jwks_kids(http)
    assert sorted(jwks_kids(http)) == sorted([summary["active"], summary["next"]])
    with pytest.raises(jwt.PyJWKClientError):
        verify_offline(jwks_url, old_token)

    listed = {k["kid"]: k for k in run_cli(app, "keys", "list")[1]["keys"]}
    assert listed[before["active"]]["state"] == "retired"
    assert listed[before["active"]]["published"] is False
    # The rotation answer lists only the retired keys verifiers may still need.
    assert run_cli(app, "keys", "ensure")[1]["retired"] == []


def test_retired_window_covers_token_lifetime_cache_and_skew(app):
    config = app_settings(app)
    assert retired_window(app) == (
        config.access_token_ttl + config.key_cache_seconds + config.clock_skew
    )


# --- pre-publication -------------------------------------------------------------------------


def test_rotate_refuses_until_next_has_been_published_long_enough(app, http, time_machine):
    time_machine.move_to(datetime.now().astimezone())
    before = run_cli(app, "keys", "ensure")[1]
    lead = app_settings(app).key_prepublish_seconds

    status, error = run_cli(app, "keys", "rotate")
    assert status == 1
    assert before["next"] in error["error"]
    assert "rotation is safe from" in error["error"] and "--force" in error["error"]
    assert run_cli(app, "keys", "ensure")[1] == before  # nothing changed

    time_machine.shift(lead - 30)
    assert run_cli(app, "keys", "rotate")[0] == 1
    time_machine.shift(31)
    status, summary = run_cli(app, "keys", "rotate")
    assert status == 0
    assert summary["active"] == before["next"] and summary["retired"] == [before["active"]]
    assert key_events(app, "key.rotated")[-1]["forced"] is False


def test_force_rotates_at_once_and_is_audited_as_forced(app, http, app_client):
    before = run_cli(app, "keys", "ensure")[1]
    status, summary = run_cli(app, "keys", "rotate", "--force")
    assert status == 0 and set(summary) == CONTRACT_KEYS
    assert summary["active"] == before["next"]
    assert kid_of(service_token(http, app_client)) == summary["active"]
    event = key_events(app, "key.rotated")[-1]
    assert event["forced"] is True and event["actor"].startswith("cli")


def test_without_a_next_key_rotate_refuses_and_says_what_to_do(app, http, app_client):
    before = run_cli(app, "keys", "ensure")[1]
    assert run_cli(app, "keys", "revoke", before["next"])[0] == 0

    status, error = run_cli(app, "keys", "rotate")
    assert status == 1
    assert "no next key is published" in error["error"]
    assert "authserver keys ensure" in error["error"]

    # --force rotates to a key no cache has seen yet: allowed, audited as forced.
    status, summary = run_cli(app, "keys", "rotate", "--force")
    assert status == 0
    assert summary["active"] not in (before["active"], before["next"])
    assert summary["active"] in jwks_kids(http)
    assert kid_of(service_token(http, app_client)) == summary["active"]


# --- scheduled rotation --------------------------------------------------------------------


def test_rotate_if_due_rotates_only_after_the_interval(app, time_machine):
    time_machine.move_to(datetime.now().astimezone())
    before = run_cli(app, "keys", "ensure")[1]
    interval = app_settings(app).key_rotation_interval

    status, answer = run_cli(app, "keys", "rotate", "--if-due")
    assert status == 0
    assert set(answer) >= CONTRACT_KEYS and answer["rotated"] is False
    assert {k: answer[k] for k in CONTRACT_KEYS} == before

    time_machine.shift(interval - 60)
    assert run_cli(app, "keys", "rotate", "--if-due")[1]["rotated"] is False
    time_machine.shift(61)
    status, answer = run_cli(app, "keys", "rotate", "--if-due")
    assert status == 0 and answer["rotated"] is True
    assert answer["active"] == before["next"] and answer["retired"] == [before["active"]]
    assert key_events(app, "key.rotated")[-1]["scheduled"] is True

    # Run again at once (cron overlap, a second instance): nothing more happens.
    again = run_cli(app, "keys", "rotate", "--if-due")[1]
    assert again["rotated"] is False
    assert {k: again[k] for k in CONTRACT_KEYS} == {k: answer[k] for k in CONTRACT_KEYS}


def test_rotate_if_due_publishes_a_missing_next_key_and_rotates_once_it_is_safe(
    app, http, time_machine
):
    time_machine.move_to(datetime.now().astimezone())
    before = run_cli(app, "keys", "ensure")[1]
    run_cli(app, "keys", "revoke", before["next"])
    time_machine.shift(app_settings(app).key_rotation_interval + 1)

    status, answer = run_cli(app, "keys", "rotate", "--if-due")
    assert status == 0 and answer["rotated"] is False
    assert answer["active"] == before["active"]
    assert answer["next"] not in (None, before["next"])
    assert answer["next"] in jwks_kids(http)
    assert "safe_at" in answer

    time_machine.shift(app_settings(app).key_prepublish_seconds + 1)
    status, rotated = run_cli(app, "keys", "rotate", "--if-due")
    assert rotated["rotated"] is True and rotated["active"] == answer["next"]
    assert key_events(app, "key.rotated")[-1]["forced"] is False


def make_due(app) -> dict:
    """Active key older than the interval and `next` published long enough."""
    before = run_cli(app, "keys", "ensure")[1]
    age_keys(app, app_settings(app).key_rotation_interval + 1)
    return before


def assert_rotated_once(app, before: dict, answers: list[dict]) -> None:
    assert sum(1 for a in answers if a["rotated"]) == 1, answers
    final = run_cli(app, "keys", "ensure")[1]
    assert final["active"] == before["next"]
    assert final["retired"] == [before["active"]]
    assert len(key_events(app, "key.rotated")) == 1
    states = sorted(k["state"] for k in run_cli(app, "keys", "list")[1]["keys"])
    assert states == ["active", "next", "retired"]


def test_concurrent_rotate_if_due_rotates_once(app):
    from authserver.signing.services import rotate_signing_keys

    before = make_due(app)
    callers = 4
    barrier = threading.Barrier(callers)
    answers: list[dict] = []
    errors: list[BaseException] = []

    def cron_job(n: int) -> None:
        try:
            with committed(app):
                barrier.wait()
                answers.append(rotate_signing_keys(actor=f"cron-{n}", if_due=True))
        except BaseException as error:  # reported below, with the thread's own traceback
            errors.append(error)

    threads = [threading.Thread(target=cron_job, args=(n,)) for n in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(answers) == callers
    assert_rotated_once(app, before, answers)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_console_script_processes_rotate_once_on_postgresql(app, pg_url, keys_dir, tmp_path):
    import json

    before = make_due(app)
    script = shutil.which("authserver", path=str(Path(sys.executable).parent))
    assert script, "the console script `authserver` is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    env.update(
        AUTHSERVER_ENV="testing",
        AUTHSERVER_DATABASE_URL=pg_url,
        AUTHSERVER_KEYS_DIR=str(keys_dir),
        AUTHSERVER_ISSUER=ISSUER,
    )
    processes = [
        subprocess.Popen(
            [script, "keys", "rotate", "--if-due"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    answers = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        answers.append(json.loads(out))
    refresh_keyring(app)
    assert_rotated_once(app, before, answers)


# --- several instances on one database ------------------------------------------------------


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_other_instances_follow_a_rotation_and_a_revocation_within_the_cache_bound(
    app, http, app_client, pg_url, keys_dir
):
    bound = 1
    other = build_app(pg_url, keys_dir, key_cache_seconds=str(bound))
    other_http = other.test_client()
    try:
        before = run_cli(app, "keys", "ensure")[1]
        old_token = service_token(other_http, app_client)
        assert kid_of(old_token) == before["active"]

        make_safe_to_rotate(app)
        status, summary = run_cli(app, "keys", "rotate")  # through the first instance
        assert status == 0
        started = time.monotonic()
        while kid_of(service_token(other_http, app_client)) != summary["active"]:
            assert time.monotonic() - started <= bound + 1, "other instance kept the old key"
            time.sleep(0.05)
        # Tokens from either instance verify at the other.
        assert introspect(other_http, app_client, old_token)["active"] is True
        assert introspect(http, app_client, service_token(other_http, app_client))["active"]

        status, _ = run_cli(app, "keys", "revoke", before["active"])
        assert status == 0
        assert before["active"] not in jwks_kids(http)  # at once here
        started = time.monotonic()
        while before["active"] in jwks_kids(other_http):  # within the bound there
            assert time.monotonic() - started <= bound + 1, "other instance kept the revoked key"
            time.sleep(0.05)
        assert introspect(other_http, app_client, old_token) == {"active": False}
    finally:
        with other.app_context():
            from authserver.extensions import db

            db.engine.dispose()
