"""authserver: a small, standards-exact OAuth 2 authorization server."""

from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from authserver.config import Settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings.database_url),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_url,
        RATELIMIT_HEADERS_ENABLED=False,
        SECRET_KEY=settings.secret_key,
        DEBUG=settings.debug,
        TESTING=settings.env == "testing",
    )
    # Authlib logs whole token responses at DEBUG: never let secrets reach a log.
    logging.getLogger("authlib").setLevel(logging.INFO)

    from authserver.accounts.passwords import Passwords
    from authserver.errors import register_error_handlers
    from authserver.extensions import db, limiter, migrate, render_item
    from authserver.signing.keyring import KeyRing

    app.extensions["authserver.settings"] = settings
    app.extensions["authserver.passwords"] = Passwords(
        settings.argon2_time_cost, settings.argon2_memory_cost, settings.argon2_parallelism
    )
    app.extensions["authserver.keyring"] = KeyRing(
        settings.key_encryption_key,
        settings.key_cache_seconds,
        retired_window=settings.access_token_ttl + settings.clock_skew,
    )
    db.init_app(app)
    migrate.init_app(
        app, db, directory=str(_migrations_dir()), render_item=render_item, compare_type=True
    )
    limiter.init_app(app)
    register_error_handlers(app)

    from authserver import audit  # noqa: F401  (model registration)
    from authserver.cli import register_cli
    from authserver.oauth.grants import GRANT_TYPES
    from authserver.oauth.server import create_authorization_server
    from authserver.oauth.views import bp as oauth_bp
    from authserver.signing.views import bp as signing_bp

    app.extensions["authserver.oauth"] = create_authorization_server(app)
    app.extensions["authserver.grant_types"] = list(GRANT_TYPES)
    app.register_blueprint(oauth_bp)
    app.register_blueprint(signing_bp)
    register_cli(app)

    if settings.trusted_proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=settings.trusted_proxies,
            x_proto=settings.trusted_proxies,
            x_host=settings.trusted_proxies,
        )
    return app


def _engine_options(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 15}}
    # Pre-ping so a restarted database costs one failed request at most, not a stale pool.
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5, "pool_recycle": 1800}


def _migrations_dir():
    from authserver.config import PROJECT_ROOT

    return PROJECT_ROOT / "migrations"
