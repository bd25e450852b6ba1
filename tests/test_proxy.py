"""Behind a proxy: the client IP comes from X-Forwarded-For only through the number of
proxies trusted (AUTHSERVER_TRUSTED_PROXIES); URLs always come from AUTHSERVER_ISSUER."""

from __future__ import annotations

import jwt
import pytest
from sqlalchemy import select

from tests.conftest import ISSUER, PASSWORD, PHONE, build_app
from tests.helpers import committed

LOGIN = {"grant_type": "password", "username": PHONE, "password": PASSWORD}


def proxied_app(tmp_path, keys_dir, proxies: int):
    app = build_app(f"sqlite:///{tmp_path / 'p.db'}", keys_dir, trusted_proxies=str(proxies))
    from authserver.accounts.services import create_user
    from authserver.extensions import db
    from authserver.oauth.clients import create_client

    with committed(app):
        create_user(PHONE, PASSWORD)
        db.session.commit()
        client, secret = create_client(
            name="proxy test", grant_types=["password"], scope="profile", actor="tests"
        )
        return app, (client.client_id, secret)


def recorded_ips(app) -> tuple[str, str]:
    """The IP of the login's audit record and of its session."""
    from authserver.audit import AuditEvent
    from authserver.extensions import db
    from authserver.oauth.models import AuthSession

    with app.app_context():
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "login")).one()
        session = db.session.scalars(select(AuthSession)).one()
        return event.ip_address, session.ip_address


def test_without_trusted_proxies_forwarded_for_cannot_spoof_the_ip(tmp_path, keys_dir):
    app, auth = proxied_app(tmp_path, keys_dir, 0)
    response = app.test_client().post(
        "/oauth/token",
        data=LOGIN,
        auth=auth,
        headers={"X-Forwarded-For": "6.6.6.6"},
        environ_base={"REMOTE_ADDR": "198.51.100.20"},
    )
    assert response.status_code == 200, response.json
    assert recorded_ips(app) == ("198.51.100.20", "198.51.100.20")


def test_behind_two_trusted_proxies_the_real_client_ip_is_recorded(tmp_path, keys_dir):
    app, auth = proxied_app(tmp_path, keys_dir, 2)
    # The client forged "6.6.6.6"; the first proxy appended the client's address, the
    # second proxy the first proxy's; the connection comes from the second proxy.
    response = app.test_client().post(
        "/oauth/token",
        data=LOGIN,
        auth=auth,
        headers={
            "X-Forwarded-For": "6.6.6.6, 203.0.113.7, 10.0.0.2",
            "X-Forwarded-Proto": "https, https",
        },
        environ_base={"REMOTE_ADDR": "10.0.0.3"},
    )
    assert response.status_code == 200, response.json
    assert recorded_ips(app) == ("203.0.113.7", "203.0.113.7")


@pytest.mark.parametrize("proxies", [0, 1])
def test_urls_come_from_the_issuer_whatever_the_forwarded_headers(tmp_path, keys_dir, proxies):
    app, auth = proxied_app(tmp_path, keys_dir, proxies)
    http = app.test_client()
    forged = {
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https",
        "Host": "127.0.0.1:5000",
    }
    metadata = http.get("/.well-known/oauth-authorization-server", headers=forged).json
    assert metadata["issuer"] == ISSUER
    for name in ("token_endpoint", "jwks_uri", "introspection_endpoint", "revocation_endpoint"):
        assert metadata[name].startswith(ISSUER + "/"), (name, metadata[name])
    token = http.post("/oauth/token", data=LOGIN, auth=auth, headers=forged).json["access_token"]
    jwks = jwt.PyJWKSet.from_dict(http.get("/.well-known/jwks.json").json)
    kid = jwt.get_unverified_header(token)["kid"]
    claims = jwt.decode(token, jwks[kid].key, algorithms=["RS256"], audience=ISSUER, issuer=ISSUER)
    assert claims["iss"] == ISSUER


def test_a_tls_terminating_proxy_must_say_https_for_a_public_host(tmp_path, keys_dir):
    app, auth = proxied_app(tmp_path, keys_dir, 1)
    http = app.test_client()
    public = {"base_url": "http://auth.example.com"}
    plain = http.post("/oauth/token", data=LOGIN, auth=auth, **public)
    assert plain.status_code == 400
    assert plain.json["error"] == "invalid_request"
    behind_tls = http.post(
        "/oauth/token", data=LOGIN, auth=auth, headers={"X-Forwarded-Proto": "https"}, **public
    )
    assert behind_tls.status_code == 200, behind_tls.json
