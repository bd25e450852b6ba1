"""gunicorn settings for `make run` and production (override with GUNICORN_CMD_ARGS)."""

import os

# One worker per core: the work is CPU-bound (RSA signing, argon2id), not I/O-bound.
workers = int(os.environ.get("AUTHSERVER_WORKERS", os.cpu_count() or 2))
worker_class = "sync"
# Keep-alive lets a client reuse its connection; 75 s outlives most proxies' idle timeout.
keepalive = 75
timeout = 30
graceful_timeout = 20
# Import the app once in the master: workers fork with the code already loaded.
preload_app = True
accesslog = None
errorlog = "-"
