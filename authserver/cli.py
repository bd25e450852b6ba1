"""The ``authserver`` command: the Flask CLI of the app plus users, clients, keys,
audiences and token housekeeping.

Each command prints exactly one JSON object on stdout; failures print a JSON error on
stderr and exit with status 1.
"""

from __future__ import annotations

import json
import logging
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
audiences = click.Group(
    "audiences", help="Manage audiences (resource servers) and encryption keys."
)
tokens = click.Group("tokens", help="Housekeeping of token records.")


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

    from authserver.accounts.services import InvalidAccountType, create_user, serialize_user
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
    except InvalidAccountType as error:
        fail(f"--account-type: {error}")
    except IntegrityError:
        db.session.rollback()
        fail("a user with this phone number or username already exists")
    emit(serialize_user(user))


@users.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def import_users_command(path):
    """Import users from a Django `manage.py dumpdata` JSON file (idempotent)."""
    from authserver.accounts.importing import ImportFileError, import_django_users

    try:
        records = json.loads(Path(path).read_text())
        report = import_django_users(records, actor="cli")
    except (ValueError, ImportFileError) as error:
        fail(f"{path}: {error}")
    emit(report.as_dict())


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
@click.option(
    "--first-party", is_flag=True, help="One of the platform's own apps (no consent screen)."
)
@click.option("--client-id", default=None, help="Choose the id instead of a random one.")
@with_appcontext
def create_client_command(
    name, grant_types, scope, public, auth_method, resource_server, first_party, client_id
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
            first_party=first_party,
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
            "first_party": client.first_party,
        }
    )


def _operator() -> str:
    """Who runs a key command, for the audit record: the operating-system account."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in this environment (some containers)
        return "cli"


@keys.command("list")
@with_appcontext
def list_keys_command():
    """Every key with its state; `published` says whether the JWKS serves it now."""
    from authserver.signing.services import describe_key, list_keys

    emit({"keys": [describe_key(row) for row in list_keys()]})


@keys.command("ensure")
@with_appcontext
def ensure_key_command():
    """Create the missing keys: an active one (first start) and a published `next` one."""
    from authserver.signing.services import ensure_active_key, key_summary

    ensure_active_key(actor=_operator())
    emit(key_summary())


@keys.command("rotate")
@click.option("--force", is_flag=True, help="Rotate even if `next` is not published long enough.")
@click.option(
    "--if-due",
    is_flag=True,
    help="Rotate only when the active key is older than AUTHSERVER_KEY_ROTATION_INTERVAL "
    '(for cron; prints "rotated": true or false).',
)
@with_appcontext
def rotate_keys_command(force, if_due):
    """Promote `next` to active, retire the active key, publish a new `next`."""
    from authserver.signing.services import KeyOperationError, rotate_signing_keys

    try:
        emit(rotate_signing_keys(actor=_operator(), force=force, if_due=if_due))
    except KeyOperationError as error:
        fail(str(error))


# A kid is base64url and may begin with "-": take it as the argument, not as an option.
@keys.command("revoke", context_settings={"ignore_unknown_options": True})
@click.argument("kid")
@with_appcontext
def revoke_key_command(kid):
    """Withdraw a key from the JWKS at once (a leaked key); its tokens stop verifying."""
    from authserver.signing.services import KeyOperationError, describe_key, revoke_key

    try:
        emit(describe_key(revoke_key(kid, actor=_operator())))
    except KeyOperationError as error:
        fail(str(error))


@keys.command("import")
@click.option("--pem", "pem_path", required=True, type=click.Path(exists=True, dir_okay=False))
@with_appcontext
def import_key_command(pem_path):
    """Add an RSA private key (PEM) as `next`, replacing an unused `next` key."""
    from authserver.signing.services import KeyOperationError, describe_key, import_key

    try:
        emit(describe_key(import_key(Path(pem_path).read_bytes(), actor=_operator())))
    except KeyOperationError as error:
        fail(str(error))


@keys.command("rewrap")
@click.option(
    "--new-kek-env",
    metavar="VAR",
    help="Environment variable holding the new key-encryption key (base64url, 32 bytes).",
)
@click.option(
    "--new-kek-file",
    type=click.Path(exists=True, dir_okay=False),
    help="File holding the new key-encryption key.",
)
@with_appcontext
def rewrap_keys_command(new_kek_env, new_kek_file):
    """Re-encrypt every private key under a new key-encryption key, all or nothing.

    The new key is never taken from the command line, which other users can read in the
    process list. Afterwards set AUTHSERVER_KEY_ENCRYPTION_KEY to it and restart.
    """
    import os

    from authserver.config import ConfigError, _decode_key
    from authserver.signing.services import KeyOperationError, rewrap_keys

    if bool(new_kek_env) == bool(new_kek_file):
        fail("give exactly one of --new-kek-env VAR or --new-kek-file PATH")
    if new_kek_env:
        source, value = new_kek_env, os.environ.get(new_kek_env, "")
    else:
        source, value = new_kek_file, Path(new_kek_file).read_text()
    try:
        if not value.strip():
            raise ConfigError(f"{source} is empty")
        new_kek = _decode_key(source, value)
        emit({"rewrapped": rewrap_keys(new_kek, actor=_operator())})
    except (ConfigError, KeyOperationError) as error:
        fail(str(error))


@keys.command("export-jwks")
@with_appcontext
def export_jwks_command():
    """The public JWKS as served at /.well-known/jwks.json."""
    from authserver.context import keyring

    emit(json.loads(keyring().snapshot().jwks_body))


@click.command(
    "serve",
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@with_appcontext
def serve_command(args):
    """Serve the API with granian: [--host H] [--port P] [--workers N] [--threads T]."""
    import os

    from authserver.serve import server_arguments

    server_arguments(list(args))  # a wrong option fails here, with its usage line
    # The app was created to get here: settings and key-encryption key are good. A fresh
    # interpreter for the server, so its forked workers import the app themselves.
    os.execv(sys.executable, [sys.executable, "-m", "authserver.serve", *args])  # noqa: S606


# --- audiences -------------------------------------------------------------------------
def _read_key(path: str, alg: str | None):
    from authserver.audiences.services import public_key_from_file

    return public_key_from_file(Path(path).read_bytes(), alg)


def _audience_or_fail(reference: str):
    from authserver.audiences.services import find_audience

    audience = find_audience(reference)
    if audience is None:
        fail(f"no audience {reference!r} (give its id or its identifier)")
    return audience


def _committed(what: str) -> None:
    from sqlalchemy.exc import IntegrityError

    from authserver.extensions import db

    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        fail(f"{what}: a concurrent change got there first; try again")


ALG_CHOICE = click.Choice(["RSA-OAEP-256", "ECDH-ES"])
KEY_FILE = click.Path(exists=True, dir_okay=False)


@audiences.command("create")
@click.option("--identifier", required=True, help="The tokens' aud: an absolute URI (RFC 8707).")
@click.option("--name", default="")
@click.option(
    "--encryption-key",
    "key_path",
    type=KEY_FILE,
    default=None,
    help="The service's public key (JWK JSON or PEM): its tokens are then encrypted.",
)
@click.option("--alg", type=ALG_CHOICE, default=None, help="Default: from the key type.")
@with_appcontext
def create_audience_command(identifier, name, key_path, alg):
    """Register an audience that clients may ask tokens for with `resource`."""
    from authserver.audiences.services import AudienceError, create_audience, describe_audience

    try:
        key = _read_key(key_path, alg) if key_path else None
        audience = create_audience(identifier, name, key, actor=_operator())
    except AudienceError as error:
        fail(error.description)
    _committed("audiences create")
    emit(describe_audience(audience))


@audiences.command("set-key")
@click.argument("reference", metavar="AUDIENCE")
@click.option("--key", "key_path", type=KEY_FILE, required=True, help="JWK JSON or PEM.")
@click.option("--alg", type=ALG_CHOICE, default=None, help="Default: from the key type.")
@with_appcontext
def set_audience_key_command(reference, key_path, alg):
    """Register or replace AUDIENCE's encryption key (AUDIENCE: id or identifier).

    The previous key is kept as `replaced`: keep its private key in the service until
    `tokens_valid_until`."""
    from authserver.audiences.services import (
        AudienceError,
        describe_audience,
        set_encryption_key,
    )

    audience = _audience_or_fail(reference)
    try:
        set_encryption_key(audience, _read_key(key_path, alg), actor=_operator())
    except AudienceError as error:
        fail(error.description)
    _committed("audiences set-key")
    emit(describe_audience(audience))


@audiences.command("remove-key")
@click.argument("reference", metavar="AUDIENCE")
@with_appcontext
def remove_audience_key_command(reference):
    """From now on AUDIENCE gets plain signed tokens."""
    from authserver.audiences.services import describe_audience, remove_encryption_key

    audience = _audience_or_fail(reference)
    remove_encryption_key(audience, actor=_operator())
    _committed("audiences remove-key")
    emit(describe_audience(audience))


@audiences.command("list")
@with_appcontext
def list_audiences_command():
    from authserver.audiences.services import describe_audience, list_audiences

    emit({"audiences": [describe_audience(a) for a in list_audiences()]})


@audiences.command("delete")
@click.argument("reference", metavar="AUDIENCE")
@with_appcontext
def delete_audience_command(reference):
    """Delete AUDIENCE: requests for it get invalid_target; issued tokens run out."""
    from authserver.audiences.services import delete_audience

    audience = _audience_or_fail(reference)
    deleted = {"deleted": str(audience.id), "identifier": audience.identifier}
    delete_audience(audience, actor=_operator())
    _committed("audiences delete")
    emit(deleted)


@tokens.command("purge")
@with_appcontext
def purge_tokens_command():
    """Delete records of expired access tokens (revoked jtis, encrypted-token records).

    For cron: they only answer for tokens that can no longer be used anyway."""
    from authserver.audiences.services import purge_expired_token_records

    purged = purge_expired_token_records()
    _committed("tokens purge")
    emit({"purged": purged})


def register_cli(app: Flask) -> None:
    for group in (users, clients, keys, audiences, tokens):
        app.cli.add_command(group)
    app.cli.add_command(serve_command)


def _create_app():
    from authserver import create_app

    app = create_app()
    # A command's output is its one JSON object; progress chatter (Alembic's INFO lines)
    # would bury it. Warnings and errors still reach stderr, as JSON lines.
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    return app


def main() -> None:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from authserver.config import ConfigError

    cli = FlaskGroup(create_app=_create_app, add_default_commands=True, load_dotenv=False)
    try:
        cli(prog_name="authserver")
    except ConfigError as error:
        fail(f"configuration: {error}")
    except (OperationalError, ProgrammingError) as error:
        # Not str(error): SQLAlchemy's text carries the statement's parameters (hashes).
        fail(
            f"database error ({type(error.orig).__name__}): is the database reachable and "
            "migrated? Run `authserver db upgrade`."
        )


if __name__ == "__main__":
    main()
