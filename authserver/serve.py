"""The production server: granian serving ``authserver.wsgi:app`` (docs/operating.md).

``authserver serve`` (what ``make run`` and production run) checks the configuration by
creating the app once, then replaces itself with ``python -m authserver.serve``: a fresh
interpreter, so the workers granian forks start clean and import the app themselves.

Why granian: measured against gunicorn (sync and gthread workers) on the same machine
and app, it spent ~40% less CPU on a trivial request and 10-30% less on token and
introspection requests, with steadier rates from run to run (bench/README.md).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from authserver import create_app
from authserver.framing import DRAIN_FILE

if TYPE_CHECKING:
    from authserver.config import Settings

# Read by `authserver serve` itself, from the environment only, before any app exists.
# The configuration reference (docs/configuration.md) lists them with the settings.
SERVER_SETTINGS = {
    "AUTHSERVER_HOST": ("address to listen on (`--host`)", "`127.0.0.1`"),
    "AUTHSERVER_PORT": ("port to listen on (`--port`)", "`8000`"),
    "AUTHSERVER_WORKERS": ("server processes (`--workers`)", "one per core"),
    "AUTHSERVER_THREADS": ("threads per server process (`--threads`)", "`4`"),
    "AUTHSERVER_SHUTDOWN_GRACE": (
        "seconds in-flight requests may take to finish after `SIGTERM` (`--shutdown-grace`); "
        "must exceed the slowest SMS send (webhook attempts times timeouts, plus backoffs)",
        "`20`",
    ),
    "AUTHSERVER_METRICS_DIR": (
        "a directory private to the instance (e.g. a tmpfs) where the workers share metric "
        "values (prometheus-client's multiprocess mode); cleared at start",
        "—",
    ),
}

# On SIGTERM the app drains (framing.py: requests not yet started are answered 503 with
# Connection: close), granian stops accepting and lets in-flight requests finish for this
# long, then kills the workers. Orchestrators wait longer before SIGKILL (Kubernetes: 30 s).
SHUTDOWN_GRACE = 20

# granian's own messages (start, workers, signals) as JSON lines on stderr, like the app's.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "authserver.logs.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "_granian": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # The app writes one JSON line per request itself (authserver/logs.py), without
        # query strings: granian's access log would repeat it, query strings included.
        "granian.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
    },
}


def server_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="authserver serve", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("AUTHSERVER_HOST") or "127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("AUTHSERVER_PORT") or 8000))
    # One process per core: the work is CPU-bound (RSA signing, argon2id).
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("AUTHSERVER_WORKERS") or 0) or None
    )
    # A few threads per process: a request waiting on I/O (an SMS gateway taking seconds,
    # a database failing over) holds one thread, not a whole process. Each process's
    # database pool (5 + 5 overflow) covers them.
    parser.add_argument(
        "--threads", type=int, default=int(os.environ.get("AUTHSERVER_THREADS") or 4)
    )
    parser.add_argument(
        "--shutdown-grace",
        type=int,
        default=int(os.environ.get("AUTHSERVER_SHUTDOWN_GRACE") or SHUTDOWN_GRACE),
    )
    return parser.parse_args(argv)


def check_shutdown_grace(settings: Settings, grace: int) -> None:
    """An SMS send in flight at SIGTERM must be able to finish: killed, its code would be
    stored and the SMS perhaps sent, but the client would never hear of it."""
    if grace <= settings.slowest_sms_send:
        raise click.UsageError(
            f"--shutdown-grace (AUTHSERVER_SHUTDOWN_GRACE) is {grace} s but one SMS send may "
            f"take {settings.slowest_sms_send:.1f} s: raise the grace or lower "
            "AUTHSERVER_SMS_WEBHOOK_ATTEMPTS / the webhook timeouts."
        )


def prepare_metrics_dir() -> None:
    """Several workers share metric values through files (prometheus-client's
    multiprocess mode) when AUTHSERVER_METRICS_DIR is set. The variable must be in the
    environment before any worker imports prometheus-client, and files of an earlier
    run would be summed into this one's counters: so it is done here, once, in the
    parent of every worker."""
    metrics_dir = os.environ.get("AUTHSERVER_METRICS_DIR")
    if not metrics_dir:
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        return
    shutil.rmtree(metrics_dir, ignore_errors=True)
    Path(metrics_dir).mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir


@click.command(
    "serve",
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def serve_command(args: tuple[str, ...]) -> None:
    """Serve the API with granian: [--host H] [--port P] [--workers N] [--threads T]
    [--shutdown-grace S]."""
    options = server_arguments(list(args))  # a wrong option fails here, with its usage line
    # Build the whole app once: bad settings or a wrong key-encryption key stop here with
    # one clear error, not in every worker. Then a fresh interpreter for the server, so
    # its forked workers import the app themselves.
    app = create_app()
    from authserver.context import settings  # like create_app: Flask only from here on

    check_shutdown_grace(settings(app), options.shutdown_grace)
    os.execv(sys.executable, [sys.executable, "-m", "authserver.serve", *args])  # noqa: S606


def main(argv: list[str] | None = None) -> None:
    # Only in the process that serves: `authserver serve` checks the app and execs here.
    from granian.constants import Interfaces
    from granian.server import Server

    class DrainingServer(Server):  # type: ignore[misc, valid-type]
        """Marks the instance draining (framing.py) before granian's own shutdown."""

        def signal_handler_interrupt(self, *args, **kwargs):
            Path(os.environ[DRAIN_FILE]).touch()
            super().signal_handler_interrupt(*args, **kwargs)

    args = server_arguments(argv)
    prepare_metrics_dir()
    # Private to this instance, inherited by its workers; gone with the directory.
    os.environ[DRAIN_FILE] = str(Path(tempfile.mkdtemp(prefix="authserver-")) / "draining")
    DrainingServer(
        "authserver.wsgi:app",
        address=args.host,
        port=args.port,
        interface=Interfaces.WSGI,
        workers=args.workers or os.cpu_count() or 2,
        blocking_threads=args.threads,
        websockets=False,
        log_dictconfig=LOGGING,
        log_access=False,
        # A worker that dies is replaced; the others keep serving meanwhile.
        respawn_failed_workers=True,
        workers_kill_timeout=args.shutdown_grace,
    ).serve()


if __name__ == "__main__":
    main()
