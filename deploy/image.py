"""Build the container image and test it: ``make image`` and ``make image-test``.

    python deploy/image.py build   # the Dockerfile, with docker or podman
    python deploy/image.py test    # the image against a throwaway PostgreSQL: a token

The engine is docker when a docker daemon answers, else podman (with
deploy/containers.conf: runc, cgroupfs, no ulimits, as machines without systemd need).
The base is ``BASE`` (default ``python:3.12-slim``); when it cannot be had (no registry
reachable, as on the project's machines), a Debian base is made locally from Debian's
packages with mmdebstrap (``localhost/debian-python:bookworm``), and the very same
Dockerfile is built on it.

The test, with host networking: ``db upgrade`` and ``keys ensure`` as one-off containers,
``clients create``, then ``serve`` (read-only root file system, as the non-root user),
``/readyz`` green, the health check passing, a client-credentials token checked with
PyJWT against the container's JWKS, and a graceful stop on SIGTERM.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.services: the suite's throwaway PostgreSQL

import authserver  # noqa: E402

IMAGE = "localhost/authserver"
LOCAL_BASE = "localhost/debian-python:bookworm"
DEBIAN_PACKAGES = "python3,python3-venv,passwd,ca-certificates"


def log(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


def engine() -> list[str]:
    if shutil.which("docker") and _ok(["docker", "info"]):
        return ["docker"]
    if not shutil.which("podman"):
        _apt_install("podman", "runc")
    os.environ.setdefault("CONTAINERS_CONF", str(ROOT / "deploy" / "containers.conf"))
    return ["podman"]


def _ok(command: list[str], timeout: float = 60) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=timeout).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _apt_install(*packages: str) -> None:
    log(f"installing {' '.join(packages)} (Debian packages)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", *packages]
    if subprocess.run(command, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        subprocess.run(command, env=env, check=True, capture_output=True)


def base_image(run: list[str]) -> str:
    wanted = os.environ.get("BASE") or "python:3.12-slim"
    if _ok([*run, "image", "inspect", wanted]) or _ok([*run, "pull", wanted], timeout=120):
        return wanted
    log(f"{wanted} cannot be pulled here: using a Debian base made locally ({LOCAL_BASE})")
    if not _ok([*run, "image", "inspect", LOCAL_BASE]):
        if not shutil.which("mmdebstrap"):
            _apt_install("mmdebstrap")
        with tempfile.TemporaryDirectory() as scratch:
            rootfs = Path(scratch) / "rootfs.tar"
            started = time.monotonic()
            subprocess.run(
                ["mmdebstrap", "--variant=minbase", f"--include={DEBIAN_PACKAGES}",
                 "bookworm", str(rootfs), _debian_sources()],
                check=True, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            subprocess.run([*run, "import", str(rootfs), LOCAL_BASE], check=True)
            log(f"Debian base made in {time.monotonic() - started:.0f} s")
    return LOCAL_BASE


def _debian_sources() -> str:
    """The machine's own Debian mirror (deb822 or one-line format)."""
    for candidate in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        if Path(candidate).is_file() and Path(candidate).read_text().strip():
            return candidate
    return "http://deb.debian.org/debian"


def build() -> str:
    run = engine()
    base = base_image(run)
    tag = f"{IMAGE}:{authserver.__version__}"
    # A TLS-inspecting proxy's CA bundle (this machine's pip has one) reaches pip inside
    # the build as a secret: never in a layer of the image.
    cert = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    secret = ["--secret", f"id=pip-cert,src={cert}"] if cert and Path(cert).is_file() else []
    # podman writes OCI images by default, whose format has no HEALTHCHECK.
    image_format = ["--format", "docker"] if run[0] == "podman" else []
    started = time.monotonic()
    subprocess.run(
        [*run, "build", *image_format, "--network", "host", "--build-arg", f"BASE={base}", *secret,
         "-t", tag, "-t", f"{IMAGE}:latest", "-f", str(ROOT / "Dockerfile"), str(ROOT)],
        check=True,
    )  # fmt: skip
    log(f"built {tag} on {base} with {run[0]} in {time.monotonic() - started:.0f} s")
    return tag


def test() -> None:
    from tests.services import (
        free_port,
        postgres_server,
        verified_client_credentials_token,
        wait_until_ready,
    )

    run = engine()
    tag = f"{IMAGE}:{authserver.__version__}"
    if not _ok([*run, "image", "inspect", tag]):
        sys.exit(f"no image {tag}: run `make image` first")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    name = f"authserver-image-test-{secrets.token_hex(4)}"
    started = time.monotonic()
    with postgres_server() as database_url:
        settings = {
            "AUTHSERVER_DATABASE_URL": database_url,
            "AUTHSERVER_ISSUER": issuer,
            "AUTHSERVER_KEY_ENCRYPTION_KEY": secrets.token_urlsafe(32),
            "AUTHSERVER_SECRET_KEY": secrets.token_urlsafe(32),
        }
        env_args = [arg for name_, value in settings.items() for arg in ("-e", f"{name_}={value}")]

        def one_off(*args: str) -> str:
            done = subprocess.run(
                [*run, "run", "--rm", "--network", "host", *env_args, tag, *args],
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, f"{args}: {done.stderr}"
            return done.stdout

        one_off("db", "upgrade")
        one_off("keys", "ensure")
        client = json.loads(
            one_off("clients", "create", "--name", "image test",
                    "--grant-type", "client_credentials", "--scope", "invoices.read")
        )  # fmt: skip
        subprocess.run(
            [*run, "run", "-d", "--name", name, "--network", "host", "--read-only", *env_args,
             "-e", "AUTHSERVER_HOST=127.0.0.1", "-e", f"AUTHSERVER_PORT={port}",
             "-e", "AUTHSERVER_WORKERS=1", tag],
            check=True, capture_output=True,
        )  # fmt: skip
        try:
            wait_until_ready(issuer, timeout=90)
            user = subprocess.run(
                [*run, "exec", name, "id", "-u"], capture_output=True, text=True, check=True
            ).stdout.strip()
            assert user != "0", "the server runs as root"
            if run[0] == "podman":  # docker runs health checks on its own schedule only
                subprocess.run([*run, "healthcheck", "run", name], check=True)
            _, claims = verified_client_credentials_token(issuer, client)
            assert claims["scope"] == "invoices.read"
            subprocess.run([*run, "stop", "-t", "30", name], check=True, capture_output=True)
            status = subprocess.run(
                [*run, "inspect", "-f", "{{.State.ExitCode}}", name],
                capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            assert status == "0", f"the server exited {status} on SIGTERM"
        except BaseException:
            subprocess.run([*run, "logs", name])
            raise
        finally:
            subprocess.run([*run, "rm", "-f", name], capture_output=True)
    log(
        f"image test passed in {time.monotonic() - started:.0f} s: migrations and keys as "
        f"one-offs, served as uid {user}, a token for {claims['client_id']} verified"
    )


if __name__ == "__main__":
    {"build": build, "test": test}[sys.argv[1] if len(sys.argv) > 1 else "build"]()
