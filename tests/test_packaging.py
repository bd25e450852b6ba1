"""The distributions as users get them: wheels built from this checkout, installed into
fresh virtual environments outside it, run from an empty directory.

- ``authserver``: ``db upgrade``, ``keys ensure``, ``clients create``, ``serve``, then a
  client-credentials token from the running server, checked with PyJWT against its JWKS.
  Nothing is written into the installed package; instance data goes to ./instance.
- ``authserver-resource`` (resource/): ``authserver.resource`` with Flask, Authlib and
  joserfc only, none of the server's dependencies; a downstream app built on it accepts
  that token and refuses a tampered one.

Cost: the dependencies come from a wheelhouse made once per ``requirements.lock`` under
``.venv/`` (the first run downloads them; later runs need no network), so a run costs two
wheel builds, two virtual environments and the installs from local files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest

import authserver
from tests.services import free_port, verified_client_credentials_token, wait_until_ready

ROOT = Path(__file__).resolve().parent.parent
VERSION = authserver.__version__
# Present in any environment the server's wheel makes; absent where only the resource
# distribution is installed.
SERVER_ONLY = {"sqlalchemy", "flask-sqlalchemy", "alembic", "psycopg2-binary", "granian",
               "argon2-cffi", "flask-limiter", "pydantic", "prometheus-client"}  # fmt: skip


def pip(*args: str, network: bool = False) -> None:
    env = dict(os.environ)
    if not network:  # only the files given: no index, no machine-wide pip settings
        env["PIP_CONFIG_FILE"] = os.devnull
        env.pop("PIP_FIND_LINKS", None)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    """Wheels of every runtime dependency at the pinned versions, made once per lock."""
    lock = (ROOT / "requirements.lock").read_bytes()
    house = ROOT / ".venv" / f"wheelhouse-{hashlib.sha256(lock).hexdigest()[:12]}"
    if not house.is_dir():
        partial = house.with_name(house.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        pip("wheel", "--no-build-isolation", "-c", str(ROOT / "requirements.lock"),
            "-w", str(partial), str(ROOT), str(ROOT / "resource"), network=True)  # fmt: skip
        for built in partial.glob("authserver*.whl"):  # ours are built fresh by each run
            built.unlink()
        partial.rename(house)
    return house


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """This checkout's two wheels, built now."""
    out = tmp_path_factory.mktemp("dist")
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(out),
        str(ROOT), str(ROOT / "resource"))  # fmt: skip
    return out


@dataclass
class Venv:
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def bin(self, name: str) -> str:
        return str(self.path / "bin" / name)

    def installed(self) -> set[str]:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(self.python), "list", "--format=json"],
            capture_output=True,
            text=True,
            check=True,
        )
        return {entry["name"].lower() for entry in json.loads(done.stdout)}


def fresh_venv(where: Path, requirement: str, wheelhouse: Path, dist: Path) -> Venv:
    venv = Venv(where)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    pip("--python", str(venv.python), "install", "--no-index",
        "--find-links", str(dist), "--find-links", str(wheelhouse), requirement)  # fmt: skip
    return venv


@dataclass
class Installed:
    venv: Venv
    work: Path
    url: str
    token: str


@pytest.fixture(scope="module")
def installed(tmp_path_factory, wheelhouse, dist) -> Iterator[Installed]:
    """The server's wheel in a fresh venv, serving from an empty directory."""
    base = tmp_path_factory.mktemp("installed")
    venv = fresh_venv(base / "venv", f"authserver=={VERSION}", wheelhouse, dist)
    work = base / "work"
    work.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHSERVER_", "PYTHON"))}
    env.update(AUTHSERVER_ISSUER=url, PATH=f"{venv.path / 'bin'}:{env.get('PATH', '')}")

    def run(*args: str) -> dict:
        done = subprocess.run(
            [venv.bin("authserver"), *args], cwd=work, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    upgraded = subprocess.run(
        [venv.bin("authserver"), "db", "upgrade"], cwd=work, env=env, capture_output=True, text=True
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert run("keys", "ensure")["active"]
    client = run(
        "clients", "create", "--name", "billing", "--grant-type", "client_credentials",
        "--scope", "invoices.read",
    )  # fmt: skip
    server = subprocess.Popen(
        [venv.bin("authserver"), "serve", "--port", str(port), "--workers", "1"],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_ready(url, still_running=lambda: server.poll() is None, timeout=60)
        token, _ = verified_client_credentials_token(url, client)
        yield Installed(venv, work, url, token)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_installed_server_issues_a_token_that_verifies(installed):
    """Checked with PyJWT (not authserver's code) against the installed server's JWKS."""
    claims = jwt.decode(installed.token, options={"verify_signature": False})
    assert claims["scope"] == "invoices.read" and claims["iss"] == installed.url


def test_installed_server_writes_only_into_the_working_directory(installed):
    assert sorted(p.name for p in installed.work.iterdir()) == ["instance"]
    assert (installed.work / "instance" / "authserver.db").is_file()
    site = next(installed.venv.path.glob("lib/python*/site-packages"))
    package = site / "authserver"
    assert not (package / "instance").exists() and not (package / "keys").exists()
    assert not (site / "instance").exists() and not (site / "keys").exists()


def test_installed_version_is_the_checkouts(installed):
    done = subprocess.run(
        [installed.venv.bin("authserver"), "--version"], capture_output=True, text=True
    )
    assert done.stdout.strip() == f"authserver, version {VERSION}"


def test_wheel_holds_every_file_of_the_package(dist):
    """Templates, migrations, data files: whatever the package directory tracks in git
    is in the wheel (a file left out works in a checkout and breaks when installed)."""
    import zipfile

    tracked = subprocess.run(
        ["git", "ls-files", "authserver"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    wheel = next(dist.glob(f"authserver-{VERSION}-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        packed = set(archive.namelist())
    assert sorted(set(tracked) - packed) == []


def test_resource_distribution_verifies_tokens_without_the_server(
    installed, tmp_path, wheelhouse, dist
):
    """A downstream service installs authserver-resource only and checks the installed
    server's token with it (the example property service's protector)."""
    venv = fresh_venv(tmp_path / "venv", f"authserver-resource=={VERSION}", wheelhouse, dist)
    packages = venv.installed()
    assert {"flask", "authlib", "joserfc"} <= packages
    assert not SERVER_ONLY & packages
    assert "authserver" not in packages

    probe = tmp_path / "downstream.py"
    probe.write_text(
        "import json, sys\n"
        "from flask import Flask\n"
        "from authserver.resource import ResourceProtector, current_claims\n"
        "issuer, token = sys.argv[1], sys.argv[2]\n"
        "protect = ResourceProtector(issuer=issuer, audience=issuer)\n"
        "app = Flask('downstream')\n"
        "@app.get('/invoices')\n"
        "@protect('invoices.read')\n"
        "def invoices():\n"
        "    return {'client': current_claims['client_id']}\n"
        "client = app.test_client()\n"
        "good = client.get('/invoices', headers={'Authorization': 'Bearer ' + token})\n"
        "forged = token[:-4] + 'AAAA'\n"
        "bad = client.get('/invoices', headers={'Authorization': 'Bearer ' + forged})\n"
        "print(json.dumps([good.status_code, good.json, bad.status_code]))\n"
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))\n"
    )
    done = subprocess.run(
        [str(venv.python), str(probe), installed.url, installed.token],
        cwd=tmp_path,  # not the checkout: its authserver/ must not be importable
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answers, modules = (json.loads(line) for line in done.stdout.splitlines())
    claims = jwt.decode(installed.token, options={"verify_signature": False})
    assert answers == [200, {"client": claims["client_id"]}, 401]
    assert not {"sqlalchemy", "flask_sqlalchemy", "granian", "psycopg2"} & set(modules)


def test_models_module_registers_every_table():
    """authserver/models.py (what Alembic compares) lists every model module: importing
    every module of the package adds no table to what it registers."""
    probe = (
        "import importlib, pkgutil, authserver\n"
        "import authserver.models\n"
        "from authserver.extensions import db\n"
        "listed = sorted(db.metadata.tables)\n"
        "for info in pkgutil.walk_packages(authserver.__path__, 'authserver.'):\n"
        "    if info.name not in ('authserver.wsgi', 'authserver.__main__'):\n"
        "        importlib.import_module(info.name)\n"
        "missing = sorted(set(db.metadata.tables) - set(listed))\n"
        "print(listed == sorted(db.metadata.tables), missing)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "True []", done.stdout + done.stderr


def test_container_files_name_only_real_settings_and_commands():
    """The Dockerfile and compose.yaml are built and run by `make image-test`, not by
    this suite (docs/development.md): here, what can drift without a build. Every
    AUTHSERVER_* variable they set exists, every command they run is an authserver
    command, and both instances share one database, one Redis and the same two keys."""
    import re
    from dataclasses import fields

    import yaml

    from authserver.cli import COMMANDS
    from authserver.config import Settings
    from authserver.serve import SERVER_SETTINGS

    known = {f"AUTHSERVER_{f.name.upper()}" for f in fields(Settings)} | set(SERVER_SETTINGS)
    dockerfile = (ROOT / "Dockerfile").read_text()
    compose_text = (ROOT / "compose.yaml").read_text()
    named = set(re.findall(r"AUTHSERVER_[A-Z0-9_]*[A-Z0-9]", dockerfile + compose_text))
    assert named and not named - known

    assert 'ENTRYPOINT ["authserver"]' in dockerfile and 'CMD ["serve"]' in dockerfile
    assert re.search(r"^USER authserver$", dockerfile, re.MULTILINE)
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile

    services = yaml.safe_load(compose_text)["services"]
    instances = [name for name in services if name.startswith("authserver-")]
    assert len(instances) == 2
    setup = services["setup"]["entrypoint"][-1]
    for step in re.findall(r"authserver (\w+) (\w+)", setup):
        assert step[0] in COMMANDS
    assert "db upgrade" in setup and "keys ensure" in setup
    first, second = (services[name]["environment"] for name in instances)
    assert first == second
    for shared in ("AUTHSERVER_DATABASE_URL", "AUTHSERVER_RATELIMIT_STORAGE_URL",
                   "AUTHSERVER_KEY_ENCRYPTION_KEY", "AUTHSERVER_SECRET_KEY"):  # fmt: skip
        assert shared in first
    for name in instances:
        assert services[name]["depends_on"]["setup"]["condition"] == (
            "service_completed_successfully"
        )
