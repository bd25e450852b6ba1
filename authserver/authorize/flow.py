"""Deciding an authorization request: answer the client now, or ask the person first.

``decide`` runs every time a request may move on: when it arrives at
``/oauth/authorize``, after a sign-in, after a consent. Authlib validates it each time
(client, exact redirect URI, response type, scope, PKCE, nonce): a request that became
invalid meanwhile (a redirect URI unregistered) is refused then too. The outcome is one of

- ``ToClient``: the browser goes back to the client's redirect URI with a code, or with
  an error it may see (RFC 6749 §4.1.2.1), always with ``state`` and ``iss`` (RFC 9207);
- ``ErrorPage``: the client or its redirect URI cannot be trusted: the person sees an
  error page and the browser is never sent to the URI;
- ``NeedSignIn`` / ``NeedConsent``: a page must ask the person first.

While a page asks, the request travels as a ticket: the request's parameters and the
time it arrived, signed (itsdangerous, salted, under AUTHSERVER_SECRET_KEY) and valid
for ``TICKET_MAX_AGE``. The arrival time is what ``prompt=login``, ``prompt=consent`` and
``max_age`` are measured against: a sign-in or consent counts when it happened after
the request arrived (or, for ``max_age``, within that many seconds before).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidRequestError
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oidc.core.errors import ConsentRequiredError, LoginRequiredError
from flask import request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from authserver.accounts.phones import normalize_phone
from authserver.authorize.consents import consent_given_since, needs_consent
from authserver.authorize.grant import SignedInUser
from authserver.context import authorization_server, settings
from authserver.errors import InvalidPhoneNumber, InvalidTicket
from authserver.oauth.models import AuthSession, Client

TICKET_MAX_AGE = 3600
TICKET_SALT = "authserver.authorize.ticket"
PROMPTS = {"none", "login", "consent", "select_account"}


@dataclass(frozen=True)
class PendingAuthorization:
    params: dict[str, str]
    received_at: float = field(default_factory=time.time)

    def ticket(self) -> str:
        return _serializer().dumps({"p": self.params, "t": self.received_at})

    @classmethod
    def from_ticket(cls, ticket: str) -> PendingAuthorization:
        try:
            data = _serializer().loads(ticket, max_age=TICKET_MAX_AGE)
        except SignatureExpired:
            raise InvalidTicket(expired=True) from None
        except (BadSignature, TypeError, ValueError):
            raise InvalidTicket(expired=False) from None
        return cls(params=dict(data["p"]), received_at=float(data["t"]))

    @property
    def prompts(self) -> set[str]:
        return set(self.params.get("prompt", "").split())

    @property
    def login_hint(self) -> str | None:
        """The phone number ``login_hint`` names, in E.164, if it names one."""
        hint = self.params.get("login_hint")
        if not hint:
            return None
        try:
            return normalize_phone(hint, settings().default_region)
        except InvalidPhoneNumber:
            return None

    @property
    def ui_locales(self) -> list[str]:
        return self.params.get("ui_locales", "").split()

    def client(self) -> Client | None:
        return authorization_server().query_client(self.params.get("client_id"))


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings().secret_key, salt=TICKET_SALT)


@dataclass(frozen=True)
class ToClient:
    location: str


@dataclass(frozen=True)
class ErrorPage:
    error: str
    description: str


@dataclass(frozen=True)
class NeedSignIn:
    pending: PendingAuthorization


@dataclass(frozen=True)
class NeedConsent:
    pending: PendingAuthorization
    client: Client
    scope: str


Outcome = ToClient | ErrorPage | NeedSignIn | NeedConsent


class _PendingRequest(OAuth2Request):
    """The parameters of a pending request, as Authlib reads a request."""

    def __init__(self, params: dict[str, str]) -> None:
        super().__init__("GET", request.url, headers=request.headers)
        self.payload = BasicOAuth2Payload(params)

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data

    @property
    def form(self) -> dict[str, str]:
        return {}


def decide(pending: PendingAuthorization, browser: AuthSession | None) -> Outcome:
    """What to do with ``pending`` for whoever ``browser`` (the browser session) is."""
    server = authorization_server()
    oauth_request = _PendingRequest(pending.params)
    approver = SignedInUser(browser.user, browser) if browser is not None else None
    try:
        grant = server.get_consent_grant(oauth_request, end_user=approver)
        _check_oidc_parameters(pending, grant.redirect_uri)
    except OAuth2Error as error:
        return _refusal(error, pending)
    prompts = pending.prompts
    if _needs_sign_in(pending, browser):
        if "none" in prompts:
            return _refusal(LoginRequiredError(redirect_uri=grant.redirect_uri), pending)
        return NeedSignIn(pending)
    assert browser is not None
    client: Client = oauth_request.client
    scope = oauth_request.scope
    arrived = _arrival(pending)
    asks_again = "consent" in prompts and not client.first_party
    if needs_consent(browser.user_id, client, scope) or (
        asks_again and not consent_given_since(browser.user_id, client, arrived)
    ):
        if "none" in prompts:
            return _refusal(ConsentRequiredError(redirect_uri=grant.redirect_uri), pending)
        return NeedConsent(pending, client, scope)
    try:
        _, _, headers = grant.create_authorization_response(grant.redirect_uri, approver)
    except OAuth2Error as error:
        return _refusal(error, pending)
    return ToClient(_with_issuer(dict(headers)["Location"]))


def deny(pending: PendingAuthorization, browser: AuthSession) -> Outcome:
    """The person refused: ``access_denied`` to the client, if the request still holds."""
    server = authorization_server()
    approver = SignedInUser(browser.user, browser)
    try:
        grant = server.get_consent_grant(_PendingRequest(pending.params), end_user=approver)
    except OAuth2Error as error:
        return _refusal(error, pending)
    return _refusal(AccessDeniedError(redirect_uri=grant.redirect_uri), pending)


def _needs_sign_in(pending: PendingAuthorization, browser: AuthSession | None) -> bool:
    if browser is None:
        return True
    if "login" in pending.prompts and browser.created_at < _arrival(pending):
        return True
    max_age = pending.params.get("max_age")
    if max_age is not None and browser.created_at.timestamp() < pending.received_at - int(max_age):
        return True
    hint = pending.login_hint
    return hint is not None and hint != browser.user.phone


def _arrival(pending: PendingAuthorization) -> datetime:
    return datetime.fromtimestamp(pending.received_at, tz=UTC)


def _check_oidc_parameters(pending: PendingAuthorization, redirect_uri: str) -> None:
    """OIDC Core §3.1.2.1 parameters Authlib leaves to the server, for every request."""
    params = pending.params
    prompts = pending.prompts
    if "none" in prompts and len(prompts) > 1:
        raise InvalidRequestError("'prompt=none' cannot be combined.", redirect_uri=redirect_uri)
    if prompts - PROMPTS:
        raise InvalidRequestError("Unknown 'prompt' value.", redirect_uri=redirect_uri)
    max_age = params.get("max_age")
    if max_age is not None and not (max_age.isascii() and max_age.isdigit() and len(max_age) < 10):
        raise InvalidRequestError("'max_age' is a number of seconds.", redirect_uri=redirect_uri)
    if params.get("response_mode", "query") != "query":
        raise InvalidRequestError(
            "Only 'response_mode=query' is supported.", redirect_uri=redirect_uri
        )
    if "request" in params:
        raise _oidc_error("request_not_supported", redirect_uri)
    if "request_uri" in params:
        raise _oidc_error("request_uri_not_supported", redirect_uri)
    if "registration" in params:
        raise _oidc_error("registration_not_supported", redirect_uri)


def _oidc_error(name: str, redirect_uri: str) -> OAuth2Error:
    error = OAuth2Error(redirect_uri=redirect_uri)
    error.error = name
    return error


def _refusal(error: OAuth2Error, pending: PendingAuthorization) -> Outcome:
    if not error.redirect_uri:
        return ErrorPage(error.error or "invalid_request", error.description or "")
    params = [("error", error.error)]
    if error.description:
        params.append(("error_description", error.description))
    if pending.params.get("state"):
        params.append(("state", pending.params["state"]))
    return ToClient(_with_issuer(add_params_to_uri(error.redirect_uri, params)))


def _with_issuer(location: str) -> str:
    # RFC 9207 §2: every authorization response, success or error, names the issuer.
    return add_params_to_uri(location, [("iss", settings().issuer)])
