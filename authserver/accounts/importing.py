"""Import the users of the seed Django services from a ``manage.py dumpdata`` file.

Idempotent: users are matched by phone number (E.164). Their ``pbkdf2_sha256`` password
hashes are wrapped in argon2id (accounts/passwords.py: the same cost as every other
check, argon2id at rest); each becomes a plain argon2id hash at the user's first login.
Passwords in any other Django format are not imported: those users set one by SMS code
(password reset) or sign in by code. Wrapping costs one argon2id hash per user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from authserver.accounts.models import User
from authserver.accounts.passwords import WRAPPED_PBKDF2
from authserver.accounts.phones import normalize_phone
from authserver.accounts.services import get_or_create_group, get_or_create_permission
from authserver.audit import record_event
from authserver.context import passwords, settings
from authserver.errors import ImportFileError, InvalidPhoneNumber
from authserver.extensions import db

PHONE_FIELDS = ("phone", "phone_number", "mobile", "username")
COPIED_FIELDS = ("email", "first_name", "last_name", "account_type", "is_active", "is_blocked")


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": len(self.created),
            "updated": len(self.updated),
            "unchanged": len(self.unchanged),
            "skipped": self.skipped,
        }


def import_django_users(records: Any, *, actor: str) -> ImportReport:
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ImportFileError("expected the JSON list that `manage.py dumpdata` writes")
    permissions = {
        r.get("pk"): r["fields"]["codename"]
        for r in records
        if str(r.get("model", "")).endswith(".permission") and "codename" in r.get("fields", {})
    }
    groups = {
        r.get("pk"): r["fields"]
        for r in records
        if str(r.get("model", "")).endswith(".group") and "name" in r.get("fields", {})
    }
    report = ImportReport()
    for record in records:
        fields = record.get("fields") or {}
        if "password" not in fields or not any(f in fields for f in PHONE_FIELDS):
            continue  # not a user record
        label = str(record.get("pk"))
        try:
            phone = _phone_of(fields)
        except InvalidPhoneNumber as error:
            report.skipped.append({"pk": label, "reason": f"phone: {error}"})
            continue
        user = db.session.scalar(select(User).where(User.phone == phone))
        created = user is None
        if created:
            user = User(phone=phone, username=str(fields.get("username") or phone)[:150])
            db.session.add(user)
        before = _snapshot(user)
        for name in COPIED_FIELDS:
            if name in fields and fields[name] is not None:
                setattr(user, name, fields[name] if name != "email" else (fields[name] or None))
        # Never replace a hash the user has since moved to argon2id by logging in.
        if created or user.password_hash is None or _imported_since(user, fields):
            user.password_hash = _wrapped(fields.get("password"))
        user.groups = [
            get_or_create_group(name) for name in _names(fields.get("groups", []), groups, "name")
        ]
        for group_ref in fields.get("groups", []):
            group_fields = groups.get(group_ref) if isinstance(group_ref, int | str) else None
            if group_fields:
                group = get_or_create_group(group_fields["name"])
                group.permissions = [
                    get_or_create_permission(code)
                    for code in _codes(group_fields.get("permissions", []), permissions)
                ]
        user.permissions = [
            get_or_create_permission(code)
            for code in _codes(fields.get("user_permissions", []), permissions)
        ]
        db.session.flush()
        if created:
            report.created.append(phone)
        elif _snapshot(user) != before:
            report.updated.append(phone)
        else:
            report.unchanged.append(phone)
    record_event("users.imported", actor=actor, **report.as_dict())
    db.session.flush()
    return report


def _wrapped(password: Any) -> str | None:
    """The stored form of a Django password field; None for an unusable ("!…") password
    and any format other than pbkdf2_sha256."""
    if not isinstance(password, str):
        return None
    return passwords().wrap(password)


def _imported_since(user: User, fields: dict[str, Any]) -> bool:
    """Whether the user still has an imported hash, other than the one in ``fields`` (the
    password changed in the Django service since the last import)."""
    stored, password = user.password_hash, fields.get("password")
    if stored is None or not stored.startswith(WRAPPED_PBKDF2):
        return False
    return not isinstance(password, str) or not passwords().is_wrapped(stored, password)


def _phone_of(fields: dict[str, Any]) -> str:
    for name in PHONE_FIELDS:
        value = fields.get(name)
        if isinstance(value, str) and value.strip():
            return normalize_phone(value, settings().default_region)
    raise InvalidPhoneNumber("no phone number")


def _names(refs: list[Any], known: dict[Any, dict], key: str) -> list[str]:
    """Group references: primary keys (resolved in the file) or natural keys."""
    names = []
    for ref in refs:
        if isinstance(ref, list) and ref:
            names.append(str(ref[0]))
        elif isinstance(ref, str):
            names.append(ref)
        elif ref in known:
            names.append(str(known[ref][key]))
    return names


def _codes(refs: list[Any], known: dict[Any, str]) -> list[str]:
    """Permission references: primary keys or natural keys ``[codename, app, model]``."""
    codes = []
    for ref in refs:
        if isinstance(ref, list) and ref:
            codes.append(str(ref[0]))
        elif ref in known:
            codes.append(known[ref])
    return codes


def _snapshot(user: User) -> tuple:
    return (
        *(getattr(user, name) for name in COPIED_FIELDS),
        user.username,
        user.password_hash,
        tuple(sorted(g.name for g in user.groups)) if user.groups else (),
        tuple(sorted(p.codename for p in user.permissions)) if user.permissions else (),
    )
