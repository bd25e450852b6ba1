"""The admin API through HTTP: who may use it, users, groups and permissions, OAuth
clients, signing keys; and the data migration that creates the default groups."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import flask_migrate
import psycopg2
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from authserver import create_app
from tests.conftest import ISSUER, PASSWORD, PHONE, OAuthClient, build_app, make_settings
from tests.helpers import bearer, committed, introspect, sign_in
from tests.own_api import ADMIN

ADMIN_PHONE = "+33611111111"
OTHER_PHONE = "+33622222222"

# Every /admin route, with sample values for its path variables. A test below checks
# this list against the application's URL map, so a new route cannot miss the checks.
ROUTES = [
    ("GET", "/admin/users"),
    ("POST", "/admin/users"),
    ("GET", "/admin/users/{uuid}"),
    ("PATCH", "/admin/users/{uuid}"),
    ("POST", "/admin/users/{uuid}/block"),
    ("POST", "/admin/users/{uuid}/unblock"),
    ("PUT", "/admin/users/{uuid}/groups"),
    ("PUT", "/admin/users/{uuid}/permissions"),
    ("GET", "/admin/groups"),
    ("POST", "/admin/groups"),
    ("GET", "/admin/groups/{int}"),
    ("PATCH", "/admin/groups/{int}"),
    ("DELETE", "/admin/groups/{int}"),
    ("GET", "/admin/permissions"),
    ("POST", "/admin/permissions"),
    ("GET", "/admin/permissions/{int}"),
    ("PATCH", "/admin/permissions/{int}"),
    ("DELETE", "/admin/permissions/{int}"),
    ("GET", "/admin/clients"),
    ("POST", "/admin/clients"),
    ("GET", "/admin/clients/{str}"),
    ("PATCH", "/admin/clients/{str}"),
    ("POST", "/admin/clients/{str}/rotate-secret"),
    ("POST", "/admin/clients/{str}/disable"),
    ("POST", "/admin/clients/{str}/enable"),
    ("GET", "/admin/keys"),
    ("POST", "/admin/keys/rotate"),
    ("POST", "/admin/keys/{str}/revoke"),
    ("GET", "/admin/audiences"),
    ("POST", "/admin/audiences"),
    ("GET", "/admin/audiences/{uuid}"),
    ("DELETE", "/admin/audiences/{uuid}"),
    ("PUT", "/admin/audiences/{uuid}/encryption-key"),
    ("DELETE", "/admin/audiences/{uuid}/encryption-key"),
    ("GET", "/admin/audit"),
]
SAMPLES = {"uuid": str(uuid.uuid4()), "int": "987654", "str": "no-such-thing"}


def url_of(template: str) -> str:
    return template.format(**SAMPLES)


@pytest.fixture
def admin_id(make_user) -> str:
    return make_user(ADMIN_PHONE, admin=True)


@pytest.fixture
def console(make_client) -> OAuthClient:
    """The platform's admin console: a first-party app, so it may ask for admin tokens."""
    return make_client(grant_types=("password", "refresh_token"), first_party=True)


@pytest.fixture
def admin(http, console, admin_id) -> dict[str, str]:
    """Authorization header of a user holding authserver.admin, signed in just now."""
    return bearer(sign_in(http, console, ADMIN_PHONE, resource=ADMIN)["access_token"])


def client_token(http, client, scope: str | None = None, resource: str | None = None) -> str:
    data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    if resource:
        data["resource"] = resource
    response = http.post("/oauth/token", data=data, headers=client.basic)
    assert response.status_code == 200, response.json
    return response.json["access_token"]


# --- who may call /admin -------------------------------------------------------------
def test_route_list_matches_the_url_map(app):
    registered = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/admin")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }

    def shape(path: str) -> str:  # path variables compared as "*"
        return "/".join("*" if part.startswith(("<", "{")) else part for part in path.split("/"))

    assert {(m, shape(p)) for m, p in registered} == {(m, shape(p)) for m, p in ROUTES}


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_admin_route_needs_an_admin(http, method, path, console, user, make_client, admin):
    url = url_of(path)
    anonymous = http.open(url, method=method, json={})
    assert anonymous.status_code == 401
    assert anonymous.json["error"] == "invalid_token"
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")

    forged = http.open(url, method=method, json={}, headers=bearer("not.a.token"))
    assert forged.status_code == 401

    # A user without the right, with a token for the admin API: 403.
    regular = bearer(sign_in(http, console, resource=ADMIN)["access_token"])
    refused = http.open(url, method=method, json={}, headers=regular)
    assert refused.status_code == 403
    assert refused.json["error"] == "insufficient_scope"

    # A service client without the admin scope holds no token for the admin API.
    service = make_client(grant_types=("client_credentials",), scope="reports.read")
    refused = http.open(url, method=method, json={}, headers=bearer(client_token(http, service)))
    assert refused.status_code == 401

    if (method, path) == ("POST", "/admin/keys/rotate"):
        return  # would change the suite's shared keys: test_keys_list_rotate_revoke has it
    # The admin passes the check (then gets whatever the request deserves, never a 500).
    allowed = http.open(url, method=method, json={}, headers=admin)
    assert allowed.status_code not in (401, 403, 500), allowed.json


def test_admin_scope_client_may_call_admin_but_only_with_the_scope_in_its_token(http, make_client):
    service = make_client(grant_types=("client_credentials",), scope="authserver:admin profile")
    full = client_token(http, service, resource=ADMIN)
    assert http.get("/admin/users", headers=bearer(full)).status_code == 200
    narrow = client_token(http, service, scope="profile")  # not for the admin API
    assert http.get("/admin/users", headers=bearer(narrow)).status_code == 401


def test_taking_the_admin_right_away_works_at_once(http, admin, admin_id, make_user):
    other_admin = make_user(OTHER_PHONE, admin=True)
    assert http.get("/admin/users", headers=admin).status_code == 200
    # The admin is stripped of the group and of the permission (here by themselves).
    for part, body in (("groups", {"groups": []}), ("permissions", {"permissions": []})):
        response = http.put(f"/admin/users/{admin_id}/{part}", json=body, headers=admin)
        assert response.status_code == 200
    assert http.get("/admin/users", headers=admin).status_code == 403
    assert other_admin


# --- users ---------------------------------------------------------------------------
def test_create_read_update_user(http, admin):
    # The migration made "Regular User"; the fixtures empty the tables between tests.
    made = http.post("/admin/groups", json={"name": "Regular User"}, headers=admin)
    assert made.status_code in (201, 409)
    created = http.post(
        "/admin/users",
        json={
            "phone": "06 33 44 55 66",
            "password": "a new long password",
            "email": "Ada@Example.com",
            "first_name": "Ada",
            "account_type": "tenant",
            "groups": ["Regular User"],
        },
        headers=admin,
    )
    assert created.status_code == 201, created.json
    user = created.json
    assert user["phone"] == "+33633445566"
    assert user["email"] == "ada@example.com"
    assert user["groups"] == ["Regular User"]
    assert set(user) == {
        "id", "username", "email", "phone", "first_name", "last_name", "account_type",
        "is_active", "is_blocked", "groups", "permissions",
    }  # fmt: skip
    assert http.get(f"/admin/users/{user['id']}", headers=admin).json == user

    updated = http.patch(
        f"/admin/users/{user['id']}",
        json={"last_name": "Lovelace", "account_type": "landlord", "username": "ada"},
        headers=admin,
    )
    assert updated.status_code == 200, updated.json
    assert (updated.json["last_name"], updated.json["account_type"]) == ("Lovelace", "landlord")
    assert updated.json["username"] == "ada"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"phone": "not a phone"}, 400, "phone"),
        ({"phone": PHONE}, 409, "phone"),  # the default user's, written otherwise
        ({"phone": "+33633445566", "account_type": "pirate"}, 400, "account_type"),
        ({"phone": "+33633445566", "password": "short"}, 400, "password"),
        ({"phone": "+33633445566", "email": "nope@"}, 400, "email"),
        ({"phone": "+33633445566", "groups": ["No Such Group"]}, 400, "groups"),
        ({"phone": "+33633445566", "permissions": ["no.such"]}, 400, "permissions"),
        ({"phone": "+33633445566", "is_admin": True}, 400, "is_admin"),
        ({}, 400, "phone"),
    ],
)
def test_create_user_refuses_bad_input(http, admin, user, body, status, field):
    if body.get("phone") == PHONE:
        body = {**body, "phone": "06 12 97 56 34"}
    response = http.post("/admin/users", json=body, headers=admin)
    assert response.status_code == status, response.json
    assert field in response.json["fields"]


def test_bodies_that_are_not_json_objects(http, admin):
    response = http.post(
        "/admin/users",
        data="phone=1",
        headers=admin,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 415
    response = http.post(
        "/admin/users", data="[1, 2", headers=admin, content_type="application/json"
    )
    assert response.status_code == 400
    response = http.post("/admin/users", json=[1, 2], headers=admin)
    assert response.status_code == 400


def test_unknown_ids_are_404(http, admin):
    assert http.get(f"/admin/users/{uuid.uuid4()}", headers=admin).status_code == 404
    assert http.get("/admin/users/not-a-uuid", headers=admin).status_code == 404
    assert http.get("/admin/groups/123456", headers=admin).json["error"] == "not_found"
    assert http.get("/admin/clients/nope", headers=admin).status_code == 404


def test_search_and_pagination(http, admin, make_user):
    for index in range(5):
        make_user(f"+3361000000{index}", first_name=f"Person{index}", email=f"p{index}@ex.org")
    everyone = http.get("/admin/users?limit=200", headers=admin).json
    assert len(everyone["users"]) == 6 and everyone["next_offset"] is None

    first = http.get("/admin/users?limit=4", headers=admin).json
    assert len(first["users"]) == 4 and first["next_offset"] == 4
    rest = http.get("/admin/users?limit=4&offset=4", headers=admin).json
    assert len(rest["users"]) == 2 and rest["next_offset"] is None
    assert {u["id"] for u in first["users"]}.isdisjoint(u["id"] for u in rest["users"])

    assert [
        u["first_name"] for u in http.get("/admin/users?q=person3", headers=admin).json["users"]
    ] == ["Person3"]
    assert len(http.get("/admin/users?q=EX.ORG", headers=admin).json["users"]) == 5
    by_phone = http.get("/admin/users?q=06 10 00 00 02", headers=admin).json["users"]
    assert [u["phone"] for u in by_phone] == ["+33610000002"]
    # LIKE wildcards are searched for literally.
    assert http.get("/admin/users?q=%25", headers=admin).json["users"] == []

    for bad in ("limit=0", "limit=201", "offset=-1", "limit=abc", "limit=1&limit=2", "x=1"):
        response = http.get(f"/admin/users?{bad}", headers=admin)
        assert response.status_code == 400, bad
        assert response.json["error"] == "invalid_request" and response.json["fields"]


def test_blocking_ends_every_session_at_once(http, app_client, user, admin):
    sessions = [sign_in(http, app_client), sign_in(http, app_client, device_name="tablet")]
    response = http.post(f"/admin/users/{user}/block", headers=admin)
    assert response.status_code == 200
    assert response.json["sessions_revoked"] == 2
    assert response.json["user"]["is_blocked"] is True

    for tokens in sessions:
        refreshed = http.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            headers=app_client.basic,
        )
        assert refreshed.status_code == 400 and refreshed.json["error"] == "invalid_grant"
        assert introspect(http, app_client, tokens["access_token"]) == {"active": False}
        assert introspect(http, app_client, tokens["refresh_token"]) == {"active": False}
        profile = http.get("/account/profile", headers=bearer(tokens["access_token"]))
        assert profile.status_code == 401

    blocked = http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": PHONE, "password": PASSWORD},
        headers=app_client.basic,
    )
    assert blocked.status_code == 400 and blocked.json["error"] == "invalid_grant"
    assert http.get("/admin/users", headers=admin).status_code == 200  # the admin is unaffected

    assert (
        http.post(f"/admin/users/{user}/unblock", headers=admin).json["user"]["is_blocked"] is False
    )
    fresh = sign_in(http, app_client)
    assert introspect(http, app_client, fresh["access_token"])["active"] is True
    # The sessions ended by the block stay ended.
    assert introspect(http, app_client, sessions[0]["refresh_token"]) == {"active": False}


def test_an_admin_cannot_block_themselves(http, admin, admin_id):
    response = http.post(f"/admin/users/{admin_id}/block", headers=admin)
    assert response.status_code == 409


def test_deactivating_or_setting_a_password_ends_sessions(http, app_client, user, admin):
    tokens = sign_in(http, app_client)
    response = http.patch(
        f"/admin/users/{user}", json={"password": "set by the admin"}, headers=admin
    )
    assert response.status_code == 200
    assert introspect(http, app_client, tokens["access_token"]) == {"active": False}
    tokens = sign_in(http, app_client, password="set by the admin")

    response = http.patch(f"/admin/users/{user}", json={"is_active": False}, headers=admin)
    assert response.json["is_active"] is False
    assert introspect(http, app_client, tokens["refresh_token"]) == {"active": False}


def test_groups_and_permissions_reach_the_tokens(http, app_client, user, admin):
    assert (
        http.post(
            "/admin/permissions",
            json={"codename": "properties.view", "name": "See properties"},
            headers=admin,
        ).status_code
        == 201
    )
    assert (
        http.post(
            "/admin/permissions", json={"codename": "properties.edit"}, headers=admin
        ).status_code
        == 201
    )
    group = http.post(
        "/admin/groups",
        json={"name": "Landlords", "permissions": ["properties.view", "properties.edit"]},
        headers=admin,
    )
    assert group.status_code == 201, group.json
    assert group.json["permissions"] == ["properties.edit", "properties.view"]

    assert http.put(
        f"/admin/users/{user}/groups", json={"groups": ["Landlords"]}, headers=admin
    ).json["groups"] == ["Landlords"]
    direct = http.put(
        f"/admin/users/{user}/permissions", json={"permissions": ["reports.read"]}, headers=admin
    )
    assert direct.status_code == 400 and direct.json["fields"]["permissions"]
    http.post("/admin/permissions", json={"codename": "reports.read"}, headers=admin)
    direct = http.put(
        f"/admin/users/{user}/permissions", json={"permissions": ["reports.read"]}, headers=admin
    )
    assert direct.json["permissions"] == ["properties.edit", "properties.view", "reports.read"]

    claims = introspect(http, app_client, sign_in(http, app_client)["access_token"])
    assert claims["groups"] == ["Landlords"]
    assert claims["entitlements"] == ["properties.edit", "properties.view", "reports.read"]

    # Changing the group changes what its members hold.
    group_id = group.json["id"]
    patched = http.patch(
        f"/admin/groups/{group_id}", json={"permissions": ["properties.view"]}, headers=admin
    )
    assert patched.json["permissions"] == ["properties.view"]
    assert http.get(f"/admin/users/{user}", headers=admin).json["permissions"] == [
        "properties.view",
        "reports.read",
    ]


def test_group_and_permission_crud(http, admin):
    created = http.post("/admin/groups", json={"name": "Staff"}, headers=admin)
    assert created.status_code == 201
    assert http.post("/admin/groups", json={"name": "Staff"}, headers=admin).status_code == 409
    group_id = created.json["id"]
    renamed = http.patch(f"/admin/groups/{group_id}", json={"name": "Team"}, headers=admin)
    assert renamed.json["name"] == "Team"
    names = [g["name"] for g in http.get("/admin/groups", headers=admin).json["groups"]]
    assert "Team" in names and "Staff" not in names
    assert http.delete(f"/admin/groups/{group_id}", headers=admin).status_code == 204
    assert http.get(f"/admin/groups/{group_id}", headers=admin).status_code == 404

    # The admin fixture made "Admin User" and "authserver.admin": both are protected.
    admin_group = next(
        g
        for g in http.get("/admin/groups", headers=admin).json["groups"]
        if g["name"] == "Admin User"
    )
    assert http.delete(f"/admin/groups/{admin_group['id']}", headers=admin).status_code == 409
    permission = next(
        p
        for p in http.get("/admin/permissions", headers=admin).json["permissions"]
        if p["codename"] == "authserver.admin"
    )
    assert http.delete(f"/admin/permissions/{permission['id']}", headers=admin).status_code == 409

    made = http.post("/admin/permissions", json={"codename": "a.b"}, headers=admin).json
    assert (
        http.patch(f"/admin/permissions/{made['id']}", json={"name": "A B"}, headers=admin).json[
            "name"
        ]
        == "A B"
    )
    assert (
        http.post("/admin/permissions", json={"codename": "a.b"}, headers=admin).status_code == 409
    )
    assert (
        http.post("/admin/permissions", json={"codename": "has space"}, headers=admin).status_code
        == 400
    )
    assert http.delete(f"/admin/permissions/{made['id']}", headers=admin).status_code == 204


# --- OAuth clients -------------------------------------------------------------------
def test_client_lifecycle(http, admin, make_client):
    created = http.post(
        "/admin/clients",
        json={"name": "Reports", "grant_types": ["client_credentials"], "scope": "reports.read"},
        headers=admin,
    )
    assert created.status_code == 201, created.json
    client_id, secret = created.json["client_id"], created.json["client_secret"]
    assert secret and created.json["grant_types"] == ["client_credentials"]
    shown = http.get(f"/admin/clients/{client_id}", headers=admin).json
    assert "client_secret" not in shown and shown["is_active"] is True
    assert shown["first_party"] is False  # third-party unless registered otherwise
    own = http.patch(f"/admin/clients/{client_id}", json={"first_party": True}, headers=admin)
    assert own.json["first_party"] is True
    http.patch(f"/admin/clients/{client_id}", json={"first_party": False}, headers=admin)
    assert any(
        c["client_id"] == client_id
        for c in http.get("/admin/clients", headers=admin).json["clients"]
    )

    old = OAuthClient(client_id, secret)
    token = client_token(http, old)

    rotated = http.post(f"/admin/clients/{client_id}/rotate-secret", headers=admin)
    new = OAuthClient(client_id, rotated.json["client_secret"])
    assert new.secret != secret
    stale = http.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=old.basic)
    assert stale.status_code == 401 and stale.json["error"] == "invalid_client"
    client_token(http, new)

    widened = http.patch(
        f"/admin/clients/{client_id}",
        json={"scope": "reports.read reports.write", "grant_types": ["client_credentials"]},
        headers=admin,
    )
    assert widened.json["scope"] == "reports.read reports.write"
    client_token(http, new, scope="reports.write")

    narrowed = http.patch(
        f"/admin/clients/{client_id}", json={"grant_types": ["password"]}, headers=admin
    )
    assert narrowed.json["grant_types"] == ["password"]
    refused = http.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=new.basic
    )
    assert refused.status_code == 400 and refused.json["error"] == "unauthorized_client"
    http.patch(
        f"/admin/clients/{client_id}", json={"grant_types": ["client_credentials"]}, headers=admin
    )

    resource = make_client(grant_types=("client_credentials",), resource_server=True)
    assert introspect(http, resource, token)["active"] is True
    disabled = http.post(f"/admin/clients/{client_id}/disable", headers=admin)
    assert disabled.json["is_active"] is False
    gone = http.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=new.basic)
    assert gone.status_code == 401
    assert introspect(http, resource, token) == {"active": False}
    assert http.post(f"/admin/clients/{client_id}/enable", headers=admin).json["is_active"]
    client_token(http, new)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "grant_types": ["implicit"]},
        {"name": "x", "grant_types": ["client_credentials"], "public": True},
        {"name": "x", "grant_types": []},
        {"name": "x", "grant_types": ["password"], "scope": "   "},
        {"name": "x", "grant_types": ["password"], "auth_method": "private_key_jwt"},
        {"grant_types": ["password"]},
    ],
)
def test_client_creation_refuses_bad_metadata(http, admin, body):
    response = http.post("/admin/clients", json=body, headers=admin)
    assert response.status_code == 400, response.json
    assert response.json["error"] in ("invalid_request", "invalid_client_metadata")


def test_public_client_has_no_secret_to_rotate(http, admin):
    created = http.post(
        "/admin/clients",
        json={"name": "App", "grant_types": ["password"], "public": True},
        headers=admin,
    ).json
    assert created["client_secret"] is None and created["public"] is True
    response = http.post(f"/admin/clients/{created['client_id']}/rotate-secret", headers=admin)
    assert response.status_code == 409


# --- audiences (resource servers) and their encryption keys ---------------------------
PROPERTIES = "https://properties.example.com"


@pytest.fixture(scope="module")
def audience_keys() -> dict:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from joserfc.jwk import ECKey, OKPKey, RSAKey

    return {
        "rsa": RSAKey.generate_key(2048, private=True),
        "rsa_other": RSAKey.generate_key(2048, private=True),
        "ec": ECKey.generate_key("P-256", private=True),
        "rsa_1024": rsa_public_jwk(rsa.generate_private_key(65537, 1024).public_key()),
        "secp256k1": ECKey.generate_key("secp256k1", private=True),
        "x25519": OKPKey.generate_key("X25519", private=True),
    }


def rsa_public_jwk(key) -> dict:
    """Built by hand: joserfc warns about keys this small (the point of the test)."""
    import base64

    def b64(number: int) -> str:
        raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    numbers = key.public_numbers()
    return {"kty": "RSA", "n": b64(numbers.n), "e": b64(numbers.e)}


def audit_events(http, admin, prefix: str) -> list[dict]:
    events = http.get("/admin/audit?limit=200", headers=admin).json["events"]
    return [e for e in reversed(events) if e["event"].startswith(prefix)]


def test_audience_lifecycle(app, http, admin, admin_id, app_client, user, audience_keys):
    rsa_key, ec_key = audience_keys["rsa"], audience_keys["ec"]
    created = http.post(
        "/admin/audiences",
        json={
            "identifier": PROPERTIES,
            "name": "Properties",
            "encryption_key": {**rsa_key.as_dict(private=False), "kid": "props-1"},
        },
        headers=admin,
    )
    assert created.status_code == 201, created.json
    audience = created.json
    assert audience["identifier"] == PROPERTIES and audience["name"] == "Properties"
    assert audience["encrypted"] is True and audience["replaced_keys"] == []
    key = audience["encryption_key"]
    assert (key["kid"], key["alg"], key["enc"], key["state"]) == (
        "props-1", "RSA-OAEP-256", "A256GCM", "active"
    )  # fmt: skip
    assert key["jwk"] == {**rsa_key.as_dict(private=False), "kid": "props-1",
                          "alg": "RSA-OAEP-256", "use": "enc"}  # fmt: skip
    url = f"/admin/audiences/{audience['id']}"
    assert http.get(url, headers=admin).json == audience
    assert http.get("/admin/audiences", headers=admin).json == {"audiences": [audience]}

    def access_token() -> str:
        return sign_in(http, app_client, resource=PROPERTIES)["access_token"]

    token = access_token()
    assert token.count(".") == 4  # encrypted to the registered key
    assert introspect(http, app_client, token)["aud"] == PROPERTIES

    # Replaced by an EC key (kid: its thumbprint); the RSA key is kept as replaced.
    replaced = http.put(
        f"{url}/encryption-key",
        json={"encryption_key": ec_key.as_dict(private=False)},
        headers=admin,
    )
    assert replaced.status_code == 200, replaced.json
    assert replaced.json["encryption_key"]["kid"] == ec_key.thumbprint()
    assert replaced.json["encryption_key"]["alg"] == "ECDH-ES"
    (old,) = replaced.json["replaced_keys"]
    assert (old["kid"], old["state"]) == ("props-1", "replaced")
    replaced_at = datetime.fromisoformat(old["replaced_at"])
    valid_until = datetime.fromisoformat(old["tokens_valid_until"])
    assert valid_until - replaced_at == timedelta(seconds=300 + 60)  # token TTL + clock skew
    assert introspect(http, app_client, token)["active"] is True  # its tokens live on

    # The same key again changes nothing; another key under a kid in use is refused.
    again = http.put(
        f"{url}/encryption-key",
        json={"encryption_key": ec_key.as_dict(private=False)},
        headers=admin,
    )
    assert again.status_code == 200 and again.json == replaced.json
    clash = http.put(
        f"{url}/encryption-key",
        json={"encryption_key": {**audience_keys["rsa_other"].as_dict(private=False),
                                 "kid": "props-1"}},
        headers=admin,
    )  # fmt: skip
    assert clash.status_code == 409 and clash.json["error"] == "conflict"
    assert "kid" in clash.json["error_description"]

    # Removed: plain signed tokens for this audience from now on.
    removed = http.delete(f"{url}/encryption-key", headers=admin)
    assert removed.status_code == 200
    assert removed.json["encrypted"] is False and removed.json["encryption_key"] is None
    assert [k["state"] for k in removed.json["replaced_keys"]] == ["replaced", "replaced"]
    plain = access_token()
    assert plain.count(".") == 2
    assert introspect(http, app_client, plain)["aud"] == PROPERTIES
    assert http.delete(f"{url}/encryption-key", headers=admin).status_code == 200  # idempotent

    # Deleted: asking for it is invalid_target; issued tokens run out by themselves.
    assert http.delete(url, headers=admin).status_code == 204
    assert http.get(url, headers=admin).status_code == 404
    with app.app_context():  # its keys went with it, on SQLite too
        from authserver.audiences.models import AudienceEncryptionKey
        from authserver.extensions import db

        assert db.session.scalar(select(func.count()).select_from(AudienceEncryptionKey)) == 0
    refused = http.post(
        "/oauth/token",
        data={"grant_type": "password", "username": PHONE, "password": PASSWORD,
              "resource": PROPERTIES},
        headers=app_client.basic,
    )  # fmt: skip
    assert refused.status_code == 400 and refused.json["error"] == "invalid_target"
    assert introspect(http, app_client, token)["active"] is True

    events = audit_events(http, admin, "audience.")
    assert [(e["event"], e["actor"]) for e in events] == [
        ("audience.created", admin_id),
        ("audience.key_set", admin_id),
        ("audience.key_removed", admin_id),
        ("audience.deleted", admin_id),
    ]
    assert events[0]["details"] == {"audience": PROPERTIES, "kid": "props-1", "alg": "RSA-OAEP-256"}
    assert events[1]["details"]["replaced_kid"] == "props-1"


@pytest.mark.parametrize(
    ("build", "status", "field", "message"),
    [
        (lambda k: {"identifier": "properties"}, 400, "identifier", "absolute URI"),
        (lambda k: {"identifier": f"{PROPERTIES}#x"}, 400, "identifier", "fragment"),
        (lambda k: {"identifier": "https://a b"}, 400, "identifier", "printable ASCII"),
        (
            lambda k: {"identifier": PROPERTIES, "encryption_key": k["rsa"].as_dict(private=True)},
            400, "encryption_key", "send only the public key",
        ),
        (
            lambda k: {"identifier": PROPERTIES, "encryption_key": k["ec"].as_dict(private=True)},
            400, "encryption_key", "send only the public key",
        ),
        (
            lambda k: {"identifier": PROPERTIES, "encryption_key": k["rsa_1024"]},
            400, "encryption_key", "at least 2048 bits",
        ),
        (
            lambda k: {"identifier": PROPERTIES,
                       "encryption_key": k["secp256k1"].as_dict(private=False)},
            400, "encryption_key", "Unsupported curve",
        ),
        (
            lambda k: {"identifier": PROPERTIES,
                       "encryption_key": k["x25519"].as_dict(private=False)},
            400, "encryption_key", "Unsupported key type",
        ),
        (
            lambda k: {"identifier": PROPERTIES,
                       "encryption_key": {**k["rsa"].as_dict(private=False), "alg": "ECDH-ES"}},
            400, "encryption_key", "needs an EC key",
        ),
        (
            lambda k: {"identifier": PROPERTIES,
                       "encryption_key": {**k["ec"].as_dict(private=False),
                                          "alg": "RSA-OAEP-256"}},
            400, "encryption_key", "needs an RSA key",
        ),
        (
            lambda k: {"identifier": PROPERTIES,
                       "encryption_key": {**k["rsa"].as_dict(private=False), "alg": "RSA1_5"}},
            400, "encryption_key", "Unsupported alg",
        ),
        (
            lambda k: {"identifier": PROPERTIES,
                       "encryption_key": {**k["rsa"].as_dict(private=False), "use": "sig"}},
            400, "encryption_key", "not for encryption",
        ),
        (
            lambda k: {"identifier": PROPERTIES,
                       "encryption_key": {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}},
            400, "encryption_key", "not a valid EC public key",
        ),
        (
            lambda k: {"identifier": ISSUER, "encryption_key": k["ec"].as_dict(private=False)},
            400, "encryption_key", "default audience",
        ),
    ],
    ids=[
        "relative", "fragment", "space", "rsa_private", "ec_private", "rsa_1024", "secp256k1",
        "x25519", "rsa_as_ecdh", "ec_as_rsa_oaep", "rsa1_5", "use_sig", "not_on_curve",
        "default_audience",
    ],
)  # fmt: skip
def test_audience_registration_refusals(http, admin, audience_keys, build, status, field, message):
    response = http.post("/admin/audiences", json=build(audience_keys), headers=admin)
    assert response.status_code == status, response.json
    assert response.json["error"] == "invalid_request"
    assert message in response.json["error_description"]
    assert message in response.json["fields"][field][0]
    assert http.get("/admin/audiences", headers=admin).json == {"audiences": []}


def test_audience_conflicts_and_the_default_audience(http, admin, audience_keys):
    first = http.post("/admin/audiences", json={"identifier": PROPERTIES}, headers=admin)
    assert first.status_code == 201 and first.json["encrypted"] is False
    again = http.post("/admin/audiences", json={"identifier": PROPERTIES}, headers=admin)
    assert again.status_code == 409 and again.json["fields"] == {
        "identifier": ["An audience with this identifier already exists."]
    }
    # authserver's own audience may be registered, but never encrypted: it reads those
    # tokens itself (userinfo, the account and admin APIs).
    own = http.post("/admin/audiences", json={"identifier": ISSUER}, headers=admin)
    assert own.status_code == 201
    refused = http.put(
        f"/admin/audiences/{own.json['id']}/encryption-key",
        json={"encryption_key": audience_keys["ec"].as_dict(private=False)},
        headers=admin,
    )
    assert refused.status_code == 400
    assert "default audience" in refused.json["error_description"]
    missing = http.put(
        f"/admin/audiences/{first.json['id']}/encryption-key", json={}, headers=admin
    )
    assert missing.status_code == 400 and "encryption_key" in missing.json["fields"]


# --- the data migration --------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'groups.db'}"
        return
    url = make_url(request.getfixturevalue("pg_url"))
    name = f"groups_{uuid.uuid4().hex[:12]}"
    server = psycopg2.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, dbname="postgres"
    )
    server.autocommit = True
    try:
        server.cursor().execute(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
        server.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        server.close()


def test_migration_creates_the_default_groups_idempotently(empty_database, tmp_path):
    app = create_app(make_settings(empty_database, tmp_path / "keys"))
    with app.app_context():
        from authserver.accounts.models import Group, Permission
        from authserver.extensions import db

        try:
            flask_migrate.upgrade()

            def state():
                groups = db.session.scalars(select(Group).order_by(Group.name)).all()
                result = {g.name: [p.codename for p in g.permissions] for g in groups}
                db.session.remove()
                return result

            assert state() == {"Admin User": ["authserver.admin"], "Regular User": []}
            # Undone (it leaves the rows) and done again: nothing doubles, nothing fails.
            flask_migrate.downgrade(revision="0002")  # below 0003, whatever comes after it
            flask_migrate.upgrade()
            assert state() == {"Admin User": ["authserver.admin"], "Regular User": []}
            permissions = db.session.scalars(select(Permission.codename)).all()
            assert permissions == ["authserver.admin"]
        finally:
            db.session.remove()
            db.engine.dispose()


# --- signing keys --------------------------------------------------------------------
# On a database of their own: the suite's shared database keeps its keys between tests,
# and other tests expect the key history they make themselves.
@pytest.fixture
def key_app(empty_database, tmp_path):
    from authserver.extensions import db

    built = build_app(empty_database, tmp_path / "keys")
    yield built
    with built.app_context():
        db.session.remove()
        db.engine.dispose()


def test_keys_list_rotate_revoke(key_app):
    from authserver.accounts.services import create_user
    from authserver.extensions import db
    from authserver.oauth.clients import create_client

    with committed(key_app):
        admin_user = create_user(ADMIN_PHONE, PASSWORD, admin=True)
        db.session.commit()
        admin_id = str(admin_user.id)
        made, secret = create_client(
            name="console", grant_types=["password"], first_party=True, actor="tests"
        )
        console = OAuthClient(made.client_id, secret)
    http = key_app.test_client()
    admin = bearer(sign_in(http, console, ADMIN_PHONE, resource=ADMIN)["access_token"])

    listed = http.get("/admin/keys", headers=admin).json["keys"]
    assert {k["state"] for k in listed} == {"active", "next"}
    before = next(k["kid"] for k in listed if k["state"] == "active")

    # Too early: `next` was published a moment ago.
    early = http.post("/admin/keys/rotate", json={}, headers=admin)
    assert early.status_code == 409 and early.json["error"] == "rotation_not_safe"

    rotated = http.post("/admin/keys/rotate", json={"force": True}, headers=admin)
    assert rotated.status_code == 200, rotated.json
    assert rotated.json["active"] != before and rotated.json["retired"] == [before]

    signed_by_new = bearer(sign_in(http, console, ADMIN_PHONE, resource=ADMIN)["access_token"])
    assert http.get("/admin/keys", headers=admin).status_code == 200  # old key still verifies

    active = rotated.json["active"]
    assert http.post(f"/admin/keys/{active}/revoke", headers=admin).status_code == 409
    assert http.post("/admin/keys/unknown-kid/revoke", headers=admin).status_code == 404
    revoked = http.post(f"/admin/keys/{before}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json["state"] == "revoked"
    # The token signed by the revoked key no longer works; one signed by the new key does.
    assert http.get("/admin/keys", headers=admin).status_code == 401
    events = http.get("/admin/audit?limit=200", headers=signed_by_new).json["events"]
    actions = {(e["event"], e["actor"]) for e in events}
    assert {("key.rotated", admin_id), ("key.revoked", admin_id)} <= actions


@pytest.mark.parametrize("username", ["+33612555001", "0612555001"])
def test_a_phone_shaped_username_is_refused(http, admin, user, username):
    created = http.post(
        "/admin/users", json={"phone": "+33612555002", "username": username}, headers=admin
    )
    assert created.status_code == 400 and "username" in created.json["fields"], created.json
    changed = http.patch(f"/admin/users/{user}", json={"username": username}, headers=admin)
    assert changed.status_code == 400 and "username" in changed.json["fields"], changed.json
