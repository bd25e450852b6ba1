"""Signing keys as an operator and a verifier meet them: the `authserver keys` commands
and their JSON answers, the JWKS, revocation, import, storage at rest, the key-encryption
key (wrong one at start-up, rewrap), key sizes and the audit trail."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import delete, select, text

from authserver import create_app
from authserver.cli import cli
from authserver.errors import ConfigError
from tests.conftest import ISSUER, build_app, make_settings
from tests.helpers import committed, introspect

JWKS = "/.well-known/jwks.json"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


# --- helpers shared with test_key_rotation.py ------------------------------------------


def reset_keys(app) -> None:
    """Back to a fresh install's key state: one active key and one `next` key."""
    from authserver.context import keyring
    from authserver.extensions import db
    from authserver.signing.models import SigningKey
    from authserver.signing.services import ensure_active_key

    with committed(app):
        db.session.execute(delete(SigningKey))
        db.session.commit()
        ensure_active_key(actor="tests")
        keyring().invalidate()


def keys_are_fresh(app) -> bool:
    from authserver.extensions import db
    from authserver.signing.models import SigningKey

    with app.app_context():
        states = sorted(db.session.scalars(select(SigningKey.state)))
        db.session.remove()
    return states == ["active", "next"]


@pytest.fixture(autouse=True)
def restore_keys(app):
    """These tests rotate, revoke and rewrap keys, and conftest keeps keys between tests:
    start from a fresh install's key state whatever an earlier test left, and leave one
    behind for everyone else (before `app` wipes the tables, after time travel ended)."""
    if not keys_are_fresh(app):
        reset_keys(app)
    yield
    reset_keys(app)


def run_cli(app, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """Run `authserver ARGS`; return the exit status and the one JSON object it printed
    (stdout on success, stderr on failure)."""
    result = app.test_cli_runner().invoke(cli, args=list(args), env=env)
    if result.exit_code == 0:
        return 0, json.loads(result.stdout)
    # stderr also carries the JSON log lines (authserver/logs.py): pick the error object.
    errors = [
        entry
        for entry in map(_json_or_none, result.stderr.splitlines())
        if isinstance(entry, dict) and "error" in entry and "level" not in entry
    ]
    assert len(errors) == 1, (result.exit_code, result.output, result.exception)
    return result.exit_code, errors[0]


def _json_or_none(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def age_keys(app, seconds: int) -> None:
    """Pretend every key event happened `seconds` earlier (tokens already issued keep
    their own times, which time travel would not)."""
    from authserver.context import keyring
    from authserver.extensions import db
    from authserver.signing.models import SigningKey

    with app.app_context():
        for row in db.session.scalars(select(SigningKey)):
            for name in ("created_at", "activated_at", "retired_at", "revoked_at"):
                value = getattr(row, name)
                if value is not None:
                    setattr(row, name, value - timedelta(seconds=seconds))
        db.session.commit()
        keyring().invalidate()


def app_settings(app):
    return app.extensions["authserver.settings"]


def make_safe_to_rotate(app) -> None:
    age_keys(app, app_settings(app).key_prepublish_seconds + 1)


def service_token(http, client) -> str:
    response = http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=client.basic
    )
    assert response.status_code == 200, response.json
    return response.json["access_token"]


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


def jwks_kids(http) -> list[str]:
    response = http.get(JWKS)
    assert response.status_code == 200
    return [key["kid"] for key in response.json["keys"]]


def key_events(app, event: str) -> list[dict[str, Any]]:
    from authserver.audit import AuditEvent
    from authserver.extensions import db

    with app.app_context():
        rows = db.session.scalars(
            select(AuditEvent).where(AuditEvent.event == event).order_by(AuditEvent.id)
        )
        return [
            {"actor": r.actor, "outcome": r.outcome, "at": r.occurred_at, **r.details} for r in rows
        ]


def b64u(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def rfc7638_kid(public: rsa.RSAPublicKey) -> str:
    numbers = public.public_numbers()
    members = json.dumps(
        {"e": b64u(numbers.e), "kty": "RSA", "n": b64u(numbers.n)},
        sort_keys=True,
        separators=(",", ":"),
    )
    digest = hashlib.sha256(members.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# --- listing, ensure, the JWKS ----------------------------------------------------------


def test_fresh_install_has_an_active_key_and_a_published_next_key(app, http):
    status, listed = run_cli(app, "keys", "list")
    assert status == 0
    assert set(listed) == {"keys"}
    states = sorted(key["state"] for key in listed["keys"])
    assert states == ["active", "next"]
    for key in listed["keys"]:
        assert {"kid", "state", "alg", "created_at", "published"} <= set(key)
        assert key["alg"] == "RS256"
        assert key["published"] is True
    next_key = next(k for k in listed["keys"] if k["state"] == "next")
    assert "rotation_safe_at" in next_key
    # The next key is in the JWKS before it signs anything.
    assert sorted(jwks_kids(http)) == sorted(k["kid"] for k in listed["keys"])

    # ensure is idempotent: it creates nothing when both keys exist.
    status, summary = run_cli(app, "keys", "ensure")
    assert status == 0
    active = next(k["kid"] for k in listed["keys"] if k["state"] == "active")
    assert summary == {"active": active, "next": next_key["kid"], "retired": []}


def test_kid_is_the_rfc7638_thumbprint_and_jwks_has_public_members_only(app, http):
    body = http.get(JWKS).json
    for jwk in body["keys"]:
        assert not PRIVATE_MEMBERS & set(jwk)
        public = jwt.PyJWK(jwk).key
        assert jwk["kid"] == rfc7638_kid(public)
        assert jwk["alg"] == "RS256" and jwk["use"] == "sig"


def test_jwks_max_age_is_below_the_prepublication_lead_time(app, http):
    response = http.get(JWKS)
    max_age = int(response.headers["Cache-Control"].split("max-age=")[1])
    assert max_age + app_settings(app).key_cache_seconds < app_settings(app).key_prepublish_seconds
    etag = response.headers["ETag"]
    assert http.get(JWKS, headers={"If-None-Match": etag}).status_code == 304
    make_safe_to_rotate(app)
    assert run_cli(app, "keys", "rotate")[0] == 0
    # The key set changed: the old validator no longer matches.
    changed = http.get(JWKS, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_export_jwks_prints_the_served_document(app, http):
    status, exported = run_cli(app, "keys", "export-jwks")
    assert status == 0
    assert exported == http.get(JWKS).json


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"key_prepublish_seconds": "300", "jwks_max_age": "300"}, "KEY_PREPUBLISH_SECONDS"),
        ({"key_prepublish_seconds": "305", "key_cache_seconds": "10"}, "KEY_PREPUBLISH_SECONDS"),
        ({"key_rotation_interval": "900"}, "KEY_ROTATION_INTERVAL"),
    ],
)
def test_unsafe_publication_settings_are_refused(tmp_path, overrides, named):
    with pytest.raises(ConfigError, match=f"AUTHSERVER_{named}"):
        make_settings("sqlite://", tmp_path, **overrides)


# --- revocation ----------------------------------------------------------------------------


def test_revoke_withdraws_the_key_at_once_and_its_tokens_introspect_inactive(app, http, app_client):
    old_token = service_token(http, app_client)
    old_kid = kid_of(old_token)
    assert introspect(http, app_client, old_token)["active"] is True

    make_safe_to_rotate(app)
    status, summary = run_cli(app, "keys", "rotate")
    assert status == 0 and summary["retired"] == [old_kid]
    # Retired, the key still verifies the tokens it signed.
    assert old_kid in jwks_kids(http)
    assert introspect(http, app_client, old_token)["active"] is True

    status, revoked = run_cli(app, "keys", "revoke", old_kid)
    assert status == 0
    assert revoked["kid"] == old_kid and revoked["state"] == "revoked"
    assert revoked["published"] is False and revoked["revoked_at"]
    # No cache to wait for on this instance.
    assert old_kid not in jwks_kids(http)
    assert introspect(http, app_client, old_token) == {"active": False}
    # Tokens of the new active key are unaffected.
    new_token = service_token(http, app_client)
    assert kid_of(new_token) == summary["active"]
    assert introspect(http, app_client, new_token)["active"] is True

    events = key_events(app, "key.revoked")
    assert [e["kid"] for e in events] == [old_kid]
    assert events[0]["actor"].startswith("cli") and events[0]["previous_state"] == "retired"


def test_revoking_the_active_key_is_refused_with_guidance(app, http):
    active = run_cli(app, "keys", "ensure")[1]["active"]
    status, error = run_cli(app, "keys", "revoke", active)
    assert status == 1
    assert "rotate --force" in error["error"]
    assert active in jwks_kids(http)
    status, error = run_cli(app, "keys", "revoke", "no-such-kid")
    assert status == 1 and "no key" in error["error"]
    # Kids are base64url: one in 64 begins with "-", and must still be taken as a kid.
    status, error = run_cli(app, "keys", "revoke", "-m2x_no-such-kid")
    assert status == 1 and "no key -m2x_no-such-kid" in error["error"]


def test_revoking_the_next_key_lets_ensure_publish_a_new_one(app, http):
    summary = run_cli(app, "keys", "ensure")[1]
    assert run_cli(app, "keys", "revoke", summary["next"])[0] == 0
    assert summary["next"] not in jwks_kids(http)
    status, after = run_cli(app, "keys", "ensure")
    assert status == 0
    assert after["active"] == summary["active"]
    assert after["next"] not in (None, summary["next"])
    assert after["next"] in jwks_kids(http)


# --- import --------------------------------------------------------------------------------


def test_imported_pem_joins_as_next_and_signs_after_rotation(app, http, app_client, tmp_path):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem_file = tmp_path / "key.pem"
    pem_file.write_bytes(private_pem(private))
    before = run_cli(app, "keys", "ensure")[1]

    status, imported = run_cli(app, "keys", "import", "--pem", str(pem_file))
    assert status == 0
    assert imported["state"] == "next"
    assert imported["kid"] == rfc7638_kid(private.public_key())
    # The unused generated `next` key gave way; the imported one is published.
    assert sorted(jwks_kids(http)) == sorted([before["active"], imported["kid"]])
    assert key_events(app, "key.imported")[-1]["replaced"] == before["next"]

    # Published only now: rotating onto it is refused until caches have learned it.
    status, error = run_cli(app, "keys", "rotate")
    assert status == 1 and imported["kid"] in error["error"]
    make_safe_to_rotate(app)
    status, summary = run_cli(app, "keys", "rotate")
    assert status == 0 and summary["active"] == imported["kid"]

    token = service_token(http, app_client)
    assert kid_of(token) == imported["kid"]
    # Verified with the public half of the PEM the operator holds.
    claims = jwt.decode(token, private.public_key(), algorithms=["RS256"], audience=ISSUER)
    assert claims["client_id"] == app_client.client_id


def test_import_refuses_what_is_not_a_usable_private_key(app, tmp_path):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    good = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "garbage.pem": (b"not a key", "not an RSA private key"),
        "public.pem": (
            good.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            "public key",
        ),
        "weak.pem": (private_pem(weak), "below 2048"),
    }
    before = run_cli(app, "keys", "list")[1]
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        status, error = run_cli(app, "keys", "import", "--pem", str(path))
        assert status == 1, name
        assert message in error["error"], (name, error)
    assert run_cli(app, "keys", "list")[1] == before

    path = tmp_path / "good.pem"
    path.write_bytes(private_pem(good))
    assert run_cli(app, "keys", "import", "--pem", str(path))[0] == 0
    status, error = run_cli(app, "keys", "import", "--pem", str(path))
    assert status == 1 and "already known" in error["error"]


# --- storage at rest and the key-encryption key ------------------------------------------------


def test_stored_key_column_holds_no_plaintext_key_material(app):
    from authserver.context import keyring
    from authserver.errors import KeyDecryptionError
    from authserver.extensions import db
    from authserver.signing.crypto import decrypt_private_key
    from authserver.signing.models import SigningKey

    with app.app_context():
        rows = db.session.execute(text("SELECT kid, private_key_encrypted FROM signing_keys")).all()
        assert len(rows) == 2
        for kid, blob in rows:
            blob = bytes(blob)
            private = keyring().private_key(db.session.get(SigningKey, kid)).as_dict(private=True)
            d = private["d"]
            d_bytes = base64.urlsafe_b64decode(d + "=" * (-len(d) % 4))
            assert b"PRIVATE KEY" not in blob
            assert d.encode() not in blob
            assert d_bytes not in blob
            assert base64.b64encode(d_bytes)[:40] not in blob
        # The kid is bound to the ciphertext: a blob moved to another row does not open.
        (_, blob_a), (kid_b, _) = rows
        kek = app_settings(app).key_encryption_key
        with pytest.raises(KeyDecryptionError):
            decrypt_private_key(kek, kid_b, bytes(blob_a))


def test_wrong_key_encryption_key_stops_the_start_with_a_clear_error(app, keys_dir):
    url = app_settings(app).database_url
    wrong = secrets.token_urlsafe(32)
    with pytest.raises(ConfigError, match="AUTHSERVER_KEY_ENCRYPTION_KEY") as caught:
        create_app(make_settings(url, keys_dir, key_encryption_key=wrong))
    assert run_cli(app, "keys", "ensure")[1]["active"] in str(caught.value)

    # The same through the WSGI entry point the server imports.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    env.update(
        AUTHSERVER_ENV="testing",
        AUTHSERVER_DATABASE_URL=url,
        AUTHSERVER_KEYS_DIR=str(keys_dir),
        AUTHSERVER_KEY_ENCRYPTION_KEY=wrong,
    )
    result = subprocess.run(
        [sys.executable, "-c", "import authserver.wsgi"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ConfigError" in result.stderr
    assert "AUTHSERVER_KEY_ENCRYPTION_KEY does not decrypt signing key" in result.stderr


def test_rewrap_moves_every_key_to_a_new_key_encryption_key(app, http, app_client, keys_dir):
    url = app_settings(app).database_url
    kid = kid_of(service_token(http, app_client))
    all_kids = sorted(k["kid"] for k in run_cli(app, "keys", "list")[1]["keys"])
    new_kek = secrets.token_urlsafe(32)

    # The new key never comes from argv; exactly one source is required.
    status, error = run_cli(app, "keys", "rewrap")
    assert status == 1 and "--new-kek-env" in error["error"]
    status, error = run_cli(app, "keys", "rewrap", "--new-kek-env", "NEW_KEK", env={"NEW_KEK": "x"})
    assert status == 1 and "NEW_KEK" in error["error"]

    status, rewrapped = run_cli(
        app, "keys", "rewrap", "--new-kek-env", "NEW_KEK", env={"NEW_KEK": new_kek}
    )
    assert status == 0
    assert sorted(rewrapped["rewrapped"]) == all_kids
    event = key_events(app, "key.rewrapped")[-1]
    assert sorted(event["kids"]) == all_kids and event["actor"].startswith("cli")
    assert new_kek not in json.dumps(event, default=str)

    # The old key-encryption key no longer opens the keys: refused at start-up...
    with pytest.raises(ConfigError, match="AUTHSERVER_KEY_ENCRYPTION_KEY"):
        create_app(make_settings(url, keys_dir))
    # ...and an app given the new one signs with the same key as before.
    switched = build_app(url, keys_dir, key_encryption_key=new_kek)
    try:
        token = service_token(switched.test_client(), app_client)
        assert kid_of(token) == kid
        assert introspect(http, app_client, token)["active"] is True

        # Back again, this time reading the key from a file.
        old_file = keys_dir / "key-encryption.key"
        status, back = run_cli(switched, "keys", "rewrap", "--new-kek-file", str(old_file))
        assert status == 0 and sorted(back["rewrapped"]) == all_kids
    finally:
        with switched.app_context():
            from authserver.extensions import db

            db.engine.dispose()
    create_app(make_settings(url, keys_dir))  # the original key opens them again


# --- key sizes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [3072, 4096])
def test_configured_key_size_signs_rs256(app, app_client, keys_dir, bits):
    url = app_settings(app).database_url
    sized = create_app(make_settings(url, keys_dir, signing_key_bits=str(bits)))
    http = sized.test_client()

    def size_of(kid: str) -> int:
        jwk = next(k for k in http.get(JWKS).json["keys"] if k["kid"] == kid)
        return jwt.PyJWK(jwk).key.key_size

    try:
        # Keys made before the change keep their size; the next key made is of the new size,
        # and it signs after the following rotation.
        status, first = run_cli(sized, "keys", "rotate", "--force")
        assert status == 0 and size_of(first["active"]) == 2048
        assert size_of(first["next"]) == bits
        status, second = run_cli(sized, "keys", "rotate", "--force")
        assert status == 0 and second["active"] == first["next"]
        token = service_token(http, app_client)
        header = jwt.get_unverified_header(token)
        assert header["alg"] == "RS256" and header["kid"] == second["active"]
        jwk = next(k for k in http.get(JWKS).json["keys"] if k["kid"] == header["kid"])
        jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience=ISSUER)
    finally:
        with sized.app_context():
            from authserver.extensions import db

            db.engine.dispose()


# --- audit ---------------------------------------------------------------------------------------


def test_every_key_operation_is_audited_with_who_and_which_kids(app, tmp_path):
    from authserver.extensions import utcnow

    start = utcnow() - timedelta(seconds=1)
    reset_keys(app)
    created = key_events(app, "key.created")
    assert sorted(e["state"] for e in created[-2:]) == ["active", "next"]

    before = run_cli(app, "keys", "ensure")[1]
    assert run_cli(app, "keys", "rotate")[0] == 1
    refused = key_events(app, "key.rotation_refused")[-1]
    assert refused["outcome"] == "refused" and refused["next"] == before["next"]

    status, summary = run_cli(app, "keys", "rotate", "--force")
    assert status == 0
    rotated = key_events(app, "key.rotated")[-1]
    assert rotated["forced"] is True
    assert rotated["active"] == before["next"] == summary["active"]
    assert rotated["retired"] == [before["active"]]
    assert rotated["next"] == summary["next"]
    assert rotated["actor"].startswith("cli") and rotated["at"] >= start

    path = tmp_path / "k.pem"
    path.write_bytes(private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    imported = run_cli(app, "keys", "import", "--pem", str(path))[1]
    assert key_events(app, "key.imported")[-1]["kid"] == imported["kid"]
    run_cli(app, "keys", "revoke", before["active"])
    assert key_events(app, "key.revoked")[-1]["kid"] == before["active"]
