"""Request bodies and query strings of the admin API, which validate the requests and
describe them in the OpenAPI document, and the answers of its views (``...Reply``: the
dicts of admin.services' and signing.services' serializers, keys exactly these)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints

from authserver.accounts.schemas import Answer, Email, Name, NewPassword, Phone, SeedUser, Username
from authserver.api import Schema

GroupName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=150)]
# Django-style codenames ("view_property") and dotted ones ("properties.view").
Codename = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
]
Scope = Annotated[str, StringConstraints(max_length=1000, pattern=r"^[\x21\x23-\x5B\x5D-\x7E ]*$")]
RedirectUri = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\w.:-]+$")]


def _utc(value: datetime) -> datetime:
    """A time without an offset is read as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Instant = Annotated[datetime, AfterValidator(_utc)]


class Page(Schema):
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class UserQuery(Page):
    """``q``: a substring of the phone, username, email or name, or a phone number in any
    form that parses."""

    q: str | None = Field(default=None, max_length=100)


class ClientQuery(Page):
    """``q``: a substring of the client id or name."""

    q: str | None = Field(default=None, max_length=100)


class UserCreate(Schema):
    phone: Phone
    password: NewPassword | None = None  # none: the user signs in by SMS code
    username: Username | None = None  # default: the phone number
    email: Email | None = None
    first_name: Name = ""
    last_name: Name = ""
    account_type: str = "regular"
    groups: list[GroupName] = Field(default_factory=list, max_length=100)
    permissions: list[Codename] = Field(default_factory=list, max_length=500)
    admin: bool = False  # joins "Admin User" and holds authserver.admin, as `--admin`


class UserUpdate(Schema):
    """Only the fields given change. A new ``password``, or ``is_active: false``, ends
    every session of the user."""

    phone: Phone | None = None
    username: Username | None = None
    email: Email | None = None
    first_name: Name | None = None
    last_name: Name | None = None
    account_type: str | None = None
    is_active: bool | None = None
    password: NewPassword | None = None


class GroupsSet(Schema):
    groups: list[GroupName] = Field(max_length=100)


class PermissionsSet(Schema):
    permissions: list[Codename] = Field(max_length=500)


class GroupCreate(Schema):
    name: GroupName
    permissions: list[Codename] = Field(default_factory=list, max_length=500)


class GroupUpdate(Schema):
    name: GroupName | None = None
    permissions: list[Codename] | None = Field(default=None, max_length=500)


class PermissionCreate(Schema):
    codename: Codename
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)] = ""


class PermissionUpdate(Schema):
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]


class ClientCreate(Schema):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    grant_types: list[str] = Field(min_length=1, max_length=10)
    scope: Scope | None = None  # default: AUTHSERVER_DEFAULT_CLIENT_SCOPE
    public: bool = False
    auth_method: Literal["client_secret_basic", "client_secret_post", "private_key_jwt"] = (
        "client_secret_basic"
    )
    # private_key_jwt: the client's public keys (RFC 7517 JWKS), required by that method.
    jwks: dict | None = None
    resource_server: bool = False
    first_party: bool = False  # one of the platform's own apps (see Client.first_party)
    client_id: ClientId | None = None  # default: a random one
    # Browser sign-in (authorization_code needs one): exact URIs, authorize/redirect_uris.py.
    redirect_uris: list[RedirectUri] = Field(default_factory=list, max_length=20)
    post_logout_redirect_uris: list[RedirectUri] = Field(default_factory=list, max_length=20)


class ClientUpdate(Schema):
    name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
        | None
    ) = None
    grant_types: list[str] | None = Field(default=None, min_length=1, max_length=10)
    scope: Scope | None = None
    resource_server: bool | None = None
    first_party: bool | None = None
    is_active: bool | None = None
    redirect_uris: list[RedirectUri] | None = Field(default=None, max_length=20)
    post_logout_redirect_uris: list[RedirectUri] | None = Field(default=None, max_length=20)


class KeyRotate(Schema):
    force: bool = False  # rotate even if `next` has not been published long enough


class AuditQuery(Page):
    event: str | None = Field(default=None, max_length=64)
    user_id: str | None = Field(default=None, max_length=36)
    client_id: str | None = Field(default=None, max_length=64)
    outcome: str | None = Field(default=None, max_length=16)
    since: Instant | None = None
    until: Instant | None = None


# --- answers ---------------------------------------------------------------------------
NextOffset = Annotated[
    int | None, Field(description="The `offset` of the next page; null on the last page.")
]
Timestamp = Annotated[str, Field(description="ISO 8601.")]


class UserPage(Answer):
    users: list[SeedUser]
    next_offset: NextOffset


class UserBlocked(Answer):
    user: SeedUser
    sessions_revoked: int = Field(description="How many sessions ended.")


class GroupReply(Answer):
    """A group (admin.services.serialize_group)."""

    id: int
    name: str
    permissions: list[str] = Field(description="Permission codenames.")


class GroupsReply(Answer):
    groups: list[GroupReply]


class PermissionReply(Answer):
    """A permission (admin.services.serialize_permission)."""

    id: int
    codename: str
    name: str


class PermissionsReply(Answer):
    permissions: list[PermissionReply]


class ClientReply(Answer):
    """An OAuth client (admin.services.serialize_client): never its secret."""

    client_id: str
    name: str
    grant_types: list[str]
    scope: str
    token_endpoint_auth_method: str = Field(examples=["client_secret_basic", "none"])
    public: bool
    resource_server: bool
    first_party: bool
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    jwks: dict | None = Field(
        description="private_key_jwt: the client's public keys (a JWKS); null otherwise."
    )
    is_active: bool
    created_at: Timestamp


class ClientWithSecret(ClientReply):
    """An OAuth client and its new secret, shown in this answer only."""

    client_secret: str | None = Field(
        description="Null for a public client and a private_key_jwt client."
    )


class ClientPage(Answer):
    clients: list[ClientReply]
    next_offset: NextOffset


class SigningKeyReply(Answer):
    """A signing key as `authserver keys list` shows it (signing.services.describe_key)."""

    kid: str
    state: Literal["next", "active", "retired", "revoked"]
    alg: str
    created_at: Timestamp
    activated_at: Timestamp | None
    retired_at: Timestamp | None
    revoked_at: Timestamp | None
    published: bool = Field(description="Whether the JWKS serves it now.")
    published_until: Timestamp | None = Field(
        None, description="A retired key: when the JWKS stops serving it."
    )
    rotation_safe_at: Timestamp | None = Field(
        None, description="The next key: from when rotating to it is safe."
    )


class SigningKeysReply(Answer):
    keys: list[SigningKeyReply]


class KeySummary(Answer):
    """The signing keys after a rotation (signing.services.key_summary)."""

    active: str | None = Field(description="kid of the key that signs.")
    next: str | None = Field(description="kid of the key published to sign next.")
    retired: list[str] = Field(description="kids of retired keys the JWKS still serves.")


class AuditEventReply(Answer):
    """An audit event (admin.services.serialize_event); never a secret."""

    id: int
    occurred_at: Timestamp
    event: str = Field(examples=["user.created", "token.issued"])
    outcome: str = Field(examples=["success", "failure", "refused"])
    actor: str | None = Field(description="Who did it: a user id, a client id, `cli`.")
    user_id: str | None = Field(description="The user it concerns.")
    client_id: str | None
    ip_address: str | None
    user_agent: str | None
    details: dict[str, Any] | None


class AuditPage(Answer):
    events: list[AuditEventReply]
    next_offset: NextOffset
