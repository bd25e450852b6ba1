"""Abuse limits: counted budgets (SMS sends, failed password logins) and plain per-client or
per-address request rates (Flask-Limiter). docs/limits.md lists every limit.

Dependency direction: ``otp``, ``oauth``, ``accounts`` and the views import from here;
nothing here imports them (only ``accounts.phones``, a leaf, to key counters by phone).
Every counter lives in AUTHSERVER_RATELIMIT_STORAGE_URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from authserver.context import BUDGETS, settings
from authserver.limits.budgets import Budget, Budgets, LimiterUnavailable
from authserver.limits.rates import init_rates, limiter

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["Budget", "Budgets", "LimiterUnavailable", "init_app", "limiter"]


def init_app(app: Flask) -> None:
    """The app's own budget storage and the Flask-Limiter extension."""
    config = settings(app)
    app.extensions[BUDGETS] = Budgets.from_url(config.ratelimit_storage_url)
    init_rates(app)
