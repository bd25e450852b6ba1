"""Users with groups and permissions, as the seed Django services had them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, ForeignKey, String, Table, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from authserver.extensions import UTCDateTime, db, utcnow

group_permissions = Table(
    "group_permissions",
    db.metadata,
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("permission_id", ForeignKey("permissions.id", ondelete="CASCADE"), primary_key=True),
)
user_groups = Table(
    "user_groups",
    db.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)
user_permissions = Table(
    "user_permissions",
    db.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("permission_id", ForeignKey("permissions.id", ondelete="CASCADE"), primary_key=True),
)


class Permission(db.Model):
    __tablename__ = "permissions"

    id: Mapped[int] = mapped_column(primary_key=True)
    codename: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(255), default="")


class Group(db.Model):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(150), unique=True)
    permissions: Mapped[list[Permission]] = relationship(
        secondary=group_permissions, lazy="selectin", order_by=Permission.codename
    )


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    phone: Mapped[str] = mapped_column(String(16), unique=True)  # E.164
    username: Mapped[str] = mapped_column(String(150), unique=True)
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    first_name: Mapped[str] = mapped_column(String(150), default="")
    last_name: Mapped[str] = mapped_column(String(150), default="")
    account_type: Mapped[str] = mapped_column(String(32), default="regular")
    is_active: Mapped[bool] = mapped_column(default=True)
    is_blocked: Mapped[bool] = mapped_column(default=False)
    # None for an account that signed up by SMS code and never set a password.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # Loaded when read, not with every user: signing a token needs only names, which
    # accounts.services.groups_and_entitlements reads in one query; lists of users ask
    # for them explicitly (admin.services.user_search).
    groups: Mapped[list[Group]] = relationship(secondary=user_groups, order_by=Group.name)
    permissions: Mapped[list[Permission]] = relationship(
        secondary=user_permissions, order_by=Permission.codename
    )

    @property
    def can_sign_in(self) -> bool:
        return self.is_active and not self.is_blocked

    def group_names(self) -> list[str]:
        return sorted(group.name for group in self.groups)

    def entitlements(self) -> list[str]:
        """Permission codenames held directly or through any group."""
        codes = {p.codename for p in self.permissions}
        for group in self.groups:
            codes.update(p.codename for p in group.permissions)
        return sorted(codes)
