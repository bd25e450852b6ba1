"""Plain request rates with Flask-Limiter: limits are declared where they apply, counted in
AUTHSERVER_RATELIMIT_STORAGE_URL and keyed by the client address by default."""

from __future__ import annotations

from flask import Flask
from flask_limiter import Limiter

from authserver.net import client_ip

limiter = Limiter(key_func=client_ip, default_limits=[])


def init_rates(app: Flask) -> None:
    """Flask-Limiter, whose before-request hook runs only when a limit could apply there.

    The hook costs ~0.1 ms on every request (a quarter of the cheapest one's CPU) to
    find no limit on most routes. A limit declared with ``@limiter.limit`` is checked by
    its own decorator, not by the hook; the hook is needed only for default,
    application, meta and blueprint limits, so it is skipped while none of those is
    declared (looked up on every request: declaring one later turns it back on)."""
    limiter.init_app(app)
    hooks = app.before_request_funcs[None]
    check = hooks[hooks.index(limiter._check_request_limit)]
    manager = limiter.limit_manager

    def check_when_a_limit_can_apply() -> None:
        if (
            manager._default_limits
            or manager._application_limits
            or manager._blueprint_limits
            or limiter._meta_limits
        ):
            check()

    hooks[hooks.index(check)] = check_when_a_limit_can_apply
