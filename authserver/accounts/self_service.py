"""What ``/account`` does for the signed-in user, below HTTP: the profile, the password,
the phone number, the sessions. Views only translate (authserver/accounts/views.py).

Rules:

- A sensitive change (password, phone number) needs the account holder: the current
  password, or for an account without one (an SMS sign-up) a fresh code sent to its
  current phone (``send_account_code``). Each code proves it once; wrong passwords count
  against the failed-login budgets.
- A phone change ends every other session of the user and tells the old number by SMS
  once the change is committed.
- Usernames never look like phone numbers (``accounts.services.check_username``).

Functions change state, record audit events and flush; they raise ``AuthserverError``s
(``InvalidField``, ``Conflict``, ``NotFound``); the caller commits.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import select

from authserver.accounts.models import User
from authserver.accounts.phones import normalize_phone
from authserver.accounts.services import (
    check_current_password,
    check_username,
    phone_taken,
    set_password,
)
from authserver.audit import record_event
from authserver.context import settings
from authserver.errors import (
    Conflict,
    InvalidField,
    InvalidOtp,
    InvalidPhoneNumber,
    NotFound,
    OtpRegionNotAllowed,
    SmsDeliveryFailed,
)
from authserver.extensions import db
from authserver.oauth.models import AuthSession
from authserver.oauth.sessions import revoke_session, revoke_user_sessions
from authserver.otp.services import (
    ACCOUNT_CHANGE,
    PHONE_CHANGE,
    CodeSent,
    send_notice,
    start_challenge,
    verify_code,
)
from authserver.transactions import after_commit

log = logging.getLogger(__name__)
PROFILE_FIELDS = ("first_name", "last_name", "username", "email")
PHONE_CHANGED = (
    "The phone number of your account was changed to a number ending in {ending}. "
    "If you did not do this, contact support now."
)


# --- the profile ------------------------------------------------------------------------
def update_profile(user: User, changes: dict[str, Any]) -> list[str]:
    """Apply ``changes`` (of ``PROFILE_FIELDS``; None or "" clears a name or the email)
    and record ``profile.updated`` with the names of the fields that changed. Every way
    of editing one's profile (``/account/profile``, seed 004's update) comes here."""
    values: dict[str, Any] = {}
    for name, value in changes.items():
        if name in ("first_name", "last_name"):
            values[name] = (value or "")[:150]
        elif name == "email":
            values[name] = value or None
        elif name == "username":
            if not value:
                raise InvalidField("username", "A username cannot be empty.")
            check_username(value, user)
            values[name] = value
    changed = sorted(name for name, value in values.items() if getattr(user, name) != value)
    for name in changed:
        setattr(user, name, values[name])
    if changed:
        record_event("profile.updated", actor=str(user.id), user_id=user.id, fields=changed)
    db.session.flush()
    return changed


# --- proving the account holder -----------------------------------------------------------
def send_account_code(user: User) -> CodeSent:
    """A code to the account's current phone, to prove a change is its holder's."""
    return start_challenge(user.phone, ACCOUNT_CHANGE)


def confirm_account_holder(
    user: User, *, current_password: str | None, current_code: str | None
) -> None:
    """The current password, or for an account without one, the code last sent to its
    current phone by ``send_account_code`` (spent now). Raises InvalidField."""
    if user.password_hash is not None:
        check_current_password(user, current_password)
        return
    if not current_code:
        raise InvalidField(
            "current_code",
            "This account has no password: ask for a code to its phone (POST /account/code) "
            "and send it here.",
        )
    try:
        verify_code(user.phone, current_code, ACCOUNT_CHANGE)
    except InvalidOtp as error:
        raise InvalidField("current_code", error.description) from None


# --- the password -----------------------------------------------------------------------
def change_password(
    user: User,
    new_password: str,
    *,
    current_password: str | None,
    current_code: str | None,
    keep: uuid.UUID | None,
) -> int:
    """Set a new password once the holder is confirmed; every other session ends.
    Returns how many ended."""
    confirm_account_holder(user, current_password=current_password, current_code=current_code)
    had_password = user.password_hash is not None
    ended = set_password(user, new_password, reason="password_changed", keep=keep)
    record_event(
        "password.changed",
        actor=str(user.id),
        user_id=user.id,
        sessions_revoked=len(ended),
        had_password=had_password,
    )
    db.session.flush()
    return len(ended)


# --- the phone number -----------------------------------------------------------------------
def start_phone_change(
    user: User, phone_text: str, *, current_password: str | None, current_code: str | None
) -> CodeSent:
    """Send a code to the new number once the holder is confirmed;
    ``confirm_phone_change`` completes the change. Whether another account uses the
    number is told only at confirmation, to someone who has shown they hold it."""
    try:
        phone = normalize_phone(phone_text, settings().default_region, mobile_only=True)
    except InvalidPhoneNumber:
        raise InvalidField("phone", "This is not a valid mobile number.") from None
    if phone == user.phone:
        raise InvalidField("phone", "This is already your phone number.")
    confirm_account_holder(user, current_password=current_password, current_code=current_code)
    try:
        return start_challenge(phone, PHONE_CHANGE)
    except OtpRegionNotAllowed as error:
        raise InvalidField("phone", error.description) from None


def confirm_phone_change(user: User, phone_text: str, code: str, *, keep: uuid.UUID) -> int:
    """The new number, proven by its code, becomes the account's; every other session
    ends and the old number is told once this commits. Returns the sessions ended."""
    try:
        phone = verify_code(phone_text, code, PHONE_CHANGE)
    except InvalidOtp as error:
        raise InvalidField("code", error.description, "invalid_code") from None
    if phone_taken(phone, other_than=user):
        raise Conflict("Another account uses this phone number.", "phone")
    old, user.phone = user.phone, phone
    ended = revoke_user_sessions(user.id, reason="phone_changed", keep=keep)
    record_event(
        "phone.changed",
        actor=str(user.id),
        user_id=user.id,
        old=old,
        new=phone,
        sessions_revoked=len(ended),
    )
    db.session.flush()
    message = PHONE_CHANGED.format(ending=phone[-2:])
    after_commit(lambda: _tell(old, message, reference=f"phone-changed:{user.id}"))
    return len(ended)


def _tell(phone: str, message: str, *, reference: str) -> None:
    try:
        send_notice(phone, message, reference=reference)
    except SmsDeliveryFailed:
        # The change stands; the audit log holds it. Logged without the number.
        log.warning("phone change notice not delivered (reference %s)", reference)


# --- the sessions -------------------------------------------------------------------------
def owned_session(user: User, session_id: uuid.UUID) -> AuthSession:
    """The user's session with this id: the one check that a session belongs to the
    user asking. Raises NotFound (also for another user's session)."""
    session = db.session.scalar(
        select(AuthSession).where(AuthSession.id == session_id, AuthSession.user_id == user.id)
    )
    if session is None:
        raise NotFound("session")
    return session


def end_session(user: User, session_id: uuid.UUID, *, current: uuid.UUID | None) -> None:
    """End one of the user's sessions (``current``: the one asking, which is a logout)."""
    session = owned_session(user, session_id)
    reason = "logout" if session_id == current else "ended_by_user"
    if revoke_session(session, reason=reason):
        record_event(
            "logout" if reason == "logout" else "session.revoked",
            actor=str(user.id),
            user_id=user.id,
            client_id=session.client_id,
            session_id=str(session.id),
            reason=reason,
        )
    db.session.flush()


def end_other_sessions(user: User, *, keep: uuid.UUID | None) -> int:
    ended = revoke_user_sessions(user.id, reason="ended_by_user", keep=keep)
    record_event(
        "session.revoked",
        actor=str(user.id),
        user_id=user.id,
        reason="ended_by_user",
        session_ids=[str(s) for s in ended],
    )
    db.session.flush()
    return len(ended)
