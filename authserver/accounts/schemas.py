"""Request bodies of the self-service API (``/account/...``), which validate the requests
and describe them in the OpenAPI document, and its answers: ``SeedUser`` is what
``serialize_user`` returns (the seed's ``user`` object, everywhere a user is shown),
``SessionReply`` what ``describe_session`` returns. The answer models forbid extra keys,
so a key a serializer adds without documenting it fails the tests that check real
answers against /openapi.json."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from authserver.api import Schema

# Django's username rule: letters, digits and @ . + - _
USERNAME_PATTERN = r"^[\w.@+-]+$"
# A plain syntactic check (one @, a dotted domain, no spaces); whether the mailbox
# exists is a question only a mail to it can answer.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")


def _email(value: str) -> str:
    if value and (len(value) > 254 or not _EMAIL.match(value)):
        raise ValueError("Enter a valid email address.")
    return value.lower() if value else value


Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=150)]
Username = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=150, pattern=USERNAME_PATTERN
    ),
]
Email = Annotated[str, StringConstraints(strip_whitespace=True), AfterValidator(_email)]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
# The same bounds as the password reset (errors.PasswordRejected).
NewPassword = Annotated[str, Field(min_length=8, max_length=256)]


class ProfileUpdate(Schema):
    """Only the fields given change; ``email`` empty or null clears it."""

    first_name: Name | None = None
    last_name: Name | None = None
    username: Username | None = None
    email: Email | None = None


CurrentPassword = Annotated[
    str | None,
    Field(default=None, max_length=1024, description="The account's current password."),
]
CurrentCode = Annotated[
    str | None,
    Field(
        default=None,
        max_length=32,
        description="For an account without a password: the code `POST /account/code` "
        "sent to its current phone.",
    ),
]


class PasswordChange(Schema):
    """The account holder proves it: ``current_password``, or for an account without
    one, ``current_code``. Every other session ends."""

    current_password: CurrentPassword = None
    current_code: CurrentCode = None
    new_password: NewPassword


class PhoneChangeStart(Schema):
    """The new number gets a code once the holder proves it (``current_password``, or
    ``current_code`` for an account without a password)."""

    phone: Phone
    current_password: CurrentPassword = None
    current_code: CurrentCode = None


class PhoneChangeConfirm(Schema):
    phone: Phone
    code: str = Field(min_length=1, max_length=32)


# --- answers ---------------------------------------------------------------------------
class Answer(BaseModel):
    """A JSON answer: exactly these keys."""

    model_config = ConfigDict(extra="forbid")


class SeedUser(Answer):
    """The seed login response's `user` object (accounts.services.serialize_user)."""

    id: str = Field(description="UUID.")
    username: str
    email: str = Field(description="Empty when unknown.")
    phone: str = Field(description="E.164.")
    first_name: str
    last_name: str
    account_type: str
    is_active: bool
    is_blocked: bool
    groups: list[str]
    permissions: list[str] = Field(description="Permission codenames.")


class SessionReply(Answer):
    """A signed-in device (oauth.sessions.describe_session)."""

    id: str = Field(description="UUID.")
    device_name: str = Field(description="Given at sign-in, else read from the User-Agent.")
    client_id: str | None = Field(description="The app; null for the hosted pages' sign-in.")
    browser: bool = Field(description="The hosted pages' sign-in (single sign-on).")
    ip_address: str | None
    user_agent: str | None
    amr: list[str] = Field(description="How the user signed in (RFC 8176): pwd, otp, …")
    created_at: str = Field(description="ISO 8601.")
    last_used_at: str = Field(description="ISO 8601.")
    expires_at: str = Field(description="ISO 8601.")
    current: bool = Field(description="The session of the token asking.")


class SessionsReply(Answer):
    sessions: list[SessionReply] = Field(description="Most recently used first.")


class SessionsEnded(Answer):
    sessions_revoked: int = Field(description="How many sessions ended.")


class PasswordChanged(SessionsEnded):
    password_changed: bool
