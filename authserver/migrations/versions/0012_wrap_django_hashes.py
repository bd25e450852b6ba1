"""wrap imported Django password hashes in argon2id

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 15:30:00.000000

Every ``pbkdf2_sha256$<n>$<salt>$<digest>`` password hash (users imported from the
Django services who have not signed in since) becomes
``argon2id+pbkdf2_sha256$<n>$<salt>$<argon2id of digest>``: argon2id at rest, and a
check that costs what every other failed check costs (authserver/accounts/passwords.py,
which this format must match). The user's first sign-in replaces it with a plain
argon2id hash, as before.

Not undone: the Django digest cannot be recovered from its argon2id hash. After a
downgrade those users sign in by SMS code or reset their password.
"""
from alembic import op
import sqlalchemy as sa
from argon2 import PasswordHasher, Type


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

DJANGO_PBKDF2 = 'pbkdf2_sha256$'
WRAPPED_PBKDF2 = 'argon2id+pbkdf2_sha256$'
# OWASP's minimum, the server's default; a hash made with other parameters is replaced
# by the server's own at the next sign-in anyway.
HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)


def upgrade():
    users = sa.table('users', sa.column('id', sa.Uuid()), sa.column('password_hash', sa.String))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(users.c.id, users.c.password_hash).where(
            users.c.password_hash.startswith(DJANGO_PBKDF2)
        )
    ).all()
    for user_id, stored in rows:
        parts = stored[len(DJANGO_PBKDF2):].split('$', 2)
        if len(parts) == 3 and parts[0].isdigit() and all(parts):
            iterations, salt, digest = parts
            wrapped = f'{WRAPPED_PBKDF2}{int(iterations)}${salt}${HASHER.hash(digest)}'
        else:
            wrapped = None  # unusable as it was: the user resets the password
        connection.execute(
            users.update().where(users.c.id == user_id).values(password_hash=wrapped)
        )


def downgrade():
    pass
