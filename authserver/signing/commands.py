"""``authserver keys ...``: the signing-key lifecycle from the command line
(docs/key-rotation.md). The same operations as ``/admin/keys``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
from flask import current_app

from authserver.cli import command, fail, operator
from authserver.config import decode_key
from authserver.context import keyring
from authserver.errors import ConfigError, KeyOperationError
from authserver.signing.keyring import check_key_encryption_key
from authserver.signing.services import (
    describe_key,
    ensure_active_key,
    import_key,
    key_summary,
    list_keys,
    revoke_key,
    rewrap_keys,
    rotate_signing_keys,
)

keys = click.Group("keys", help="Manage signing keys.")


def _check_key_encryption_key() -> None:
    """Before a command opens or writes keys: a wrong key-encryption key stops it with a
    ConfigError naming the setting (a key written under it could never be opened)."""
    check_key_encryption_key(current_app)


@keys.command("list")
@command
def list_keys_command() -> dict[str, Any]:
    """Every key with its state; `published` says whether the JWKS serves it now."""
    return {"keys": [describe_key(row) for row in list_keys()]}


@keys.command("ensure")
@command
def ensure_key_command() -> dict[str, Any]:
    """Create the missing keys: an active one (first start) and a published `next` one."""
    _check_key_encryption_key()
    ensure_active_key(actor=operator())
    return key_summary()


@keys.command("rotate")
@click.option("--force", is_flag=True, help="Rotate even if `next` is not published long enough.")
@click.option(
    "--if-due",
    is_flag=True,
    help="Rotate only when the active key is older than AUTHSERVER_KEY_ROTATION_INTERVAL "
    '(for cron; prints "rotated": true or false).',
)
@command
def rotate_keys_command(force: bool, if_due: bool) -> dict[str, Any]:
    """Promote `next` to active, retire the active key, publish a new `next`."""
    _check_key_encryption_key()
    try:
        return rotate_signing_keys(actor=operator(), force=force, if_due=if_due)
    except KeyOperationError as error:
        fail(str(error))


# A kid is base64url and may begin with "-": take it as the argument, not as an option.
@keys.command("revoke", context_settings={"ignore_unknown_options": True})
@click.argument("kid")
@command
def revoke_key_command(kid: str) -> dict[str, Any]:
    """Withdraw a key from the JWKS at once (a leaked key); its tokens stop verifying."""
    try:
        return describe_key(revoke_key(kid, actor=operator()))
    except KeyOperationError as error:
        fail(str(error))


@keys.command("import")
@click.option("--pem", "pem_path", required=True, type=click.Path(exists=True, dir_okay=False))
@command
def import_key_command(pem_path: str) -> dict[str, Any]:
    """Add an RSA private key (PEM) as `next`, replacing an unused `next` key."""
    _check_key_encryption_key()
    try:
        return describe_key(import_key(Path(pem_path).read_bytes(), actor=operator()))
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
@command
def rewrap_keys_command(new_kek_env: str | None, new_kek_file: str | None) -> dict[str, Any]:
    """Re-encrypt every private key under a new key-encryption key, all or nothing.

    The new key is never taken from the command line, which other users can read in the
    process list. Afterwards set AUTHSERVER_KEY_ENCRYPTION_KEY to it and restart.
    """
    if bool(new_kek_env) == bool(new_kek_file):
        fail("give exactly one of --new-kek-env VAR or --new-kek-file PATH")
    if new_kek_env:
        source, value = new_kek_env, os.environ.get(new_kek_env, "")
    else:
        source, value = str(new_kek_file), Path(str(new_kek_file)).read_text()
    try:
        if not value.strip():
            raise ConfigError(f"{source} is empty")
        return {"rewrapped": rewrap_keys(decode_key(source, value), actor=operator())}
    except (ConfigError, KeyOperationError) as error:
        fail(str(error))


@keys.command("export-jwks")
@command
def export_jwks_command() -> dict[str, Any]:
    """The public JWKS as served at /.well-known/jwks.json."""
    _check_key_encryption_key()  # the key ring opens the active key to build it
    return json.loads(keyring().snapshot().jwks_body)
