"""The hosted pages as a person meets them: sign-up and password reset by SMS code, the
SMS budgets and failures shown on the page, clickjacking and caching headers, nothing
loaded from elsewhere and no script, labelled fields, the language choice, complete
translations, and their place in /openapi.json."""

from __future__ import annotations

import uuid
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from werkzeug.datastructures import MultiDict

from tests.conftest import PASSWORD, PHONE
from tests.oidc_client import parse_page, post_form

WEB = Path(__file__).resolve().parent.parent / "authserver" / "web"
PAGES = [
    "/signin",
    "/signin/code",
    "/signup",
    "/password-reset",
    "/oauth/authorize?client_id=nobody",
    "/consent",
    "/oauth/logout",
]


def code_sign_in(http, phone: str = PHONE):
    page = http.get("/signin/code")
    sent = post_form(http, page, {"phone": phone})
    assert sent.status_code == 303, sent.get_data(as_text=True)[:300]
    return http.get(sent.headers["Location"])


# --- sign-up, code sign-in and password reset through the pages ----------------------------


def test_sign_up_by_phone_creates_the_account_with_its_names(make_otp_app, gateway):
    app = make_otp_app()
    http = app.test_client()
    page = http.get("/signup")
    sent = post_form(http, page, {"first_name": "Shirin", "last_name": "Ebadi", "phone": PHONE})
    verify = http.get(sent.headers["Location"])
    assert "+33612975634" in verify.get_data(as_text=True)
    done = post_form(http, verify, {"code": gateway.last_code(PHONE)})
    assert done.status_code == 303 and done.headers["Location"] == "/signin"
    signed_in = http.get("/signin").get_data(as_text=True)
    assert "You are signed in" in signed_in
    from authserver.accounts.models import User
    from authserver.extensions import db

    with app.app_context():
        user = db.session.query(User).filter_by(phone=PHONE).one()
        assert (user.first_name, user.last_name, user.password_hash) == ("Shirin", "Ebadi", None)


def test_signing_up_with_a_taken_number_signs_in_and_keeps_the_names(
    make_otp_app, gateway, make_user
):
    make_user(first_name="Ada")
    app = make_otp_app()
    http = app.test_client()
    sent = post_form(http, http.get("/signup"), {"first_name": "Mallory", "phone": PHONE})
    post_form(http, http.get(sent.headers["Location"]), {"code": gateway.last_code(PHONE)})
    from authserver.accounts.models import User
    from authserver.extensions import db

    with app.app_context():
        assert db.session.query(User).filter_by(phone=PHONE).one().first_name == "Ada"


def test_a_wrong_code_is_shown_on_the_page_and_counts(make_otp_app, gateway, user):
    app = make_otp_app(otp_max_attempts="2")
    http = app.test_client()
    verify = code_sign_in(http)
    for _ in range(2):
        wrong = post_form(http, verify, {"code": "000000"})
        assert wrong.status_code == 400
        parsed = parse_page(wrong.get_data(as_text=True))
        assert parsed.alerts == 1
        assert next(i for i in parsed.inputs if i.get("name") == "code")["aria-invalid"] == "true"
    dead = post_form(http, verify, {"code": gateway.last_code(PHONE)})
    assert dead.status_code == 400  # tries used up: even the right code is dead


def test_the_sms_budgets_of_oauth_otp_hold_on_the_pages(make_otp_app, gateway, user):
    app = make_otp_app()
    http = app.test_client()
    code_sign_in(http)
    again = post_form(http, http.get("/signin/code"), {"phone": PHONE})
    assert again.status_code == 429
    assert "Try again in 1 minute" in again.get_data(as_text=True)
    # The budgets are shared with POST /oauth/otp: the API is refused too.
    api = http.post("/oauth/otp", data={"phone": PHONE})
    assert api.status_code == 429
    assert len(gateway.delivered) == 1


def test_a_failing_sms_gateway_is_a_503_page(make_otp_app, gateway, user):
    app = make_otp_app(sms_webhook_attempts="1")
    http = app.test_client()
    gateway.script = [500]
    failed = post_form(http, http.get("/signin/code"), {"phone": PHONE})
    assert failed.status_code == 503
    assert "could not be sent" in failed.get_data(as_text=True)


@pytest.mark.parametrize("phone", ["0112345678", "not a number"], ids=["landline", "junk"])
def test_a_number_that_takes_no_sms_is_named_on_its_field(make_otp_app, gateway, phone):
    http = make_otp_app().test_client()
    refused = post_form(http, http.get("/signin/code"), {"phone": phone})
    assert refused.status_code == 400
    parsed = parse_page(refused.get_data(as_text=True))
    phone_input = next(i for i in parsed.inputs if i.get("name") == "phone")
    assert phone_input["aria-invalid"] == "true"
    assert "phone-error" in phone_input["aria-describedby"]
    assert "autofocus" in phone_input
    assert not gateway.requests


def test_password_reset_by_code_then_sign_in_with_the_new_password(make_otp_app, gateway, user):
    app = make_otp_app()
    http = app.test_client()
    sent = post_form(http, http.get("/password-reset"), {"phone": PHONE})
    verify = http.get(sent.headers["Location"])
    short = post_form(http, verify, {"code": gateway.last_code(PHONE), "new_password": "short"})
    assert short.status_code == 400  # refused before the code is spent
    done = post_form(
        http, verify, {"code": gateway.last_code(PHONE), "new_password": "a new long password"}
    )
    assert done.status_code == 303
    sign_in = http.get(done.headers["Location"])
    assert "Your password has been changed" in sign_in.get_data(as_text=True)
    old = post_form(http, sign_in, {"phone": PHONE, "password": PASSWORD})
    assert old.status_code == 400
    new = post_form(http, sign_in, {"phone": PHONE, "password": "a new long password"})
    assert new.status_code == 303


def test_password_reset_for_an_unknown_number_looks_the_same(make_otp_app, gateway):
    http = make_otp_app().test_client()
    sent = post_form(http, http.get("/password-reset"), {"phone": "+33698765432"})
    assert sent.status_code == 303  # a code goes out: nothing tells the number is unknown
    verify = http.get(sent.headers["Location"])
    code = gateway.last_code("+33698765432")
    refused = post_form(http, verify, {"code": code, "new_password": "a new long password"})
    assert refused.status_code == 400
    assert "wrong or has expired" in refused.get_data(as_text=True)


def test_too_many_wrong_passwords_are_a_429_page(make_otp_app, user):
    http = make_otp_app(login_max_failures="2").test_client()
    page = http.get("/signin")
    statuses = [
        post_form(http, page, {"phone": PHONE, "password": "wrong"}).status_code for _ in range(3)
    ]
    assert statuses == [400, 400, 429]


def test_a_disabled_account_is_told_so(app, http, user):
    from authserver.accounts.models import User
    from authserver.extensions import db

    with app.app_context():
        db.session.get(User, uuid.UUID(user)).is_blocked = True
        db.session.commit()
    refused = post_form(http, http.get("/signin"), {"phone": PHONE, "password": PASSWORD})
    assert refused.status_code == 403


# --- headers, assets, markup ------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_page_refuses_frames_caching_and_foreign_content(http, path):
    response = http.get(path)
    assert response.mimetype == "text/html", path
    assert response.headers["X-Frame-Options"] == "DENY"
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert "script-src" not in csp  # no script may run at all
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    page = parse_page(response.get_data(as_text=True))
    assert page.scripts == 0
    for url in page.assets:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = http.get(url)
        assert asset.status_code == 200 and asset.mimetype == "text/css"


@pytest.mark.parametrize("path", ["/signin", "/signin/code", "/signup", "/password-reset"])
def test_every_field_has_a_label_and_every_form_a_csrf_token(http, path):
    page = parse_page(http.get(path).get_data(as_text=True))
    visible = [i for i in page.inputs if i.get("type") != "hidden"]
    assert visible
    for field in visible:
        assert field["id"] in page.labels, field
    assert all(form.fields.get("csrf_token") for form in page.forms)
    assert page.html_attrs["lang"] == "en" and page.html_attrs["dir"] == "ltr"


def test_the_language_follows_the_choice_the_app_and_the_browser(http):
    persian = parse_page(http.get("/signin", headers={"Accept-Language": "fa-IR,fa"}).text)
    assert (persian.html_attrs["lang"], persian.html_attrs["dir"]) == ("fa", "rtl")
    chosen = http.get("/signin?lang=en", headers={"Accept-Language": "fa"})
    assert parse_page(chosen.text).html_attrs["lang"] == "en"
    remembered = http.get("/signup", headers={"Accept-Language": "fa"})
    assert parse_page(remembered.text).html_attrs["lang"] == "en"


def test_the_form_post_redirect_target_is_allowed_by_the_policy(http, make_client, user):
    from tests.test_authorization_code import REDIRECT, Authorization

    client = make_client(
        grant_types=("authorization_code",), scope="openid profile", redirect_uris=[REDIRECT]
    )
    page = http.get(Authorization(http, client).start().headers["Location"])
    assert "form-action 'self' https://app.example.com;" in page.headers["Content-Security-Policy"]


# --- translations ---------------------------------------------------------------------------


def test_every_text_of_the_pages_is_translated_to_persian():
    mapping = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}
    used = {
        message[2] if isinstance(message[2], str) else message[2][0]
        for message in extract_from_dir(str(WEB), mapping, keywords=keywords)
    }
    assert len(used) > 50
    template = read_po((WEB / "translations" / "messages.pot").open("rb"))
    assert used == {m.id if isinstance(m.id, str) else m.id[0] for m in template if m.id}, (
        "run `make translations`"
    )
    persian = read_po((WEB / "translations/fa/LC_MESSAGES/messages.po").open("rb"))
    for message in persian:
        if message.id:
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            assert all(strings) and not message.fuzzy, message.id
    assert {m.id if isinstance(m.id, str) else m.id[0] for m in persian if m.id} == used


def test_the_compiled_catalog_matches_its_source():
    source = read_po((WEB / "translations/fa/LC_MESSAGES/messages.po").open("rb"))
    compiled = read_mo(BytesIO((WEB / "translations/fa/LC_MESSAGES/messages.mo").read_bytes()))

    def entries(catalog: Catalog) -> dict:
        def key(value):  # the .mo reader gives plural forms as lists
            return tuple(value) if isinstance(value, list | tuple) else value

        return {key(m.id): key(m.string) for m in catalog if m.id}

    assert entries(compiled) == entries(source), "run `make translations`"


# --- OpenAPI --------------------------------------------------------------------------------


def test_pages_and_endpoints_are_documented(http):
    doc = http.get("/openapi.json").json
    assert doc["components"]["securitySchemes"]["browserSession"]["in"] == "cookie"
    sign_in = doc["paths"]["/signin"]
    assert "text/html" in sign_in["get"]["responses"]["200"]["content"]
    form = sign_in["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
    assert form["schema"]["$ref"].endswith("SignInForm")
    assert sign_in["post"]["security"] == [{"browserSession": []}, {}]
    authorize = doc["paths"]["/oauth/authorize"]["get"]
    names = {p["name"] for p in authorize["parameters"]}
    assert {"client_id", "redirect_uri", "code_challenge", "state", "nonce", "prompt"} <= names
    assert "302" in authorize["responses"] and "text/html" in str(authorize["responses"]["400"])
    assert "/.well-known/openid-configuration" in doc["paths"]
    assert "/oauth/logout" in doc["paths"]


@pytest.mark.parametrize(
    "query",
    [
        {"client_id": "a\x00b"},
        {"post_logout_redirect_uri": "https://x.example/" + "a" * 3000},
        {"state": "\x01"},
        {"ui_locales": "fa" * 100},
    ],
    ids=["nul-client", "huge-uri", "control-state", "huge-locales"],
)
def test_hostile_logout_parameters_get_an_error_page(http, query):
    response = http.get("/oauth/logout", query_string=query)
    assert response.status_code == 400 and "Location" not in response.headers
    assert response.mimetype == "text/html"


def test_a_logout_form_without_its_csrf_token_does_nothing(http):
    assert http.post("/oauth/logout", data={"csrf_token": "forged"}).status_code == 400
    assert http.post("/oauth/logout", json={}).status_code == 415


FORMS = {
    "/signin": {"phone": PHONE, "password": PASSWORD},
    "/signin/code": {"phone": PHONE},
    "/signup": {"phone": PHONE, "first_name": "Ada", "last_name": "L"},
    "/password-reset": {"phone": PHONE},
}


@pytest.mark.parametrize("path", list(FORMS))
def test_every_form_refuses_hostile_input_with_its_page(make_otp_app, gateway, path):
    http = make_otp_app().test_client()
    page = http.get(path)
    clean = {**parse_page(page.get_data(as_text=True)).forms[0].fields, **FORMS[path]}
    name = next(iter(FORMS[path]))
    assert http.post(path, json=clean).status_code == 415  # not a form
    nul = {**clean, name: clean[name][:3] + "\x00" + clean[name][3:]}
    huge = {**clean, name: "9" * 20000}
    nested = {**clean, f"{name}[0][1]": "x"}
    repeated = MultiDict([*clean.items(), (name, clean[name])])
    for hostile in (nul, huge, nested, repeated):
        response = http.post(path, data=hostile)
        assert response.status_code == 400, (path, hostile)
        assert response.mimetype == "text/html"
        assert parse_page(response.get_data(as_text=True)).alerts == 1
    assert not gateway.requests  # no code went anywhere
