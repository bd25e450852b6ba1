"""Settings from AUTHSERVER_* variables: safe defaults for development, refusals for an
unsafe production set, and errors that name the variable to fix."""

from __future__ import annotations

import base64
import os
import secrets

import pytest

from authserver import create_app
from authserver.config import Settings
from authserver.errors import ConfigError
from tests.helpers import committed


def key() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture
def base(tmp_path) -> dict[str, str]:
    """A development environment whose generated keys land in a temporary directory."""
    return {"AUTHSERVER_KEYS_DIR": str(tmp_path / "keys")}


@pytest.fixture
def production(tmp_path) -> dict[str, str]:
    return {
        "AUTHSERVER_ENV": "production",
        "AUTHSERVER_KEYS_DIR": str(tmp_path / "keys"),
        "AUTHSERVER_DATABASE_URL": "postgresql+psycopg2://auth:pw@db.internal:5432/authserver",
        "AUTHSERVER_KEY_ENCRYPTION_KEY": key(),
        "AUTHSERVER_SECRET_KEY": key(),
        "AUTHSERVER_SMS_BACKEND": "webhook",
        "AUTHSERVER_SMS_WEBHOOK_URL": "https://sms.example.com/send",
        "AUTHSERVER_ISSUER": "https://auth.example.com",
    }


# --- development defaults -------------------------------------------------------------------


def test_development_generates_its_keys_once_with_private_permissions(base, tmp_path):
    first = Settings.from_env(base)
    assert first.env == "development"
    assert set(first.generated_keys) == {"key_encryption_key", "secret_key"}
    assert len(first.key_encryption_key) == 32 and len(first.secret_key) == 32
    for name in ("key-encryption.key", "secret.key"):
        assert (tmp_path / "keys" / name).stat().st_mode & 0o077 == 0
    again = Settings.from_env(base)  # the same keys on the next start
    assert again.key_encryption_key == first.key_encryption_key
    assert again.secret_key == first.secret_key


def test_given_keys_are_used_not_generated(base, tmp_path):
    kek = secrets.token_bytes(32)
    settings = Settings.from_env(
        {**base, "AUTHSERVER_KEY_ENCRYPTION_KEY": base64.urlsafe_b64encode(kek).decode()}
    )
    assert settings.key_encryption_key == kek
    assert settings.generated_keys == ("secret_key",)
    assert not (tmp_path / "keys" / "key-encryption.key").exists()


def test_issuer_trailing_slash_is_dropped(base):
    settings = Settings.from_env({**base, "AUTHSERVER_ISSUER": "https://auth.example.com/"})
    assert settings.issuer == "https://auth.example.com"
    assert settings.audience == "https://auth.example.com"


def test_secrets_stay_out_of_repr(production):
    production["AUTHSERVER_SMS_WEBHOOK_SECRET"] = "hook-secret-value"
    settings = Settings.from_env(production)
    text = repr(settings)
    for secret in (
        production["AUTHSERVER_KEY_ENCRYPTION_KEY"],
        production["AUTHSERVER_SECRET_KEY"],
        "hook-secret-value",
        ":pw@",  # the database password
    ):
        assert secret not in text
    assert repr(settings.key_encryption_key) not in text


def test_dotenv_file_is_read_and_real_environment_wins(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("AUTHSERVER_"):
            monkeypatch.delenv(name)
    (tmp_path / ".env").write_text(
        f"AUTHSERVER_KEYS_DIR={tmp_path / 'keys'}\n"
        "AUTHSERVER_ACCESS_TOKEN_TTL=120\n"
        "AUTHSERVER_DEFAULT_REGION=BE\n"
        f"AUTHSERVER_DATABASE_URL=sqlite:///{tmp_path / 'db.sqlite'}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHSERVER_ACCESS_TOKEN_TTL", "600")
    settings = Settings.from_env()
    assert settings.default_region == "BE"
    assert settings.access_token_ttl == 600


# --- production refuses development-only settings ----------------------------------------


def test_production_accepts_a_proper_set(production):
    settings = Settings.from_env(production)
    assert settings.env == "production"
    assert settings.generated_keys == ()


def test_production_refuses_every_development_default_and_names_each(tmp_path):
    (tmp_path / "keys").mkdir()
    # Key files left over from development are not picked up in production.
    (tmp_path / "keys" / "key-encryption.key").write_text(key())
    (tmp_path / "keys" / "secret.key").write_text(key())
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(
            {
                "AUTHSERVER_ENV": "production",
                "AUTHSERVER_KEYS_DIR": str(tmp_path / "keys"),
                "AUTHSERVER_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
                "AUTHSERVER_DEBUG": "true",
                "AUTHSERVER_ISSUER": "http://auth.example.com",
            }
        )
    message = str(refused.value)
    for name in (
        "AUTHSERVER_KEY_ENCRYPTION_KEY",
        "AUTHSERVER_SECRET_KEY",
        "AUTHSERVER_DATABASE_URL",
        "AUTHSERVER_SMS_BACKEND",
        "AUTHSERVER_DEBUG",
        "AUTHSERVER_ISSUER",
    ):
        assert name in message, name


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUTHSERVER_KEY_ENCRYPTION_KEY", ""),
        ("AUTHSERVER_SECRET_KEY", ""),
        ("AUTHSERVER_DATABASE_URL", "sqlite:///prod.db"),
        ("AUTHSERVER_SMS_BACKEND", "console"),
        ("AUTHSERVER_DEBUG", "1"),
        ("AUTHSERVER_ISSUER", "http://auth.example.com"),
    ],
)
def test_production_refuses_each_unsafe_setting_alone(production, variable, value):
    production[variable] = value
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env(production)


def test_production_refusal_stops_the_app_factory(production):
    production["AUTHSERVER_DEBUG"] = "yes"
    with pytest.raises(ConfigError, match="AUTHSERVER_DEBUG"):
        create_app(Settings.from_env(production))


# --- malformed values name their variable -------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUTHSERVER_ACCESS_TOKEN_TTL", "five minutes"),
        ("AUTHSERVER_ACCESS_TOKEN_TTL", "3.5"),
        ("AUTHSERVER_ACCESS_TOKEN_TTL", "-300"),
        ("AUTHSERVER_ACCESS_TOKEN_TTL", "5"),  # too short to be usable
        ("AUTHSERVER_ACCESS_TOKEN_TTL", "999999"),  # longer than a day
        ("AUTHSERVER_MAX_BODY_BYTES", "64k"),
        ("AUTHSERVER_DEBUG", "maybe"),
        ("AUTHSERVER_KEY_ENCRYPTION_KEY", "!!!not base64!!!"),
        ("AUTHSERVER_KEY_ENCRYPTION_KEY", base64.urlsafe_b64encode(b"x" * 16).decode()),
        ("AUTHSERVER_SECRET_KEY", base64.urlsafe_b64encode(b"x" * 33).decode()),
        ("AUTHSERVER_SECRET_KEY", "é"),
        ("AUTHSERVER_SIGNING_KEY_BITS", "1024"),
        ("AUTHSERVER_ARGON2_MEMORY_COST", "1024"),
        ("AUTHSERVER_ARGON2_TIME_COST", "1"),
        ("AUTHSERVER_DEFAULT_REGION", "XX"),
        ("AUTHSERVER_SMS_BACKEND", "carrier-pigeon"),
        ("AUTHSERVER_ISSUER", "auth.example.com"),
        ("AUTHSERVER_ENV", "prod"),
    ],
)
def test_bad_value_raises_config_error_naming_the_variable(base, variable, value):
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({**base, variable: value})


def test_webhook_backend_needs_its_url(base):
    with pytest.raises(ConfigError, match="AUTHSERVER_SMS_WEBHOOK_URL"):
        Settings.from_env({**base, "AUTHSERVER_SMS_BACKEND": "webhook"})


def test_session_idle_lifetime_cannot_exceed_absolute(base):
    with pytest.raises(ConfigError, match="AUTHSERVER_SESSION_IDLE_TTL"):
        Settings.from_env(
            {**base, "AUTHSERVER_SESSION_IDLE_TTL": "7200", "AUTHSERVER_SESSION_MAX_TTL": "3600"}
        )


def test_bad_key_error_does_not_echo_the_value(base):
    almost = base64.urlsafe_b64encode(b"k" * 31).decode()
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**base, "AUTHSERVER_KEY_ENCRYPTION_KEY": almost})
    assert almost not in str(refused.value)


def test_configured_ttl_reaches_the_tokens(database_url, keys_dir):
    """A setting is not only parsed: the issued token lives as long as configured."""
    import jwt

    from tests.conftest import build_app

    app = build_app(database_url, keys_dir, access_token_ttl="120")
    try:
        with committed(app):
            from authserver.extensions import db
            from authserver.oauth.clients import create_client

            client, secret = create_client(
                name="ttl", grant_types=["client_credentials"], actor="tests"
            )
            client_id = client.client_id
        response = app.test_client().post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
        )
        assert response.json["expires_in"] == 120
        claims = jwt.decode(response.json["access_token"], options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 120
    finally:
        with app.app_context():
            from authserver.extensions import db
            from authserver.oauth.models import Client

            db.session.delete(db.session.get(Client, client_id))
            db.session.commit()
            db.engine.dispose()
