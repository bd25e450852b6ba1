"""Token requests made by this server itself, on behalf of a first-party endpoint.

The seed compatibility endpoints speak their own JSON dialect, but every token they
hand out comes from the same Authlib server, grants, limits and audit trail as
``POST /oauth/token``: they build the equivalent form and run it through here.
"""

from __future__ import annotations

from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from flask import Response, request
from sqlalchemy.exc import IntegrityError

from authserver.context import authorization_server, settings
from authserver.extensions import db
from authserver.oauth.clients import create_client
from authserver.oauth.grants import GRANT_TYPES
from authserver.oauth.models import Client

FIRST_PARTY_GRANTS = ["password", "refresh_token"]


class InternalTokenRequest(OAuth2Request):
    def __init__(self, form: dict[str, str]) -> None:
        super().__init__("POST", request.url, headers={})
        self.payload = BasicOAuth2Payload(form)

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data

    @property
    def args(self) -> dict[str, str]:
        return {}


def first_party_client_id() -> str:
    """The public client the seed endpoints act for, created on first use."""
    client_id = settings().first_party_client_id
    if db.session.get(Client, client_id) is None:
        # No browser sign-in: it has no redirect URI.
        grants = [g for g in GRANT_TYPES if g not in ("client_credentials", "authorization_code")]
        try:
            with db.session.begin_nested():  # a concurrent request's row undoes only this
                create_client(
                    name="First-party apps (seed endpoints)",
                    grant_types=grants,
                    public=True,
                    first_party=True,
                    client_id=client_id,
                    actor="system",
                )
        except IntegrityError:  # created by a concurrent request
            pass
    return client_id


def run_token_request(form: dict[str, str]) -> Response:
    """The token endpoint's answer to ``form``, sent by the first-party client."""
    internal = InternalTokenRequest({**form, "client_id": first_party_client_id()})
    return authorization_server().create_token_response(internal)


def run_internal_request(endpoint: str, form: dict[str, str]) -> Response:
    """The answer of ``endpoint`` (``revocation``, ``introspection``) to ``form``."""
    internal = InternalTokenRequest({**form, "client_id": first_party_client_id()})
    return authorization_server().create_endpoint_response(endpoint, internal)
