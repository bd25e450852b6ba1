"""Grants: small Authlib subclasses that answer its storage questions via our services."""

from __future__ import annotations

from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidScopeError

from authserver.accounts.services import authenticate_password
from authserver.audiences.own import own_api_named
from authserver.audiences.services import resolve_resource, token_target, use_token_target
from authserver.errors import (
    AccountDisabled,
    InvalidCredentials,
    RefreshTokenInvalid,
    TooManyFailedLogins,
    UnknownResource,
)
from authserver.extensions import db
from authserver.net import client_ip, user_agent
from authserver.oauth.dpop import request_key
from authserver.oauth.models import RefreshToken
from authserver.oauth.sessions import (
    Device,
    Replay,
    Rotation,
    claim_refresh_token,
    rotate_refresh_token,
)
from authserver.oauth.tokens import Grantee, Subject
from authserver.ops.metrics import FAILED_LOGINS
from authserver.otp import OTP_GRANT_TYPE

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
# The methods of confidential clients (RFC 6749 §2.1).
CONFIDENTIAL_METHODS = AUTH_METHODS[:3]


def device_of(request) -> Device:
    return Device(
        name=(request.form.get("device_name") or "")[:200],
        ip_address=client_ip(),
        user_agent=user_agent(),
    )


class ClientRulesMixin:
    """What every grant enforces about the client beyond Authlib's checks."""

    def authenticate_token_endpoint_client(self):
        client = super().authenticate_token_endpoint_client()  # type: ignore[misc]
        # Authlib sets request.client only after authenticate_user; failed-login audit
        # records want it before.
        self.request.client = client  # type: ignore[attr-defined]
        # Every grant authenticates the client first: the audience is checked here, before
        # a password, code or refresh token is spent on a request that will be refused.
        self.select_audience()
        return client

    def select_audience(self) -> None:
        """RFC 8707 ``resource``: the audience of the access token. None asks for the
        default audience; otherwise one registered audience identifier, or one of
        authserver's own APIs, which only the clients it permits may ask for."""
        values = self.request.payload.datalist.get("resource") or []  # type: ignore[attr-defined]
        try:
            target = resolve_resource(list(values))
        except UnknownResource as error:
            raise InvalidTargetError(error.description) from None
        own = own_api_named(target.identifier) if target and target.scope else None
        if own is not None and not own.permits(self.request.client):  # type: ignore[attr-defined]
            raise InvalidTargetError(
                f"This client may not ask for tokens for {own.path}: it is neither "
                f"first-party nor registered with the scope '{own.scope}'."
            )
        use_token_target(target)

    def validate_requested_scope(self) -> None:
        """A client may ask only for scopes it is allowed (RFC 6749 §5.2 invalid_scope)."""
        # An empty ``scope=`` asks for nothing in particular, as if omitted (as Authlib's
        # refresh grant already treats it): the client's allowed scopes.
        requested = set((self.request.payload.scope or "").split())  # type: ignore[attr-defined]
        allowed = self.request.client.allowed_scopes()  # type: ignore[attr-defined]
        target = token_target()
        if target is not None and target.scope:  # an own API's scope comes with its audience
            allowed = allowed | {target.scope}
        if requested and not requested <= allowed:
            raise InvalidScopeError("The requested scope is not allowed for this client.")


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2: the requested resource is unknown, malformed or more than one."""

    error = "invalid_target"
    status_code = 400


class TooManyAttemptsError(OAuth2Error):
    """429 with Retry-After: a throttled phone+IP (or phone, or IP) may retry later. Known
    and unknown phones are throttled alike, so this reveals nothing about accounts."""

    error = "too_many_requests"
    status_code = 429

    def __init__(self, retry_after: int, description: str) -> None:
        super().__init__(description=description)
        self.retry_after = retry_after

    def get_headers(self):
        return [*super().get_headers(), ("Retry-After", str(self.retry_after))]


class PasswordGrant(ClientRulesMixin, grants.ResourceOwnerPasswordCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def authenticate_user(self, username: str, password: str) -> Grantee:
        client_id = self.request.client.client_id if self.request.client else None
        try:
            user = authenticate_password(username, password, client_id=client_id)
        except InvalidCredentials as error:
            FAILED_LOGINS.labels("password", "invalid_credentials").inc()
            raise InvalidGrantError(error.description) from None
        except AccountDisabled as error:
            FAILED_LOGINS.labels("password", "account_disabled").inc()
            raise InvalidGrantError(error.description) from None
        except TooManyFailedLogins as error:
            FAILED_LOGINS.labels("password", "throttled").inc()
            raise TooManyAttemptsError(error.retry_after, error.description) from None
        return Grantee(user=user, amr=["pwd"], device=device_of(self.request))


class RefusalKeepsCredentialMixin:
    """For grants that claim a one-time credential (refresh token, authorization code)
    when it is presented: a refused request (wrong client, wider scope, ended session,
    wrong PKCE verifier) must not spend it. The claim is undone now, not at the end of
    the request, so no later commit can keep it; a reuse revocation was committed
    before this."""

    def validate_token_request(self) -> None:
        try:
            super().validate_token_request()  # type: ignore[misc]
        except OAuth2Error:
            db.session.rollback()
            raise


class RefreshTokenGrant(RefusalKeepsCredentialMixin, ClientRulesMixin, grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotate on every use

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | Rotation | Replay:
        self.presented = refresh_token  # the successor is sealed under it
        client_id = self.request.client.client_id
        try:
            # One statement on PostgreSQL; the ORM's steps otherwise, and to say why a
            # token cannot be used.
            token = rotate_refresh_token(refresh_token, client_id) or claim_refresh_token(
                refresh_token, client_id
            )
        except RefreshTokenInvalid as error:
            raise InvalidGrantError(error.description) from None
        session = token.token.session if isinstance(token, Replay) else token.session
        bound_to = session.dpop_jkt
        if bound_to is not None and bound_to != request_key():
            # RFC 9449 §5: only the holder of the key may refresh (the claim is undone).
            raise InvalidGrantError("This refresh token needs a DPoP proof by its key.")
        return token

    def authenticate_user(self, refresh_token: RefreshToken | Rotation | Replay) -> Grantee:
        if isinstance(refresh_token, Replay):  # the same successor again (sessions.py)
            session = refresh_token.token.session
            return Grantee(
                user=session.user,
                amr=session.amr.split(),
                session=session,
                parent=refresh_token.token,
                successor=refresh_token.successor,
            )
        if isinstance(refresh_token, Rotation):
            state = refresh_token.session
            return Grantee(
                user=Subject(state.user_id),
                amr=state.amr.split(),
                session=state,
                parent=refresh_token,
                claims=(refresh_token.groups, refresh_token.entitlements),
                successor=refresh_token.successor,
            )
        session = refresh_token.session
        return Grantee(
            user=session.user,
            amr=session.amr.split(),
            session=session,
            parent=refresh_token,
            parent_value=self.presented,
        )

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        """Nothing left to do: the token was claimed atomically when presented."""


class ClientCredentialsGrant(ClientRulesMixin, grants.ClientCredentialsGrant):
    # Only confidential clients may use it (RFC 6749 §4.4).
    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_METHODS


GRANT_TYPES = [
    "authorization_code",  # authserver/authorize/grant.py
    PasswordGrant.GRANT_TYPE,
    RefreshTokenGrant.GRANT_TYPE,
    ClientCredentialsGrant.GRANT_TYPE,
    OTP_GRANT_TYPE,
]
