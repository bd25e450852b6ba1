"""The authorization code grant with PKCE through the hosted pages, and its negative
matrix: what the person and the app see for each mistake or attack (RFC 6749 §4.1,
RFC 7636, RFC 9207, RFC 9700). Driven through Flask's test client on both databases."""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import time_machine

from tests.conftest import ISSUER, PASSWORD, PHONE
from tests.oidc_client import parse_page, pkce, post_form

REDIRECT = "https://app.example.com/callback"
OTHER_REDIRECT = "https://app.example.com/other"


@pytest.fixture
def web_client(make_client):
    """A third-party confidential web app (asks for consent)."""
    return make_client(
        grant_types=("authorization_code", "refresh_token"),
        scope="openid profile phone",
        redirect_uris=[REDIRECT, OTHER_REDIRECT],
        name="Tenant portal",
    )


@pytest.fixture
def own_client(make_client):
    """A first-party public web app (no consent, no secret)."""
    return make_client(
        grant_types=("authorization_code", "refresh_token"),
        scope="openid profile phone",
        redirect_uris=[REDIRECT],
        public=True,
        first_party=True,
        name="Landlord portal",
    )


class Authorization:
    """One authorization request, its verifier, and where it ended."""

    def __init__(self, http, client, **overrides) -> None:
        self.http, self.client = http, client
        self.verifier, challenge = pkce()
        self.params = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": REDIRECT,
            "scope": "openid profile",
            "state": "state-123",
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **overrides,
        }
        self.params = {k: v for k, v in self.params.items() if v is not None}

    def start(self):
        return self.http.get("/oauth/authorize", query_string=self.params)

    def sign_in_and_allow(self, phone: str = "0612975634", password: str = PASSWORD):
        """Through the sign-in (and consent) pages to the redirect; its query."""
        response = self.start()
        if response.status_code == 302 and "/signin" in response.headers["Location"]:
            page = self.http.get(response.headers["Location"])
            response = post_form(self.http, page, {"phone": phone, "password": password})
        if response.status_code in (302, 303) and "/consent" in response.headers["Location"]:
            page = self.http.get(response.headers["Location"])
            response = post_form(self.http, page, button=("decision", "allow"))
        return redirected(response)

    def exchange(self, code: str, **overrides):
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.params.get("redirect_uri"),
            "code_verifier": self.verifier,
            **overrides,
        }
        data = {k: v for k, v in data.items() if v is not None}
        headers = self.client.basic if self.client.secret else {}
        if not self.client.secret:
            data["client_id"] = self.client.client_id
        return self.http.post("/oauth/token", data=data, headers=headers)


def redirected(response) -> dict[str, str]:
    """The query of a redirect to the app's redirect URI."""
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
    location = response.headers["Location"]
    assert location.startswith(REDIRECT) or location.startswith(OTHER_REDIRECT), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def assert_error_page(response, status: int = 400) -> None:
    """An error page for the person; the browser is sent nowhere."""
    assert response.status_code == status
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    assert parse_page(response.get_data(as_text=True)).alerts >= 1


# --- the flow --------------------------------------------------------------------------


def test_sign_in_consent_and_code_exchange(http, web_client, user):
    flow = Authorization(http, web_client)
    answer = flow.sign_in_and_allow()
    assert answer["state"] == "state-123"
    assert answer["iss"] == ISSUER  # RFC 9207
    with time_machine.travel(timedelta(seconds=30)):  # the app takes its time
        tokens = flow.exchange(answer["code"])
    assert tokens.status_code == 200, tokens.json
    body = tokens.json
    assert body["token_type"] == "Bearer" and body["scope"] == "openid profile"
    assert body["refresh_token"]
    claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert claims["aud"] == web_client.client_id and claims["sub"] == user
    assert claims["nonce"] == flow.params["nonce"] and claims["amr"] == ["pwd"]
    access = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert access["client_id"] == web_client.client_id and access["sub"] == user
    # When the person signed in on the pages, not when the app exchanged the code.
    assert access["auth_time"] == claims["auth_time"] <= access["iat"] - 29
    assert tokens.headers["Cache-Control"] == "no-store"


def test_first_party_client_skips_consent_and_public_client_needs_no_secret(http, own_client, user):
    flow = Authorization(http, own_client)
    response = flow.start()
    page = http.get(response.headers["Location"])
    response = post_form(http, page, {"phone": PHONE, "password": PASSWORD})
    answer = redirected(response)  # straight back: no consent page
    assert response.status_code == 303
    tokens = flow.exchange(answer["code"])
    assert tokens.status_code == 200, tokens.json


def test_consent_is_remembered_and_a_wider_scope_asks_again(http, web_client, user):
    Authorization(http, web_client).sign_in_and_allow()
    again = Authorization(http, web_client).start()
    assert "code" in redirected(again)  # signed in, consented: no page at all
    wider = Authorization(http, web_client, scope="openid profile phone").start()
    assert "/consent" in wider.headers["Location"]
    page = http.get(wider.headers["Location"])
    text = page.get_data(as_text=True)
    assert "Tenant portal" in text and "See your phone number" in text


def test_denying_consent_sends_access_denied(http, web_client, user):
    flow = Authorization(http, web_client)
    response = flow.start()
    page = http.get(response.headers["Location"])
    response = post_form(http, page, {"phone": PHONE, "password": PASSWORD})
    page = http.get(response.headers["Location"])
    answer = redirected(post_form(http, page, button=("decision", "deny")))
    assert answer["error"] == "access_denied" and "code" not in answer
    assert answer["state"] == "state-123" and answer["iss"] == ISSUER


def test_a_replayed_nonce_is_refused(http, web_client, user):
    Authorization(http, web_client, nonce="once").sign_in_and_allow()
    answer = redirected(Authorization(http, web_client, nonce="once").start())
    assert answer["error"] == "invalid_request" and "code" not in answer


def test_redirect_uri_may_be_left_out_when_one_is_registered(http, own_client, user):
    flow = Authorization(http, own_client, redirect_uri=None)
    answer = flow.sign_in_and_allow()
    assert flow.exchange(answer["code"], redirect_uri=None).status_code == 200


def test_post_authorization_request_is_answered_with_a_get(http, web_client):
    flow = Authorization(http, web_client)
    response = http.post("/oauth/authorize", data=flow.params)
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/oauth/authorize?")
    assert parse_qs(urlsplit(response.headers["Location"]).query)["state"] == ["state-123"]


# --- the negative matrix: PKCE ------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_challenge": None, "code_challenge_method": None},
        {"code_challenge_method": "plain"},
        {"code_challenge_method": None},
        {"code_challenge": "too-short"},
    ],
    ids=["missing", "plain", "method-missing", "malformed"],
)
def test_pkce_is_required_and_only_s256(http, web_client, user, overrides):
    answer = redirected(Authorization(http, web_client, **overrides).start())
    assert answer["error"] == "invalid_request"
    assert answer["state"] == "state-123" and answer["iss"] == ISSUER
    assert "code" not in answer


def test_a_wrong_or_missing_verifier_gets_no_token(http, web_client, user):
    flow = Authorization(http, web_client)
    code = flow.sign_in_and_allow()["code"]
    wrong = flow.exchange(code, code_verifier=pkce()[0])
    assert wrong.status_code == 400 and wrong.json["error"] == "invalid_grant"
    missing = flow.exchange(code, code_verifier=None)
    assert missing.status_code == 400 and missing.json["error"] == "invalid_request"
    # A refused exchange does not spend the code: its own client, verifier in hand, can.
    assert flow.exchange(code).status_code == 200


# --- redirect URIs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example.com/callback",
        REDIRECT + "/",
        REDIRECT + "?next=https://evil.example.com",
        REDIRECT.upper(),
        "https://app.example.com:8443/callback",
        "http://app.example.com/callback",
        REDIRECT + "#fragment",
    ],
    ids=["other-host", "slash", "query", "case", "port", "scheme", "fragment"],
)
def test_unregistered_or_altered_redirect_uri_is_an_error_page(http, web_client, redirect_uri):
    response = Authorization(http, web_client, redirect_uri=redirect_uri).start()
    assert_error_page(response)


def test_several_registered_uris_make_redirect_uri_required(http, web_client):
    assert_error_page(Authorization(http, web_client, redirect_uri=None).start())


def test_unknown_client_is_an_error_page(http, web_client):
    client = type(web_client)("no-such-client", None)
    assert_error_page(Authorization(http, client).start())


def test_the_code_is_bound_to_its_redirect_uri(http, web_client, user):
    flow = Authorization(http, web_client)
    code = flow.sign_in_and_allow()["code"]
    other = flow.exchange(code, redirect_uri=OTHER_REDIRECT)
    assert other.status_code == 400 and other.json["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"max_age": "soon"}, "invalid_request"),
        ({"response_mode": "form_post"}, "invalid_request"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ],
    ids=["response-type", "scope", "prompt", "max-age", "response-mode", "request-object"],
)
def test_errors_the_app_may_see_go_back_to_it(http, web_client, user, overrides, error):
    answer = redirected(Authorization(http, web_client, **overrides).start())
    assert answer["error"] == error and answer["iss"] == ISSUER


# --- codes ----------------------------------------------------------------------------------


def test_a_replayed_code_is_refused_and_revokes_what_it_issued(http, web_client, user):
    flow = Authorization(http, web_client)
    code = flow.sign_in_and_allow()["code"]
    first = flow.exchange(code).json
    replay = flow.exchange(code)
    assert replay.status_code == 400 and replay.json["error"] == "invalid_grant"
    for token in (first["access_token"], first["refresh_token"]):
        introspected = http.post(
            "/oauth/introspect", data={"token": token}, headers=web_client.basic
        )
        assert introspected.json == {"active": False}
    refreshed = http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        headers=web_client.basic,
    )
    assert refreshed.status_code == 400


def test_another_clients_code_is_refused(http, web_client, make_client, user):
    thief = make_client(
        grant_types=("authorization_code",),
        scope="openid profile",
        redirect_uris=[REDIRECT],
    )
    flow = Authorization(http, web_client)
    code = flow.sign_in_and_allow()["code"]
    stolen = http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": flow.verifier,
        },
        headers=thief.basic,
    )
    assert stolen.status_code == 400 and stolen.json["error"] == "invalid_grant"
    assert flow.exchange(code).status_code == 200  # its own client still can


def test_a_code_expires_quickly(http, web_client, user):
    flow = Authorization(http, web_client)
    code = flow.sign_in_and_allow()["code"]
    with time_machine.travel(timedelta(seconds=61), tick=False):
        late = flow.exchange(code)
    assert late.status_code == 400 and late.json["error"] == "invalid_grant"


def test_a_code_dies_with_the_browser_session_it_came_from(http, web_client, user):
    flow = Authorization(http, web_client)
    code = flow.sign_in_and_allow()["code"]
    page = http.get("/signin")  # signed in: the page offers to sign out
    assert post_form(http, page).status_code == 200
    refused = flow.exchange(code)
    assert refused.status_code == 400 and refused.json["error"] == "invalid_grant"


def test_only_its_hash_is_stored(app, http, web_client, user):
    from authserver.authorize.models import AuthorizationCode
    from authserver.extensions import db

    code = Authorization(http, web_client).sign_in_and_allow()["code"]
    with app.app_context():
        row = db.session.query(AuthorizationCode).one()
        assert code.encode() not in row.code_hash and len(row.code_hash) == 32


# --- state -----------------------------------------------------------------------------------


def test_state_comes_back_exactly_and_only_when_sent(http, web_client, user):
    odd = "a b+c/d=é&x"
    assert Authorization(http, web_client, state=odd).sign_in_and_allow()["state"] == odd
    answer = Authorization(http, web_client, state=None).sign_in_and_allow()
    assert "state" not in answer and answer["code"]


# --- CSRF -----------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged"], ids=["missing", "empty", "forged"])
def test_a_form_without_its_csrf_token_does_nothing(app, http, web_client, user, token):
    response = Authorization(http, web_client).start()
    page = http.get(response.headers["Location"])
    form = parse_page(page.get_data(as_text=True)).forms[0]
    data = {**form.fields, "phone": PHONE, "password": PASSWORD}
    if token is None:
        del data["csrf_token"]
    else:
        data["csrf_token"] = token
    refused = http.post(form.action, data=data)
    assert_error_page(refused)
    assert http.get("/signin").get_data(as_text=True).count('name="password"') == 1
    from authserver.audit import AuditEvent
    from authserver.extensions import db
    from authserver.oauth.models import AuthSession

    with app.app_context():  # no sign-in was even tried
        assert db.session.query(AuthSession).count() == 0
        assert db.session.query(AuditEvent).filter(AuditEvent.event.like("login%")).count() == 0


def test_a_csrf_token_of_another_browser_is_refused(app, http, web_client, user):
    other = app.test_client()
    response = Authorization(other, web_client).start()
    stolen = parse_page(other.get(response.headers["Location"]).get_data(as_text=True))
    response = Authorization(http, web_client).start()
    page = http.get(response.headers["Location"])
    refused = post_form(
        http,
        page,
        {"phone": PHONE, "password": PASSWORD, "csrf_token": stolen.forms[0].fields["csrf_token"]},
    )
    assert_error_page(refused)


# --- prompt, max_age, login_hint and the browser session -------------------------------------


@pytest.mark.parametrize("scope", ["openid profile", "profile"], ids=["oidc", "oauth"])
def test_prompt_none_without_a_session_is_login_required(http, web_client, scope):
    answer = redirected(Authorization(http, web_client, prompt="none", scope=scope).start())
    assert answer == {"error": "login_required", "state": "state-123", "iss": ISSUER}


def test_prompt_none_without_consent_is_consent_required(http, web_client, own_client, user):
    Authorization(http, own_client).sign_in_and_allow()  # signed in, no consent for web_client
    answer = redirected(Authorization(http, web_client, prompt="none").start())
    assert answer["error"] == "consent_required"


def test_prompt_none_with_session_and_consent_answers_silently(http, web_client, user):
    Authorization(http, web_client).sign_in_and_allow()
    answer = redirected(Authorization(http, web_client, prompt="none").start())
    assert answer["code"]


def test_prompt_login_and_max_age_zero_ask_to_sign_in_again(http, web_client, user):
    first = Authorization(http, web_client)
    before = jwt.decode(
        first.exchange(first.sign_in_and_allow()["code"]).json["id_token"],
        options={"verify_signature": False},
    )["auth_time"]
    for overrides in ({"prompt": "login"}, {"max_age": "0"}):
        flow = Authorization(http, web_client, **overrides)
        with time_machine.travel(timedelta(seconds=5)):
            response = flow.start()
            assert "/signin" in response.headers["Location"]
            answer = flow.sign_in_and_allow()
            claims = jwt.decode(
                flow.exchange(answer["code"]).json["id_token"],
                options={"verify_signature": False},
            )
        assert claims["auth_time"] > before


def test_prompt_consent_asks_again(http, web_client, user):
    Authorization(http, web_client).sign_in_and_allow()
    response = Authorization(http, web_client, prompt="consent").start()
    assert "/consent" in response.headers["Location"]


def test_login_hint_fills_in_the_phone_and_another_account_signs_in_again(
    http, web_client, user, make_user
):
    response = Authorization(http, web_client, login_hint="06 12 97 56 34").start()
    page = http.get(response.headers["Location"]).get_data(as_text=True)
    assert 'value="+33612975634"' in page
    Authorization(http, web_client).sign_in_and_allow()
    make_user("+33698765432")
    other = Authorization(http, web_client, login_hint="+33698765432").start()
    assert "/signin" in other.headers["Location"]


@pytest.mark.parametrize("travel", [8 * 3600 + 1, 7 * 24 * 3600 + 1], ids=["idle", "absolute"])
def test_an_expired_browser_session_signs_in_again(http, web_client, user, travel):
    Authorization(http, web_client).sign_in_and_allow()
    if travel > 24 * 3600:  # keep it used so only the absolute lifetime can end it
        for hours in range(7, 7 * 24, 7):
            with time_machine.travel(timedelta(hours=hours), tick=False):
                assert "code" in redirected(Authorization(http, web_client).start())
    with time_machine.travel(timedelta(seconds=travel), tick=False):
        assert "/signin" in Authorization(http, web_client).start().headers["Location"]
        silent = redirected(Authorization(http, web_client, prompt="none").start())
    assert silent["error"] == "login_required"


def test_the_session_cookie_is_signed_http_only_and_lax(http, web_client, user):
    flow = Authorization(http, web_client)
    response = flow.start()
    page = http.get(response.headers["Location"])
    signed_in = post_form(http, page, {"phone": PHONE, "password": PASSWORD})
    cookie = signed_in.headers["Set-Cookie"]
    assert cookie.startswith("authserver=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    http.set_cookie("authserver", value[:-3] + ("AAA" if value[-3:] != "AAA" else "BBB"))
    assert "/signin" in Authorization(http, web_client).start().headers["Location"]


def test_the_session_cookie_is_secure_under_an_https_issuer(tmp_path, keys_dir):
    from tests.conftest import build_app

    app = build_app(f"sqlite:///{tmp_path / 'secure.db'}", keys_dir, issuer="https://id.example")
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_NAME"] == "__Host-authserver"


# --- hostile input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"state": "a\x00b"},
        {"nonce": "\x01"},
        {"state": "x" * 5000},
        {"scope": "openid " + "profile " * 200},
        {"unknown": "y" * 3000},
        {"login_hint": "+33\x00612975634"},
    ],
    ids=["nul-state", "control-nonce", "huge-state", "huge-scope", "huge-extra", "nul-hint"],
)
def test_hostile_authorization_parameters_get_an_error_page(http, web_client, overrides):
    assert_error_page(Authorization(http, web_client, **overrides).start())


def test_a_repeated_or_oversized_request_gets_an_error_page(http, web_client):
    flow = Authorization(http, web_client)
    query = "&".join(f"{k}={v}" for k, v in flow.params.items())
    assert_error_page(http.get("/oauth/authorize?" + query + "&state=again"))
    assert_error_page(http.get("/oauth/authorize?" + query + "&pad=" + "z" * 9000))
    assert_error_page(http.get("/oauth/authorize?" + query + "&scope[0][1]=x&" * 50))
    assert_error_page(http.post("/oauth/authorize", json=flow.params), status=415)


@pytest.mark.parametrize(
    "values",
    [
        {"phone": "06\x0012975634"},
        {"phone": "0" * 5000},
        {"password": "pass\x00word"},
        {"phone[0]": "x"},
        {"decision": "allow"},
    ],
    ids=["nul-phone", "huge-phone", "nul-password", "nested", "unexpected-field"],
)
def test_hostile_form_fields_show_the_page_again(app, http, web_client, user, values):
    response = Authorization(http, web_client).start()
    page = http.get(response.headers["Location"])
    refused = post_form(http, page, {"phone": PHONE, "password": PASSWORD, **values})
    assert refused.status_code == 400
    assert refused.mimetype == "text/html"
    parsed = parse_page(refused.get_data(as_text=True))
    assert parsed.alerts == 1 and parsed.forms  # the page again, the problem announced


def test_a_form_sent_as_json_is_refused(http, web_client, user):
    response = Authorization(http, web_client).start()
    page = http.get(response.headers["Location"])
    fields = parse_page(page.get_data(as_text=True)).forms[0].fields
    refused = http.post("/signin", json={**fields, "phone": PHONE, "password": PASSWORD})
    assert refused.status_code == 415


def test_hostile_tickets_are_an_error_page(http):
    for ticket in ("forged", "x" * 13000, "a\x00b", base64.b64encode(b"{}").decode()):
        assert_error_page(http.get("/signin", query_string={"ticket": ticket}))
    assert_error_page(http.get("/signin?ticket=a&ticket=b"))


# --- consents in /account ------------------------------------------------------------------


def test_consents_are_listed_and_withdrawn_in_account(http, web_client, account_login):
    flow = Authorization(http, web_client)
    tokens = flow.exchange(flow.sign_in_and_allow()["code"]).json
    mobile = {"Authorization": "Bearer " + account_login()["access_token"]}
    listed = http.get("/account/consents", headers=mobile)
    assert listed.status_code == 200
    (consent,) = listed.json["consents"]
    assert consent["client_id"] == web_client.client_id
    assert consent["client_name"] == "Tenant portal" and consent["scope"] == "openid profile"
    withdrawn = http.delete(f"/account/consents/{web_client.client_id}", headers=mobile)
    assert withdrawn.status_code == 200 and withdrawn.json == {"sessions_revoked": 1}
    # The app's tokens stopped working; it must ask again.
    introspected = http.post(
        "/oauth/introspect", data={"token": tokens["refresh_token"]}, headers=web_client.basic
    )
    assert introspected.json == {"active": False}
    assert "/consent" in Authorization(http, web_client).start().headers["Location"]
    assert http.get("/account/consents", headers=mobile).json == {"consents": []}


@pytest.mark.parametrize(
    "client_id",
    ["nobody", "x" * 5000, "%2F..%2Fadmin"],
    ids=["unknown", "huge", "dots"],
)
def test_withdrawing_an_unknown_consent_is_404(http, account_login, client_id):
    mobile = {"Authorization": "Bearer " + account_login()["access_token"]}
    response = http.delete(f"/account/consents/{client_id}", headers=mobile)
    assert response.status_code == 404 and response.json["error"] == "not_found"


def test_a_nul_in_a_consents_client_id_is_400(http, password_login):
    mobile = {"Authorization": "Bearer " + password_login()["access_token"]}
    response = http.delete("/account/consents/a%00b", headers=mobile)
    assert response.status_code == 400 and response.json["error"] == "invalid_request"


def test_consents_need_a_users_token(http, web_client):
    assert http.get("/account/consents").status_code == 401
    assert http.delete(f"/account/consents/{web_client.client_id}").status_code == 401


# --- the account and admin APIs' audiences (tests/test_own_api.py has the model) ------------
def test_a_first_party_web_app_exchanges_a_code_for_an_account_token(
    http, own_client, web_client, user
):
    from tests.own_api import ACCOUNT, bearer

    flow = Authorization(http, own_client)
    tokens = flow.exchange(flow.sign_in_and_allow()["code"], resource=ACCOUNT)
    assert tokens.status_code == 200, tokens.json
    assert http.get("/account/profile", headers=bearer(tokens.json["access_token"])).status_code \
        == 200  # fmt: skip
    # A third-party web app may not: its code is kept for a request it may make.
    flow = Authorization(http, web_client)
    code = flow.sign_in_and_allow()["code"]
    refused = flow.exchange(code, resource=ACCOUNT)
    assert refused.status_code == 400 and refused.json["error"] == "invalid_target"
    plain = flow.exchange(code)
    assert plain.status_code == 200, plain.json
    assert http.get("/account/profile", headers=bearer(plain.json["access_token"])).status_code \
        == 401  # fmt: skip
