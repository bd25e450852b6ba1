"""The ``authserver`` command: users, clients, keys, audiences, tokens, db and serve.

Each command prints exactly one JSON object on stdout; failures print ``{"error": ...}``
on stderr and exit with status 1 (the contract in docs/admin.md and key-rotation.md).

Start-up cost is part of the design. This module imports click only: ``authserver
--help`` and ``--version`` load neither Flask nor SQLAlchemy nor the configuration, and
a group's module (``authserver/<package>/commands.py``) is imported only when one of its
commands runs (``COMMANDS``). A command then works in the core app (``create_core_app``:
settings, database, models; no routes), and only ``serve`` builds the whole server.

The command is the transaction boundary, as a request is for a view: ``command`` runs
the function in an app context, commits once when it returns, and prints its JSON object
only after that commit succeeded; any failure rolls everything back.
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from authserver import __version__

# name: (module, attribute, one-line help). The help is written here so that
# `authserver --help` lists the groups without importing them.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "audiences": (
        "authserver.audiences.commands",
        "audiences",
        "Manage audiences (resource servers) and their encryption keys.",
    ),
    "clients": ("authserver.oauth.commands", "clients", "Manage OAuth clients."),
    "db": ("authserver.cli", "db_group", "Apply and inspect database migrations (Alembic)."),
    "keys": ("authserver.signing.commands", "keys", "Manage signing keys."),
    "serve": ("authserver.serve", "serve_command", "Serve the API (granian)."),
    "tokens": ("authserver.audiences.commands", "tokens", "Housekeeping of token records."),
    "users": ("authserver.accounts.commands", "users", "Manage users."),
}
# Flask-Migrate commands that make no sense for an installed server.
HIDDEN_DB_COMMANDS = frozenset({"init", "list-templates"})


class AuthserverGroup(click.Group):
    """The root group: loads a command's module only when that command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        if ctx.obj is None:  # a test may hand in its own app
            ctx.obj = app_source(migrations=name == "db")
        found = getattr(importlib.import_module(module), attribute)
        return found if isinstance(found, click.Command) else found()

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in self.list_commands(ctx)])


@click.group(cls=AuthserverGroup)
@click.version_option(__version__, "--version", prog_name="authserver")
def cli() -> None:
    """authserver: an OAuth 2 authorization server. Settings come from AUTHSERVER_*
    environment variables and a .env file in the working directory."""


def emit(payload: dict[str, Any]) -> None:
    click.echo(json.dumps(payload, default=str))


def fail(message: str) -> NoReturn:
    click.echo(json.dumps({"error": message}), err=True)
    sys.exit(1)


def warn(message: str) -> None:
    click.echo(json.dumps({"warning": message}), err=True)


def operator() -> str:
    """Who runs a command, for the audit record: the operating-system account."""
    import getpass  # only when a command records who ran it

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in this environment (some containers)
        return "cli"


def command(function: Callable[..., dict[str, Any]]) -> Callable[..., None]:
    """Make ``function`` (which returns the command's JSON object) a command body: run it
    in the app's context, commit once, then print. The app comes from the click context
    (``app_source``; a test hands in its own app the same way)."""

    @click.pass_context
    @functools.wraps(function)
    def run(ctx: click.Context, /, *args: Any, **kwargs: Any) -> None:
        # Imported when a command runs, never when this module loads (see the docstring).
        from sqlalchemy.exc import IntegrityError

        from authserver.extensions import db

        app = load_app(ctx)
        with app.app_context():
            try:
                payload = function(*args, **kwargs)
                db.session.commit()
            except IntegrityError:
                db.session.rollback()
                fail("this conflicts with a concurrent change (a name or phone taken): try again")
            except BaseException:
                db.session.rollback()
                raise
        emit(payload)

    return run


def app_source(*, migrations: bool = False) -> Any:
    """What loads the app for the commands: Flask's ScriptInfo (Flask-Migrate's commands
    look for one), building the core app, with Flask-Migrate for ``authserver db``."""
    from flask.cli import ScriptInfo  # only when a command runs

    return ScriptInfo(
        create_app=functools.partial(_core_app, migrations=migrations), set_debug_flag=False
    )


def load_app(ctx: click.Context) -> Any:
    return ctx.find_root().obj.load_app()


def _core_app(*, migrations: bool) -> Any:
    import logging  # only when a command runs

    from authserver import create_core_app, init_migrations

    app = create_core_app()
    if migrations:
        init_migrations(app)
    # A command's output is its one JSON object; progress chatter (Alembic's INFO lines)
    # would bury it. Warnings and errors still reach stderr, as JSON lines.
    logging.getLogger().setLevel(max(logging.getLogger().level, logging.WARNING))
    return app


def db_group() -> click.Group:
    """Flask-Migrate's ``db`` commands (``authserver db upgrade``), in the core app."""
    import copy  # only for `authserver db ...`

    from flask_migrate.cli import db

    group = copy.copy(db)  # its options and callback, without the commands hidden here
    group.help = "Apply and inspect database migrations (Alembic, shipped in the package)."
    group.commands = {n: c for n, c in db.commands.items() if n not in HIDDEN_DB_COMMANDS}
    return group


def _failure(error: Exception) -> str | None:
    """The message for a failure an operator can fix, or None (a bug: let it raise)."""
    # Imported on the failure path only; both modules are loaded by then anyway.
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from authserver.errors import ConfigError

    if isinstance(error, ConfigError):
        return f"configuration: {error}"
    if isinstance(error, (OperationalError, ProgrammingError)):
        # Not str(error): SQLAlchemy's text carries the statement's parameters (hashes).
        return (
            f"database error ({type(error.orig).__name__}): is the database reachable and "
            "migrated? Run `authserver db upgrade`."
        )
    return None


def main() -> None:
    try:
        cli.main(prog_name="authserver", obj=None)
    except Exception as error:
        message = _failure(error)
        if message is None:
            raise
        fail(message)


if __name__ == "__main__":
    main()
