"""Account logic: creating users, checking passwords, the one user serializer."""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any

from sqlalchemy import Uuid, bindparam, select

from authserver.accounts.memberships import claims_of, groups_and_permissions_of
from authserver.accounts.models import Group, Permission, User
from authserver.accounts.passwords import WRAPPED_PBKDF2, wrapped_iterations
from authserver.accounts.phones import normalize_phone
from authserver.audit import record_event
from authserver.context import passwords, settings
from authserver.errors import (
    AccountDisabled,
    Conflict,
    InvalidAccountType,
    InvalidCredentials,
    InvalidField,
    InvalidPhoneNumber,
    TooManyFailedLogins,
    UnknownNames,
)
from authserver.extensions import db
from authserver.limits.logins import LoginAttempt
from authserver.net import client_ip
from authserver.oauth.sessions import revoke_user_sessions
from authserver.transactions import keep_before_failing

ADMIN_GROUP = "Admin User"
REGULAR_GROUP = "Regular User"
ADMIN_PERMISSION = "authserver.admin"
# Only digits and the signs numbers are written with: what a phone number looks like.
PHONE_SHAPED = re.compile(r"[\d+().\s-]+")


# Built once: every token issued reads these (a query built per call costs more CPU
# than the database's answer).
_GROUPS_AND_PERMISSIONS = groups_and_permissions_of(bindparam("user_id", type_=Uuid))


def groups_and_entitlements(user: User) -> tuple[list[str], list[str]]:
    """The user's group names and every permission codename held directly or through
    a group, both sorted: the ``groups`` and ``entitlements`` claims. One query."""
    db.session.flush()  # a group given in this transaction counts
    rows = db.session.connection().execute(_GROUPS_AND_PERMISSIONS, {"user_id": user.id})
    return claims_of(rows)


def find_user_by_phone(phone_text: str) -> User | None:
    try:
        phone = normalize_phone(phone_text, settings().default_region)
    except InvalidPhoneNumber:
        return None
    return db.session.scalar(select(User).where(User.phone == phone))


def authenticate_password(
    phone_text: str, password: str, *, client_id: str | None, ip: str | None = None
) -> User:
    """The user whose phone and password these are.

    Unknown phone, unparseable phone, wrong password and an imported user's wrong password
    raise the same ``InvalidCredentials`` after the same amount of hashing work. Failures
    are counted per phone+IP, per phone and per IP (authserver/limits/logins.py): past a limit every
    attempt, right or wrong, known phone or not, raises ``TooManyFailedLogins``.
    """
    attempt = LoginAttempt.of(phone_text, ip or client_ip())
    try:
        attempt.begin()
    except TooManyFailedLogins:
        record_event("login.password", outcome="failure", client_id=client_id, reason="throttled")
        keep_before_failing()
        raise
    user = find_user_by_phone(phone_text)
    stored = user.password_hash if user else None
    work = passwords().pbkdf2_work(imported_pbkdf2_work)
    if not passwords().verify(stored, password, pbkdf2_work=work) or user is None:
        record_event(
            "login.password",
            outcome="failure",
            user_id=user.id if user else None,
            client_id=client_id,
            reason="invalid_credentials",
        )
        keep_before_failing()  # the OAuth error path rolls back: keep the record
        raise InvalidCredentials()
    attempt.succeeded()
    refuse_disabled(user, event="login.password", client_id=client_id)
    assert user.password_hash is not None
    if passwords().needs_rehash(user.password_hash):
        user.password_hash = passwords().hash(password)
    return user


def imported_pbkdf2_work() -> int:
    """The PBKDF2 iterations of a wrapped Django hash still stored (0: none left), which
    every failed password check matches (accounts/passwords.py)."""
    stored = db.session.scalar(
        select(User.password_hash).where(User.password_hash.startswith(WRAPPED_PBKDF2)).limit(1)
    )
    return wrapped_iterations(stored) if stored else 0


def refuse_disabled(user: User, *, event: str, client_id: str | None) -> None:
    """Blocked or inactive accounts get nothing from any sign-in; the refusal is recorded
    (committed, since the OAuth error that follows rolls the transaction back)."""
    if user.can_sign_in:
        return
    record_event(
        event, outcome="failure", user_id=user.id, client_id=client_id, reason="account_disabled"
    )
    keep_before_failing()
    raise AccountDisabled()


def create_user(
    phone: str,
    password: str | None = None,
    *,
    email: str | None = None,
    first_name: str = "",
    last_name: str = "",
    account_type: str = "regular",
    username: str | None = None,
    groups: list[str] | None = None,
    admin: bool = False,
) -> User:
    """Add a user to the current transaction (the caller commits)."""
    e164 = normalize_phone(phone, settings().default_region)
    check_account_type(account_type)
    user = User(
        phone=e164,
        username=username or _username_for(e164),
        email=email or None,
        first_name=first_name,
        last_name=last_name,
        account_type=account_type,
        password_hash=passwords().hash(password) if password else None,
    )
    user.groups = [get_or_create_group(name) for name in dict.fromkeys(groups or [])]
    if admin:
        set_admin(user, True)
    db.session.add(user)
    return user


def set_admin(user: User, admin: bool) -> None:
    """Grant or take away the admin right as ``--admin`` gives it: membership of "Admin
    User" and the ``authserver.admin`` permission held directly. Taking it away leaves
    other groups alone: a user who holds the permission through another group keeps it
    (``serialize_user``'s ``permissions`` shows it)."""
    if admin:
        if ADMIN_GROUP not in user.group_names():
            user.groups.append(get_or_create_group(ADMIN_GROUP))
        if all(p.codename != ADMIN_PERMISSION for p in user.permissions):
            user.permissions.append(
                get_or_create_permission(ADMIN_PERMISSION, "Administer authserver")
            )
    else:
        user.groups = [g for g in user.groups if g.name != ADMIN_GROUP]
        user.permissions = [p for p in user.permissions if p.codename != ADMIN_PERMISSION]


def check_account_type(account_type: str) -> None:
    allowed = settings().account_type_set
    if account_type not in allowed:
        raise InvalidAccountType(f"account_type must be one of: {', '.join(sorted(allowed))}")


def groups_named(names: list[str]) -> list[Group]:
    """The existing groups of these names (each once), or raise UnknownNames."""
    wanted = list(dict.fromkeys(names))
    found = {g.name: g for g in db.session.scalars(select(Group).where(Group.name.in_(wanted)))}
    missing = [name for name in wanted if name not in found]
    if missing:
        raise UnknownNames("groups", missing)
    return [found[name] for name in wanted]


def permissions_coded(codenames: list[str]) -> list[Permission]:
    """The existing permissions of these codenames (each once), or raise UnknownNames."""
    wanted = list(dict.fromkeys(codenames))
    found = {
        p.codename: p
        for p in db.session.scalars(select(Permission).where(Permission.codename.in_(wanted)))
    }
    missing = [code for code in wanted if code not in found]
    if missing:
        raise UnknownNames("permissions", missing)
    return [found[code] for code in wanted]


def username_taken(username: str, *, other_than: User | None = None) -> bool:
    query = select(User.id).where(User.username == username)
    if other_than is not None:
        query = query.where(User.id != other_than.id)
    return db.session.scalar(query) is not None


def phone_taken(phone: str, *, other_than: User | None = None) -> bool:
    query = select(User.id).where(User.phone == phone)
    if other_than is not None:
        query = query.where(User.id != other_than.id)
    return db.session.scalar(query) is not None


def check_current_password(user: User, password: str | None) -> None:
    """The account holder's current password, before a sensitive change. Wrong answers
    count against the same failed-login budgets as the password grant, so a stolen
    access token does not open unlimited guessing. Raises InvalidField (wrong or
    missing) or TooManyFailedLogins."""
    if not password:
        raise InvalidField("current_password", "This field is required.")
    attempt = LoginAttempt.of(user.phone, client_ip())
    attempt.begin()
    if user.password_hash is None or not passwords().verify(user.password_hash, password):
        record_event(
            "password.check",
            outcome="failure",
            actor=str(user.id),
            user_id=user.id,
            reason="invalid_current_password",
        )
        keep_before_failing()  # the refusal rolls the request back: keep the record
        raise InvalidField("current_password", "The current password is wrong.")
    attempt.succeeded()


def set_password(
    user: User, password: str, *, reason: str, keep: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """Set the password and end every session of the user but ``keep``: the one place a
    password changes (self-service, admin, reset by code; each records its own event).
    Returns the ids of the sessions ended."""
    user.password_hash = passwords().hash(password)
    return revoke_user_sessions(user.id, reason=reason, keep=keep)


def check_username(username: str, user: User | None = None) -> None:
    """A username never looks like a phone number: sign-up by phone derives usernames
    from numbers, and a number must not be claimable by someone else first. The user's
    own, unchanged, passes. Raises InvalidField, Conflict."""
    if user is not None and username == user.username:
        return
    if PHONE_SHAPED.fullmatch(username):
        raise InvalidField("username", "A username cannot look like a phone number.")
    if username_taken(username, other_than=user):
        raise Conflict("This username is taken.", "username")


def _username_for(phone: str) -> str:
    """The number itself, unless an account already has it as its username (the previous
    holder of a recycled number, a user imported with it): then a generated one."""
    if not username_taken(phone):
        return phone
    return f"user-{secrets.token_hex(6)}"


def get_or_create_group(name: str) -> Group:
    group = db.session.scalar(select(Group).where(Group.name == name))
    if group is None:
        group = Group(name=name)
        db.session.add(group)
    return group


def get_or_create_permission(codename: str, name: str = "") -> Permission:
    permission = db.session.scalar(select(Permission).where(Permission.codename == codename))
    if permission is None:
        permission = Permission(codename=codename, name=name)
        db.session.add(permission)
    return permission


def serialize_user(user: User) -> dict[str, Any]:
    """The ``user`` object of the seed login response; the one shape used everywhere."""
    return {
        "id": str(user.id),
        "username": user.username,
        "email": user.email or "",
        "phone": user.phone,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "account_type": user.account_type,
        "is_active": user.is_active,
        "is_blocked": user.is_blocked,
        "groups": user.group_names(),
        "permissions": user.entitlements(),
    }
