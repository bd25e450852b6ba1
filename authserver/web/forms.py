"""The forms of the hosted pages and their query strings: pydantic models that validate
what arrives and describe it in /openapi.json (form bodies, ``text/html`` answers).

Every form carries ``csrf_token`` (Flask-WTF's, bound to the signed session cookie) and,
while an app's authorization request waits, its ``ticket`` (authorize/flow.py). Text
fields refuse control characters and have upper bounds; unknown fields are an error.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from authserver.authorize.schemas import Printable

CsrfToken = Annotated[str, Field(max_length=200, description="The page's CSRF token.")]
Ticket = Annotated[
    str,
    Field(
        max_length=12000,
        description="The waiting authorization request, signed (from the page's URL).",
    ),
]
PhoneField = Annotated[
    Printable,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=32),
    Field(description="A mobile number, E.164 or national form."),
]
NameField = Annotated[Printable, StringConstraints(strip_whitespace=True, max_length=150)]


def _no_nul(value: str) -> str:
    # A password may hold any printable character, spaces included, but never NUL.
    if "\x00" in value:
        raise ValueError("control characters are not allowed")
    return value


class Form(BaseModel):
    model_config = ConfigDict(extra="forbid")

    csrf_token: CsrfToken
    ticket: Ticket | None = None


class SignInForm(Form):
    """Phone number and password."""

    phone: PhoneField
    password: Annotated[str, AfterValidator(_no_nul), Field(min_length=1, max_length=1024)]


class CodeRequestForm(Form):
    """Where to send a sign-in (or password reset) code."""

    phone: PhoneField


class SignUpForm(CodeRequestForm):
    """A new account: names and the phone number the code goes to."""

    first_name: NameField = ""
    last_name: NameField = ""


class CodeForm(Form):
    """The code received by SMS (for the number the previous page sent it to)."""

    code: Annotated[
        Printable, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)
    ]


class PasswordResetForm(CodeForm):
    new_password: Annotated[str, AfterValidator(_no_nul), Field(min_length=8, max_length=256)]


class ConsentForm(Form):
    decision: Literal["allow", "deny"]


class SignOutForm(BaseModel):
    """The confirmation of RP-initiated logout (the logout parameters may come along)."""

    model_config = ConfigDict(extra="allow")

    csrf_token: CsrfToken


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ticket: Ticket | None = None
    lang: Literal["en", "fa"] | None = Field(
        default=None, description="Show the page in this language (remembered)."
    )
