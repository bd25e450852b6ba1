"""Registered audiences (resource servers) and the encrypted access tokens issued to
those that registered an encryption key (docs/encrypted-tokens.md).

A client asks for an audience with the RFC 8707 ``resource`` parameter at the token
endpoint. Audiences with an active encryption key get a nested JWT: the signed RFC 9068
token, encrypted to that key (JWE, ``cty: JWT``). Authserver cannot decrypt it (it holds
only the public key), so it keeps what introspection and revocation need, keyed by the
token's keyed hash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask


def init_app(app: Flask) -> None:
    """Register the tables and the admin endpoints (``/admin/audiences``)."""
    # Here, not at the top: other packages load this one for its services; its views,
    # and what they import, load only when the app is built (else an import cycle).
    from authserver.audiences import models  # noqa: F401  (model registration)
    from authserver.audiences.views import bp

    app.register_blueprint(bp)
