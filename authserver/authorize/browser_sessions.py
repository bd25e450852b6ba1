"""The browser session: who is signed in to the hosted pages, for single sign-on.

It is a row of ``sessions`` without a client (listed and ended with the user's other
sessions in ``/account/sessions``), named by the signed session cookie (Flask's,
configured in authserver/web: ``HttpOnly``, ``SameSite=Lax``, ``Secure`` in production,
``__Host-`` prefixed when secure). The cookie only names the row: the row decides. It is
live while not ended, within AUTHSERVER_BROWSER_SESSION_MAX_TTL of the sign-in and
AUTHSERVER_BROWSER_SESSION_IDLE_TTL of its last use, and while its user may sign in.

Signing in clears the cookie's contents first (no fixation: a session id or CSRF token
planted before sign-in does not survive it). Signing in again as the same user renews
the session in place (new ``auth_time`` and ``amr``), so the apps' sessions opened from
it live on; another user's sign-in ends the previous user's browser session, as does
signing out, and ending a browser session ends the app sessions opened from it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from flask import session as cookie

from authserver.accounts.models import User
from authserver.audit import record_event
from authserver.context import settings
from authserver.extensions import db, utcnow
from authserver.net import client_ip, user_agent
from authserver.oauth.models import AuthSession
from authserver.oauth.sessions import Device, revoke_session, start_session

COOKIE_SID = "sid"
# What a sign-in keeps of the cookie: the language the person chose, nothing else.
KEPT_ACROSS_SIGN_IN = ("lang",)
# The idle clock is moved at most this often: not a write on every page view.
TOUCH_EVERY = timedelta(seconds=60)


def current_browser_session() -> AuthSession | None:
    """The live browser session this request's cookie names, or None (and the cookie
    forgets a session that is over)."""
    raw = cookie.get(COOKIE_SID)
    if not raw:
        return None
    try:
        sid = uuid.UUID(str(raw))
    except ValueError:
        sid = None
    row = db.session.get(AuthSession, sid) if sid else None
    now = utcnow()
    idle = timedelta(seconds=settings().browser_session_idle_ttl)
    if (
        row is None
        or row.client_id is not None
        or not row.is_live(now)
        or row.last_used_at <= now - idle
        or not row.user.can_sign_in
    ):
        cookie.pop(COOKIE_SID, None)
        return None
    if now - row.last_used_at >= TOUCH_EVERY:
        row.last_used_at = now  # committed with the request's other changes
    return row


def sign_in_browser(user: User, amr: list[str]) -> AuthSession:
    """Start (or renew) the browser session of ``user``; the caller commits."""
    current = current_browser_session()
    now = utcnow()
    kept = {key: cookie[key] for key in KEPT_ACROSS_SIGN_IN if key in cookie}
    cookie.clear()
    cookie.update(kept)
    if current is not None and current.user_id == user.id:
        current.created_at = now
        current.last_used_at = now
        current.amr = " ".join(amr)
        current.expires_at = now + timedelta(seconds=settings().browser_session_max_ttl)
        current.ip_address, current.user_agent = client_ip(), user_agent()
        row = current
    else:
        if current is not None:
            end_browser_session(current, reason="another_user_signed_in")
        row = start_session(
            user, None, "", amr, Device(ip_address=client_ip(), user_agent=user_agent())
        )
    record_event("login", user_id=user.id, session_id=str(row.id), amr=amr, browser=True)
    cookie[COOKIE_SID] = str(row.id)
    cookie.permanent = True  # lasts as long as the session may, then the row decides
    return row


def end_browser_session(row: AuthSession, *, reason: str = "logout") -> None:
    """End ``row`` (and the app sessions opened from it); the caller commits."""
    if revoke_session(row, reason=reason):
        record_event(
            "logout", user_id=row.user_id, session_id=str(row.id), reason=reason, browser=True
        )


def sign_out_browser() -> AuthSession | None:
    """End this browser's session, if any, and empty its cookie; the caller commits."""
    current = current_browser_session()
    if current is not None:
        end_browser_session(current)
    cookie.clear()
    return current
