"""a rotated refresh token's successor, sealed

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 15:40:00.000000

``refresh_tokens.sealed_value``: the token's own value, AES-GCM sealed under a key derived
from its parent token (authserver/oauth/sessions.py). Within the grace window the client
presenting the parent again gets this same token back; the database alone cannot open it.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sealed_value', sa.LargeBinary(length=128), nullable=True))


def downgrade():
    with op.batch_alter_table('refresh_tokens', schema=None) as batch_op:
        batch_op.drop_column('sealed_value')
