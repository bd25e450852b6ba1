"""The migrations build exactly the schema the models describe, on an empty PostgreSQL
database (and on SQLite), and can be undone and redone."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import flask_migrate
import psycopg2
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from authserver import create_app
from tests.conftest import PASSWORD, django_pbkdf2, make_settings


@pytest.fixture
def empty_postgres(pg_url) -> Iterator[str]:
    """A database of its own on the suite's PostgreSQL server, dropped afterwards."""
    url = make_url(pg_url)
    name = f"migrations_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(
        host=url.host, port=url.port, user=url.username, password=url.password, dbname="postgres"
    )
    admin.autocommit = True
    try:
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


@pytest.fixture
def empty_sqlite(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'migrations.db'}"


def schema_differences(app) -> list:
    """What `authserver db migrate` would write: nothing, if migrations match the models."""
    from authserver.extensions import db, render_item

    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "render_item": render_item}
        )
        return compare_metadata(context, db.metadata)


def table_names(app) -> set[str]:
    from authserver.extensions import db

    return set(inspect(db.engine).get_table_names())


@pytest.mark.parametrize("database", ["empty_postgres", "empty_sqlite"])
def test_upgrade_gives_exactly_the_models_schema(request, tmp_path, database):
    url = request.getfixturevalue(database)
    app = create_app(make_settings(url, tmp_path / "keys"))
    with app.app_context():
        from authserver.extensions import db

        try:
            assert table_names(app) == set()
            # The comparison does see a missing schema, so an empty answer below means it.
            assert len(schema_differences(app)) >= len(db.metadata.tables)
            flask_migrate.upgrade()
            model_tables = {table.name for table in db.metadata.sorted_tables}
            assert table_names(app) == model_tables | {"alembic_version"}
            assert schema_differences(app) == []

            flask_migrate.downgrade(revision="base")
            assert table_names(app) == {"alembic_version"}

            flask_migrate.upgrade()
            assert schema_differences(app) == []
        finally:
            db.session.remove()
            db.engine.dispose()


def test_upgrade_is_idempotent(empty_postgres, tmp_path):
    app = create_app(make_settings(empty_postgres, tmp_path / "keys"))
    with app.app_context():
        from authserver.extensions import db

        try:
            flask_migrate.upgrade()
            flask_migrate.upgrade()  # `make run` upgrades on every start
            assert schema_differences(app) == []
        finally:
            db.engine.dispose()


@pytest.mark.parametrize("database", ["empty_postgres", "empty_sqlite"])
def test_0012_wraps_imported_django_hashes_that_still_sign_in(request, tmp_path, database):
    from authserver.extensions import db
    from authserver.oauth.clients import create_client
    from authserver.signing.services import ensure_active_key

    url = request.getfixturevalue(database)
    app = create_app(make_settings(url, tmp_path / "keys"))
    users = sa.table(
        "users",
        sa.column("id", sa.Uuid()),
        *(sa.column(name) for name in ("phone", "username", "first_name", "last_name")),
        *(sa.column(name) for name in ("account_type", "is_active", "is_blocked")),
        sa.column("password_hash"),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    rows = {
        "+33612000001": django_pbkdf2(PASSWORD, 1000, "seedsalt"),
        "+33612000002": "pbkdf2_sha256$1000$",  # broken: unusable after as before
    }
    try:
        with app.app_context():
            flask_migrate.upgrade(revision="0011")
            for phone, stored in rows.items():
                db.session.execute(
                    users.insert().values(
                        id=uuid.uuid4(), phone=phone, username=phone, first_name="",
                        last_name="", account_type="regular", is_active=True,
                        is_blocked=False, password_hash=stored, created_at=now, updated_at=now,
                    )
                )  # fmt: skip
            db.session.commit()
            flask_migrate.upgrade()

            def stored(phone: str) -> str | None:
                found = db.session.execute(
                    sa.select(users.c.password_hash).where(users.c.phone == phone)
                ).scalar_one()
                db.session.remove()
                return found

            wrapped = stored("+33612000001")
            assert wrapped.startswith("argon2id+pbkdf2_sha256$1000$seedsalt$$argon2id$")
            assert stored("+33612000002") is None
            ensure_active_key(actor="tests")
            client, secret = create_client(name="app", grant_types=["password"], actor="tests")
            db.session.commit()  # services flush; the caller commits
            auth = (client.client_id, secret)
        signed_in = app.test_client().post(
            "/oauth/token",
            data={"grant_type": "password", "username": "+33612000001", "password": PASSWORD},
            auth=auth,
        )
        assert signed_in.status_code == 200, signed_in.json
        with app.app_context():
            assert stored("+33612000001").startswith("$argon2id$")
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
