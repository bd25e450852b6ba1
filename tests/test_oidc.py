"""OpenID Connect end to end, over real HTTP: a relying party built on Authlib's client
discovers the server, a person signs in by posting the pages' forms (password or SMS
code), and the ID token is checked again with an independent library (PyJWT and the
JWKS); discovery, claims per scope, key rotation, RP-initiated logout, and the browser
session among the user's sessions."""

from __future__ import annotations

import base64
import hashlib

import jwt
import pytest
import requests

from tests.conftest import PASSWORD, PHONE
from tests.helpers import committed
from tests.oidc_client import FormPerson, RelyingParty, verify_id_token


def sign_in_with_password(person: FormPerson, party: RelyingParty, **login) -> dict:
    page = person.open(party.url + "/login", **login)
    assert "/signin" in page.url, page.url
    page = person.submit({"phone": "06 12 97 56 34", "password": PASSWORD})
    if "/consent" in page.url:
        page = person.submit(button=("decision", "allow"))
    assert page.status_code == 200, page.text[:500]
    return page.json()


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def test_password_sign_in_end_to_end(site, relying_party, user):
    result = sign_in_with_password(FormPerson(), relying_party)
    claims = verify_id_token(site, relying_party, result["id_token"])
    assert claims["sub"] == user and claims["amr"] == ["pwd"]
    assert claims["at_hash"] == at_hash(result["access_token"])
    assert claims["nonce"] == result["id_token_claims"]["nonce"]  # the client checked it too
    assert result["iss"] == site.url  # RFC 9207, in the redirect
    assert result["userinfo"]["sub"] == user
    assert result["userinfo"]["phone_number"] == PHONE  # scope phone
    assert "email" not in result["userinfo"]  # scope email was not asked
    header = jwt.get_unverified_header(result["id_token"])
    assert header["alg"] == "RS256" and header["typ"] == "JWT"


def test_sms_code_sign_in_end_to_end(site, relying_party, gateway):
    person = FormPerson()
    page = person.open(relying_party.url + "/login")
    page = person.open(page.url.replace("/signin?", "/signin/code?"))
    page = person.submit({"phone": "06 12 97 56 34"})
    assert "/signin/code/verify" in page.url
    page = person.submit({"code": gateway.last_code(PHONE)})
    assert "/consent" in page.url
    result = person.submit(button=("decision", "allow")).json()
    claims = verify_id_token(site, relying_party, result["id_token"])
    assert claims["amr"] == ["otp", "sms"]
    assert result["userinfo"]["phone_number"] == PHONE  # the account was created by the code


def test_single_sign_on_across_apps(site, relying_party, user):
    person = FormPerson()
    sign_in_with_password(person, relying_party)
    other = RelyingParty(site.url)
    other.register(site.app, first_party=True)
    with other:
        page = person.open(other.url + "/login")
        assert page.url.startswith(other.url + "/callback")  # no page at all: SSO
        claims = verify_id_token(site, other, page.json()["id_token"])
    assert claims["sub"] == user


def test_the_relying_party_refuses_a_forged_state(site, relying_party, user):
    person = FormPerson()
    person.open(relying_party.url + "/login")
    consent = person.submit({"phone": PHONE, "password": PASSWORD})
    assert "/consent" in consent.url
    form = person.parsed.forms[0]
    answer = person.session.post(
        site.url + form.action,
        data={**form.fields, "decision": "allow"},
        allow_redirects=False,
        timeout=10,
    )
    callback = answer.headers["Location"]
    assert callback.startswith(relying_party.redirect_uri) and "state=" in callback
    refused = person.session.get(callback.replace("state=", "state=forged"), timeout=10)
    assert refused.status_code == 400 and refused.json()["error"] == "mismatching_state"
    missing = person.session.get(callback.replace("state=", "other="), timeout=10)
    assert missing.status_code == 400 and missing.json()["error"] == "mismatching_state"


def test_discovery_and_rfc_8414_metadata_agree(site):
    oidc = requests.get(site.url + "/.well-known/openid-configuration", timeout=10).json()
    oauth = requests.get(site.url + "/.well-known/oauth-authorization-server", timeout=10).json()
    assert oidc == oauth
    assert oidc["issuer"] == site.url
    assert oidc["authorization_endpoint"] == site.url + "/oauth/authorize"
    assert oidc["end_session_endpoint"] == site.url + "/oauth/logout"
    assert oidc["response_types_supported"] == ["code"]
    assert oidc["code_challenge_methods_supported"] == ["S256"]
    assert oidc["authorization_response_iss_parameter_supported"] is True
    assert oidc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert (
        "openid" in oidc["scopes_supported"]
        and "authorization_code" in (oidc["grant_types_supported"])
    )
    from authlib.oidc.discovery import OpenIDProviderMetadata

    # Authlib's validator insists on https: give it the same document as if served so.
    document = {
        key: value.replace("http://", "https://") if isinstance(value, str) else value
        for key, value in oidc.items()
    }
    OpenIDProviderMetadata(document).validate()


def test_id_tokens_follow_key_rotation(site, relying_party, user):
    from authserver.signing.services import rotate_signing_keys

    first = sign_in_with_password(FormPerson(), relying_party)
    with committed(site.app):
        rotate_signing_keys(actor="tests", force=True)
        site.app.extensions["authserver.keyring"].invalidate()
    second = sign_in_with_password(FormPerson(), relying_party)
    kids = {jwt.get_unverified_header(r["id_token"])["kid"] for r in (first, second)}
    assert len(kids) == 2
    for result in (first, second):  # the retired key stays published for a while
        verify_id_token(site, relying_party, result["id_token"])


def test_userinfo_gives_the_claims_of_the_granted_scopes(site, user, make_user):
    party = RelyingParty(site.url, scope="openid phone")
    party.register(site.app)
    with party:
        result = sign_in_with_password(FormPerson(), party)
    info = result["userinfo"]
    assert info == {"sub": user, "phone_number": PHONE, "phone_number_verified": False}
    assert "name" not in result["id_token_claims"]


def test_refreshing_keeps_the_sign_in_time(site, relying_party, user):
    result = sign_in_with_password(FormPerson(), relying_party)
    auth_time = jwt.decode(result["access_token"], options={"verify_signature": False})["auth_time"]
    refreshed = requests.post(
        site.url + "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": result["refresh_token"]},
        auth=(relying_party.client_id, relying_party.client_secret),
        timeout=10,
    ).json()
    claims = jwt.decode(refreshed["access_token"], options={"verify_signature": False})
    assert claims["auth_time"] == auth_time == result["id_token_claims"]["auth_time"]


# --- RP-initiated logout ------------------------------------------------------------------


def test_logout_with_id_token_hint_ends_the_session_and_returns_to_the_app(
    site, relying_party, user
):
    person = FormPerson()
    result = sign_in_with_password(person, relying_party)
    page = person.open(
        site.url + "/oauth/logout",
        id_token_hint=result["id_token"],
        post_logout_redirect_uri=relying_party.post_logout_redirect_uri,
        state="bye",
    )
    assert page.json() == {"signed_out": True, "state": "bye"}
    # The app's session ended with the browser session.
    refreshed = requests.post(
        site.url + "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": result["refresh_token"]},
        auth=(relying_party.client_id, relying_party.client_secret),
        timeout=10,
    )
    assert refreshed.status_code == 400
    again = person.open(relying_party.url + "/login")
    assert "/signin" in again.url  # signed out: the pages ask again


def test_logout_without_hint_asks_and_redirects_nowhere(site, relying_party, user):
    person = FormPerson()
    sign_in_with_password(person, relying_party)
    page = person.open(
        site.url + "/oauth/logout",
        post_logout_redirect_uri=relying_party.post_logout_redirect_uri,
    )
    assert page.url.startswith(site.url + "/oauth/logout") and page.status_code == 200
    form = person.parsed.forms[0]
    forged = person.session.post(page.url, data={"csrf_token": "forged"}, timeout=10)
    assert forged.status_code == 400
    assert "/callback" in person.open(relying_party.url + "/login").url  # still signed in
    person.open(site.url + "/oauth/logout")
    done = person.session.post(
        site.url + "/oauth/logout", data=form.fields, allow_redirects=False, timeout=10
    )
    assert done.status_code == 200 and "Location" not in done.headers
    assert "/signin" in person.open(relying_party.url + "/login").url


@pytest.mark.parametrize("hint", ["not-a-jwt", "a.b.c", "x" * 9000])
def test_a_bad_id_token_hint_is_an_error_page(site, hint):
    page = requests.get(site.url + "/oauth/logout", params={"id_token_hint": hint}, timeout=10)
    assert page.status_code == 400 and "Location" not in page.headers
    assert "text/html" in page.headers["Content-Type"]


def test_an_unregistered_post_logout_uri_is_not_followed(site, relying_party, user):
    person = FormPerson()
    result = sign_in_with_password(person, relying_party)
    page = person.session.get(
        site.url + "/oauth/logout",
        params={
            "id_token_hint": result["id_token"],
            "post_logout_redirect_uri": "https://evil.example.com/",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert page.status_code == 200 and "Location" not in page.headers


# --- the browser session among the user's sessions -------------------------------------------


def test_the_browser_session_is_listed_and_ended_in_account_sessions(site, relying_party, user):
    person = FormPerson()
    sign_in_with_password(person, relying_party)
    # The relying party's token is not for the account API: the user's own app's is.
    with committed(site.app):
        from authserver.extensions import db
        from authserver.oauth.clients import create_client

        platform_app, secret = create_client(
            name="platform app", grant_types=["password"], first_party=True, actor="tests"
        )
        db.session.commit()
        client_id = platform_app.client_id
    account = requests.post(
        site.url + "/oauth/token",
        data={"grant_type": "password", "username": PHONE, "password": PASSWORD,
              "resource": site.url + "/account"},
        auth=(client_id, secret),
        timeout=10,
    ).json()  # fmt: skip
    bearer = {"Authorization": "Bearer " + account["access_token"]}
    sessions = requests.get(site.url + "/account/sessions", headers=bearer, timeout=10).json()
    browser = [s for s in sessions["sessions"] if s["browser"]]
    assert len(browser) == 1 and browser[0]["client_id"] is None
    assert browser[0]["amr"] == ["pwd"]
    ended = requests.delete(
        site.url + f"/account/sessions/{browser[0]['id']}", headers=bearer, timeout=10
    )
    assert ended.status_code == 204
    assert "/signin" in person.open(relying_party.url + "/login").url
