"""Hostile input answers a clear 400 in the endpoint's own style, never a 500, and
writes nothing (authserver/guard.py): NUL and other control characters, lone surrogates,
JSON nested too deep, integers beyond 64 bits; in forms, queries, JSON bodies, paths and
Basic credentials. Each case was a 500 on PostgreSQL (psycopg2 refuses a NUL) or on both
databases (RecursionError, OverflowError) before the guard (issue #15 items 1 and 2)."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import PASSWORD
from tests.own_api import bearer, sign_in
from tests.test_admin import admin, admin_id, console  # noqa: F401  (fixtures)
from tests.test_token_endpoint import assert_oauth_error

DEEP = "[" * 5000 + "]" * 5000


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def password_grant(**extra: str) -> dict[str, str]:
    return {"grant_type": "password", "username": "0612975634", "password": PASSWORD, **extra}


def refused_oauth(response) -> None:
    body = assert_oauth_error(response, 400, "invalid_request")
    assert body["error_description"]


def test_token_endpoint_refuses_nul_in_the_form(http):
    form = {"grant_type": "client_credentials", "client_id": "\x00", "client_secret": "x"}
    refused_oauth(http.post("/oauth/token", data=form))


@pytest.mark.parametrize("client_id", ["%00", "a%01b", "\x00"])
def test_basic_credentials_with_control_characters_are_400(http, client_id):
    response = http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(client_id, "x"),
    )
    refused_oauth(response)


@pytest.mark.parametrize(
    "extra", [{"resource": "\x00"}, {"device_name": "a\x00b"}, {"scope": "profile\x07"}]
)
def test_password_grant_with_a_right_password_refuses_nul_and_opens_no_session(
    http, app, app_client, user, extra
):
    from sqlalchemy import func, select

    from authserver.extensions import db
    from authserver.oauth.models import AuthSession

    refused_oauth(http.post("/oauth/token", data=password_grant(**extra), headers=app_client.basic))
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuthSession)) == 0
        db.session.remove()


def test_query_strings_are_checked_too(http, admin):  # noqa: F811
    response = http.get("/admin/users?q=a%00b", headers=admin)
    assert response.status_code == 400, response.data
    assert list(response.json["fields"]) == ["q"]


@pytest.fixture
def me(http, make_client, user) -> dict[str, str]:
    """A token for the account API, from the platform's own app."""
    return bearer(sign_in(http, make_client(first_party=True))["access_token"])


@pytest.mark.parametrize("field", ["first_name", "email", "username"])
def test_account_profile_refuses_nul_in_json(http, me, field):
    before = http.get("/account/profile", headers=me).json
    response = http.patch("/account/profile", json={field: "a\u0000b"}, headers=me)
    assert response.status_code == 400, response.data
    assert response.json["error"] == "invalid_request"
    assert field in response.json["fields"]
    assert http.get("/account/profile", headers=me).json == before


def test_lone_surrogate_in_json_is_400(http, me):
    response = http.patch(
        "/account/profile",
        data='{"first_name": "a\\ud800b"}',
        content_type="application/json",
        headers=me,
    )
    assert response.status_code == 400, response.data
    assert response.json["fields"] == {"first_name": [response.json["fields"]["first_name"][0]]}


def test_seed_profile_update_refuses_nul_like_django_rest_framework(http, user):
    tokens = http.post("/api/auth/token/", json={"phone": "0612975634", "password": PASSWORD}).json
    auth = {"Authorization": f"Bearer {tokens['access']}"}
    response = http.patch("/accounts/profile/update/", json={"fullname": "a\x00b"}, headers=auth)
    assert response.status_code == 400, response.data
    assert isinstance(response.json["fullname"], list)


def test_admin_path_with_nul_is_400(http, admin):  # noqa: F811
    response = http.post("/admin/clients/%00/disable", headers=admin)
    assert response.status_code == 400, response.data
    assert response.json["error"] == "invalid_request"


@pytest.mark.parametrize(
    "path", ["/admin/groups/99999999999999999999999", "/admin/permissions/9223372036854775808"]
)
def test_admin_path_integer_beyond_64_bits_is_400(http, admin, path):  # noqa: F811
    response = http.get(path, headers=admin)
    assert response.status_code == 400, response.data
    assert response.json["error"] == "invalid_request"


def test_json_integer_beyond_64_bits_is_400(http, admin):  # noqa: F811
    response = http.get("/admin/users?limit=99999999999999999999999", headers=admin)
    assert response.status_code == 400, response.data
    created = http.post(
        "/admin/groups",
        data='{"name": "x", "permissions": [1e999, 99999999999999999999999]}',
        content_type="application/json",
        headers=admin,
    )
    assert created.status_code == 400, created.data


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/oauth/otp", "POST"),
        ("/api/auth/token/", "POST"),
        ("/accounts/login/", "POST"),
        ("/account/profile", "PATCH"),
    ],
)
def test_deeply_nested_json_is_400(http, me, path, method):
    response = http.open(
        path, method=method, data=DEEP, content_type="application/json", headers=me
    )
    assert response.status_code == 400, (response.status_code, response.data[:200])
    assert response.mimetype == "application/json"


def test_nesting_up_to_32_levels_is_parsed(http, me):
    nested: object = "x"
    for _ in range(31):
        nested = [nested]
    response = http.patch("/account/profile", json={"first_name": nested}, headers=me)
    # Parsed, then refused by the schema (a list is not a name), not by the guard.
    assert response.status_code == 400
    assert "first_name" in response.json["fields"]


def test_tabs_and_newlines_are_ordinary_text(http, me):
    response = http.patch("/account/profile", json={"first_name": "Ada\tLove"}, headers=me)
    assert response.status_code in (200, 400)
    assert response.status_code != 500


def test_hosted_page_answers_its_own_page(http):
    response = http.get("/oauth/authorize?client_id=%00&response_type=code")
    assert response.status_code == 400
    assert response.mimetype == "text/html"
