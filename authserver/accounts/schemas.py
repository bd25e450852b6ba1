"""Request bodies of the self-service API (``/account/...``); they validate the requests
and describe them in the OpenAPI document. Responses: ``serialize_user`` (the seed's
``user`` object) and ``describe_session``."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

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
