"""A downstream property service: it trusts authserver's access tokens and nothing else.

    GET  /properties        scope properties.read
    GET  /properties/<id>   scope properties.read
    PUT  /properties/<id>   the owner (token ``sub``), or a holder of the entitlement
                            ``properties.admin`` or of the group "Admin User"

Run it against a local authserver::

    PROPERTY_ISSUER=http://127.0.0.1:8000 PROPERTY_AUDIENCE=http://127.0.0.1:8000 \\
        .venv/bin/flask --app 'examples.property_service.app:from_environment()' run -p 8100

With encrypted access tokens (its audience registered at authserver with the public half
of its key), the service also gets its private key(s)::

    PROPERTY_AUDIENCE=https://properties.example.com \\
    PROPERTY_DECRYPTION_KEYS=keys/properties-2030.pem,keys/properties-2029.pem \\
    PROPERTY_REQUIRE_ENCRYPTION=true ...
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from flask import Flask, abort, jsonify, request
from werkzeug.exceptions import HTTPException

from authserver.resource import ResourceProtector, current_claims

ADMIN_ENTITLEMENT = "properties.admin"
ADMIN_GROUP = "Admin User"
EDITABLE = ("name", "address")


class PropertyStore:
    """In memory, as an example should be; a real service keeps its own database."""

    def __init__(self, properties: list[dict[str, Any]] | None = None) -> None:
        self._lock = threading.Lock()
        self._items = {str(item["id"]): dict(item) for item in properties or []}

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(item) for item in self._items.values()]

    def get(self, property_id: str) -> dict[str, Any] | None:
        with self._lock:
            item = self._items.get(property_id)
            return dict(item) if item else None

    def update(self, property_id: str, changes: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self._items[property_id].update(changes)
            return dict(self._items[property_id])


def create_app(
    issuer: str,
    audience: str,
    *,
    properties: list[dict[str, Any]] | None = None,
    protector: ResourceProtector | None = None,
    **protector_options: Any,
) -> Flask:
    """The service for tokens of ``issuer`` meant for ``audience``. ``properties`` are
    dicts with ``id``, ``name``, ``address`` and ``owner`` (a user id, the tokens' sub)."""
    app = Flask(__name__)
    protect = protector or ResourceProtector(issuer=issuer, audience=audience, **protector_options)
    store = PropertyStore(properties)
    app.extensions["property_store"] = store
    app.extensions["protector"] = protect

    @app.get("/properties")
    @protect("properties.read")
    def list_properties():
        return jsonify(properties=store.all())

    @app.get("/properties/<property_id>")
    @protect("properties.read")
    def show_property(property_id: str):
        return jsonify(_found(store, property_id))

    @app.put("/properties/<property_id>")
    @protect()
    def edit_property(property_id: str):
        item = _found(store, property_id)
        if not (item["owner"] == current_claims["sub"] or _is_admin(current_claims)):
            return _error(403, "forbidden", "Only the owner or an admin may edit this property.")
        changes = request.get_json(silent=True)
        if not isinstance(changes, dict) or not changes:
            return _error(400, "invalid_request", "Send a JSON object of fields to change.")
        unknown = set(changes) - set(EDITABLE)
        if unknown or not all(isinstance(v, str) and v.strip() for v in changes.values()):
            return _error(400, "invalid_request", f"Only {', '.join(EDITABLE)} may change.")
        return jsonify(store.update(property_id, changes))

    @app.errorhandler(404)
    @app.errorhandler(405)
    def http_error(error: HTTPException):
        # The token errors already answer in RFC 6750 JSON; make the others JSON too.
        return _error(error.code or 500, error.name.lower().replace(" ", "_"), error.description)

    return app


def _found(store: PropertyStore, property_id: str) -> dict[str, Any]:
    item = store.get(property_id)
    if item is None:
        abort(404, "No such property.")
    return item


def _is_admin(claims: dict[str, Any]) -> bool:
    return ADMIN_ENTITLEMENT in (claims.get("entitlements") or []) or ADMIN_GROUP in (
        claims.get("groups") or []
    )


def _error(status: int, error: str, description: str | None):
    response = jsonify(error=error, error_description=description)
    response.status_code = status
    return response


def read_private_keys(paths: str) -> list[Any]:
    """Private keys from comma-separated files, each a PEM or a private JWK (JSON). Give
    the current key and, after a replacement, the previous one until its tokens expire:
    each token names its key by ``kid``."""
    keys: list[Any] = []
    for path in filter(None, (part.strip() for part in paths.split(","))):
        text = Path(path).read_text()
        keys.append(json.loads(text) if text.lstrip().startswith("{") else text)
    return keys


def from_environment() -> Flask:
    """For ``flask --app 'examples.property_service.app:from_environment()' run``:
    PROPERTY_ISSUER, PROPERTY_AUDIENCE (default: the issuer, authserver's default
    audience), PROPERTY_OWNER (the user id owning the two sample properties), and for
    encrypted tokens PROPERTY_DECRYPTION_KEYS (comma-separated private key files) and
    PROPERTY_REQUIRE_ENCRYPTION (true: plain tokens are refused)."""
    issuer = os.environ.get("PROPERTY_ISSUER", "http://127.0.0.1:8000")
    owner = os.environ.get("PROPERTY_OWNER", "nobody")
    options: dict[str, Any] = {}
    if os.environ.get("PROPERTY_DECRYPTION_KEYS"):
        options["decryption_keys"] = read_private_keys(os.environ["PROPERTY_DECRYPTION_KEYS"])
        options["require_encryption"] = os.environ.get(
            "PROPERTY_REQUIRE_ENCRYPTION", ""
        ).lower() in ("1", "true", "yes")
    return create_app(
        issuer,
        os.environ.get("PROPERTY_AUDIENCE", issuer),
        properties=[
            {"id": "1", "name": "Harbour view", "address": "1 Quai Rambaud", "owner": owner},
            {"id": "2", "name": "Old mill", "address": "4 Rue du Moulin", "owner": owner},
        ],
        **options,
    )
