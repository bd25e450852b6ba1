"""first-party clients

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 12:00:00.000000

Clients registered as the platform's own apps (``clients.first_party``): only they may
be given the scopes of authserver's own APIs, and they skip the consent screen. The seed
endpoints' client is one.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('first_party', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.execute(
        "UPDATE clients SET first_party = true WHERE client_id = 'first-party-app'"
    )


def downgrade():
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('first_party')
