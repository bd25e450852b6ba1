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

import phonenumbers
from dotenv import dotenv_values

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("development", "testing", "production")


class ConfigError(RuntimeError):
    """A setting is missing, malformed or unsafe for the chosen environment."""


def _int(name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None
    if number < 0:  # no count, size or duration here can be negative
        raise ConfigError(f"{name} cannot be negative, got {number}")
    return number


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
    database_url: str = field(default="", repr=False)  # may hold a password
    issuer: str = "http://127.0.0.1:8000"
    access_token_audience: str = ""  # empty: the issuer
    default_region: str = "FR"
    ratelimit_storage_url: str = "memory://"
    sms_backend: str = "console"
    sms_webhook_url: str = ""
    sms_webhook_secret: str = field(default="", repr=False)
    # Webhook delivery: bounded retries with backoff on 5xx and network errors.
    sms_webhook_connect_timeout_ms: int = 2000
    sms_webhook_read_timeout_ms: int = 4000
    sms_webhook_attempts: int = 3
    sms_webhook_backoff_ms: int = 250
    # Phone codes (docs/otp.md): lifetime, tries, and the SMS budgets
    # that stop SMS pumping.
    otp_ttl: int = 300
    otp_max_attempts: int = 5
    otp_resend_cooldown: int = 60
    otp_max_per_phone_per_day: int = 5
    otp_max_per_ip_per_hour: int = 20
    otp_global_per_hour: int = 1000
    otp_allowed_regions: str = ""  # comma-separated ISO 3166 codes; empty: every region
    otp_expose_code: bool = False  # development only: the code in the response body
    # Failed password logins, counted per phone+IP, per phone and per IP over one window.
    login_max_failures: int = 10
    login_max_failures_per_phone: int = 50
    login_max_failures_per_ip: int = 100
    login_lockout_seconds: int = 900
    key_encryption_key: bytes = field(default=b"", repr=False)
    secret_key: bytes = field(default=b"", repr=False)
    keys_dir: str = ""
    access_token_ttl: int = 300
    session_idle_ttl: int = 30 * 24 * 3600
    session_max_ttl: int = 90 * 24 * 3600
    # Live sessions (signed-in devices) per user; a new sign-in beyond it ends the least
    # recently used one (docs/admin.md). 0: no limit.
    max_sessions_per_user: int = 10
    # Values `account_type` may take (comma-separated); "regular" is what SMS sign-ups get.
    account_types: str = "regular,tenant,landlord,owner,manager,agent,staff"
    refresh_reuse_grace: int = 10
    jwks_max_age: int = 300
    key_cache_seconds: int = 10
    # How stale a process's copy of a client may be (docs/admin.md); 0: no cache.
    client_cache_seconds: int = 5
    # A new key is published this long before it may sign (caches must learn it first).
    key_prepublish_seconds: int = 900
    key_rotation_interval: int = 30 * 24 * 3600  # `keys rotate --if-due` rotates after this
    clock_skew: int = 60
    signing_key_bits: int = 2048
    default_client_scope: str = "profile"
    first_party_client_id: str = "first-party-app"  # the seed endpoints act for it
    argon2_time_cost: int = 2
    argon2_memory_cost: int = 19456
    argon2_parallelism: int = 1
    max_body_bytes: int = 64 * 1024
    trusted_proxies: int = 0
    log_level: str = "INFO"
    # When set, GET /metrics requires "Authorization: Bearer <this>".
    metrics_token: str = field(default="", repr=False)
    debug: bool = False
    generated_keys: tuple[str, ...] = ()  # which keys came from development files

    @property
    def audience(self) -> str:
        return self.access_token_audience or self.issuer

    @property
    def otp_regions(self) -> frozenset[str]:
        """Regions whose numbers may receive codes; empty means every region."""
        return frozenset(
            part.strip().upper() for part in self.otp_allowed_regions.split(",") if part.strip()
        )

    @property
    def account_type_set(self) -> frozenset[str]:
        return frozenset(part.strip() for part in self.account_types.split(",") if part.strip())

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
        if self.key_prepublish_seconds <= self.jwks_max_age + self.key_cache_seconds:
            # Otherwise a verifier could still hold a JWKS without the key that signs its token.
            raise ConfigError(
                "AUTHSERVER_KEY_PREPUBLISH_SECONDS must exceed AUTHSERVER_JWKS_MAX_AGE + "
                f"AUTHSERVER_KEY_CACHE_SECONDS ({self.jwks_max_age} + {self.key_cache_seconds})"
            )
        if self.key_rotation_interval <= self.key_prepublish_seconds:
            raise ConfigError(
                "AUTHSERVER_KEY_ROTATION_INTERVAL must exceed AUTHSERVER_KEY_PREPUBLISH_SECONDS"
            )
        _check_otp_settings(self)
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError("AUTHSERVER_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        if self.session_idle_ttl > self.session_max_ttl:
            raise ConfigError(
                "AUTHSERVER_SESSION_IDLE_TTL cannot exceed AUTHSERVER_SESSION_MAX_TTL"
            )
        if self.argon2_memory_cost < 19456 or self.argon2_time_cost < 2:
            raise ConfigError(
                "AUTHSERVER_ARGON2_MEMORY_COST / AUTHSERVER_ARGON2_TIME_COST below OWASP's "
                "minimum for argon2id (m=19456 KiB, t=2) are refused"
            )
        if "regular" not in self.account_type_set:
            raise ConfigError(
                "AUTHSERVER_ACCOUNT_TYPES must include 'regular' (the type of new accounts)"
            )
        if self.argon2_parallelism < 1:
            raise ConfigError("AUTHSERVER_ARGON2_PARALLELISM must be at least 1")
        if self.default_region.upper() not in phonenumbers.SUPPORTED_REGIONS:
            # An unknown region silently fails every number written without +country.
            raise ConfigError(
                f"AUTHSERVER_DEFAULT_REGION must be an ISO 3166 alpha-2 region phonenumbers "
                f"knows, got {self.default_region!r}"
            )
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
            problems.append("AUTHSERVER_SMS_BACKEND=console only logs codes: use 'webhook'")
        if self.debug:
            problems.append("AUTHSERVER_DEBUG must be off")
        if self.otp_expose_code:
            problems.append("AUTHSERVER_OTP_EXPOSE_CODE puts codes in responses: turn it off")
        if urlsplit(self.issuer).scheme != "https":
            problems.append("AUTHSERVER_ISSUER must use https")
        if problems:
            raise ConfigError("refusing to start in production: " + "; ".join(problems))


def _check_otp_settings(s: Settings) -> None:
    import phonenumbers

    positive = {
        "AUTHSERVER_OTP_TTL": s.otp_ttl,
        "AUTHSERVER_OTP_MAX_ATTEMPTS": s.otp_max_attempts,
        "AUTHSERVER_OTP_MAX_PER_PHONE_PER_DAY": s.otp_max_per_phone_per_day,
        "AUTHSERVER_OTP_MAX_PER_IP_PER_HOUR": s.otp_max_per_ip_per_hour,
        "AUTHSERVER_OTP_GLOBAL_PER_HOUR": s.otp_global_per_hour,
        "AUTHSERVER_OTP_RESEND_COOLDOWN": s.otp_resend_cooldown,
        "AUTHSERVER_SMS_WEBHOOK_ATTEMPTS": s.sms_webhook_attempts,
        "AUTHSERVER_SMS_WEBHOOK_CONNECT_TIMEOUT_MS": s.sms_webhook_connect_timeout_ms,
        "AUTHSERVER_SMS_WEBHOOK_READ_TIMEOUT_MS": s.sms_webhook_read_timeout_ms,
        "AUTHSERVER_LOGIN_MAX_FAILURES": s.login_max_failures,
        "AUTHSERVER_LOGIN_MAX_FAILURES_PER_PHONE": s.login_max_failures_per_phone,
        "AUTHSERVER_LOGIN_MAX_FAILURES_PER_IP": s.login_max_failures_per_ip,
        "AUTHSERVER_LOGIN_LOCKOUT_SECONDS": s.login_lockout_seconds,
    }
    for name, value in positive.items():
        if value < 1:
            raise ConfigError(f"{name} must be at least 1")
    if s.sms_webhook_attempts > 5 or s.sms_webhook_backoff_ms < 0:
        raise ConfigError("AUTHSERVER_SMS_WEBHOOK_ATTEMPTS is 1 to 5, the backoff not negative")
    if s.otp_ttl > 3600:
        raise ConfigError("AUTHSERVER_OTP_TTL must not exceed 3600 seconds")
    unknown = s.otp_regions - phonenumbers.SUPPORTED_REGIONS
    if unknown:
        raise ConfigError(
            f"AUTHSERVER_OTP_ALLOWED_REGIONS has unknown regions: {', '.join(sorted(unknown))}"
        )


def _dotenv() -> dict[str, str]:
    path = Path.cwd() / ".env"
    if not path.exists():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v is not None}
