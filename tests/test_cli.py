"""The installed `authserver` console script, run as an operator runs it: a subprocess
that prints one JSON object on stdout, or a JSON error on stderr with exit status 1."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pytest

from authserver import create_app
from tests.conftest import USER_KEYS, make_settings

SCRIPT = Path(sys.executable).parent / "authserver"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        lines = self.stdout.strip().splitlines()
        assert len(lines) == 1, self.stdout  # exactly one JSON object, nothing else
        body = json.loads(lines[0])
        assert isinstance(body, dict)
        return body

    @property
    def error(self) -> dict:
        assert self.code == 1, (self.code, self.stdout, self.stderr)
        assert self.stdout == ""
        return json.loads(self.stderr.strip().splitlines()[-1])


@dataclass
class Installation:
    """A fresh database and key directory, as on a new machine."""

    root: Path

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.root / 'authserver.db'}"

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    def run(self, *args: str, stdin: str = "", **settings: str) -> Result:
        env = {
            name: value for name, value in os.environ.items() if not name.startswith("AUTHSERVER_")
        }
        env.update(
            AUTHSERVER_DATABASE_URL=self.database_url,
            AUTHSERVER_KEYS_DIR=str(self.keys_dir),
            AUTHSERVER_DEFAULT_REGION="FR",
        )
        env.update({f"AUTHSERVER_{name.upper()}": value for name, value in settings.items()})
        done = subprocess.run(
            [str(SCRIPT), *args],
            env=env,
            cwd=self.root,  # no stray .env from the project directory
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            # No controlling terminal: a password prompt reads standard input, as it does
            # when an operator pipes into it, instead of this terminal.
            start_new_session=True,
        )
        return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installation:
    installation = Installation(tmp_path_factory.mktemp("cli"))
    upgraded = installation.run("db", "upgrade")
    assert upgraded.code == 0, upgraded.stderr
    ensured = installation.run("keys", "ensure")
    assert ensured.code == 0, ensured.stderr
    ensured.json  # noqa: B018  (one JSON object)
    return installation


def test_console_script_is_installed():
    assert SCRIPT.exists()


def test_keys_list_shape(installed):
    keys = installed.run("keys", "list").json["keys"]
    assert keys
    for key in keys:
        assert {"kid", "state", "alg", "created_at"} <= key.keys()
        assert key["state"] in {"next", "active", "retired", "revoked"}
        assert key["alg"] == "RS256"
    assert [key["state"] for key in keys].count("active") == 1


def test_keys_ensure_is_idempotent(installed):
    before = installed.run("keys", "list").json["keys"]
    assert installed.run("keys", "ensure").code == 0
    assert installed.run("keys", "list").json["keys"] == before


def test_users_create_prints_the_seed_user_object(installed):
    result = installed.run(
        "users",
        "create",
        "--phone",
        "06 11 22 33 44",
        "--password",
        "a long enough password",
        "--email",
        "ada@example.com",
        "--first-name",
        "Ada",
        "--last-name",
        "Lovelace",
        "--account-type",
        "landlord",
        "--group",
        "Owners",
        "--group",
        "Staff",
    )
    assert result.code == 0, result.stderr
    user = result.json
    assert set(user) == USER_KEYS
    assert user["phone"] == "+33611223344"
    assert user["email"] == "ada@example.com"
    assert (user["first_name"], user["last_name"]) == ("Ada", "Lovelace")
    assert user["account_type"] == "landlord"
    assert user["is_active"] is True and user["is_blocked"] is False
    assert user["groups"] == ["Owners", "Staff"]
    assert user["permissions"] == []
    assert "a long enough password" not in result.stdout + result.stderr


def test_users_create_admin(installed):
    user = installed.run("users", "create", "--phone", "+33 6 55 44 33 22", "--admin").json
    assert "authserver.admin" in user["permissions"]
    assert user["groups"]


def test_duplicate_phone_in_any_form_fails_with_json_error(installed):
    first = installed.run("users", "create", "--phone", "+33622334455", "--password", "pw pw pw")
    assert first.code == 0, first.stderr
    for phone in ("+33622334455", "06.22.33.44.55"):
        again = installed.run("users", "create", "--phone", phone, "--password", "pw pw pw")
        assert "already exists" in again.error["error"]


@pytest.mark.parametrize("phone", ["not a phone", "+33 1", "+" + "9" * 40])
def test_invalid_phone_fails_with_json_error(installed, phone):
    result = installed.run("users", "create", "--phone", phone, "--password", "pw pw pw")
    assert "phone" in result.error["error"]


def test_clients_create_secret_works_at_the_token_endpoint(installed):
    result = installed.run(
        "clients",
        "create",
        "--name",
        "billing service",
        "--grant-type",
        "client_credentials",
        "--scope",
        "reports invoices.read",
    )
    assert result.code == 0, result.stderr
    client = result.json
    assert {"client_id", "client_secret", "grant_types", "scope"} <= client.keys()
    assert client["grant_types"] == ["client_credentials"]
    assert client["scope"] == "invoices.read reports"
    assert len(client["client_secret"]) >= 43  # 256 bits, base64url

    app = create_app(make_settings(installed.database_url, installed.keys_dir))
    try:
        response = app.test_client().post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"]),
        )
        assert response.status_code == 200, response.json
        assert response.json["scope"] == "invoices.read reports"
        wrong = app.test_client().post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"][:-1]),
        )
        assert wrong.status_code == 401
    finally:
        with app.app_context():
            from authserver.extensions import db

            db.engine.dispose()

    # Shown once, stored only as a keyed hash: the database never holds it.
    dump = "\n".join(sqlite3.connect(installed.root / "authserver.db").iterdump())
    assert client["client_id"] in dump
    assert client["client_secret"] not in dump


def test_clients_create_public_has_null_secret(installed):
    client = installed.run(
        "clients",
        "create",
        "--name",
        "mobile app",
        "--grant-type",
        "password",
        "--grant-type",
        "refresh_token",
        "--public",
        "--first-party",
    ).json
    assert client["client_secret"] is None
    assert client["grant_types"] == ["password", "refresh_token"]
    assert client["first_party"] is True
    assert client["scope"]  # a default scope when none is given


def test_clients_create_a_web_app_in_one_line(installed):
    client = installed.run(
        "clients",
        "create",
        "--name",
        "Tenant portal",
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--scope",
        "openid profile phone",
        "--redirect-uri",
        "https://tenants.example.com/callback",
        "--redirect-uri",
        "http://127.0.0.1:3000/callback",
        "--post-logout-redirect-uri",
        "https://tenants.example.com/",
    ).json
    assert client["client_secret"]
    assert client["redirect_uris"] == [
        "https://tenants.example.com/callback",
        "http://127.0.0.1:3000/callback",
    ]
    assert client["post_logout_redirect_uris"] == ["https://tenants.example.com/"]
    native = installed.run(
        "clients",
        "create",
        "--name",
        "Android app",
        "--grant-type",
        "authorization_code",
        "--public",
        "--redirect-uri",
        "com.example.tenants:/oauth/callback",
    ).json
    assert native["client_secret"] is None


@pytest.mark.parametrize(
    "args",
    [
        ["--grant-type", "authorization_code"],
        ["--grant-type", "client_credentials", "--public"],
        ["--grant-type", "password", "--scope", "   "],
        ["--grant-type", "password", "--client-id", "x" * 65],
        ["--grant-type", "authorization_code", "--redirect-uri", "https://a.example/cb#x"],
        ["--grant-type", "authorization_code", "--redirect-uri", "javascript:alert(1)"],
        ["--grant-type", "authorization_code", "--redirect-uri", "/relative/callback"],
        ["--grant-type", "authorization_code", "--redirect-uri", "myapp:/callback"],
    ],
)
def test_clients_create_refusals_are_json_errors(installed, args):
    result = installed.run("clients", "create", "--name", "bad", *args)
    assert result.error["error"]


def test_passwords_are_not_stored_in_the_clear(installed):
    installed.run("users", "create", "--phone", "0677889900", "--password", "plain-text-canary")
    dump = "\n".join(sqlite3.connect(installed.root / "authserver.db").iterdump())
    assert "+33677889900" in dump
    assert "plain-text-canary" not in dump


def test_unmigrated_database_is_a_json_error_without_parameters(tmp_path):
    fresh = Installation(tmp_path)
    result = fresh.run("users", "create", "--phone", "0611111111", "--password", "pw-canary")
    assert "db upgrade" in result.error["error"]
    assert "Traceback" not in result.stderr
    assert "pw-canary" not in result.stderr and "argon2" not in result.stderr


def test_unsafe_production_settings_are_a_json_error(installed):
    result = installed.run("users", "create", "--phone", "0611111111", env="production")
    error = result.error["error"]
    assert "AUTHSERVER_KEY_ENCRYPTION_KEY" in error and "AUTHSERVER_DATABASE_URL" in error


# --- audiences --------------------------------------------------------------------------
def test_audiences_create_set_key_remove_key_list_delete(installed, tmp_path):
    from joserfc.jwk import ECKey, RSAKey

    rsa_key = RSAKey.generate_key(2048, private=True)
    ec_key = ECKey.generate_key("P-384", private=True)
    rsa_pem = tmp_path / "properties.pub.pem"
    rsa_pem.write_bytes(rsa_key.as_pem(private=False))
    ec_jwk = tmp_path / "properties-2.jwk.json"
    ec_jwk.write_text(json.dumps({**ec_key.as_dict(private=False), "kid": "props-2"}))

    created = installed.run(
        "audiences", "create", "--identifier", "https://properties.example.com",
        "--name", "Properties", "--encryption-key", str(rsa_pem),
    ).json  # fmt: skip
    assert created["identifier"] == "https://properties.example.com"
    assert created["encryption_key"]["kid"] == rsa_key.thumbprint()
    assert created["encryption_key"]["alg"] == "RSA-OAEP-256"

    # By identifier or by id.
    replaced = installed.run(
        "audiences", "set-key", "https://properties.example.com", "--key", str(ec_jwk)
    ).json
    assert replaced["id"] == created["id"]
    assert (replaced["encryption_key"]["kid"], replaced["encryption_key"]["alg"]) == (
        "props-2", "ECDH-ES"
    )  # fmt: skip
    assert [k["kid"] for k in replaced["replaced_keys"]] == [rsa_key.thumbprint()]
    assert replaced["replaced_keys"][0]["tokens_valid_until"]

    removed = installed.run("audiences", "remove-key", created["id"]).json
    assert removed["encrypted"] is False and removed["encryption_key"] is None

    listed = installed.run("audiences", "list").json["audiences"]
    assert [a["identifier"] for a in listed] == ["https://properties.example.com"]
    assert listed[0] == removed

    deleted = installed.run("audiences", "delete", "https://properties.example.com").json
    assert deleted == {"deleted": created["id"], "identifier": "https://properties.example.com"}
    assert installed.run("audiences", "list").json == {"audiences": []}

    # The operating-system account is the actor of each change.
    dump = "\n".join(sqlite3.connect(installed.root / "authserver.db").iterdump())
    for event in ("audience.created", "audience.key_set", "audience.key_removed",
                  "audience.deleted"):  # fmt: skip
        assert event in dump


def test_audiences_refusals_are_json_errors(installed, tmp_path):
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, private=True)
    private_pem = tmp_path / "private.pem"
    private_pem.write_bytes(key.as_pem(private=True))
    private_jwk = tmp_path / "private.json"
    private_jwk.write_text(json.dumps(key.as_dict(private=True)))
    public_pem = tmp_path / "public.pem"
    public_pem.write_bytes(key.as_pem(private=False))

    for path in (private_pem, private_jwk):
        refused = installed.run(
            "audiences", "create", "--identifier", "urn:example:x", "--encryption-key", str(path)
        )
        assert "send only the public key" in refused.error["error"]
    mismatch = installed.run(
        "audiences", "create", "--identifier", "urn:example:x",
        "--encryption-key", str(public_pem), "--alg", "ECDH-ES",
    )  # fmt: skip
    assert "needs an EC key" in mismatch.error["error"]
    assert (
        "absolute URI"
        in installed.run("audiences", "create", "--identifier", "no-scheme").error["error"]
    )
    unknown = "urn:example:none"
    for command in (
        ["set-key", unknown, "--key", str(public_pem)],
        ["remove-key", unknown],
        ["delete", unknown],
    ):
        assert "no audience" in installed.run("audiences", *command).error["error"]
    assert installed.run("audiences", "list").json == {"audiences": []}


def test_tokens_purge(installed):
    assert installed.run("tokens", "purge").json == {
        "purged": {
            "encrypted_access_tokens": 0,
            "revoked_access_tokens": 0,
            "authorization_codes": 0,
            "used_jtis": 0,
        }
    }


# --- the command itself ----------------------------------------------------------------
def test_version_is_authservers_own():
    import authserver

    done = subprocess.run([str(SCRIPT), "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"authserver, version {authserver.__version__}"
    assert version("authserver") == authserver.__version__  # the wheel's metadata agrees


def test_help_lists_authservers_own_commands_only():
    done = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, check=True)
    section = done.stdout.split("Commands:")[1].splitlines()
    listed = [line.split()[0] for line in section if line.startswith("  ") and line.strip()]
    assert listed == ["audiences", "clients", "db", "keys", "serve", "tokens", "users"]
    for flask_option in ("--app", "-A", "--env-file", "--debug"):
        assert flask_option not in done.stdout
    for flask_command in ("run", "shell", "routes", "limiter"):
        refused = subprocess.run([str(SCRIPT), flask_command], capture_output=True, text=True)
        assert refused.returncode == 2 and "No such command" in refused.stderr


def _modules_loaded_by(*args: str, cwd: Path) -> set[str]:
    """The top-level modules `authserver ARGS` imports, and whether it built the routes."""
    probe = (
        "import sys\n"
        "from authserver.cli import main\n"
        f"sys.argv = ['authserver', *{list(args)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True
    )
    return set(done.stderr.strip().splitlines()[-1].split())


def test_help_and_keys_list_do_not_build_the_server(tmp_path):
    """`--help` loads neither Flask nor SQLAlchemy; `keys list` works in the core app:
    no routes, no Authlib server, no OpenAPI document, no Alembic (docs/development.md
    has the start-up times these make possible)."""
    assert subprocess.run([str(SCRIPT), "db", "upgrade"], cwd=tmp_path, check=False).returncode == 0
    helped = _modules_loaded_by("--help", cwd=tmp_path)
    assert "click" in helped
    assert not {"flask", "sqlalchemy", "authserver.config"} & helped
    listed = _modules_loaded_by("keys", "list", cwd=tmp_path)
    assert "authserver.signing.services" in listed
    server_parts = {
        "alembic", "authserver.oauth.views", "authserver.oauth.server", "authserver.openapi",
        "authserver.admin.views", "authserver.compat.views", "pydantic",
    }  # fmt: skip
    assert not server_parts & listed


def test_default_instance_directory_is_the_working_directorys(tmp_path):
    """No database URL, no keys directory: development data goes to ./instance (0700),
    nowhere else; AUTHSERVER_INSTANCE_DIR moves it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    done = subprocess.run(
        [str(SCRIPT), "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    instance = tmp_path / "instance"
    assert (instance / "authserver.db").is_file()
    assert sorted(p.name for p in (instance / "keys").iterdir()) == [
        "key-encryption.key", "secret.key"
    ]  # fmt: skip
    assert instance.stat().st_mode & 0o777 == 0o700
    assert (instance / "keys").stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["instance"]

    elsewhere = tmp_path / "data"
    moved = subprocess.run(
        [str(SCRIPT), "keys", "ensure"],
        cwd=tmp_path,
        env={**env, "AUTHSERVER_INSTANCE_DIR": str(elsewhere)},
        capture_output=True,
        text=True,
    )
    assert moved.returncode == 1  # a new, empty database there: not migrated yet
    assert (elsewhere / "authserver.db").exists() and (elsewhere / "keys" / "secret.key").exists()


# --- users update, clients list, passwords kept off the command line ---------------------
def _user_signs_in(installed: Installation, phone: str, password: str) -> bool:
    app = create_app(make_settings(installed.database_url, installed.keys_dir))
    client = installed.run(
        "clients", "create", "--name", "sign-in check", "--grant-type", "password", "--public"
    ).json
    try:
        response = app.test_client().post(
            "/oauth/token",
            data={
                "grant_type": "password",
                "client_id": client["client_id"],
                "username": phone,
                "password": password,
            },
        )
        return response.status_code == 200
    finally:
        with app.app_context():
            from authserver.extensions import db

            db.engine.dispose()


def test_password_from_standard_input(installed):
    created = installed.run(
        "users", "create", "--phone", "0611000001", "--password-file", "-",
        stdin="from stdin, with spaces \nsecond line ignored\n",
    )  # fmt: skip
    assert created.code == 0, created.stderr
    assert created.stderr == ""  # no warning: the password was never on the command line
    assert _user_signs_in(installed, "0611000001", "from stdin, with spaces ")
    empty = installed.run("users", "create", "--phone", "0611000002", "--password-file", "-")
    assert "empty" in empty.error["error"]
    both = installed.run(
        "users", "create", "--phone", "0611000002", "--password", "x" * 12,
        "--password-file", "-", stdin="y" * 12,
    )  # fmt: skip
    assert "not both" in both.error["error"]


def test_password_from_a_prompt(installed):
    created = installed.run(
        "users", "create", "--phone", "0611000003", "--password",
        stdin="typed at the prompt\ntyped at the prompt\n",
    )  # fmt: skip
    assert created.code == 0, created.stderr
    assert "typed at the prompt" not in created.stdout + created.stderr
    assert _user_signs_in(installed, "0611000003", "typed at the prompt")
    mismatch = installed.run(
        "users", "create", "--phone", "0611000004", "--password", stdin="one\ntwo\n"
    )
    assert mismatch.code != 0
    assert installed.run("users", "update", "0611000004").code == 1  # nobody was created


def test_password_on_the_command_line_still_works_with_a_warning(installed):
    created = installed.run("users", "create", "--phone", "0611000005", "--password", "p" * 12)
    assert created.code == 0
    warning = json.loads(created.stderr.strip().splitlines()[-1])
    assert "process list" in warning["warning"] and "p" * 12 not in created.stderr
    assert _user_signs_in(installed, "0611000005", "p" * 12)


def test_users_update_promotes_an_existing_user_and_back(installed):
    """The first admin may already exist: signed up with an SMS code, without password."""
    assert installed.run("users", "create", "--phone", "0611000006", "--group", "Tenants").code == 0
    promoted = installed.run("users", "update", "+33 6 11 00 00 06", "--admin").json
    assert "authserver.admin" in promoted["permissions"]
    assert sorted(promoted["groups"]) == ["Admin User", "Tenants"]
    again = installed.run("users", "update", promoted["id"], "--admin").json  # by id; no change
    assert again == promoted

    changed = installed.run(
        "users", "update", "0611000006", "--no-admin", "--group", "Owners",
        "--remove-group", "Tenants", "--first-name", "Grace", "--email", "grace@example.com",
    ).json  # fmt: skip
    assert changed["permissions"] == [] and changed["groups"] == ["Owners"]
    assert (changed["first_name"], changed["email"]) == ("Grace", "grace@example.com")

    dump = "\n".join(sqlite3.connect(installed.root / "authserver.db").iterdump())
    assert dump.count("user.updated") == 2  # the no-change run recorded nothing


def test_users_update_refusals(installed):
    assert "no user" in installed.run("users", "update", "0699999999", "--admin").error["error"]
    assert installed.run("users", "create", "--phone", "0611000007").code == 0
    bad = installed.run("users", "update", "0611000007", "--admin", "--account-type", "boss")
    assert "--account-type" in bad.error["error"]
    unchanged = installed.run("users", "update", "0611000007").json
    assert "authserver.admin" not in unchanged["permissions"]  # nothing half-written


def test_clients_list_shows_every_client_without_secrets(installed):
    made = installed.run(
        "clients", "create", "--name", "listed app", "--grant-type", "client_credentials"
    ).json
    listed = installed.run("clients", "list").json["clients"]
    mine = [c for c in listed if c["client_id"] == made["client_id"]]
    assert len(mine) == 1 and mine[0]["name"] == "listed app"
    assert made["client_secret"] not in json.dumps(listed)
    assert "client_secret" not in mine[0]
    found = installed.run("clients", "list", "--query", "LISTED").json["clients"]
    assert [c["client_id"] for c in found] == [made["client_id"]]


@pytest.mark.parametrize(
    "command", [["keys", "ensure"], ["keys", "rotate"], ["keys", "export-jwks"]]
)
def test_a_wrong_key_encryption_key_stops_key_commands_with_a_json_error(installed, command):
    """The core app does not open the keys; the commands that open or write them check
    the key-encryption key first (a key written under a wrong one could never be read)."""
    import secrets

    before = installed.run("keys", "list").json
    result = installed.run(*command, key_encryption_key=secrets.token_urlsafe(32))
    assert "AUTHSERVER_KEY_ENCRYPTION_KEY does not decrypt" in result.error["error"]
    assert "Traceback" not in result.stderr
    assert installed.run("keys", "list").json == before
