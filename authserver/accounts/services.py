"""Account logic: creating users, checking passwords, the one user serializer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from authserver.accounts.models import Group, Permission, User
from authserver.accounts.phones import InvalidPhoneNumber, normalize_phone
from authserver.audit import record_event
from authserver.context import passwords, settings
from authserver.errors import AccountDisabled, InvalidCredentials
from authserver.extensions import db

ADMIN_GROUP = "Admin User"
REGULAR_GROUP = "Regular User"
ADMIN_PERMISSION = "authserver.admin"


def find_user_by_phone(phone_text: str) -> User | None:
    try:
        phone = normalize_phone(phone_text, settings().default_region)
    except InvalidPhoneNumber:
        return None
    return db.session.scalar(select(User).where(User.phone == phone))


def authenticate_password(phone_text: str, password: str, *, client_id: str | None) -> User:
    """The user whose phone and password these are.

    Unknown phone, unparseable phone and wrong password raise the same
    ``InvalidCredentials`` after the same amount of hashing work.
    """
    user = find_user_by_phone(phone_text)
    if not passwords().verify(user.password_hash if user else None, password) or user is None:
        record_event(
            "login.password",
            outcome="failure",
            user_id=user.id if user else None,
            client_id=client_id,
            reason="invalid_credentials",
        )
        db.session.commit()  # the OAuth error path rolls back: keep the record
        raise InvalidCredentials()
    if not user.can_sign_in:
        record_event(
            "login.password",
            outcome="failure",
            user_id=user.id,
            client_id=client_id,
            reason="account_disabled",
        )
        db.session.commit()
        raise AccountDisabled()
    assert user.password_hash is not None
    if passwords().needs_rehash(user.password_hash):
        user.password_hash = passwords().hash(password)
    return user


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
    user = User(
        phone=e164,
        username=username or e164,
        email=email or None,
        first_name=first_name,
        last_name=last_name,
        account_type=account_type,
        password_hash=passwords().hash(password) if password else None,
    )
    names = list(groups or [])
    if admin and ADMIN_GROUP not in names:
        names.append(ADMIN_GROUP)
    user.groups = [get_or_create_group(name) for name in names]
    if admin:
        user.permissions = [get_or_create_permission(ADMIN_PERMISSION, "Administer authserver")]
    db.session.add(user)
    return user


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
