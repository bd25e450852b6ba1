"""Phone one-time codes: SMS sign-in, sign-up by phone and password reset (docs/otp.md);
the budgets that keep the SMS account from being spent by someone else are in
``authserver.limits``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

OTP_GRANT_TYPE = "urn:authserver:params:oauth:grant-type:otp"


def init_app(app: Flask) -> None:
    """Register the tables, the SMS sender and the views."""
    from authserver.otp import models  # noqa: F401  (model registration)
    from authserver.otp.sms import sender_from_settings
    from authserver.otp.views import bp

    settings = app.extensions["authserver.settings"]
    app.extensions["authserver.sms"] = sender_from_settings(settings)
    app.register_blueprint(bp)
