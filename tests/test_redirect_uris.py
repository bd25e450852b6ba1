"""Registering redirect URIs: what is accepted, what is refused and why, through the
admin API (the CLI's are in tests/test_cli.py)."""

from __future__ import annotations

import pytest

from authserver.authorize.redirect_uris import check_redirect_uri
from authserver.errors import InvalidRedirectUri
from tests.test_admin import admin, admin_id, console  # noqa: F401  (fixtures)


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example.com/callback",
        "https://app.example.com/callback?tenant=1",
        "http://127.0.0.1:3000/callback",
        "http://[::1]:8080/cb",
        "http://localhost/cb",
        "com.example.app:/oauth2redirect",
    ],
)
def test_accepted_in_production(uri):
    assert check_redirect_uri(uri, production=True) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "http://app.example.com/callback",  # plain http off loopback
        "https://app.example.com/cb#frag",
        "https://user:pw@app.example.com/cb",
        "javascript:alert(1)",
        "data:text/html,hi",
        "file:///etc/passwd",
        "/callback",
        "myapp:/callback",  # a native scheme is a reversed domain name
        "https://app.example.com/a b",
        "https://app.example.com/\x00",
        "https:///no-host",
        "https://" + "a" * 2000 + ".example/",
        "",
    ],
)
def test_refused_in_production(uri):
    with pytest.raises(InvalidRedirectUri):
        check_redirect_uri(uri, production=True)


def test_plain_http_elsewhere_only_outside_production():
    uri = "http://tenants.local:3000/callback"
    assert check_redirect_uri(uri, production=False) == uri


def test_admin_api_registers_lists_and_changes_redirect_uris(http, admin):  # noqa: F811
    created = http.post(
        "/admin/clients",
        json={
            "name": "Partner",
            "grant_types": ["authorization_code"],
            "scope": "openid profile",
            "redirect_uris": ["https://partner.example/cb", "https://partner.example/cb"],
            "post_logout_redirect_uris": ["https://partner.example/"],
        },
        headers=admin,
    )
    assert created.status_code == 201, created.json
    client = created.json
    assert client["redirect_uris"] == ["https://partner.example/cb"]  # each once
    assert client["post_logout_redirect_uris"] == ["https://partner.example/"]
    path = f"/admin/clients/{client['client_id']}"
    changed = http.patch(
        path, json={"redirect_uris": ["https://partner.example/new"]}, headers=admin
    )
    assert changed.status_code == 200 and changed.json["redirect_uris"] == [
        "https://partner.example/new"
    ]
    emptied = http.patch(path, json={"redirect_uris": []}, headers=admin)
    assert emptied.status_code == 400 and emptied.json["error"] == "invalid_client_metadata"
    assert http.get(path, headers=admin).json["redirect_uris"] == ["https://partner.example/new"]


@pytest.mark.parametrize(
    "uris",
    [
        ["javascript:alert(1)"],
        ["https://x.example/#f"],
        "https://x.example/cb",
        [["nested"]],
        [1],
        ["https://x.example/" + "a" * 2000],
        ["https://x.example/cb"] * 21,
        ["https://x.example/\x00"],
    ],
    ids=["javascript", "fragment", "not-a-list", "nested", "number", "huge", "many", "nul"],
)
def test_admin_api_refuses_bad_redirect_uris(http, admin, uris):  # noqa: F811
    response = http.post(
        "/admin/clients",
        json={"name": "Bad", "grant_types": ["authorization_code"], "redirect_uris": uris},
        headers=admin,
    )
    assert response.status_code == 400, response.json
    assert response.json["error"] in ("invalid_request", "invalid_client_metadata")
