"""Request bodies and query strings of the admin API; they validate the requests and
describe them in the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from authserver.accounts.schemas import Email, Name, NewPassword, Phone, Username
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
    auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"
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
