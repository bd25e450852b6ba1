"""revocation generation

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 15:30:00.000000

``revocation_state``: one row whose ``generation`` the database itself bumps, in the
same transaction, whenever an access token may stop standing: a session revoked,
expired early or deleted; a user deactivated, blocked or deleted; a client deactivated
or deleted; a ``jti`` revoked. Each process reads the number instead of querying per
token (authserver/oauth/revocation.py). Triggers, so that no code path can forget.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

BUMP = "UPDATE revocation_state SET generation = generation + 1 WHERE id = 1"
# (trigger name, table, event): what can end an access token.
TRIGGERS = [
    ("sessions_end_revocation", "sessions", "UPDATE OF revoked_at, expires_at"),
    ("sessions_delete_revocation", "sessions", "DELETE"),
    ("users_disable_revocation", "users", "UPDATE OF is_active, is_blocked"),
    ("users_delete_revocation", "users", "DELETE"),
    ("clients_disable_revocation", "clients", "UPDATE OF is_active"),
    ("clients_delete_revocation", "clients", "DELETE"),
    ("revoked_jti_revocation", "revoked_access_tokens", "INSERT"),
]


def upgrade():
    op.create_table('revocation_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('generation', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_revocation_state'))
    )
    op.execute("INSERT INTO revocation_state (id, generation) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION bump_revocation_generation() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for name, table, when in TRIGGERS:
            # Once per statement: revoking all of a user's sessions bumps once.
            op.execute(
                f"CREATE TRIGGER {name} AFTER {when} ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION bump_revocation_generation()"
            )
    else:
        for name, table, when in TRIGGERS:
            op.execute(f"CREATE TRIGGER {name} AFTER {when} ON {table} BEGIN {BUMP}; END")


def downgrade():
    for name, table, _ in TRIGGERS:
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS bump_revocation_generation()")
    op.drop_table('revocation_state')
