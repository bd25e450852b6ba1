"""The ``authserver`` command: the Flask CLI of the app plus users, clients and keys.

Each command prints exactly one JSON object on stdout; failures print a JSON error on
stderr and exit with status 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from authserver.accounts.phones import InvalidPhoneNumber

users = click.Group("users", help="Manage users.")
clients = click.Group("clients", help="Manage OAuth clients.")
keys = click.Group("keys", help="Manage signing keys.")


def emit(payload: dict[str, Any]) -> None:
    click.echo(json.dumps(payload, default=str))


def fail(message: str) -> None:
    click.echo(json.dumps({"error": message}), err=True)
    sys.exit(1)


@users.command("create")
@click.option("--phone", required=True)
@click.option("--password", default=None, help="Omit for an account that signs in by SMS code.")
@click.option("--email", default=None)
@click.option("--first-name", default="")
@click.option("--last-name", default="")
@click.option("--account-type", default="regular")
@click.option("--group", "groups", multiple=True)
@click.option("--admin", is_flag=True, help="Grant the authserver.admin permission.")
@with_appcontext
def create_user_command(phone, password, email, first_name, last_name, account_type, groups, admin):
    from sqlalchemy.exc import IntegrityError

    from authserver.accounts.services import create_user, serialize_user
    from authserver.audit import record_event
    from authserver.extensions import db

    try:
        user = create_user(
            phone,
            password,
            email=email,
            first_name=first_name,
            last_name=last_name,
            account_type=account_type,
            groups=list(groups),
            admin=admin,
        )
        db.session.flush()
        record_event("user.created", actor="cli", user_id=user.id)
        db.session.commit()
    except InvalidPhoneNumber as error:
        fail(f"--phone: {error}")
    except IntegrityError:
        db.session.rollback()
        fail("a user with this phone number or username already exists")
    emit(serialize_user(user))


@clients.command("create")
@click.option("--name", required=True)
@click.option("--grant-type", "grant_types", multiple=True, required=True)
@click.option("--scope", default=None, help="Allowed scopes, space-separated.")
@click.option("--public", is_flag=True, help="A public client: no secret, auth method 'none'.")
@click.option(
    "--auth-method",
    type=click.Choice(["client_secret_basic", "client_secret_post"]),
    default="client_secret_basic",
    show_default=True,
)
@click.option("--resource-server", is_flag=True, help="May introspect other clients' tokens.")
@click.option("--client-id", default=None, help="Choose the id instead of a random one.")
@with_appcontext
def create_client_command(
    name, grant_types, scope, public, auth_method, resource_server, client_id
):
    from authserver.oauth.clients import ClientError, create_client

    try:
        client, secret = create_client(
            name=name,
            grant_types=list(grant_types),
            scope=scope,
            public=public,
            auth_method=auth_method,
            resource_server=resource_server,
            client_id=client_id,
            actor="cli",
        )
    except ClientError as error:
        fail(str(error))
    emit(
        {
            "client_id": client.client_id,
            "client_secret": secret,
            "grant_types": client.grant_types.split(),
            "scope": client.scope,
            "token_endpoint_auth_method": client.token_endpoint_auth_method,
        }
    )


@keys.command("list")
@with_appcontext
def list_keys_command():
    from authserver.signing.services import list_keys

    emit({"keys": [row.describe() for row in list_keys()]})


@keys.command("ensure")
@with_appcontext
def ensure_key_command():
    """Create an active key if there is none (first start)."""
    from authserver.signing.services import ensure_active_key

    emit(ensure_active_key(actor="cli").describe())


@keys.command("rotate")
@with_appcontext
def rotate_keys_command():
    from authserver.signing.services import rotate_signing_keys

    emit(rotate_signing_keys(actor="cli"))


@keys.command("revoke")
@click.argument("kid")
@with_appcontext
def revoke_key_command(kid):
    from authserver.signing.services import KeyOperationError, revoke_key

    try:
        emit(revoke_key(kid, actor="cli").describe())
    except KeyOperationError as error:
        fail(str(error))


@keys.command("import")
@click.option("--pem", "pem_path", required=True, type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def import_key_command(pem_path):
    from authserver.signing.services import KeyOperationError, import_key

    try:
        emit(import_key(Path(pem_path).read_bytes(), actor="cli").describe())
    except KeyOperationError as error:
        fail(str(error))


@keys.command("export-jwks")
@with_appcontext
def export_jwks_command():
    from authserver.context import keyring

    emit(json.loads(keyring().snapshot().jwks_body))


def register_cli(app: Flask) -> None:
    for group in (users, clients, keys):
        app.cli.add_command(group)


def _create_app():
    from authserver import create_app

    return create_app()


def main() -> None:
    cli = FlaskGroup(create_app=_create_app, add_default_commands=True, load_dotenv=False)
    cli(prog_name="authserver")
