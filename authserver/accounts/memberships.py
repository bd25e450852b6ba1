"""The groups and permissions a user holds: the one query behind the ``groups`` and
``entitlements`` claims, for a parameter or for a column of an outer statement (the
refresh rotation, authserver/oauth/sessions.py). Depends on the models only."""

from __future__ import annotations

from sqlalchemy import ColumnElement, CompoundSelect, literal_column, select, union_all

from authserver.accounts.models import (
    Group,
    Permission,
    group_permissions,
    user_groups,
    user_permissions,
)


def groups_and_permissions_of(user_id: ColumnElement) -> CompoundSelect:
    """Rows (kind, value) of the user's group names ("group") and every permission
    codename held directly or through a group ("permission"): what the ``groups`` and
    ``entitlements`` claims say. ``user_id``: a parameter, or a column of an outer query
    (the refresh rotation, authserver/oauth/sessions.py)."""
    return union_all(
        select(literal_column("'group'").label("kind"), Group.name.label("value"))
        .join(user_groups, user_groups.c.group_id == Group.id)
        .where(user_groups.c.user_id == user_id),
        select(literal_column("'permission'"), Permission.codename)
        .join(user_permissions, user_permissions.c.permission_id == Permission.id)
        .where(user_permissions.c.user_id == user_id),
        select(literal_column("'permission'"), Permission.codename)
        .join(group_permissions, group_permissions.c.permission_id == Permission.id)
        .join(user_groups, user_groups.c.group_id == group_permissions.c.group_id)
        .where(user_groups.c.user_id == user_id),
    )


def claims_of(rows) -> tuple[list[str], list[str]]:
    """(kind, value) rows as the sorted ``groups`` and ``entitlements`` claims."""
    groups, entitlements = set(), set()
    for kind, value in rows:
        (groups if kind == "group" else entitlements).add(value)
    return sorted(groups), sorted(entitlements)
