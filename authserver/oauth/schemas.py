"""Documentation models of the OAuth endpoints, for the OpenAPI document only.

Authlib validates these requests itself (grants.py, endpoints.py): the models below
describe what it accepts and answers; they validate nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

GrantType = Literal[
    "authorization_code",
    "password",
    "refresh_token",
    "client_credentials",
    "urn:authserver:params:oauth:grant-type:otp",
]
TokenTypeHint = Literal["access_token", "refresh_token"]


JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class ClientCredentials(BaseModel):
    client_id: str | None = Field(
        default=None,
        description="`client_secret_post` and public clients (`none`): the client's id. "
        "Leave out with Basic authentication.",
    )
    client_secret: str | None = Field(
        default=None,
        description="`client_secret_post` only. Never together with Basic authentication.",
    )
    client_assertion_type: Literal[JWT_BEARER_ASSERTION] | None = Field(
        default=None, description="`private_key_jwt` (RFC 7523) only."
    )
    client_assertion: str | None = Field(
        default=None,
        description="`private_key_jwt` only: a JWT signed with one of the client's registered "
        "keys; `iss` = `sub` = the client id, `aud` = the issuer or the token endpoint URL, "
        "`exp` at most AUTHSERVER_CLIENT_ASSERTION_MAX_LIFETIME ahead, a `jti` used once.",
    )


class TokenRequest(ClientCredentials):
    """Token request (RFC 6749 §4.1.3, §4.3, §4.4, §6 and the OTP grant). Documentation
    only: Authlib validates this request. Each parameter at most once; none in the URL."""

    grant_type: GrantType = Field(
        description="`authorization_code`: `code` + `code_verifier` (+ `redirect_uri` "
        "when the authorization request had one). `password`: `username` + `password`. "
        "`refresh_token`: `refresh_token`. `client_credentials`: confidential clients only. "
        "`urn:authserver:params:oauth:grant-type:otp`: `phone` + `otp` (a code sent by "
        "`POST /oauth/otp`)."
    )
    code: str | None = Field(
        default=None,
        description="authorization_code grant: the code from the redirect. Works once; "
        "presented again, it also ends the session its first exchange opened.",
    )
    code_verifier: str | None = Field(
        default=None,
        description="authorization_code grant: the PKCE verifier (RFC 7636), required.",
    )
    redirect_uri: str | None = Field(
        default=None,
        description="authorization_code grant: the `redirect_uri` of the authorization "
        "request, identical.",
    )
    username: str | None = Field(
        default=None,
        description="password grant: the phone number, in any form that parses with the "
        "server's default region.",
        examples=["+33612345678"],
    )
    password: str | None = Field(default=None, description="password grant.")
    refresh_token: str | None = Field(
        default=None,
        description="refresh_token grant: the refresh token. Each one works once: the "
        "answer carries its successor.",
    )
    phone: str | None = Field(default=None, description="OTP grant: the phone number.")
    otp: str | None = Field(default=None, description="OTP grant: the code received by SMS.")
    scope: str | None = Field(
        default=None,
        description="Space-separated scopes, each allowed to the client; left out (or "
        "empty): all the client's allowed scopes. A refresh may only narrow them.",
    )
    device_name: str | None = Field(
        default=None,
        max_length=200,
        description="password and OTP grants: a name for the session's device (shown in "
        "the device list); otherwise taken from the User-Agent.",
    )
    resource: str | None = Field(
        default=None,
        description="RFC 8707 resource indicator, any grant: the identifier of a registered "
        "audience, which becomes the access token's `aud`. Once at most (several, or an "
        "unknown one: `invalid_target`). An audience with an encryption key gets an "
        "encrypted access token (a JWE wrapping the signed JWT). Left out: the default "
        "audience, a plain signed token.",
        examples=["https://properties.example.com"],
    )


class TokenResponse(BaseModel):
    """Tokens issued (RFC 6749 §5.1). Sent with `Cache-Control: no-store`."""

    access_token: str = Field(
        description="RFC 9068 JWT (`typ: at+jwt`, RS256, `kid` in the JWKS); for an "
        "audience with an encryption key, that JWT encrypted to it (compact JWE, `cty: JWT`)."
    )
    token_type: Literal["Bearer", "DPoP"] = Field(
        description="`DPoP` when the request carried a DPoP proof (RFC 9449): the token "
        "then works only with proofs by the same key."
    )
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str | None = Field(
        default=None,
        description="Opaque; not issued by the client_credentials grant.",
    )
    scope: str = Field(description="The scopes granted, space-separated.")
    id_token: str | None = Field(
        default=None,
        description="authorization_code grant with the `openid` scope: the OpenID Connect "
        "ID token (RS256, `aud` = the client).",
    )


class IntrospectionRequest(ClientCredentials):
    """Introspection request (RFC 7662 §2.1), for confidential clients. Documentation
    only: Authlib validates this request."""

    token: str = Field(description="An access token or a refresh token.")
    token_type_hint: TokenTypeHint | None = Field(
        default=None, description="Only a hint: the token's shape decides."
    )


class IntrospectionResponse(BaseModel):
    """RFC 7662 §2.2. `{"active": false}` alone for a token that is unknown, expired,
    revoked, or another client's (unless the caller is a resource server)."""

    active: bool
    token_type: str | None = Field(default=None, examples=["Bearer", "DPoP", "refresh_token"])
    scope: str | None = None
    client_id: str | None = None
    sub: str | None = Field(default=None, description="The user's id, or the client's.")
    aud: str | list[str] | None = None
    iss: str | None = None
    exp: int | None = None
    iat: int | None = None
    jti: str | None = None
    sid: str | None = Field(default=None, description="The session of a user's token.")
    amr: list[str] | None = Field(default=None, examples=[["pwd"], ["otp", "sms"]])
    auth_time: int | None = None
    groups: list[str] | None = None
    entitlements: list[str] | None = None
    cnf: dict[str, str] | None = Field(
        default=None, description='A DPoP-bound token\'s key (RFC 9449 §6): {"jkt": …}.'
    )


class RevocationRequest(ClientCredentials):
    """Revocation request (RFC 7009 §2.1). Revoking a refresh token ends its whole
    session. Documentation only: Authlib validates this request."""

    token: str
    token_type_hint: TokenTypeHint | None = None


class RevocationResponse(BaseModel):
    """Revoked, or the token was unknown already (RFC 7009 §2.2): an empty object."""

    model_config = ConfigDict(extra="forbid")


class OAuthError(BaseModel):
    """RFC 6749 §5.2 error."""

    error: str = Field(
        description="invalid_request, invalid_client, invalid_grant, unauthorized_client, "
        "unsupported_grant_type, invalid_scope, unsupported_token_type, invalid_token, "
        "insufficient_scope, too_many_requests or temporarily_unavailable.",
        examples=["invalid_grant"],
    )
    error_description: str | None = Field(default=None, description="For a developer.")
    error_uri: str | None = None


class AuthorizationServerMetadata(BaseModel):
    """RFC 8414 metadata, plus `otp_endpoint` where an OTP sign-in starts."""

    model_config = ConfigDict(extra="allow")

    issuer: str
    token_endpoint: str
    jwks_uri: str
    introspection_endpoint: str
    revocation_endpoint: str
    userinfo_endpoint: str
    otp_endpoint: str
    grant_types_supported: list[str]
    response_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    token_endpoint_auth_signing_alg_values_supported: list[str]
    introspection_endpoint_auth_methods_supported: list[str]
    introspection_endpoint_auth_signing_alg_values_supported: list[str]
    revocation_endpoint_auth_methods_supported: list[str]
    revocation_endpoint_auth_signing_alg_values_supported: list[str]
    dpop_signing_alg_values_supported: list[str]
    scopes_supported: list[str]
    service_documentation: str


class UserInfo(BaseModel):
    """The token's user, in the OpenID Connect UserInfo shape: the claims of the token's
    scopes (OIDC Core §5.4: `profile`, `phone`, `email`). A claim without a value is
    left out, never sent as `null` or `""`."""

    sub: str
    preferred_username: str | None = None
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    email_verified: bool | None = None
    phone_number: str | None = None
    phone_number_verified: bool | None = None
    groups: list[str] | None = None
    entitlements: list[str] | None = Field(default=None, description="Permission codenames.")
    updated_at: int | None = Field(default=None, description="Seconds since the epoch.")
