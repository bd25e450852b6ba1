"""Registering OAuth clients."""

from __future__ import annotations

import secrets
import time
from itertools import chain

from flask import has_app_context
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from authserver.audit import record_event
from authserver.authorize.redirect_uris import normalize_redirect_uris
from authserver.context import client_cache, keyed_hash, settings
from authserver.errors import ClientError, InvalidJwks, InvalidRedirectUri
from authserver.extensions import db
from authserver.oauth.client_assertion import METHOD as PRIVATE_KEY_JWT
from authserver.oauth.client_assertion import registered_jwks
from authserver.oauth.grants import GRANT_TYPES
from authserver.oauth.models import Client


def create_client(
    *,
    name: str,
    grant_types: list[str],
    scope: str | None = None,
    public: bool = False,
    auth_method: str = "client_secret_basic",
    resource_server: bool = False,
    first_party: bool = False,
    client_id: str | None = None,
    redirect_uris: list[str] | tuple[str, ...] = (),
    post_logout_redirect_uris: list[str] | tuple[str, ...] = (),
    jwks: dict | None = None,
    actor: str,
) -> tuple[Client, str | None]:
    """The new client and its secret (None for a public client and for a
    ``private_key_jwt`` client, which registers its public keys, ``jwks``, instead).
    Only the secret's keyed hash is stored: it is shown to the caller once."""
    check_client_rules(grant_types, public=public, resource_server=resource_server)
    stored_jwks = client_jwks(jwks, auth_method="none" if public else auth_method)
    redirects = registered_uris(redirect_uris)
    check_redirect_rules(grant_types, redirects)
    client_id = client_id or secrets.token_urlsafe(16)
    if len(client_id) > 64 or db.session.get(Client, client_id) is not None:
        raise ClientError("client id taken or longer than 64 characters")
    secret = None if public or stored_jwks else secrets.token_urlsafe(32)
    scopes = normalize_scope(scope or settings().default_client_scope)
    client = Client(
        client_id=client_id,
        name=name,
        secret_hash=keyed_hash(secret) if secret else None,
        token_endpoint_auth_method="none" if public else auth_method,
        grant_types=" ".join(dict.fromkeys(grant_types)),
        scope=scopes,
        is_resource_server=resource_server,
        first_party=first_party,
        redirect_uris=redirects,
        post_logout_redirect_uris=registered_uris(post_logout_redirect_uris),
        jwks=stored_jwks,
    )
    db.session.add(client)
    record_event("client.created", actor=actor, client_id=client_id)
    db.session.flush()
    return client, secret


def check_client_rules(grant_types: list[str], *, public: bool, resource_server: bool) -> None:
    """What a client's registration must respect (at creation and on every change)."""
    if not grant_types:
        raise ClientError("a client needs at least one grant type")
    unknown = set(grant_types) - set(GRANT_TYPES)
    if unknown:
        raise ClientError(f"unsupported grant type(s): {', '.join(sorted(unknown))}")
    if public and "client_credentials" in grant_types:
        raise ClientError("a public client cannot use client_credentials (RFC 6749 §4.4)")
    if public and resource_server:
        raise ClientError("a resource server must be a confidential client")


def client_jwks(jwks: dict | None, *, auth_method: str) -> str | None:
    """The JWKS as stored: required by ``private_key_jwt``, refused with any other method."""
    if auth_method != PRIVATE_KEY_JWT:
        if jwks is not None:
            raise ClientError("only a private_key_jwt client registers a JWKS")
        return None
    if jwks is None:
        raise ClientError("a private_key_jwt client needs its public keys (jwks)")
    try:
        return registered_jwks(jwks)
    except InvalidJwks as error:
        raise ClientError(str(error)) from None


def registered_uris(uris: list[str] | tuple[str, ...]) -> str:
    """Redirect URIs as stored (authorize/redirect_uris.py), or raise ClientError."""
    try:
        return normalize_redirect_uris(uris, production=settings().env == "production")
    except InvalidRedirectUri as error:
        raise ClientError(str(error)) from None


def check_redirect_rules(grant_types: list[str], redirect_uris: str) -> None:
    """The authorization code grant needs somewhere to send the browser back to."""
    if "authorization_code" in grant_types and not redirect_uris:
        raise ClientError("the authorization_code grant needs at least one redirect URI")


def normalize_scope(scope: str) -> str:
    """Allowed scopes as stored: space-separated, sorted, each once; at least one."""
    scopes = " ".join(sorted(set(scope.split())))
    if not scopes:
        raise ClientError("a client needs at least one allowed scope")
    return scopes


def new_client_secret(client: Client, *, actor: str) -> str:
    """Replace a confidential client's secret; the old one stops working at once. The new
    secret is returned once and only its keyed hash is stored."""
    if client.is_public or client.token_endpoint_auth_method == PRIVATE_KEY_JWT:
        raise ClientError("this client authenticates without a secret")
    secret = secrets.token_urlsafe(32)
    client.secret_hash = keyed_hash(secret)
    record_event("client.secret_rotated", actor=actor, client_id=client.client_id)
    return secret


class ClientCache:
    """Clients as read from the database at most ``seconds`` ago, per process.

    Every token, introspection and revocation request authenticates a client: the cache
    saves that query (a quarter of a client-credentials request's cost). A change made
    in this process (admin API, CLI, any ORM write of a client) is forgotten at commit;
    other processes see it within ``AUTHSERVER_CLIENT_CACHE_SECONDS``. Unknown ids are
    not cached: made-up ids cannot fill memory. Entries are detached copies, read-only
    and shared by every thread, never attached to a session."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: dict[str, tuple[float, Client]] = {}

    def get(self, client_id: str) -> Client | None:
        entry = self._entries.get(client_id)
        now = time.monotonic()
        if entry is not None and now - entry[0] < self.seconds:
            return entry[1]
        row = db.session.get(Client, client_id)
        if row is None:
            self._entries.pop(client_id, None)
            return None
        copy = Client(**{attr.key: getattr(row, attr.key) for attr in inspect(Client).column_attrs})
        if self.seconds > 0:
            self._entries[client_id] = (now, copy)
        return copy

    def forget(self, client_ids: set[str]) -> None:
        for client_id in client_ids:
            self._entries.pop(client_id, None)


@event.listens_for(Session, "after_flush")
def _note_changed_clients(session: Session, flush_context) -> None:
    changed = {
        obj.client_id
        for obj in chain(session.new, session.dirty, session.deleted)
        if isinstance(obj, Client)
    }
    if changed:
        session.info.setdefault("changed_clients", set()).update(changed)


@event.listens_for(Session, "after_commit")
def _forget_changed_clients(session: Session) -> None:
    # After the commit, not the flush: a read between the two would cache the old row.
    changed = session.info.pop("changed_clients", None)
    if changed and has_app_context():
        cache = client_cache()
        if cache is not None:
            cache.forget(changed)


@event.listens_for(Session, "after_rollback")
def _drop_noted_clients(session: Session) -> None:
    session.info.pop("changed_clients", None)
