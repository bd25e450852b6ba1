"""private_key_jwt clients and used JWT ids

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 16:30:00.000000

``clients.jwks``: the public keys of a client that authenticates with ``private_key_jwt``
(RFC 7523). ``used_jtis``: every client assertion's ``jti`` accepted, kept until the
assertion expires, so that no instance accepts it twice (authserver/oauth/replay.py).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('jwks', sa.Text(), nullable=True))
    op.create_table(
        'used_jtis',
        sa.Column('key_hash', sa.LargeBinary(length=32), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key_hash', name=op.f('pk_used_jtis')),
    )
    with op.batch_alter_table('used_jtis', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_used_jtis_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('used_jtis', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_used_jtis_expires_at'))
    op.drop_table('used_jtis')
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('jwks')
