"""The OTP grant: ``grant_type=urn:authserver:params:oauth:grant-type:otp`` with ``phone``
and ``otp`` at the token endpoint. Tokens, session, refresh token and ``sid`` come from
the same generator as the password grant; ``amr`` is ``["otp", "sms"]`` (RFC 8176)."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidGrantError,
    InvalidRequestError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.hooks import hooked

from authserver.errors import AccountDisabled, InvalidOtp
from authserver.oauth.grants import AUTH_METHODS, ClientRulesMixin, device_of
from authserver.oauth.tokens import Grantee
from authserver.otp import OTP_GRANT_TYPE
from authserver.otp.services import sign_in_with_code


class OtpGrant(ClientRulesMixin, grants.BaseGrant, grants.TokenEndpointMixin):
    GRANT_TYPE = OTP_GRANT_TYPE
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                f"The client is not authorized to use 'grant_type={self.GRANT_TYPE}'"
            )
        form = self.request.form
        for name in ("phone", "otp"):
            if not form.get(name):
                raise InvalidRequestError(f"Missing '{name}' in request.")
        self.validate_requested_scope()  # before the code is spent on a refused request
        try:
            # Failed tries are committed inside, before the error rolls the request back.
            user = sign_in_with_code(form["phone"], form["otp"], client_id=client.client_id)
        except (InvalidOtp, AccountDisabled) as error:
            raise InvalidGrantError(error.description) from None
        self.request.user = Grantee(user=user, amr=["otp", "sms"], device=device_of(self.request))

    @hooked
    def create_token_response(self):
        token = self.generate_token(user=self.request.user, scope=self.request.payload.scope)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER
