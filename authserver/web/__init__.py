"""The hosted pages: where a person signs in (password or SMS code), signs up, resets a
password, allows an app, and signs out; and the authorization and logout endpoints that
lead there.

Invariants, for every page: served only from this server (no external asset, no
script: it works without JavaScript); ``Content-Security-Policy`` with
``frame-ancestors 'none'`` and ``X-Frame-Options: DENY`` (no clickjacking); never
cached; every form carries a CSRF token checked before anything else; the language is
English or Persian (right to left), chosen by ``lang``, the request's ``ui_locales``,
then ``Accept-Language``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from authserver.context import settings

if TYPE_CHECKING:
    from flask import Flask, Request

TRANSLATIONS = Path(__file__).resolve().parent / "translations"


class CookieSessionOnlyWhenSent(SecureCookieSessionInterface):
    """Flask's signed cookie session, opened only when the request sends the cookie.

    Flask opens the session for every request and builds its signing serializer each
    time (~10% of an API request's CPU), though API requests carry no cookie at all. For
    those, the empty session Flask would give them, without the serializer; it is
    saved as Flask would."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if app.secret_key and "HTTP_COOKIE" not in request.environ:
            return self.session_class()
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    # Here, not at the top: other packages load this one for its services; its views,
    # and what they import, load only when the app is built (else an import cycle).
    from flask_babel import Babel

    from authserver.authorize.flow import TICKET_MAX_AGE
    from authserver.web.i18n import select_locale
    from authserver.web.security import csrf
    from authserver.web.views import bp

    config = settings(app)
    secure = config.env == "production" or config.issuer.startswith("https://")
    app.config.update(
        # The signed session cookie names the browser session (authorize/
        # browser_sessions.py) and holds the CSRF secret. "__Host-": only this host,
        # only over TLS, path /.
        SESSION_COOKIE_NAME="__Host-authserver" if secure else "authserver",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=secure,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=config.browser_session_max_ttl),
        SESSION_REFRESH_EACH_REQUEST=False,
        # Checked by the views that take forms, not before every request (the OAuth
        # endpoints take form posts from apps, which carry no CSRF token).
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=TICKET_MAX_AGE,
        BABEL_DEFAULT_LOCALE="en",
        BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS),
    )
    app.session_interface = CookieSessionOnlyWhenSent()
    csrf.init_app(app)
    Babel(app, locale_selector=select_locale)
    app.register_blueprint(bp)
