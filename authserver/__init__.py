"""authserver: a small, standards-exact OAuth 2 authorization server.

Importing the package loads nothing but its version: ``authserver --help`` and
``authserver.resource`` in a downstream service must not pay for Flask, SQLAlchemy or
the configuration. ``create_app`` builds the whole server (what ``authserver serve``
and any WSGI server run); ``create_core_app`` only what the command line needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from authserver.config import Settings

# The one place the version is written: the wheel's metadata (pyproject.toml reads it)
# and `authserver --version` come from here. Releases: CHANGELOG.md.
__version__ = "0.2.0.dev0"

__all__ = ["__version__", "create_app", "create_core_app", "init_migrations"]


def create_core_app(settings: Settings | None = None) -> Flask:
    """The app without its HTTP side: settings, logging and the database; no routes, no
    Authlib server, no OpenAPI document, no migrations (``init_migrations``), and only
    the models its caller imports. The command line works in it, so ``authserver keys
    list`` pays for none of the rest. It does not open the signing keys: commands that
    write keys check the key-encryption key themselves (``create_app`` does at start)."""
    # Imported here, not at the top: importing the package must stay free (see above).
    from authserver.config import Settings
    from authserver.logs import configure_logging
    from authserver.transactions import App

    settings = settings or Settings.from_env()
    app = App(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings.database_url),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_url,
        RATELIMIT_HEADERS_ENABLED=False,
        # Rate-limit storage unreachable: Flask-Limiter limits fall back to per-process
        # memory instead of failing every limited request (docs/operating.md).
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
        SECRET_KEY=settings.secret_key,
        DEBUG=settings.debug,
        TESTING=settings.env == "testing",
    )
    # JSON lines on stderr; Authlib, SQLAlchemy and Werkzeug pinned where they would print
    # secrets (authserver/logs.py).
    configure_logging(settings.log_level)

    # As above: only when an app is built.
    from authserver import context
    from authserver.accounts.passwords import Passwords
    from authserver.extensions import db, ping_idle_connections
    from authserver.signing.keyring import KeyRing

    app.extensions[context.SETTINGS] = settings
    app.extensions[context.PASSWORDS] = Passwords(
        settings.argon2_time_cost, settings.argon2_memory_cost, settings.argon2_parallelism
    )
    app.extensions[context.KEYRING] = KeyRing.from_settings(settings)
    db.init_app(app)
    with app.app_context():
        ping_idle_connections(db.engine)
    return app


def create_app(settings: Settings | None = None) -> Flask:
    """The whole server: the core app (``create_core_app``) and every route."""
    # Imported here, not at the top: importing the package must stay free (see above).
    from werkzeug.middleware.proxy_fix import ProxyFix

    from authserver import context
    from authserver.accounts.views import bp as account_bp
    from authserver.admin.views import bp as admin_bp
    from authserver.audiences import init_app as init_audiences
    from authserver.authorize import init_app as init_authorize
    from authserver.compat.views import bp as compat_bp
    from authserver.docs_ui import bp as docs_bp
    from authserver.errors import register_error_handlers
    from authserver.framing import KeepFraming
    from authserver.guard import init_app as init_guard
    from authserver.limits import init_app as init_limits
    from authserver.oauth.grants import GRANT_TYPES
    from authserver.oauth.server import create_authorization_server
    from authserver.oauth.views import bp as oauth_bp
    from authserver.openapi import init_app as init_openapi
    from authserver.ops import init_app as init_ops
    from authserver.otp import init_app as init_otp
    from authserver.signing.keyring import check_key_encryption_key
    from authserver.signing.views import bp as signing_bp
    from authserver.web import init_app as init_web

    app = create_core_app(settings)
    settings = context.settings(app)
    init_migrations(app)  # /readyz compares the database with the migrations' heads
    init_limits(app)  # budgets and request rates, before any view declares a limit
    register_error_handlers(app)
    init_guard(app)  # malformed values are a 400 before any view sees them

    app.extensions[context.AUTHORIZATION_SERVER] = create_authorization_server(app)
    app.extensions[context.GRANT_TYPES] = list(GRANT_TYPES)
    init_authorize(app)  # the code grant, OpenID Connect, /.well-known/openid-configuration
    init_web(app)  # /oauth/authorize, /oauth/logout and the hosted sign-in pages
    app.register_blueprint(oauth_bp)
    app.register_blueprint(signing_bp)
    app.register_blueprint(compat_bp)
    app.register_blueprint(account_bp)  # /account/...: self-service with a user's token
    app.register_blueprint(admin_bp)  # /admin/...: users, groups, clients, keys, audit
    init_otp(app)  # its tables, SMS sender, budgets and endpoints
    init_audiences(app)  # registered audiences, encrypted tokens, /admin/audiences
    init_ops(app)  # /healthz, /readyz, /metrics, request ids and the access log line
    init_openapi(app)  # /openapi.json, built from every route on first request
    app.register_blueprint(docs_bp)  # /docs: the document for a person

    check_key_encryption_key(app)  # a wrong key-encryption key stops the start, not a request

    # An answer given before the body was read keeps the connection usable (framing.py).
    app.wsgi_app = KeepFraming(app.wsgi_app)  # type: ignore[method-assign]

    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=settings.trusted_proxies,
            x_proto=settings.trusted_proxies,
            x_host=settings.trusted_proxies,
        )
    return app


def init_migrations(app: Flask) -> None:
    """Flask-Migrate (Alembic) over the migrations shipped in the package: what
    ``authserver db ...`` and ``/readyz`` need. Not in the core app: Alembic alone costs
    more to import than ``authserver keys list`` may take."""
    # Imported here, not at the top: importing the package must stay free (see above).
    from flask_migrate import Migrate

    from authserver import models  # noqa: F401  (autogenerate compares every table)
    from authserver.extensions import db, render_item

    Migrate(app, db, directory=str(_migrations_dir()), render_item=render_item, compare_type=True)


def _engine_options(url: str) -> dict:
    # Statement parameters hold token hashes and password hashes: keep them out of error
    # messages and logs.
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 15}, "hide_parameters": True}
    # No pre-ping on every checkout (a round trip per request, ~10% of a token request):
    # extensions.ping_idle_connections pings only connections idle long enough to have
    # outlived a database restart. A connect timeout so an unreachable host fails a
    # request fast instead of hanging a worker until the server kills it.
    return {
        "pool_size": 5,
        "max_overflow": 5,
        "pool_recycle": 1800,
        "hide_parameters": True,
        "connect_args": {"connect_timeout": 3} if url.startswith("postgresql") else {},
    }


def _migrations_dir() -> Path:
    # Inside the package, so an installed wheel migrates as a checkout does.
    return Path(__file__).resolve().parent / "migrations"
