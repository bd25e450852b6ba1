"""CPU per request in one process: the hot paths measured without the HTTP server.

Starts a private PostgreSQL and Redis (as `make bench` does), seeds the same database
(bench/seed.py), builds the app in this process and calls it as a WSGI server would, N
times per workload, measuring ``time.process_time`` around each call: the app's own CPU
per request, far less sensitive to a busy machine than requests per second. With
``--profile`` it prints where that time goes (cProfile, by cumulative and own time).

    .venv/bin/python bench/cpu.py -n 2000 --only client_credentials verify
    .venv/bin/python bench/cpu.py -n 500 --only refresh --profile 25
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.run import LOGIN, basic, cpu_seconds, process_listening_on  # noqa: E402
from tests.services import postgres_server, redis_server  # noqa: E402

BIN = ROOT / ".venv" / "bin"


def environ_for(method: str, path: str, body: bytes, headers: dict[str, str]) -> dict:
    """The WSGI environ a server would hand the app (a fresh input stream each call)."""
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench",
    }
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
    return environ


def call(app, environ: dict, body: bytes) -> tuple[int, bytes]:
    environ = {**environ, "wsgi.input": io.BytesIO(body)}
    status: list[str] = []
    chunks = app(environ, lambda s, h, exc_info=None: status.append(s))
    try:
        data = b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    return int(status[0].split()[0]), data


def reference_ms() -> float:
    """CPU of one RS256 signature right now: this machine's speed at the moment, to
    compare runs taken under different loads."""
    key = _REFERENCE_KEY
    start = time.process_time()
    for _ in range(200):
        key.sign(b"x" * 700, padding.PKCS1v15(), hashes.SHA256())
    return (time.process_time() - start) * 1000 / 200


_REFERENCE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=1000, help="requests per workload")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions")
    parser.add_argument("--save", help="with --profile: write each workload's stats to SAVE.<name>")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="authserver-profile-"))
    with postgres_server() as pg_url, redis_server() as redis_url:
        env = {
            "AUTHSERVER_ENV": "development",
            "AUTHSERVER_DATABASE_URL": pg_url,
            "AUTHSERVER_RATELIMIT_STORAGE_URL": redis_url,
            "AUTHSERVER_ISSUER": "http://127.0.0.1:8000",
            "AUTHSERVER_KEYS_DIR": str(workdir / "keys"),
        }
        os.environ.update(env)
        for command in (["db", "upgrade"], ["keys", "ensure"]):
            subprocess.run([str(BIN / "authserver"), *command], check=True, capture_output=True)
        seeded = subprocess.run(
            [str(BIN / "python"), "bench/seed.py", str(args.n + 50), str(workdir / "t.txt")],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        creds = json.loads(seeded.stdout.strip().splitlines()[-1])
        tokens = iter((workdir / "t.txt").read_text().split())

        from authserver import create_app

        app = create_app()
        app_auth, svc_auth = basic(creds["app"]), basic(creds["svc"])
        form = "application/x-www-form-urlencoded"
        login = environ_for(
            "POST",
            "/oauth/token",
            LOGIN.encode(),
            {"Authorization": app_auth, "Content-Type": form},
        )
        status, body = call(app, login, LOGIN.encode())
        assert status == 200, body
        access = json.loads(body)["access_token"]

        def refresh_body() -> bytes:
            return f"grant_type=refresh_token&refresh_token={next(tokens)}".encode()

        workloads = {
            "trivial": ("GET", "/healthz", lambda: b"", {}),
            "client_credentials": (
                "POST",
                "/oauth/token",
                lambda: b"grant_type=client_credentials",
                {"Authorization": svc_auth, "Content-Type": form},
            ),
            "introspection": (
                "POST",
                "/oauth/introspect",
                lambda: f"token={access}".encode(),
                {"Authorization": svc_auth, "Content-Type": form},
            ),
            "verify": (
                "POST",
                "/auth/token/verify/",
                lambda: json.dumps({"token": access}).encode(),
                {"Content-Type": "application/json"},
            ),
            "refresh": (
                "POST",
                "/oauth/token",
                refresh_body,
                {"Authorization": app_auth, "Content-Type": form},
            ),
            "password": (
                "POST",
                "/oauth/token",
                lambda: LOGIN.encode(),
                {"Authorization": app_auth, "Content-Type": form},
            ),
        }
        for name in args.only or list(workloads):
            method, path, make_body, headers = workloads[name]
            count = args.n if name != "password" else max(20, args.n // 50)
            profiler = cProfile.Profile(time.process_time) if args.profile else None
            samples = []
            database = process_listening_on("postgres", make_url(pg_url).port)
            for index in range(count + 20):
                if index == 20:
                    database_before = cpu_seconds(database) if database else 0.0
                body = make_body()
                environ = environ_for(method, path, body, headers)
                if profiler and index >= 20:
                    profiler.enable()
                start = time.process_time()
                status, answer = call(app, environ, body)
                spent = time.process_time() - start
                if profiler and index >= 20:
                    profiler.disable()
                assert status == 200, (name, status, answer[:300])
                if index >= 20:  # the first calls warm caches and lazy imports
                    samples.append(spent * 1000)
            database_ms = 0.0
            if database:
                database_ms = (cpu_seconds(database) - database_before) * 1000 / count
            if name == "password":  # the hash alone, with the server's own hasher
                with app.app_context():
                    from authserver.context import passwords

                    stored = passwords().hash("x")
                    start = time.process_time()
                    for _ in range(20):
                        passwords().verify(stored, "x")
                    hash_ms = (time.process_time() - start) * 1000 / 20
                print(f"{'':20s} argon2id alone: {hash_ms:.3f} ms CPU")
            print(
                f"{name:20s} CPU ms/request: mean {statistics.mean(samples):.3f}"
                f"  median {statistics.median(samples):.3f}  PostgreSQL {database_ms:.3f}"
                f"  ({count} requests; one RS256"
                f" signature {reference_ms():.3f} ms now)",
                flush=True,
            )
            if profiler and args.save:
                profiler.dump_stats(f"{args.save}.{name}")
            if profiler:
                for order in ("cumulative", "tottime"):
                    out = io.StringIO()
                    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order)
                    stats.print_stats(args.profile)
                    print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
