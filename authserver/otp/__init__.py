"""Phone one-time codes: SMS sign-in, sign-up by phone and password reset (docs/otp.md);
the budgets that keep the SMS account from being spent by someone else are in
``authserver.limits``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from authserver.context import SMS_SENDER, settings

if TYPE_CHECKING:
    from flask import Flask

OTP_GRANT_TYPE = "urn:authserver:params:oauth:grant-type:otp"


def init_app(app: Flask) -> None:
    """Register the tables, the SMS sender and the views."""
    # Here, not at the top: other packages load this one for its services; its views,
    # and what they import, load only when the app is built (else an import cycle).
    from authserver.otp import models  # noqa: F401  (model registration)
    from authserver.otp.sms import sender_from_settings
    from authserver.otp.views import bp

    config = settings(app)
    app.extensions[SMS_SENDER] = sender_from_settings(config)
    app.register_blueprint(bp)
