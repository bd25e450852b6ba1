"""authserver's own APIs trust only tokens meant for them (issue #14 item 1).

``/account`` needs a token issued for ``{issuer}/account`` (scope ``authserver:account``),
``/admin`` one for ``{issuer}/admin`` (scope ``authserver:admin``) from an admin who
signed in with a password recently; only first-party clients, or clients registered with
the scope, may ask for them (RFC 8707 ``resource``). Tokens are also read with PyJWT.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import jwt
import pytest

from authserver.extensions import db, utcnow
from tests.conftest import ISSUER, PASSWORD, PHONE, OAuthClient
from tests.helpers import bearer, committed, token_response
from tests.own_api import ACCOUNT, ADMIN, sign_in, sign_in_by_code

ADMIN_PHONE = "+33698765432"
SMS_ADMIN_PHONE = "+33698765433"
STALE_ADMIN_PHONE = "+33698765434"
PROPERTIES = "https://properties.example.com"


def claims_of(token: str) -> dict:
    """The claims as an independent library reads them (signature checked by the
    tests of tokens; here what they say)."""
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture
def first_party(make_client):
    return make_client(first_party=True, name="platform app")


@pytest.fixture
def third_party(make_client):
    return make_client(scope="profile properties.read", name="partner app")


@pytest.fixture
def admin_user(make_user) -> str:
    return make_user(ADMIN_PHONE, admin=True)


@pytest.fixture
def properties_audience(app):
    from authserver.audiences.services import create_audience

    with committed(app):
        create_audience(PROPERTIES, "properties", actor="tests")
        db.session.commit()
    return PROPERTIES


def make_stale(app, access_token: str, seconds: int = 7200) -> None:
    """Move the token's sign-in ``seconds`` into the past (what the clock would do)."""
    from authserver.oauth.models import AuthSession

    sid = uuid.UUID(claims_of(access_token)["sid"])
    with app.app_context():
        db.session.get(AuthSession, sid).created_at = utcnow() - timedelta(seconds=seconds)
        db.session.commit()


def refreshed(http, client, tokens: dict, resource: str) -> dict:
    response = token_response(
        http,
        client,
        grant_type="refresh_token",
        refresh_token=tokens["refresh_token"],
        resource=resource,
    )
    assert response.status_code == 200, response.json
    return response.json


# --- what the issue showed, one test each ------------------------------------------------
def test_an_admins_token_from_a_partner_app_does_not_open_admin(http, third_party, admin_user):
    token = sign_in(http, third_party, ADMIN_PHONE, resource=None)["access_token"]
    for method, path, body in (
        ("GET", "/admin/users", None),
        ("POST", "/admin/users", {"phone": "+33611111111", "password": "x" * 12, "admin": True}),
    ):
        answer = http.open(path, method=method, json=body, headers=bearer(token))
        assert answer.status_code == 401, (path, answer.status_code)
        assert answer.json["error"] == "invalid_token"
        assert answer.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_a_partner_app_may_not_ask_for_the_admin_or_account_audience(http, third_party, user):
    for resource in (ADMIN, ACCOUNT):
        refused = token_response(
            http,
            third_party,
            grant_type="password",
            username=PHONE,
            password=PASSWORD,
            resource=resource,
        )
        assert refused.status_code == 400
        assert refused.json["error"] == "invalid_target"


def test_a_tenants_properties_token_cannot_change_their_phone(http, third_party, user):
    token = sign_in(http, third_party, resource=None)["access_token"]
    answer = http.post("/account/phone", json={"phone": "+33677777777"}, headers=bearer(token))
    assert answer.status_code == 401
    assert answer.json["error"] == "invalid_token"


def test_a_first_party_token_without_resource_opens_neither_api(http, first_party, admin_user):
    token = sign_in(http, first_party, ADMIN_PHONE, resource=None)["access_token"]
    assert claims_of(token)["aud"] == ISSUER
    assert http.get("/account/profile", headers=bearer(token)).status_code == 401
    assert http.get("/admin/users", headers=bearer(token)).status_code == 401


def test_a_resource_servers_token_never_opens_our_apis(
    http, first_party, admin_user, properties_audience
):
    token = sign_in(http, first_party, ADMIN_PHONE, resource=PROPERTIES)["access_token"]
    assert claims_of(token)["aud"] == PROPERTIES
    for path in ("/account/profile", "/admin/users", "/account/consents"):
        answer = http.get(path, headers=bearer(token))
        assert answer.status_code == 401 and answer.json["error"] == "invalid_token", path


def test_account_and_admin_tokens_open_only_their_own_api(http, first_party, admin_user):
    account = sign_in(http, first_party, ADMIN_PHONE, resource=ACCOUNT)["access_token"]
    admin = sign_in(http, first_party, ADMIN_PHONE, resource=ADMIN)["access_token"]
    assert claims_of(account)["aud"] == ACCOUNT
    assert "authserver:account" in claims_of(account)["scope"].split()
    assert claims_of(admin)["aud"] == ADMIN
    assert "authserver:admin" in claims_of(admin)["scope"].split()
    assert http.get("/account/profile", headers=bearer(account)).status_code == 200
    assert http.get("/admin/users", headers=bearer(account)).status_code == 401
    assert http.get("/admin/users", headers=bearer(admin)).status_code == 200
    assert http.get("/account/profile", headers=bearer(admin)).status_code == 401


def test_a_client_registered_with_the_account_scope_may_ask_for_it(http, make_client, user):
    partner = make_client(scope="profile authserver:account", name="allowed partner")
    token = sign_in(http, partner, resource=ACCOUNT)["access_token"]
    assert http.get("/account/profile", headers=bearer(token)).status_code == 200


def test_a_token_without_the_apis_scope_is_403_insufficient_scope(
    http, make_client, admin_user, app
):
    # A token of the right audience whose scope was narrowed away (forged by signing it
    # ourselves: the token endpoint always adds the API's scope).
    from authserver.context import keyring

    token = sign_in(http, make_client(first_party=True), ADMIN_PHONE, resource=ACCOUNT)
    claims = claims_of(token["access_token"])
    claims["scope"] = "profile"
    with app.app_context():
        from joserfc import jwt as jose_jwt

        key = keyring().snapshot().signing.keys[0]
        header = {"alg": "RS256", "typ": "at+jwt", "kid": key.kid}
        forged = jose_jwt.encode(header, claims, key)
    answer = http.get("/account/profile", headers=bearer(forged))
    assert answer.status_code == 403
    assert answer.json["error"] == "insufficient_scope"
    assert 'scope="authserver:account"' in answer.headers["WWW-Authenticate"]


# --- step-up for /admin ----------------------------------------------------------------
def test_an_admin_signed_in_by_sms_code_alone_must_step_up(make_otp_app, gateway, make_user):
    otp_app = make_otp_app()
    http = otp_app.test_client()
    make_user(SMS_ADMIN_PHONE, admin=True)
    with committed(otp_app):
        from authserver.oauth.clients import create_client

        client, _ = create_client(
            name="platform app",
            grant_types=["urn:authserver:params:oauth:grant-type:otp", "refresh_token"],
            public=True,
            first_party=True,
            actor="tests",
        )
        db.session.commit()
        client_id = client.client_id
    assert http.post("/oauth/otp", data={"phone": SMS_ADMIN_PHONE}).status_code == 200
    answer = http.post(
        "/oauth/token",
        data={
            "grant_type": "urn:authserver:params:oauth:grant-type:otp",
            "phone": SMS_ADMIN_PHONE,
            "otp": gateway.last_code(SMS_ADMIN_PHONE),
            "client_id": client_id,
            "resource": ADMIN,
        },
    )
    assert answer.status_code == 200, answer.json
    token = answer.json["access_token"]
    assert "pwd" not in claims_of(token)["amr"]
    refused = http.get("/admin/users", headers=bearer(token))
    assert refused.status_code == 401
    assert refused.json["error"] == "insufficient_user_authentication"
    challenge = refused.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer error="insufficient_user_authentication"')
    assert 'max_age="900"' in challenge


def test_a_stale_password_sign_in_must_step_up_and_a_fresh_one_passes(
    http, app, first_party, admin_user
):
    tokens = sign_in(http, first_party, ADMIN_PHONE, resource=ADMIN)
    assert http.get("/admin/users", headers=bearer(tokens["access_token"])).status_code == 200
    assert time.time() - claims_of(tokens["access_token"])["auth_time"] < 60

    make_stale(app, tokens["access_token"])
    stale = refreshed(http, first_party, tokens, ADMIN)["access_token"]
    assert time.time() - claims_of(stale)["auth_time"] > 3600
    refused = http.get("/admin/users", headers=bearer(stale))
    assert refused.status_code == 401
    assert refused.json["error"] == "insufficient_user_authentication"
    assert 'max_age="900"' in refused.headers["WWW-Authenticate"]

    # Signing in again with the password is what the answer asks for, and it works.
    fresh = sign_in(http, first_party, ADMIN_PHONE, resource=ADMIN)["access_token"]
    assert http.get("/admin/users", headers=bearer(fresh)).status_code == 200


def test_the_step_up_window_is_a_setting(database_url, keys_dir, make_user):
    from tests.conftest import build_app

    app = build_app(database_url, keys_dir, admin_auth_max_age="120")
    try:
        make_user(ADMIN_PHONE, admin=True)
        http = app.test_client()
        with committed(app):
            from authserver.oauth.clients import create_client

            client, secret = create_client(
                name="console",
                grant_types=["password", "refresh_token"],
                first_party=True,
                actor="tests",
            )
            db.session.commit()
            console = OAuthClient(client.client_id, secret)
        tokens = sign_in(http, console, ADMIN_PHONE, resource=ADMIN)
        make_stale(app, tokens["access_token"], seconds=180)
        stale = refreshed(http, console, tokens, ADMIN)["access_token"]
        refused = http.get("/admin/users", headers=bearer(stale))
        assert refused.status_code == 401
        assert 'max_age="120"' in refused.headers["WWW-Authenticate"]
    finally:
        from tests.sms_gateway import dispose

        dispose(app)


def test_an_automation_client_registered_with_the_admin_scope_keeps_working(http, make_client):
    bot = make_client(grant_types=("client_credentials",), scope="authserver:admin")
    response = token_response(http, bot, grant_type="client_credentials", resource=ADMIN)
    assert response.status_code == 200, response.json
    token = response.json["access_token"]
    assert claims_of(token)["aud"] == ADMIN
    assert http.get("/admin/users", headers=bearer(token)).status_code == 200
    # Without resource its token is the default audience's: not for /admin.
    plain = token_response(http, bot, grant_type="client_credentials").json["access_token"]
    assert http.get("/admin/users", headers=bearer(plain)).status_code == 401


# --- the seed profile endpoints ---------------------------------------------------------
def test_the_seed_profile_refuses_a_partner_apps_token(http, third_party, user):
    token = sign_in(http, third_party, resource=None)["access_token"]
    for method, path in (("GET", "/accounts/profile/"), ("PATCH", "/accounts/profile/update/")):
        answer = http.open(path, method=method, json={"fullname": "Mallory"}, headers=bearer(token))
        assert answer.status_code == 401, path
        assert answer.json["code"] == "token_not_valid"


# --- the walk: every /admin and /account operation, six kinds of token -----------------
# Who holds the token, and what each API must answer it: "pass" (the check lets it
# through: the operation's own answer, never 401/403/5xx), or the refusal's error code.
WALK_KINDS = {
    "third-party app": {"account": "invalid_token", "admin": "invalid_token"},
    "resource server": {"account": "invalid_token", "admin": "invalid_token"},
    "client credentials": {"account": "invalid_token", "admin": "invalid_token"},
    "SMS-only sign-in": {"account": "pass", "admin": "insufficient_user_authentication"},
    "stale password sign-in": {"account": "pass", "admin": "insufficient_user_authentication"},
    "fresh first-party admin": {"account": "pass", "admin": "pass"},
}
# Operations run last, in this order: they end the token's sessions.
ENDING = ("/account/sessions/end-others", "/account/logout")
PATH_SAMPLES = {"uuid": str(uuid.uuid4()), "integer": "987654", "string": "no-such-thing"}


def own_operations(document: dict) -> list[tuple[str, str, str, dict]]:
    """(api, method, url, operation) for every operation under /admin and /account, the
    API's admin operations first, the ones that end sessions last."""
    found = []
    for path, item in document["paths"].items():
        api = path.split("/")[1]
        if api not in ("admin", "account"):
            continue
        for method, operation in item.items():
            url = path
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    schema = parameter["schema"]
                    sample = PATH_SAMPLES[
                        "uuid" if schema.get("format") == "uuid" else schema["type"]
                    ]
                    url = url.replace("{" + parameter["name"] + "}", sample)
            found.append((api, method.upper(), url, operation))
    return sorted(
        found,
        key=lambda op: (
            op[0] != "admin",
            op[2] in ENDING,
            ENDING.index(op[2]) if op[2] in ENDING else 0,
        ),
    )


@pytest.fixture
def walk(make_otp_app, gateway, make_user):
    """An app sending SMS to ``gateway``, its clients, users and one token per kind and
    API: {kind: {"account": token, "admin": token}}."""
    from authserver.audiences.services import create_audience
    from authserver.oauth.clients import create_client

    otp_app = make_otp_app()
    http = otp_app.test_client()
    for phone in (ADMIN_PHONE, SMS_ADMIN_PHONE, STALE_ADMIN_PHONE):
        make_user(phone, admin=True)
    with committed(otp_app):
        create_audience(PROPERTIES, "properties", actor="tests")
        clients = {}
        for name, options in {
            "platform": {
                "first_party": True,
                "grant_types": [
                    "password",
                    "refresh_token",
                    "urn:authserver:params:oauth:grant-type:otp",
                ],
            },
            "partner": {"scope": "profile properties.read", "grant_types": ["password"]},
            "service": {"scope": "properties.read", "grant_types": ["client_credentials"]},
        }.items():
            made, secret = create_client(name=name, actor="tests", **options)
            clients[name] = OAuthClient(made.client_id, secret)
        db.session.commit()
    platform, partner, service = clients["platform"], clients["partner"], clients["service"]

    # The service may not ask for our APIs at all.
    for resource in (ACCOUNT, ADMIN):
        refused = token_response(http, service, grant_type="client_credentials", resource=resource)
        assert refused.status_code == 400 and refused.json["error"] == "invalid_target"

    def both(make) -> dict[str, str]:
        return {"account": make(ACCOUNT), "admin": make(ADMIN)}

    def stale(resource: str) -> str:
        tokens = sign_in(http, platform, STALE_ADMIN_PHONE, resource=resource)
        make_stale(otp_app, tokens["access_token"])
        return refreshed(http, platform, tokens, resource)["access_token"]

    partner_token = sign_in(http, partner, ADMIN_PHONE, resource=None)["access_token"]
    service_token = token_response(http, service, grant_type="client_credentials").json
    tokens = {
        "third-party app": {"account": partner_token, "admin": partner_token},
        "resource server": both(
            lambda _: sign_in(http, platform, ADMIN_PHONE, resource=PROPERTIES)["access_token"]
        ),
        "client credentials": {
            "account": service_token["access_token"],
            "admin": service_token["access_token"],
        },
        "SMS-only sign-in": {},
        "stale password sign-in": both(stale),
        "fresh first-party admin": both(
            lambda resource: sign_in(http, platform, ADMIN_PHONE, resource=resource)["access_token"]
        ),
    }
    # One sign-in by SMS code; its refresh asks for the other API (same sign-in, amr).
    sms = sign_in_by_code(http, platform, gateway, SMS_ADMIN_PHONE, resource=ACCOUNT)
    tokens["SMS-only sign-in"] = {
        "account": sms["access_token"],
        "admin": refreshed(http, platform, sms, ADMIN)["access_token"],
    }
    return http, tokens


def test_every_own_operation_answers_each_kind_of_token_as_documented(walk):
    http, tokens = walk
    document = http.get("/openapi.json").json
    operations = own_operations(document)
    assert len(operations) >= 40  # every admin and account operation, not a sample
    seen = 0
    for kind, expected in WALK_KINDS.items():
        for api, method, url, operation in operations:
            if kind == "fresh first-party admin" and url == "/admin/keys/rotate":
                continue  # would rotate the suite's shared keys (test_admin.py has it)
            documented = operation["responses"]
            assert {"bearer": operation["security"][0]["bearer"]} == operation["security"][0]
            assert {"401", "403"} <= documented.keys(), (method, url)
            answer = http.open(url, method=method, json={}, headers=bearer(tokens[kind][api]))
            where = (kind, method, url, answer.status_code, answer.json)
            outcome = expected[api]
            if outcome == "pass":
                assert answer.status_code not in (401, 403) and answer.status_code < 500, where
            else:
                assert answer.status_code == 401, where
                assert answer.json["error"] == outcome, where
                challenge = answer.headers["WWW-Authenticate"]
                assert challenge.startswith(f'Bearer error="{outcome}"'), where
            assert any(status.startswith("2") for status in documented), (method, url)
            assert str(answer.status_code) in documented, where
            seen += 1
    assert seen >= 6 * 40 - 1


def test_the_seed_profile_takes_the_seed_sign_in_and_account_tokens(http, first_party, user):
    seed = http.post("/api/auth/login/", json={"phone": PHONE, "password": PASSWORD}).json
    account = sign_in(http, first_party, resource=ACCOUNT)["access_token"]
    for token in (seed["access"], account):
        assert http.get("/accounts/profile/", headers=bearer(token)).status_code == 200
    # Through the cookie seed 004's apps use, too.
    http.set_cookie("Authorization", f"Bearer {seed['access']}")
    assert http.get("/accounts/profile/").status_code == 200
