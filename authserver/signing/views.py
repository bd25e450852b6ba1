from __future__ import annotations

from flask import Blueprint, Response, request

from authserver.context import keyring, settings

bp = Blueprint("signing", __name__)


@bp.get("/.well-known/jwks.json")
def jwks() -> Response:
    """The public signing keys, pre-encoded; cache-friendly with ETag and 304."""
    snap = keyring().snapshot()
    headers = {
        "Cache-Control": f"public, max-age={settings().jwks_max_age}",
        "ETag": f'"{snap.etag}"',
    }
    if request.if_none_match.contains_weak(snap.etag):
        return Response(status=304, headers=headers)
    return Response(snap.jwks_body, mimetype="application/json", headers=headers)
