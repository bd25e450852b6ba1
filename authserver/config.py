"""Settings, read once from ``AUTHSERVER_*`` environment variables (and a ``.env`` file).

Every setting has a safe development default; ``AUTHSERVER_ENV=production`` refuses to
start while any development-only default is still in use (see ``Settings.check``).
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("development", "testing", "production")


class ConfigError(RuntimeError):
    """A setting is missing, malformed or unsafe for the chosen environment."""


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _decode_key(name: str, value: str) -> bytes:
    """32 random bytes, written as base64url (``secrets.token_urlsafe(32)`` makes one)."""
    try:
        raw = base64.urlsafe_b64decode(value.strip() + "=" * (-len(value.strip()) % 4))
    except ValueError:
        raise ConfigError(f"{name} is not valid base64url") from None
    if len(raw) != 32:
        raise ConfigError(f"{name} must encode exactly 32 bytes, it encodes {len(raw)}")
    return raw


def _development_key(path: Path) -> bytes:
    """Read or create a development-only key file under ``keys/`` (git ignores it)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    return _decode_key(str(path), path.read_text())


@dataclass(frozen=True)
class Settings:
    """What the server is told from outside. Names map to ``AUTHSERVER_<NAME>``."""

    env: str = "development"
    database_url: str = ""
    issuer: str = "http://127.0.0.1:8000"
    access_token_audience: str = ""  # empty: the issuer
    default_region: str = "FR"
    ratelimit_storage_url: str = "memory://"
    sms_backend: str = "console"
    sms_webhook_url: str = ""
    sms_webhook_secret: str = ""
    key_encryption_key: bytes = field(default=b"", repr=False)
    secret_key: bytes = field(default=b"", repr=False)
    keys_dir: str = ""
    access_token_ttl: int = 300
    session_idle_ttl: int = 30 * 24 * 3600
    session_max_ttl: int = 90 * 24 * 3600
    refresh_reuse_grace: int = 10
    jwks_max_age: int = 300
    key_cache_seconds: int = 10
    clock_skew: int = 60
    signing_key_bits: int = 2048
    default_client_scope: str = "profile"
    argon2_time_cost: int = 2
    argon2_memory_cost: int = 19456
    argon2_parallelism: int = 1
    max_body_bytes: int = 64 * 1024
    trusted_proxies: int = 0
    debug: bool = False
    generated_keys: tuple[str, ...] = ()  # which keys came from development files

    @property
    def audience(self) -> str:
        return self.access_token_audience or self.issuer

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        if environ is None:
            # Real environment variables win over the .env file.
            environ = {**_dotenv(), **os.environ}
        raw = {
            name[len("AUTHSERVER_") :].lower(): value
            for name, value in environ.items()
            if name.startswith("AUTHSERVER_")
        }
        known = {f.name: f for f in fields(cls)}
        values: dict[str, object] = {}
        for key, value in raw.items():
            if key in ("generated_keys",) or key not in known:
                continue
            kind = known[key].type
            var = f"AUTHSERVER_{key.upper()}"
            if kind == "int":
                values[key] = _int(var, value)
            elif kind == "bool":
                values[key] = _bool(var, value)
            elif kind == "bytes":
                values[key] = _decode_key(var, value) if value.strip() else b""
            else:
                values[key] = value.strip()
        env = str(values.get("env", "development"))
        if env not in ENVIRONMENTS:
            raise ConfigError(f"AUTHSERVER_ENV must be one of {', '.join(ENVIRONMENTS)}")
        keys_dir = Path(str(values.get("keys_dir") or PROJECT_ROOT / "keys"))
        values["keys_dir"] = str(keys_dir)
        generated = []
        for key, filename in (
            ("key_encryption_key", "key-encryption.key"),
            ("secret_key", "secret.key"),
        ):
            if not values.get(key) and env != "production":
                values[key] = _development_key(keys_dir / filename)
                generated.append(key)
        values["generated_keys"] = tuple(generated)
        if not values.get("database_url"):
            instance = PROJECT_ROOT / "instance"
            instance.mkdir(exist_ok=True)
            values["database_url"] = f"sqlite:///{instance / 'authserver.db'}"
        values["issuer"] = str(values.get("issuer", cls.issuer)).rstrip("/")
        settings = cls(**values)  # type: ignore[arg-type]
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse unusable settings, and in production every development-only default."""
        if self.sms_backend not in ("console", "webhook"):
            raise ConfigError("AUTHSERVER_SMS_BACKEND must be 'console' or 'webhook'")
        if self.sms_backend == "webhook" and not self.sms_webhook_url:
            raise ConfigError("AUTHSERVER_SMS_WEBHOOK_URL is required by the webhook backend")
        if self.signing_key_bits not in (2048, 3072, 4096):
            raise ConfigError("AUTHSERVER_SIGNING_KEY_BITS must be 2048, 3072 or 4096")
        if self.access_token_ttl < 30 or self.access_token_ttl > 24 * 3600:
            raise ConfigError("AUTHSERVER_ACCESS_TOKEN_TTL must be between 30 and 86400 seconds")
        if self.session_idle_ttl > self.session_max_ttl:
            raise ConfigError(
                "AUTHSERVER_SESSION_IDLE_TTL cannot exceed AUTHSERVER_SESSION_MAX_TTL"
            )
        if self.argon2_memory_cost < 19456 or self.argon2_time_cost < 2:
            raise ConfigError("argon2id below OWASP's minimum (m=19 MiB, t=2) is refused")
        if (
            urlsplit(self.issuer).scheme not in ("http", "https")
            or not urlsplit(self.issuer).netloc
        ):
            raise ConfigError("AUTHSERVER_ISSUER must be an absolute http(s) URL")
        if self.env != "production":
            return
        problems = []
        if not self.key_encryption_key:
            problems.append("AUTHSERVER_KEY_ENCRYPTION_KEY is required")
        if not self.secret_key:
            problems.append("AUTHSERVER_SECRET_KEY is required")
        if self.database_url.startswith("sqlite"):
            problems.append("SQLite is for development: set AUTHSERVER_DATABASE_URL to PostgreSQL")
        if self.sms_backend == "console":
            problems.append("the console SMS backend only logs codes: use 'webhook'")
        if self.debug:
            problems.append("AUTHSERVER_DEBUG must be off")
        if urlsplit(self.issuer).scheme != "https":
            problems.append("AUTHSERVER_ISSUER must use https")
        if problems:
            raise ConfigError("refusing to start in production: " + "; ".join(problems))


def _dotenv() -> dict[str, str]:
    path = Path.cwd() / ".env"
    if not path.exists():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}
