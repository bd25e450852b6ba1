"""browser sign-in: authorization codes, consents, browser sessions, redirect URIs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 12:00:48.988680

Authorization codes (keyed hashes, bound to client, redirect URI, PKCE challenge and
the browser session), consents per user and client, the clients' registered redirect
and post-logout redirect URIs, and browser sessions: rows of ``sessions`` without a
client, which the sessions opened from their codes name (``browser_session_id``).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('consents',
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=1000), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'], name=op.f('fk_consents_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_consents_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'client_id', name=op.f('pk_consents'))
    )
    op.create_table('authorization_codes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('code_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Uuid(), nullable=False),
    sa.Column('browser_session_id', sa.Uuid(), nullable=True),
    sa.Column('redirect_uri', sa.String(length=2000), nullable=True),
    sa.Column('scope', sa.String(length=1000), nullable=False),
    sa.Column('nonce', sa.String(length=255), nullable=True),
    sa.Column('code_challenge', sa.String(length=128), nullable=False),
    sa.Column('code_challenge_method', sa.String(length=8), nullable=False),
    sa.Column('auth_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('amr', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('session_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['browser_session_id'], ['sessions.id'], name=op.f('fk_authorization_codes_browser_session_id_sessions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['client_id'], ['clients.client_id'], name=op.f('fk_authorization_codes_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_authorization_codes_session_id_sessions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_authorization_codes_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_authorization_codes')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_authorization_codes_code_hash'))
    )
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_authorization_codes_browser_session_id'), ['browser_session_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_authorization_codes_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_authorization_codes_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('redirect_uris', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('post_logout_redirect_uris', sa.Text(), server_default='', nullable=False))

    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('browser_session_id', sa.Uuid(), nullable=True))
        batch_op.alter_column('client_id',
               existing_type=sa.VARCHAR(length=64),
               nullable=True)
        batch_op.create_index(batch_op.f('ix_sessions_browser_session_id'), ['browser_session_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_sessions_browser_session_id_sessions'), 'sessions', ['browser_session_id'], ['id'], ondelete='CASCADE')



def downgrade():
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_authorization_codes_user_id'))
        batch_op.drop_index(batch_op.f('ix_authorization_codes_expires_at'))
        batch_op.drop_index(batch_op.f('ix_authorization_codes_browser_session_id'))

    op.drop_table('authorization_codes')
    op.drop_table('consents')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_sessions_browser_session_id_sessions'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_sessions_browser_session_id'))
        batch_op.drop_column('browser_session_id')
    # Browser sessions have no client: they cannot exist in the older schema.
    op.execute("DELETE FROM sessions WHERE client_id IS NULL")
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.alter_column('client_id',
               existing_type=sa.VARCHAR(length=64),
               nullable=False)

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('post_logout_redirect_uris')
        batch_op.drop_column('redirect_uris')
