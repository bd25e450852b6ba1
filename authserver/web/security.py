"""Headers every page carries, and the CSRF protection of its forms (Flask-WTF).

The Content-Security-Policy allows nothing but this server's stylesheet and images: no
script at all, no frame may hold the page (``frame-ancestors 'none'``, and
``X-Frame-Options: DENY`` for older browsers), forms post only here and to the waiting
app's redirect URI (browsers apply ``form-action`` to the redirect that follows a post).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, g
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()


def allow_form_target(uri: str | None) -> None:
    """Let this page's forms end at ``uri`` (the app's redirect URI)."""
    if not uri:
        return
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and parts.netloc:
        source = f"{parts.scheme}://{parts.netloc}"
    elif parts.scheme:
        source = f"{parts.scheme}:"
    else:
        return
    if all(char not in source for char in " ;,'\""):
        g.form_targets = [*getattr(g, "form_targets", []), source]


def page_headers(response: Response) -> Response:
    targets = " ".join(["'self'", *getattr(g, "form_targets", [])])
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self'; "
        f"form-action {targets}; frame-ancestors 'none'; base-uri 'none'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Same-origin only: the ticket in a page's URL never leaves this server, and
    # Flask-WTF can still check the Referer of a form posted over HTTPS.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if response.mimetype == "text/html" or response.status_code in (302, 303):
        response.headers["Cache-Control"] = "no-store"
    return response
