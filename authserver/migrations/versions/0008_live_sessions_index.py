"""live sessions index

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 15:40:00.000000

``ix_sessions_user_id_live``: a user's sessions not yet revoked. Every sign-in counts
them against AUTHSERVER_MAX_SESSIONS_PER_USER; through ``ix_sessions_user_id`` it read
every session the account ever had.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        'ix_sessions_user_id_live',
        'sessions',
        ['user_id'],
        unique=False,
        postgresql_where=sa.text('revoked_at IS NULL'),
        sqlite_where=sa.text('revoked_at IS NULL'),
    )


def downgrade():
    op.drop_index('ix_sessions_user_id_live', table_name='sessions')
