"""``authserver clients ...``: register and list OAuth clients from the command line.
The same operations as ``/admin/clients``."""

from __future__ import annotations

import json
from typing import Any

import click

from authserver.admin.services import client_search, serialize_client
from authserver.cli import command, fail, operator
from authserver.errors import ClientError
from authserver.extensions import db
from authserver.oauth.clients import create_client

clients = click.Group("clients", help="Manage OAuth clients.")


@clients.command("create")
@click.option("--name", required=True)
@click.option("--grant-type", "grant_types", multiple=True, required=True)
@click.option("--scope", default=None, help="Allowed scopes, space-separated.")
@click.option("--public", is_flag=True, help="A public client: no secret, auth method 'none'.")
@click.option(
    "--auth-method",
    type=click.Choice(["client_secret_basic", "client_secret_post", "private_key_jwt"]),
    default=None,
    help="How the client authenticates [default: client_secret_basic; private_key_jwt "
    "with --jwks-file].",
)
@click.option(
    "--jwks-file",
    type=click.File("r"),
    default=None,
    help="private_key_jwt (RFC 7523): a JSON file holding the client's public keys (JWKS).",
)
@click.option("--resource-server", is_flag=True, help="May introspect other clients' tokens.")
@click.option(
    "--first-party",
    is_flag=True,
    help="One of the platform's own apps: no consent screen, and it may ask for tokens "
    "for the account and admin APIs (resource={issuer}/account, {issuer}/admin).",
)
@click.option("--client-id", default=None, help="Choose the id instead of a random one.")
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    help="Browser sign-in: a redirect URI, matched exactly (repeat for several).",
)
@click.option(
    "--post-logout-redirect-uri",
    "post_logout_redirect_uris",
    multiple=True,
    help="Where RP-initiated logout may send the browser back (repeat for several).",
)
@command
def create_client_command(
    name: str,
    grant_types: tuple[str, ...],
    scope: str | None,
    public: bool,
    auth_method: str | None,
    jwks_file,
    resource_server: bool,
    first_party: bool,
    client_id: str | None,
    redirect_uris: tuple[str, ...],
    post_logout_redirect_uris: tuple[str, ...],
) -> dict[str, Any]:
    """Register a client; its secret is printed here only (only its keyed hash is kept)."""
    jwks = None
    if jwks_file is not None:
        try:
            jwks = json.load(jwks_file)
        except ValueError:
            fail("--jwks-file: not a JSON document")
    if auth_method is None:
        auth_method = "private_key_jwt" if jwks is not None else "client_secret_basic"
    try:
        client, secret = create_client(
            name=name,
            grant_types=list(grant_types),
            scope=scope,
            public=public,
            auth_method=auth_method,
            resource_server=resource_server,
            first_party=first_party,
            client_id=client_id,
            redirect_uris=list(redirect_uris),
            post_logout_redirect_uris=list(post_logout_redirect_uris),
            jwks=jwks,
            actor=operator(),
        )
    except ClientError as error:
        fail(str(error))
    return {
        "client_id": client.client_id,
        "client_secret": secret,
        "grant_types": client.grant_types.split(),
        "scope": client.scope,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "first_party": client.first_party,
        "redirect_uris": client.redirect_uri_list(),
        "post_logout_redirect_uris": client.post_logout_redirect_uri_list(),
    }


@clients.command("list")
@click.option("--query", "-q", default=None, help="Part of the client id or name.")
@command
def list_clients_command(query: str | None) -> dict[str, Any]:
    """Every client (never a secret), oldest first, as /admin/clients shows them."""
    return {"clients": [serialize_client(c) for c in db.session.scalars(client_search(query))]}
