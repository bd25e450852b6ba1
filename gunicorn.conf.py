"""gunicorn settings for `make run` and production (override with GUNICORN_CMD_ARGS).

README, "Running in production" explains each choice; the short version is beside each setting.
"""

import os
import shutil
from pathlib import Path

# One process per core: the work is CPU-bound (RSA signing, argon2id), so more processes
# than cores would only compete for them.
workers = int(os.environ.get("AUTHSERVER_WORKERS", os.cpu_count() or 2))
# A few threads per process: a request waiting on I/O (an SMS gateway taking seconds, a
# database failing over) holds one thread, not a whole process. argon2 and RSA release
# the GIL while they compute. Each process's database pool (5 + 5 overflow) covers them.
worker_class = "gthread"
threads = int(os.environ.get("AUTHSERVER_THREADS", 4))
# Keep-alive lets a proxy reuse its connections; 75 s outlives most proxies' idle timeout
# (nginx 60 s, AWS ALB 60 s), so the proxy, not us, closes idle connections.
keepalive = 75
# A worker process silent for 30 s is stuck and is killed and replaced. Every wait inside
# a request is bounded well below it: database connect 3 s, Redis 1 s, the SMS webhook
# ~19 s with all its retries.
timeout = 30
# SIGTERM: stop accepting, let in-flight requests finish for up to 20 s, then exit.
# Orchestrators wait longer than that before SIGKILL (Kubernetes: 30 s by default).
graceful_timeout = 20
# Import the app once in the master: workers fork with the code already loaded, and an
# app that cannot start (bad settings, wrong key-encryption key) stops the master with
# one clear error instead of every worker failing in a loop. No database connection is
# opened before the fork (create_app disposes its pool).
preload_app = True
# Recycle workers now and then (jittered so they do not restart together): bounds the
# damage of any slow leak.
max_requests = 10000
max_requests_jitter = 1000
# The app writes one JSON line per request itself (authserver/logs.py), without query
# strings: gunicorn's access log would repeat it, query strings included.
accesslog = None
errorlog = "-"
# gunicorn's own messages (boot, worker timeouts, signals) as JSON lines too.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": []},  # the app installs the root handler
    "formatters": {"json": {"()": "authserver.logs.JsonFormatter"}},
    "handlers": {
        "error_console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
    },
}

# Metrics of several workers: with AUTHSERVER_METRICS_DIR set, prometheus-client runs in
# multiprocess mode (every worker writes its values to files there; /metrics sums them).
# PROMETHEUS_MULTIPROC_DIR must be set before prometheus-client is imported, and with
# preload_app the app is imported before on_starting runs: so this is done here, when
# the master reads this file, and only the first time (a HUP reload keeps live files).
_metrics_dir = os.environ.get("AUTHSERVER_METRICS_DIR")
if _metrics_dir and os.environ.get("PROMETHEUS_MULTIPROC_DIR") != _metrics_dir:
    # Files of a previous run would be summed into this one's counters.
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    Path(_metrics_dir).mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def child_exit(server, worker):
    """A dead worker's live gauges must not be reported any more."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
