"""Requests and documents of the authorization and logout endpoints: the models
validate what arrives (the views refuse what does not fit before Authlib sees it) and
describe it in /openapi.json."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from authserver.oauth.schemas import AuthorizationServerMetadata

MAX_PARAMETERS = 40
MAX_VALUE = 2000


def _printable(value: str) -> str:
    # NUL and other control characters have no place in any of these parameters.
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError("control characters are not allowed")
    return value


Printable = Annotated[str, AfterValidator(_printable)]
# RFC 6749 §3.3 scope-token characters (visible ASCII but `"` and `\`), space-separated:
# what response_type, scope and PKCE values are made of. Authlib echoes some of them in
# error descriptions, which may hold nothing else (anything else was a 500).
TOKENS = r"^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$"


class AuthorizationRequest(BaseModel):
    """An authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, OIDC Core §3.1.2.1),
    in the query (GET) or a form body (POST). Each parameter at most once; parameters
    not listed are ignored, but must be short, printable text too."""

    model_config = ConfigDict(extra="allow")

    response_type: str = Field(
        max_length=32, pattern=TOKENS, description="`code`.", examples=["code"]
    )
    client_id: Printable = Field(max_length=64, description="The client's id.")
    redirect_uri: Printable | None = Field(
        default=None,
        max_length=MAX_VALUE,
        description="Exactly one of the client's registered redirect URIs (compared as strings). "
        "May be left out when the client registered only one.",
    )
    scope: str | None = Field(
        default=None,
        max_length=1000,
        pattern=TOKENS,
        description="Space-separated scopes the client is allowed; `openid` for an ID token.",
    )
    state: Printable | None = Field(
        default=None,
        max_length=1024,
        description="Returned as it came, with the code or the error.",
    )
    code_challenge: str = Field(
        max_length=128,
        pattern=TOKENS,
        description="PKCE (RFC 7636), required: BASE64URL(SHA256(code_verifier)).",
    )
    # Text, not an enum: `plain` is refused by a redirect to the app (RFC 7636 §4.4.1).
    code_challenge_method: str = Field(max_length=16, pattern=TOKENS, description="Only `S256`.")
    nonce: Printable | None = Field(
        default=None, max_length=255, description="OIDC: copied into the ID token."
    )
    prompt: Printable | None = Field(
        default=None,
        max_length=64,
        description="OIDC: `none` (never show a page: `login_required` or "
        "`consent_required` instead), `login` (sign in again), `consent` (ask again).",
    )
    max_age: Printable | None = Field(
        default=None,
        max_length=10,
        description="OIDC: seconds since the last sign-in beyond which the person signs in again.",
    )
    login_hint: Printable | None = Field(
        default=None,
        max_length=64,
        description="OIDC: the phone number to sign in with (pre-filled; another signed-in "
        "account must sign in again).",
    )
    ui_locales: Printable | None = Field(
        default=None,
        max_length=64,
        description="OIDC: preferred languages of the pages, e.g. `fa en`.",
    )
    response_mode: Printable | None = Field(
        default=None, max_length=32, description="Only `query` (the default)."
    )

    @model_validator(mode="after")
    def _extras_are_short_text(self) -> AuthorizationRequest:
        extras = self.model_extra or {}
        if len(extras) + len(self.model_fields_set) > MAX_PARAMETERS:
            raise ValueError("too many parameters")
        for name, value in extras.items():
            if len(name) > 64 or not isinstance(value, str) or len(value) > MAX_VALUE:
                raise ValueError(f"parameter {name[:64]!r} is too long")
            _printable(name)
            _printable(value)
        return self


class EndSessionQuery(BaseModel):
    """RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0 §2)."""

    model_config = ConfigDict(extra="allow")

    id_token_hint: Printable | None = Field(
        default=None,
        max_length=8192,
        description="An ID token this server issued to the client (expired or not).",
    )
    client_id: Printable | None = Field(default=None, max_length=64, description="The client's id.")
    post_logout_redirect_uri: Printable | None = Field(
        default=None,
        max_length=MAX_VALUE,
        description="Exactly one of the client's registered post-logout redirect URIs; "
        "followed only with a valid `id_token_hint`.",
    )
    state: Printable | None = Field(
        default=None, max_length=1024, description="Added to the post-logout redirect."
    )
    ui_locales: Printable | None = Field(
        default=None, max_length=64, description="Preferred languages of the page."
    )
    logout_hint: Printable | None = Field(default=None, max_length=64, description="Ignored.")


class OpenIDProviderMetadata(AuthorizationServerMetadata):
    """OpenID Connect Discovery 1.0 §3: the RFC 8414 document, whose fields it shares."""

    authorization_endpoint: str
    end_session_endpoint: str
    subject_types_supported: list[str]
    id_token_signing_alg_values_supported: list[str]
    code_challenge_methods_supported: list[str]
    authorization_response_iss_parameter_supported: bool
    claims_supported: list[str]
