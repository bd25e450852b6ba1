"""The token endpoint as a client sees it: client authentication, grant and scope rules,
and malformed requests, which must all get an RFC 6749 §5.2 answer and never a 500."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import PASSWORD, PHONE
from tests.helpers import committed

TOKEN = "/oauth/token"


def assert_oauth_error(response, status: int, error: str) -> dict:
    """An RFC 6749 §5.2 error: JSON object with ``error``, not cacheable."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] == error, body
    assert isinstance(body.get("error_description", ""), str)
    assert response.headers.get("Cache-Control") == "no-store"
    return body


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def password_form(**extra: str) -> dict[str, str]:
    return {"grant_type": "password", "username": PHONE, "password": PASSWORD, **extra}


# --- client authentication -------------------------------------------------------------


def test_client_secret_basic_authenticates(http, app_client, user):
    response = http.post(TOKEN, data=password_form(), headers=app_client.basic)
    assert response.status_code == 200, response.json
    assert response.json["access_token"]


def test_client_secret_post_authenticates_a_client_registered_for_it(http, make_client, user):
    client = make_client(auth_method="client_secret_post")
    form = password_form(client_id=client.client_id, client_secret=client.secret)
    response = http.post(TOKEN, data=form)
    assert response.status_code == 200, response.json
    # One registered method per client: the same secret through Basic is refused.
    refused = http.post(TOKEN, data=password_form(), headers=client.basic)
    assert_oauth_error(refused, 401, "invalid_client")


def test_basic_client_may_not_switch_to_post(http, app_client, user):
    form = password_form(client_id=app_client.client_id, client_secret=app_client.secret)
    assert_oauth_error(http.post(TOKEN, data=form), 401, "invalid_client")


def test_public_client_authenticates_with_client_id_in_body(http, make_client, user):
    public = make_client(public=True, grant_types=("password", "refresh_token"))
    assert public.secret is None
    response = http.post(TOKEN, data=password_form(client_id=public.client_id))
    assert response.status_code == 200, response.json
    assert response.json["refresh_token"]


def test_wrong_secret_is_401_invalid_client_with_www_authenticate(http, app_client, user):
    response = http.post(
        TOKEN, data=password_form(), headers=basic(app_client.client_id, "not-the-secret")
    )
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_wrong_secret_in_body_is_invalid_client(http, make_client, user):
    client = make_client(auth_method="client_secret_post")
    form = password_form(client_id=client.client_id, client_secret="not-the-secret")
    response = http.post(TOKEN, data=form)
    assert_oauth_error(response, 401, "invalid_client")
    assert "WWW-Authenticate" in response.headers


@pytest.mark.parametrize("how", ["basic", "post", "none"])
def test_unknown_client_is_invalid_client(http, user, how):
    headers, form = {}, password_form(client_id="no-such-client")
    if how == "basic":
        headers, form = basic("no-such-client", "secret"), password_form()
    elif how == "post":
        form["client_secret"] = "secret"
    assert_oauth_error(http.post(TOKEN, data=form, headers=headers), 401, "invalid_client")


def test_no_client_authentication_at_all_is_invalid_client(http, user):
    assert_oauth_error(http.post(TOKEN, data=password_form()), 401, "invalid_client")


def test_confidential_client_cannot_authenticate_with_none(http, app_client, user):
    # Only the client_id, no secret: a confidential client must prove itself.
    response = http.post(TOKEN, data=password_form(client_id=app_client.client_id))
    assert_oauth_error(response, 401, "invalid_client")


def test_basic_and_body_secret_together_is_invalid_request(http, app_client, user):
    form = password_form(client_id=app_client.client_id, client_secret=app_client.secret)
    response = http.post(TOKEN, data=form, headers=app_client.basic)
    assert_oauth_error(response, 400, "invalid_request")


def test_basic_with_another_client_id_in_body_is_invalid_request(http, app_client, user):
    response = http.post(
        TOKEN, data=password_form(client_id="someone-else"), headers=app_client.basic
    )
    assert_oauth_error(response, 400, "invalid_request")


def test_public_client_may_not_use_client_credentials(http, make_client, app):
    public = make_client(public=True, grant_types=("password",))
    response = http.post(
        TOKEN, data={"grant_type": "client_credentials", "client_id": public.client_id}
    )
    assert_oauth_error(response, 401, "invalid_client")


def test_public_client_cannot_be_registered_for_client_credentials(make_client):
    from authserver.errors import ClientError

    with pytest.raises(ClientError, match="client_credentials"):
        make_client(public=True, grant_types=("client_credentials",))


def test_grant_type_not_allowed_for_client_is_unauthorized_client(http, make_client, user):
    service = make_client(grant_types=("client_credentials",))
    response = http.post(TOKEN, data=password_form(), headers=service.basic)
    assert_oauth_error(response, 400, "unauthorized_client")


@pytest.mark.parametrize(
    "grant_type", ["urn:ietf:params:oauth:grant-type:device_code", "implicit", "PASSWORD"]
)
def test_unsupported_grant_type(http, app_client, grant_type):
    response = http.post(TOKEN, data={"grant_type": grant_type}, headers=app_client.basic)
    assert_oauth_error(response, 400, "unsupported_grant_type")


@pytest.mark.parametrize("form", [{"username": PHONE}, {"grant_type": ""}])
def test_missing_grant_type_is_invalid_request(http, app_client, form):
    response = http.post(TOKEN, data=form, headers=app_client.basic)
    assert_oauth_error(response, 400, "invalid_request")
    assert "grant_type" in response.json["error_description"]


def test_disabled_client_is_refused(http, app, app_client, user):
    from authserver.extensions import db
    from authserver.oauth.models import Client

    with app.app_context():
        db.session.get(Client, app_client.client_id).is_active = False
        db.session.commit()
    response = http.post(TOKEN, data=password_form(), headers=app_client.basic)
    assert_oauth_error(response, 401, "invalid_client")
    cc = http.post(TOKEN, data={"grant_type": "client_credentials"}, headers=app_client.basic)
    assert_oauth_error(cc, 401, "invalid_client")


def test_a_client_disabled_on_another_instance_is_refused_within_the_cache_time(
    database_url, keys_dir
):
    """Each process caches clients for AUTHSERVER_CLIENT_CACHE_SECONDS: a change made
    by another instance takes effect here within that time, a new secret included."""
    import time

    from authserver.extensions import db
    from authserver.oauth.clients import create_client, new_client_secret
    from authserver.oauth.models import Client
    from tests.conftest import build_app

    here = build_app(database_url, keys_dir, client_cache_seconds="1")
    elsewhere = build_app(database_url, keys_dir)
    with committed(here):
        client, secret = create_client(
            name="cached", grant_types=["client_credentials"], scope="profile", actor="tests"
        )
        client_id = client.client_id
    http = here.test_client()
    form = {"grant_type": "client_credentials"}
    assert http.post(TOKEN, data=form, headers=basic(client_id, secret)).status_code == 200
    with elsewhere.app_context():
        new_secret = new_client_secret(db.session.get(Client, client_id), actor="tests")
        db.session.commit()
    time.sleep(1.1)
    assert_oauth_error(
        http.post(TOKEN, data=form, headers=basic(client_id, secret)), 401, "invalid_client"
    )
    assert http.post(TOKEN, data=form, headers=basic(client_id, new_secret)).status_code == 200
    with elsewhere.app_context():
        db.session.get(Client, client_id).is_active = False
        db.session.commit()
    time.sleep(1.1)
    response = http.post(TOKEN, data=form, headers=basic(client_id, new_secret))
    assert_oauth_error(response, 401, "invalid_client")


# --- scopes ----------------------------------------------------------------------------


def test_no_scope_requested_gets_every_allowed_scope(http, app_client, user):
    response = http.post(TOKEN, data=password_form(), headers=app_client.basic)
    assert response.json["scope"] == "profile properties.read"


@pytest.mark.parametrize("empty", ["", "   "])
def test_empty_scope_parameter_counts_as_none_requested(http, app_client, user, empty):
    response = http.post(TOKEN, data=password_form(scope=empty), headers=app_client.basic)
    assert response.status_code == 200, response.json
    assert response.json["scope"] == "profile properties.read"


def test_subset_of_scopes_is_granted_as_asked(http, app_client, user):
    response = http.post(TOKEN, data=password_form(scope="profile"), headers=app_client.basic)
    assert response.status_code == 200
    assert response.json["scope"] == "profile"


@pytest.mark.parametrize("scope", ["admin", "profile admin", "properties.write"])
def test_scope_beyond_allowed_is_invalid_scope(http, app_client, user, scope):
    response = http.post(TOKEN, data=password_form(scope=scope), headers=app_client.basic)
    assert_oauth_error(response, 400, "invalid_scope")


def test_scope_rules_apply_to_client_credentials_too(http, app_client):
    ok = http.post(
        TOKEN,
        data={"grant_type": "client_credentials", "scope": "properties.read"},
        headers=app_client.basic,
    )
    assert ok.status_code == 200 and ok.json["scope"] == "properties.read"
    refused = http.post(
        TOKEN, data={"grant_type": "client_credentials", "scope": "admin"}, headers=app_client.basic
    )
    assert_oauth_error(refused, 400, "invalid_scope")


# --- malformed input: clear 4xx, never 500 -------------------------------------------------


def test_json_body_is_415_with_oauth_error(http, app_client, user):
    response = http.post(TOKEN, json=password_form(), headers=app_client.basic)
    assert_oauth_error(response, 415, "invalid_request")


def test_no_content_type_is_415(http, app_client):
    response = http.post(TOKEN, data=b"grant_type=password", headers=app_client.basic)
    assert_oauth_error(response, 415, "invalid_request")


def test_multipart_body_is_415(http, app_client, user):
    response = http.post(
        TOKEN, data=password_form(), headers=app_client.basic, content_type="multipart/form-data"
    )
    assert_oauth_error(response, 415, "invalid_request")


def test_parameters_in_query_string_are_refused(http, app_client, user):
    response = http.post(
        TOKEN + "?password=" + PASSWORD, data=password_form(), headers=app_client.basic
    )
    assert_oauth_error(response, 400, "invalid_request")


def test_repeated_parameter_is_refused(http, app_client, user):
    body = f"grant_type=password&username={PHONE}&password=a&password=b"
    response = http.post(
        TOKEN,
        data=body,
        headers=app_client.basic,
        content_type="application/x-www-form-urlencoded",
    )
    assert_oauth_error(response, 400, "invalid_request")
    assert "password" in response.json["error_description"]


def test_body_over_limit_is_413_json(http, app_client):
    body = "grant_type=password&password=" + "x" * (64 * 1024)
    response = http.post(
        TOKEN,
        data=body,
        headers=app_client.basic,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 413
    assert response.mimetype == "application/json"
    assert response.json["error"]


def test_body_just_under_limit_is_processed(http, app_client, user):
    password = "x" * (60 * 1024)
    response = http.post(TOKEN, data=password_form(password=password), headers=app_client.basic)
    assert_oauth_error(response, 400, "invalid_grant")


@pytest.mark.parametrize("missing", ["username", "password"])
def test_missing_username_or_password_is_invalid_request(http, app_client, user, missing):
    form = password_form()
    del form[missing]
    assert_oauth_error(
        http.post(TOKEN, data=form, headers=app_client.basic), 400, "invalid_request"
    )


CREDENTIALS_REFUSED = ("invalid_grant",)
MALFORMED = ("invalid_request",)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # invalid UTF-8, percent-encoded: decoded with replacement characters
        (b"grant_type=password&username=%FF%FE&password=%C3%28", CREDENTIALS_REFUSED),
        (b"grant_type=password&username=\xff\xfe&password=\xc3\x28", MALFORMED),  # raw bytes
        (b"grant_type=password&username=%00%00&password=%00", MALFORMED),  # NULs: guard.py
        (b"grant_type=password&username=\xe2\x80\xae0612975634&password=x", CREDENTIALS_REFUSED),
        (b"grant_type=password&username&password", CREDENTIALS_REFUSED),  # empty values
        (b"&&&===&&", MALFORMED),  # no grant_type
        (b"grant_type=password&username=%2B33612975634%0A&password=%0D%0A", CREDENTIALS_REFUSED),
    ],
)
def test_weird_bytes_never_500(http, app_client, user, body, expected):
    response = http.post(
        TOKEN,
        data=body,
        headers=app_client.basic,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json()["error"] in expected


@pytest.mark.parametrize("field", ["username", "password"])
def test_very_long_credentials_are_invalid_grant(http, app_client, user, field):
    form = password_form(**{field: "6" * 20_000})
    response = http.post(TOKEN, data=form, headers=app_client.basic)
    assert_oauth_error(response, 400, "invalid_grant")


def test_ten_thousand_character_client_id_is_invalid_client(http, user):
    long_id = "c" * 10_000
    as_body = http.post(TOKEN, data=password_form(client_id=long_id))
    assert_oauth_error(as_body, 401, "invalid_client")
    as_basic = http.post(TOKEN, data=password_form(), headers=basic(long_id, "secret"))
    assert_oauth_error(as_basic, 401, "invalid_client")


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),  # not UTF-8
        "Basic " + base64.b64encode(b":").decode(),
        "Basic ",
        "Basic",
        "Bearer abc",
        "Basic " + "A" * 5000,
    ],
)
def test_garbage_basic_header_is_invalid_client(http, user, header):
    response = http.post(TOKEN, data=password_form(), headers={"Authorization": header})
    assert_oauth_error(response, 401, "invalid_client")


def test_get_on_token_endpoint_is_405_json(http):
    response = http.get(TOKEN)
    assert response.status_code == 405
    assert response.mimetype == "application/json"
    assert "POST" in response.headers["Allow"]
