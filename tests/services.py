"""Throwaway PostgreSQL and Redis servers for the test suite, started from the server
binaries on this machine (or taken from AUTHSERVER_TEST_DATABASE_URL /
AUTHSERVER_TEST_REDIS_URL). A missing binary is an error, never a skip."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bindir() -> Path:
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(out.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    if shutil.which("initdb"):
        candidates.append(str(Path(shutil.which("initdb")).resolve().parent))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL "
        "(Debian: apt-get install postgresql) or set AUTHSERVER_TEST_DATABASE_URL"
    )


def _as_server_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: drop to the 'postgres' account when we are root."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@contextmanager
def postgres_server(*, durable: bool = False) -> Iterator[str]:
    """Yield a SQLAlchemy URL of an empty database on a private PostgreSQL server.

    Tests run it without fsync (fast); ``durable``: PostgreSQL's defaults (every commit
    waits for its WAL flush), as the benchmark and production run it."""
    if os.environ.get("AUTHSERVER_TEST_DATABASE_URL"):
        yield os.environ["AUTHSERVER_TEST_DATABASE_URL"]
        return
    bindir = _pg_bindir()
    datadir = Path(tempfile.mkdtemp(prefix="authserver-pg-"))
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(datadir, account.pw_uid, account.pw_gid)
    port = free_port()
    subprocess.run(
        _as_server_user(
            [
                str(bindir / "initdb"),
                "-D",
                str(datadir / "data"),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1 -c max_connections=100"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    subprocess.run(
        _as_server_user(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(datadir / "data"),
                "-o",
                options,
                "-l",
                str(datadir / "server.log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE authserver_test")
        conn.close()
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/authserver_test"
    finally:
        subprocess.run(
            _as_server_user(
                [str(bindir / "pg_ctl"), "-D", str(datadir / "data"), "-m", "immediate", "stop"]
            ),
            capture_output=True,
        )
        shutil.rmtree(datadir, ignore_errors=True)


@contextmanager
def redis_server() -> Iterator[str]:
    if os.environ.get("AUTHSERVER_TEST_REDIS_URL"):
        yield os.environ["AUTHSERVER_TEST_REDIS_URL"]
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server not found: install Redis (Debian: apt-get install redis-server) "
            "or set AUTHSERVER_TEST_REDIS_URL"
        )
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="authserver-redis-")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


class PostgresCluster:
    """A private PostgreSQL server a test may stop and start again (outage tests), on a
    fixed port so the app's URL stays valid. Use as a context manager; never shared."""

    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        self.workdir = Path(tempfile.mkdtemp(prefix="authserver-pg-outage-"))
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.workdir, account.pw_uid, account.pw_gid)
        self.port = free_port()
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/authserver_test"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_server_user([str(self.bindir / "pg_ctl"), "-D", str(self.workdir / "data"), *args]),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=50"
        )
        self._pg_ctl("-o", options, "-l", str(self.workdir / "server.log"), "-w", "start")

    def stop(self) -> None:
        """Like a crash: connections are cut, nothing is flushed politely."""
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def __enter__(self) -> PostgresCluster:
        subprocess.run(
            _as_server_user(
                [
                    *(str(self.bindir / "initdb"), "-D", str(self.workdir / "data")),
                    *("-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"),
                ]
            ),
            check=True,
            capture_output=True,
        )
        self.start()
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE authserver_test")
        conn.close()
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(
            _as_server_user(
                [
                    *(str(self.bindir / "pg_ctl"), "-D", str(self.workdir / "data")),
                    *("-m", "immediate", "stop"),
                ]
            ),
            capture_output=True,
        )
        shutil.rmtree(self.workdir, ignore_errors=True)


class RedisProcess:
    """A private Redis a test may stop and start again, on a fixed port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server not found: install Redis (apt-get install redis-server)"
            )
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = tempfile.mkdtemp(prefix="authserver-redis-outage-")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [
                *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def __enter__(self) -> RedisProcess:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def wait_until_ready(
    base_url: str, still_running: Callable[[], bool] = lambda: True, timeout: float = 90
) -> None:
    """Until ``{base_url}/readyz`` answers 200: a server just started (a process, an
    installed wheel, a container) is migrated, has its key and reaches its database."""
    import requests  # the suite's HTTP client; this module otherwise needs none

    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if not still_running():
            raise AssertionError(f"the server at {base_url} stopped before it was ready")
        if time.monotonic() > deadline:
            raise AssertionError(f"the server at {base_url} was not ready in {timeout} s")
        time.sleep(0.2)


def verified_client_credentials_token(base_url: str, client: dict) -> tuple[str, dict]:
    """A client-credentials token from a running server, and its claims as PyJWT (not
    authserver's code) reads them after checking them against the server's JWKS."""
    import jwt  # the independent verifier
    import requests

    answer = requests.post(
        f"{base_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    key = jwt.PyJWKClient(f"{base_url}/.well-known/jwks.json").get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["RS256"], issuer=base_url, audience=base_url)
    return token, claims


class ServedAuthserver:
    """``authserver serve`` (granian, as ``make run`` and production run it) in its own
    process group, on a database the caller migrated; ``environ`` adds AUTHSERVER_*."""

    def __init__(self, database_url: str, keys_dir, **environ: str) -> None:
        import requests  # the suite's HTTP client; this module otherwise needs none

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "AUTHSERVER_ENV": "testing",
            "AUTHSERVER_DATABASE_URL": database_url,
            "AUTHSERVER_KEYS_DIR": str(keys_dir),
            "AUTHSERVER_ISSUER": "http://127.0.0.1:8000",
            "AUTHSERVER_WORKERS": "1",
            **environ,
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "authserver"), "serve", "--port", str(self.port)],
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        # Read as it comes: a pipe nobody reads while the server works fills up (64 KiB,
        # ~170 access log lines) and then blocks every worker writing to it.
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                raise RuntimeError("the server did not start: " + self.stderr())
            time.sleep(0.1)

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._lines.append(line)

    def stderr(self) -> str:
        """Everything it wrote on stderr (complete once it has exited)."""
        if self.process.poll() is not None:
            self._reader.join(timeout=10)
        return "".join(self._lines)

    def stop(self, timeout: float = 30) -> tuple[int, str]:
        """SIGTERM, as an orchestrator stops it; its exit code and stderr."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=timeout)
        return self.process.returncode, self.stderr()

    def __enter__(self) -> ServedAuthserver:
        return self

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
