"""What many tests do, written once: run service code as a command does, the token
requests every flow needs, and a Bearer header. Fixtures and factories (``make_client``,
``make_user``, ``password_login``) are in conftest.py; signing in for the account and
admin APIs in own_api.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from authserver.extensions import db

# The suite's default user (conftest.py's ``user``).
PHONE = "+33612975634"
PASSWORD = "correct horse battery"


@contextmanager
def committed(app) -> Iterator[None]:
    """Run service code in ``app``'s context and commit once at the end, as a command
    or a request does (authserver/transactions.py)."""
    with app.app_context():
        yield
        db.session.commit()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_response(http, client, **form: str) -> Any:
    """The token endpoint's answer to ``form``, ``client`` authenticating with Basic."""
    return http.post("/oauth/token", data=form, headers=client.basic)


def sign_in(http, client, phone: str = PHONE, password: str = PASSWORD, **extra: str) -> dict:
    """The password grant's token answer (asserted 200)."""
    response = token_response(
        http, client, grant_type="password", username=phone, password=password, **extra
    )
    assert response.status_code == 200, response.json
    return response.json


def refresh(http, client, refresh_token: str, **extra: str) -> Any:
    """The token endpoint's answer to a refresh."""
    return token_response(
        http, client, grant_type="refresh_token", refresh_token=refresh_token, **extra
    )


def introspection(http, client, token: str, **extra: str) -> Any:
    """The introspection endpoint's answer (RFC 7662)."""
    return http.post("/oauth/introspect", data={"token": token, **extra}, headers=client.basic)


def introspect(http, client, token: str) -> dict:
    """What introspection says of ``token`` (asserted 200)."""
    response = introspection(http, client, token)
    assert response.status_code == 200, response.json
    return response.json


def revoke(http, client, token: str, **extra: str) -> Any:
    """The revocation endpoint's answer (RFC 7009)."""
    return http.post("/oauth/revoke", data={"token": token, **extra}, headers=client.basic)
