"""default groups: "Regular User", and "Admin User" holding authserver.admin

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 05:25:00

A data migration: plain SQL on table definitions written here (never the app's models,
which will have moved on by the time this runs again). Idempotent: a row that exists
already is left alone, so it is safe on a database where an operator (or
`authserver users create --admin`) created them first.
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

ADMIN_GROUP = "Admin User"
REGULAR_GROUP = "Regular User"
ADMIN_PERMISSION = "authserver.admin"

groups = sa.table("groups", sa.column("id", sa.Integer), sa.column("name", sa.String))
permissions = sa.table(
    "permissions",
    sa.column("id", sa.Integer),
    sa.column("codename", sa.String),
    sa.column("name", sa.String),
)
group_permissions = sa.table(
    "group_permissions",
    sa.column("group_id", sa.Integer),
    sa.column("permission_id", sa.Integer),
)


def _id(connection, table, column, value):
    return connection.execute(sa.select(table.c.id).where(table.c[column] == value)).scalar()


def upgrade():
    connection = op.get_bind()
    for name in (REGULAR_GROUP, ADMIN_GROUP):
        if _id(connection, groups, "name", name) is None:
            op.bulk_insert(groups, [{"name": name}])
    if _id(connection, permissions, "codename", ADMIN_PERMISSION) is None:
        op.bulk_insert(
            permissions, [{"codename": ADMIN_PERMISSION, "name": "Administer authserver"}]
        )
    group_id = _id(connection, groups, "name", ADMIN_GROUP)
    permission_id = _id(connection, permissions, "codename", ADMIN_PERMISSION)
    linked = connection.execute(
        sa.select(group_permissions.c.group_id).where(
            group_permissions.c.group_id == group_id,
            group_permissions.c.permission_id == permission_id,
        )
    ).first()
    if linked is None:
        op.bulk_insert(
            group_permissions, [{"group_id": group_id, "permission_id": permission_id}]
        )


def downgrade():
    # Left in place on purpose: by now users belong to these groups, and removing them
    # would silently take rights away. Going below 0001 drops the tables anyway.
    pass
