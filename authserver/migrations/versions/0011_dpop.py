"""DPoP-bound sessions

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 16:50:00.000000

``sessions.dpop_jkt``: the thumbprint of the DPoP key a public client's refresh tokens
are bound to (RFC 9449 §5, authserver/oauth/dpop.py); NULL when they are not bound.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dpop_jkt', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_column('dpop_jkt')
