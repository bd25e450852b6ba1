"""``authserver users ...``: create, update and import users from the command line.

Passwords never need to be on the command line, where the process list and the shell
history keep them: ``--password`` alone prompts (twice, not echoed) and
``--password-file -`` reads the first line of standard input (or of a file).
``--password VALUE`` still works, with a warning.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import IO, Any

import click
from click.core import ParameterSource

from authserver.accounts.importing import import_django_users
from authserver.accounts.models import User
from authserver.accounts.services import (
    ADMIN_GROUP,
    ADMIN_PERMISSION,
    check_account_type,
    create_user,
    find_user_by_phone,
    get_or_create_group,
    serialize_user,
    set_admin,
)
from authserver.audit import record_event
from authserver.cli import command, fail, operator, warn
from authserver.errors import ImportFileError, InvalidAccountType, InvalidPhoneNumber
from authserver.extensions import db

users = click.Group("users", help="Manage users.")


def _password(password: str | None, password_file: IO[str] | None) -> str | None:
    if password is not None and password_file is not None:
        fail("give either --password or --password-file, not both")
    if password_file is not None:
        lines = password_file.read().splitlines()
        if not lines or not lines[0]:
            fail("--password-file: the first line is empty")
        return lines[0]
    if password is not None:
        source = click.get_current_context().get_parameter_source("password")
        if source is ParameterSource.COMMANDLINE:
            warn(
                "--password VALUE shows the password in the process list and the shell "
                "history: use --password alone (a prompt) or --password-file - instead"
            )
    return password


@users.command("create")
@click.option("--phone", required=True)
@click.option(
    "--password",
    prompt="Password",
    prompt_required=False,
    hide_input=True,
    confirmation_prompt=True,
    default=None,
    help="Alone: asked at a prompt. Omit it (and --password-file) for an account that "
    "signs in by SMS code.",
)
@click.option(
    "--password-file",
    type=click.File("r"),
    default=None,
    help="Read the password from the first line of this file; '-' for standard input.",
)
@click.option("--email", default=None)
@click.option("--first-name", default="")
@click.option("--last-name", default="")
@click.option("--account-type", default="regular")
@click.option("--group", "groups", multiple=True, help="A group to join (created if new).")
@click.option("--admin", is_flag=True, help="Grant the authserver.admin permission.")
@command
def create_user_command(
    phone: str,
    password: str | None,
    password_file: IO[str] | None,
    email: str | None,
    first_name: str,
    last_name: str,
    account_type: str,
    groups: tuple[str, ...],
    admin: bool,
) -> dict[str, Any]:
    """Create a user; prints the user object (the seed login response's `user`)."""
    secret = _password(password, password_file)
    if find_user_by_phone(phone) is not None:
        fail("a user with this phone number already exists (see `authserver users update`)")
    try:
        user = create_user(
            phone,
            secret,
            email=email,
            first_name=first_name,
            last_name=last_name,
            account_type=account_type,
            groups=list(groups),
            admin=admin,
        )
    except InvalidPhoneNumber as error:
        fail(f"--phone: {error}")
    except InvalidAccountType as error:
        fail(f"--account-type: {error}")
    db.session.flush()
    record_event("user.created", actor=operator(), user_id=user.id, admin=admin)
    return serialize_user(user)


def _user(reference: str) -> User:
    """By phone (any form that parses with AUTHSERVER_DEFAULT_REGION) or by id."""
    try:
        found = db.session.get(User, uuid.UUID(reference))
    except ValueError:
        found = find_user_by_phone(reference)
    if found is None:
        fail(f"no user {reference!r} (give the phone number or the id)")
    return found


@users.command("update")
@click.argument("reference", metavar="USER")
@click.option(
    "--admin/--no-admin",
    default=None,
    help="Grant or take away the admin right (the Admin User group and authserver.admin).",
)
@click.option("--group", "groups", multiple=True, help="A group to join (created if new).")
@click.option("--remove-group", "removed", multiple=True, help="A group to leave.")
@click.option("--email", default=None)
@click.option("--first-name", default=None)
@click.option("--last-name", default=None)
@click.option("--account-type", default=None)
@command
def update_user_command(
    reference: str,
    admin: bool | None,
    groups: tuple[str, ...],
    removed: tuple[str, ...],
    email: str | None,
    first_name: str | None,
    last_name: str | None,
    account_type: str | None,
) -> dict[str, Any]:
    """Change an existing user (USER: phone number or id); prints the user object.

    For instance, promote someone who signed up with an SMS code:
    `authserver users update +33612345678 --admin`."""
    user = _user(reference)
    given = {
        name: value
        for name, value in (("first_name", first_name), ("last_name", last_name), ("email", email))
        if value is not None
    }
    if "email" in given:
        given["email"] = given["email"] or None  # "" clears it
    changed = [name for name, value in given.items() if getattr(user, name) != value]
    for name in changed:
        setattr(user, name, given[name])
    if account_type is not None and account_type != user.account_type:
        try:
            check_account_type(account_type)
        except InvalidAccountType as error:
            fail(f"--account-type: {error}")
        user.account_type = account_type
        changed.append("account_type")
    before = user.group_names()
    for name in groups:
        if name not in user.group_names():
            user.groups.append(get_or_create_group(name))
    user.groups = [g for g in user.groups if g.name not in removed]
    if admin is not None and admin != _is_admin(user):
        set_admin(user, admin)
        changed.append("admin")
    if user.group_names() != before:
        changed.append("groups")
    db.session.flush()
    db.session.expire(user, ["groups", "permissions"])  # read back in their stored order
    if changed:
        record_event(
            "user.updated",
            actor=operator(),
            user_id=user.id,
            fields=sorted(set(changed)),
            groups=user.group_names(),
        )
    return serialize_user(user)


def _is_admin(user: User) -> bool:
    """Holds the admin right the way `set_admin` gives it (group and direct permission)."""
    return ADMIN_GROUP in user.group_names() and any(
        p.codename == ADMIN_PERMISSION for p in user.permissions
    )


@users.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@command
def import_users_command(path: str) -> dict[str, Any]:
    """Import users from a Django `manage.py dumpdata` JSON file (idempotent)."""
    try:
        records = json.loads(Path(path).read_text())
        report = import_django_users(records, actor=operator())
    except (ValueError, ImportFileError) as error:
        fail(f"{path}: {error}")
    return report.as_dict()
