"""The seed documents' endpoints, each with the seed's own example request."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from jwt import PyJWKClient

from tests.conftest import ISSUER, PASSWORD, PHONE, USER_KEYS, django_pbkdf2
from tests.helpers import committed


def verify_with_pyjwt(live_server, token: str) -> dict:
    key = PyJWKClient(live_server.url + "/.well-known/jwks.json").get_signing_key_from_jwt(token)
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    return jwt.decode(token, key.key, algorithms=["RS256"], issuer=ISSUER, audience=ISSUER)


@pytest.mark.parametrize("slash", ["/", ""])
def test_seed000_token_and_login(http, user, live_server, slash):
    body = {"phone": "0612975634", "password": PASSWORD}
    response = http.post("/api/auth/token" + slash, json=body)
    assert response.status_code == 200
    assert set(response.json) == {"refresh", "access"}
    assert verify_with_pyjwt(live_server, response.json["access"])["sub"] == user

    response = http.post("/api/auth/login" + slash, json=body)
    assert response.status_code == 200
    assert set(response.json) == {"refresh", "access", "user"}
    assert set(response.json["user"]) == USER_KEYS
    assert response.json["user"]["id"] == user
    assert response.json["user"]["phone"] == "+33612975634"
    assert verify_with_pyjwt(live_server, response.json["access"])["sub"] == user


def test_seed000_wrong_password_is_simplejwt_401(http, user):
    response = http.post("/api/auth/token/", json={"phone": "0612975634", "password": "nope"})
    assert response.status_code == 401
    assert response.json == {
        "detail": "No active account found with the given credentials",
        "code": "no_active_account",
    }


def test_seed000_refresh_rotates_and_detects_reuse(http, user, time_machine):
    tokens = http.post("/api/auth/token/", json={"phone": "0612975634", "password": PASSWORD}).json
    response = http.post("/api/auth/refresh/", json={"refresh": tokens["refresh"]})
    assert response.status_code == 200
    assert set(response.json) == {"access", "refresh"}
    assert response.json["refresh"] != tokens["refresh"]
    # A lost answer: presented again at once, the same successor (docs/tokens.md).
    retried = http.post("/api/auth/refresh/", json={"refresh": tokens["refresh"]})
    assert retried.json["refresh"] == response.json["refresh"]
    # After the grace window the spent token is refused in SimpleJWT's shape.
    time_machine.move_to(datetime.now(UTC) + timedelta(seconds=11))
    again = http.post("/api/auth/refresh", json={"refresh": tokens["refresh"]})
    assert again.status_code == 401
    assert again.json == {"detail": "Token is invalid or expired", "code": "token_not_valid"}


def test_seed001_refresh_without_slash_and_bearer_access(http, user):
    tokens = http.post("/api/auth/token/", json={"phone": "0612975634", "password": PASSWORD}).json
    response = http.post("/api/token/refresh", json={"refresh": tokens["refresh"]})
    assert response.status_code == 200
    profile = http.get(
        "/accounts/profile/", headers={"Authorization": f"Bearer {response.json['access']}"}
    )
    assert profile.status_code == 200 and profile.json["id"] == user


@pytest.mark.parametrize("slash", ["/", ""])
def test_seed002_token_refresh_verify(http, user, live_server, slash):
    response = http.post(
        "/auth/token" + slash, json={"username": "0612975634", "password": PASSWORD}
    )
    assert response.status_code == 200
    refreshed = http.post("/auth/token/refresh" + slash, json={"refresh": response.json["refresh"]})
    assert refreshed.status_code == 200
    verify_with_pyjwt(live_server, refreshed.json["access"])
    ok = http.post("/auth/token/verify" + slash, json={"token": refreshed.json["access"]})
    assert ok.status_code == 200 and ok.json == {}
    bad = http.post("/auth/token/verify" + slash, json={"token": refreshed.json["access"] + "x"})
    assert bad.status_code == 401
    assert bad.json["code"] == "token_not_valid"


def test_seed003_login_and_refresh_errors(http, user):
    response = http.post("/api/login/", json={"username": "0612975634", "password": PASSWORD})
    assert response.status_code == 200 and set(response.json) == {"refresh", "access"}
    wrong = http.post("/api/login/", json={"username": "0612975634", "password": "bad"})
    assert wrong.status_code == 401
    assert wrong.json == {"error": "Invalid username or password"}
    unknown = http.post("/api/login", json={"username": "0699999999", "password": PASSWORD})
    assert unknown.status_code == 401 and unknown.json == wrong.json
    refreshed = http.post("/api/token/refresh/", json={"refresh": response.json["refresh"]})
    assert refreshed.status_code == 200
    stale = http.post("/api/token/refresh/", json={"refresh": "not-a-token"})
    assert stale.status_code == 401
    assert stale.json == {"error": "Invalid or expired refresh token"}


def test_seed004_profile_update_and_logout(http, user):
    tokens = http.post("/api/auth/token/", json={"phone": "0612975634", "password": PASSWORD}).json
    auth = {"Authorization": f"Bearer {tokens['access']}"}
    profile = http.get("/accounts/profile", headers=auth)
    assert profile.status_code == 200 and profile.json["phone"] == "+33612975634"
    updated = http.patch(
        "/accounts/profile/update/", json={"fullname": "Ada Lovelace"}, headers=auth
    )
    assert updated.status_code == 200
    assert updated.json["fullname"] == "Ada Lovelace"
    assert (updated.json["first_name"], updated.json["last_name"]) == ("Ada", "Lovelace")
    # The seed's apps send the token in a cookie named Authorization.
    http.set_cookie("Authorization", f"Bearer {tokens['access']}")
    assert http.get("/accounts/profile/").json["fullname"] == "Ada Lovelace"
    http.delete_cookie("Authorization")

    assert http.post("/accounts/logout/", json={"refresh": tokens["refresh"]}).status_code == 200
    # The session is over: its refresh token and its access token both stop working.
    assert http.post("/accounts/refresh/", json={"refresh": tokens["refresh"]}).status_code == 401
    assert http.get("/accounts/profile/", headers=auth).status_code == 401
    verify = http.post("/accounts/token/verify/", json={"token": tokens["access"]})
    assert verify.status_code == 401


def test_seed004_profile_without_token_is_401(http):
    response = http.get("/accounts/profile/")
    assert response.status_code == 401
    assert response.json["code"] == "token_not_valid"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/auth/token/", {"phone": "0612975634"}, "password"),
        ("/api/login/", {"password": "x"}, "username"),
        ("/auth/token/refresh/", {}, "refresh"),
        ("/auth/token/verify/", {"token": ""}, "token"),
    ],
)
def test_missing_fields_answer_like_django_rest_framework(http, path, body, field):
    response = http.post(path, json=body)
    assert response.status_code == 400
    assert field in response.json and isinstance(response.json[field], list)


@pytest.mark.parametrize("raw", ["[1, 2]", "not json", '{"phone": 5, "password": {}}'])
def test_malformed_bodies_are_400_never_500(http, raw):
    response = http.post("/api/auth/login/", data=raw, content_type="application/json")
    assert response.status_code == 400


def test_seed_endpoints_act_for_the_first_party_client(http, user, app):
    tokens = http.post("/api/auth/token/", json={"phone": "0612975634", "password": PASSWORD}).json
    claims = jwt.decode(tokens["access"], options={"verify_signature": False})
    assert claims["client_id"] == app.extensions["authserver.settings"].first_party_client_id


def test_import_django_users_then_login_rehashes(http, app, tmp_path):
    from authserver.accounts.importing import import_django_users
    from authserver.accounts.models import User
    from authserver.extensions import db

    dump = [
        {
            "model": "auth.permission",
            "pk": 7,
            "fields": {"codename": "view_property", "name": "Can view property"},
        },
        {"model": "auth.group", "pk": 1, "fields": {"name": "Regular User", "permissions": [7]}},
        {
            "model": "accounts.user",
            "pk": "8c1b",
            "fields": {
                "phone": "0612975634",
                "username": "ada",
                "email": "ada@example.com",
                "first_name": "Ada",
                "last_name": "L",
                "account_type": "tenant",
                "is_active": True,
                "is_blocked": False,
                "groups": [1],
                "user_permissions": [],
                "password": django_pbkdf2("test@gmail"),
            },
        },
        {
            "model": "accounts.user",
            "pk": "bad",
            "fields": {"phone": "12", "username": "x", "password": django_pbkdf2("x")},
        },
    ]
    with committed(app):
        first = import_django_users(dump, actor="tests").as_dict()
        second = import_django_users(dump, actor="tests").as_dict()
    assert (first["created"], first["updated"], len(first["skipped"])) == (1, 0, 1)
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, 1)

    response = http.post("/api/auth/login/", json={"phone": "0612975634", "password": "test@gmail"})
    assert response.status_code == 200
    assert response.json["user"]["groups"] == ["Regular User"]
    assert response.json["user"]["permissions"] == ["view_property"]
    with app.app_context():
        stored = db.session.query(User).one().password_hash
    assert stored.startswith("$argon2id$")
    # A re-import does not put the old Django hash back.
    with committed(app):
        import_django_users(dump, actor="tests")
        assert db.session.query(User).one().password_hash == stored


def test_import_wraps_django_hashes_and_follows_a_changed_password(http, app):
    from authserver.accounts.importing import import_django_users
    from authserver.accounts.models import User
    from authserver.extensions import db

    def dump(password):
        return [
            {"model": "accounts.user", "pk": 1, "fields": {"phone": PHONE, "password": password}}
        ]

    def stored():
        with app.app_context():
            return db.session.query(User).one().password_hash

    with committed(app):
        import_django_users(dump(django_pbkdf2("old secret")), actor="tests")
    first = stored()
    assert first.startswith("argon2id+pbkdf2_sha256$20000$") and "old secret" not in first
    with committed(app):
        assert import_django_users(dump(django_pbkdf2("old secret")), actor="tests").unchanged
    assert stored() == first
    # Changed in the Django service before the cut-over: the new one is imported.
    with committed(app):
        assert import_django_users(dump(django_pbkdf2("new secret")), actor="tests").updated
    login = {"phone": PHONE, "password": "new secret"}
    assert http.post("/api/auth/login/", json=login).status_code == 200
    # Unusable ("!…") and other formats are not kept: that user resets by SMS code.
    for other in ("!unusable", "md5$salt$0123456789abcdef", "argon2$argon2id$v=19$m=1,t=1,p=1$x$y"):
        with committed(app):
            db.session.query(User).delete()
            import_django_users(dump(other), actor="tests")
        assert stored() is None, other


def test_users_import_command(tmp_path, keys_dir):
    dump = tmp_path / "users.json"
    dump.write_text(
        json.dumps(
            [
                {
                    "model": "accounts.user",
                    "pk": 1,
                    "fields": {
                        "phone": "+33612975634",
                        "username": "u",
                        "password": django_pbkdf2("pw"),
                    },
                }
            ]
        )
    )
    env = {
        "AUTHSERVER_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "AUTHSERVER_KEYS_DIR": str(keys_dir),
        "PATH": "/usr/bin:/bin",
    }
    cli = [sys.executable, "-m", "authserver.cli"]
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True)
    out = subprocess.run(
        [*cli, "users", "import", str(dump)], env=env, check=True, capture_output=True, text=True
    )
    assert json.loads(out.stdout) == {"created": 1, "updated": 0, "unchanged": 0, "skipped": []}
    bad = subprocess.run(
        [*cli, "users", "import", str(tmp_path / "cli.db")], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 1 and "error" in json.loads(bad.stderr)


def test_seed004_profile_update_is_audited_like_account_profile(app, http, user):
    from sqlalchemy import select

    from authserver.audit import AuditEvent
    from authserver.extensions import db

    tokens = http.post("/api/auth/login/", json={"phone": "0612975634", "password": PASSWORD})
    auth = {"Authorization": f"Bearer {tokens.json['access']}"}
    updated = http.patch(
        "/accounts/profile/update/", json={"fullname": "Ada Lovelace"}, headers=auth
    )
    assert updated.status_code == 200, updated.json
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.event == "profile.updated")
        ).all()
        assert [(e.actor, e.details["fields"]) for e in events] == [
            (user, ["first_name", "last_name"])
        ]
