"""Grants: small Authlib subclasses that answer its storage questions via our services."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidScopeError

from authserver.accounts.services import authenticate_password
from authserver.errors import AccountDisabled, InvalidCredentials, RefreshTokenInvalid
from authserver.net import client_ip, user_agent
from authserver.oauth.models import RefreshToken
from authserver.oauth.sessions import Device, claim_refresh_token
from authserver.oauth.tokens import Grantee

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


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
        return client

    def validate_requested_scope(self) -> None:
        """A client may ask only for scopes it is allowed (RFC 6749 §5.2 invalid_scope)."""
        scope = self.request.payload.scope  # type: ignore[attr-defined]
        if scope is None:
            return
        requested = set(scope.split())
        if not requested or not requested <= self.request.client.allowed_scopes():  # type: ignore[attr-defined]
            raise InvalidScopeError("The requested scope is not allowed for this client.")


class PasswordGrant(ClientRulesMixin, grants.ResourceOwnerPasswordCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def authenticate_user(self, username: str, password: str) -> Grantee:
        client_id = self.request.client.client_id if self.request.client else None
        try:
            user = authenticate_password(username, password, client_id=client_id)
        except InvalidCredentials as error:
            raise InvalidGrantError(error.description) from None
        except AccountDisabled as error:
            raise InvalidGrantError(error.description) from None
        return Grantee(user=user, amr=["pwd"], device=device_of(self.request))


class RefreshTokenGrant(ClientRulesMixin, grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotate on every use

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken:
        try:
            return claim_refresh_token(refresh_token)
        except RefreshTokenInvalid as error:
            raise InvalidGrantError(error.description) from None

    def authenticate_user(self, refresh_token: RefreshToken) -> Grantee:
        session = refresh_token.session
        return Grantee(
            user=session.user,
            amr=session.amr.split(),
            session=session,
            parent=refresh_token,
        )

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        """Nothing left to do: the token was claimed atomically when presented."""


class ClientCredentialsGrant(ClientRulesMixin, grants.ClientCredentialsGrant):
    # Only confidential clients may use it (RFC 6749 §4.4).
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


GRANT_TYPES = [
    PasswordGrant.GRANT_TYPE,
    RefreshTokenGrant.GRANT_TYPE,
    ClientCredentialsGrant.GRANT_TYPE,
]
