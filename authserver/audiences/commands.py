"""``authserver audiences ...`` and ``authserver tokens purge`` (docs/encrypted-tokens.md).
The same operations as ``/admin/audiences``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from authserver.audiences.models import Audience
from authserver.audiences.services import (
    PublicEncryptionKey,
    create_audience,
    delete_audience,
    describe_audience,
    find_audience,
    list_audiences,
    public_key_from_file,
    purge_expired_token_records,
    remove_encryption_key,
    set_encryption_key,
)
from authserver.authorize.codes import purge_expired_codes
from authserver.cli import command, fail, operator
from authserver.errors import AudienceError
from authserver.oauth.replay import purge_used_jtis

audiences = click.Group(
    "audiences", help="Manage audiences (resource servers) and their encryption keys."
)
tokens = click.Group("tokens", help="Housekeeping of token records.")

ALG_CHOICE = click.Choice(["RSA-OAEP-256", "ECDH-ES"])
KEY_FILE = click.Path(exists=True, dir_okay=False)


def _read_key(path: str, alg: str | None) -> PublicEncryptionKey:
    return public_key_from_file(Path(path).read_bytes(), alg)


def _audience(reference: str) -> Audience:
    audience = find_audience(reference)
    if audience is None:
        fail(f"no audience {reference!r} (give its id or its identifier)")
    return audience


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
@command
def create_audience_command(
    identifier: str, name: str, key_path: str | None, alg: str | None
) -> dict[str, Any]:
    """Register an audience that clients may ask tokens for with `resource`."""
    try:
        key = _read_key(key_path, alg) if key_path else None
        audience = create_audience(identifier, name, key, actor=operator())
    except AudienceError as error:
        fail(error.description)
    return describe_audience(audience)


@audiences.command("set-key")
@click.argument("reference", metavar="AUDIENCE")
@click.option("--key", "key_path", type=KEY_FILE, required=True, help="JWK JSON or PEM.")
@click.option("--alg", type=ALG_CHOICE, default=None, help="Default: from the key type.")
@command
def set_audience_key_command(reference: str, key_path: str, alg: str | None) -> dict[str, Any]:
    """Register or replace AUDIENCE's encryption key (AUDIENCE: id or identifier).

    The previous key is kept as `replaced`: keep its private key in the service until
    `tokens_valid_until`."""
    audience = _audience(reference)
    try:
        set_encryption_key(audience, _read_key(key_path, alg), actor=operator())
    except AudienceError as error:
        fail(error.description)
    return describe_audience(audience)


@audiences.command("remove-key")
@click.argument("reference", metavar="AUDIENCE")
@command
def remove_audience_key_command(reference: str) -> dict[str, Any]:
    """From now on AUDIENCE gets plain signed tokens."""
    audience = _audience(reference)
    remove_encryption_key(audience, actor=operator())
    return describe_audience(audience)


@audiences.command("list")
@command
def list_audiences_command() -> dict[str, Any]:
    return {"audiences": [describe_audience(a) for a in list_audiences()]}


@audiences.command("delete")
@click.argument("reference", metavar="AUDIENCE")
@command
def delete_audience_command(reference: str) -> dict[str, Any]:
    """Delete AUDIENCE: requests for it get invalid_target; issued tokens run out."""
    audience = _audience(reference)
    deleted = {"deleted": str(audience.id), "identifier": audience.identifier}
    delete_audience(audience, actor=operator())
    return deleted


@tokens.command("purge")
@command
def purge_tokens_command() -> dict[str, Any]:
    """Delete records of expired access tokens (revoked jtis, encrypted-token records)
    authorization codes expired for a day, and the ids of expired client assertions.

    For cron: they only answer for tokens that can no longer be used anyway."""
    return {
        "purged": {
            **purge_expired_token_records(),
            "authorization_codes": purge_expired_codes(),
            "used_jtis": purge_used_jtis(),
        }
    }
