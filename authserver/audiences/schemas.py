"""Request and answer bodies of ``/admin/audiences``: they validate the requests and
describe both in the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from authserver.api import Schema

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=255)]
AudienceName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
PublicJwk = Annotated[
    dict[str, Any],
    Field(
        description="A public JWK: RSA (at least 2048 bits, alg RSA-OAEP-256) or EC "
        "P-256/P-384/P-521 (alg ECDH-ES). `alg` defaults from `kty`; `kid` defaults to the "
        "RFC 7638 thumbprint. Private members (`d`, `p`, ...) are refused.",
        examples=[{"kty": "EC", "crv": "P-256", "x": "...", "y": "...", "kid": "props-2030"}],
    ),
]


class AudienceCreate(Schema):
    identifier: Identifier = Field(
        description="The tokens' `aud` and the `resource` clients ask for: an absolute URI "
        "without a fragment (RFC 8707).",
        examples=["https://properties.example.com"],
    )
    name: AudienceName = ""
    encryption_key: PublicJwk | None = None


class EncryptionKeySet(Schema):
    encryption_key: PublicJwk


class EncryptionKeyOut(BaseModel):
    """A public encryption key of an audience."""

    kid: str
    alg: Literal["RSA-OAEP-256", "ECDH-ES"]
    enc: Literal["A256GCM"]
    state: Literal["active", "replaced"]
    created_at: str
    replaced_at: str | None
    tokens_valid_until: str | None = Field(
        default=None,
        description="Replaced keys: the last token encrypted to this key has expired by "
        "then; until then the service keeps the matching private key.",
    )
    jwk: dict[str, Any]


class AudienceOut(BaseModel):
    """A registered audience (resource server)."""

    id: str
    identifier: str
    name: str
    created_at: str
    encrypted: bool = Field(description="Whether new tokens for it are encrypted.")
    encryption_key: EncryptionKeyOut | None
    replaced_keys: list[EncryptionKeyOut]


class AudienceList(BaseModel):
    audiences: list[AudienceOut]
