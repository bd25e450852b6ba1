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
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
from dotenv import dotenv_values

from authserver.errors import ConfigError

ENVIRONMENTS = ("development", "testing", "production")


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


def decode_key(name: str, value: str) -> bytes:
    """32 random bytes, written as base64url (``secrets.token_urlsafe(32)`` makes one)."""
    try:
        raw = base64.urlsafe_b64decode(value.strip() + "=" * (-len(value.strip()) % 4))
    except ValueError:
        raise ConfigError(f"{name} is not valid base64url") from None
    if len(raw) != 32:
        raise ConfigError(f"{name} must encode exactly 32 bytes, it encodes {len(raw)}")
    return raw


def _private_dir(path: Path) -> None:
    """Create a directory for development data (and any missing parent), readable by its
    owner only."""
    for missing in reversed([p for p in (path, *path.parents) if not p.exists()]):
        missing.mkdir(mode=0o700, exist_ok=True)


def _development_key(path: Path) -> bytes:
    """Read or create a development-only key file in the keys directory."""
    if not path.exists():
        _private_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    return decode_key(str(path), path.read_text())


def setting(default: Any, doc: str, *, secret: bool = False, shown: str | None = None) -> Any:
    """A setting with its documentation: the configuration reference
    (docs/configuration.md) is generated from these, so it cannot drift from the code.
    ``secret`` keeps the value out of ``repr``; ``shown`` is the default as the
    reference writes it, when the field's own default is a placeholder."""
    return field(
        default=default, repr=not secret, metadata={"doc": doc, "secret": secret, "shown": shown}
    )


@dataclass(frozen=True)
class Settings:
    """What the server is told from outside. Names map to ``AUTHSERVER_<NAME>``."""

    env: str = setting(
        "development",
        "`development`, `testing` or `production`; production refuses to start while a "
        "development-only setting is in use (generated keys, SQLite, console SMS, debug, an "
        "`http://` issuer)",
    )
    instance_dir: str = setting(
        "",
        "where development data lives: the default SQLite database and the generated "
        "development keys (created 0700 when first needed; never inside the installed "
        "package)",
        shown="`instance/` in the working directory",
    )
    database_url: str = setting(
        "",
        "SQLAlchemy URL (`postgresql+psycopg2://user:password@host:5432/authserver` in production)",
        secret=True,  # may hold a password
        shown="SQLite file `authserver.db` in the instance directory",
    )
    issuer: str = setting(
        "http://127.0.0.1:8000",
        "the `iss` of every token and the base of every URL in the metadata (never taken "
        "from request headers)",
    )
    access_token_audience: str = setting(
        "", "the `aud` of access tokens that name no `resource`", shown="the issuer"
    )
    default_region: str = setting(
        "FR",
        "region (ISO 3166 alpha-2) for phone numbers written without a country code (the "
        "seeds' example `0612975634` is a French mobile)",
    )
    ratelimit_storage_url: str = setting(
        "memory://",
        "where limits count: `memory://` (per process), or `redis://host:port/db` as soon "
        "as there is more than one process",
    )
    sms_backend: str = setting("console", "`console` (logs messages; development) or `webhook`")
    sms_webhook_url: str = setting("", "where the webhook backend posts", shown="—")
    sms_webhook_secret: str = setting(
        "",
        "when set, each webhook body is signed: `X-Authserver-Signature: sha256=<hex "
        "HMAC-SHA256 of the raw body>`",
        secret=True,
        shown="—",
    )
    # Webhook delivery: bounded retries with backoff on 5xx and network errors.
    sms_webhook_connect_timeout_ms: int = setting(2000, "webhook connect timeout (ms)")
    sms_webhook_read_timeout_ms: int = setting(4000, "webhook read timeout (ms)")
    sms_webhook_attempts: int = setting(3, "webhook attempts per message, 1 to 5")
    sms_webhook_backoff_ms: int = setting(250, "wait before the first retry (ms); doubles")
    # Phone codes (docs/otp.md): lifetime, tries, and the SMS budgets that stop SMS pumping.
    otp_ttl: int = setting(300, "seconds a code is valid (at most 3600)")
    otp_max_attempts: int = setting(5, "wrong tries after which a code is dead")
    otp_resend_cooldown: int = setting(60, "seconds before a phone may get another code")
    otp_max_per_phone_per_day: int = setting(5, "codes per phone per 24 h")
    otp_max_per_ip_per_hour: int = setting(20, "codes per client address per hour")
    otp_global_per_hour: int = setting(1000, "codes per hour, all phones together (the SMS budget)")
    otp_allowed_regions: str = setting(
        "",
        "comma-separated ISO 3166 regions codes may be sent to (e.g. `FR,BE`)",
        shown="every region",
    )
    otp_expose_code: bool = setting(
        False,
        "development only: the code in the `/oauth/otp` answer (production refuses it)",
    )
    # Failed password logins, counted per phone+IP, per phone and per IP over one window.
    login_max_failures: int = setting(
        10, "failed password logins per phone and client address in the window, then `429`"
    )
    login_max_failures_per_phone: int = setting(
        50, "failed password logins per phone, any address, in the window"
    )
    login_max_failures_per_ip: int = setting(
        100, "failed password logins per client address, any phone, in the window"
    )
    login_lockout_seconds: int = setting(900, "the window of the failed-login counters")
    key_encryption_key: bytes = setting(
        b"",
        "32 bytes, base64url: encrypts private signing keys at rest (AES-256-GCM)",
        secret=True,
        shown="development: generated in the keys directory",
    )
    secret_key: bytes = setting(
        b"",
        "32 bytes, base64url: the HMAC key of client secrets, refresh tokens and codes "
        "(changing it invalidates them)",
        secret=True,
        shown="development: generated in the keys directory",
    )
    keys_dir: str = setting(
        "",
        "where development keys are generated (never in production)",
        shown="`keys/` in the instance directory",
    )
    access_token_ttl: int = setting(300, "access-token lifetime in seconds (30 to 86400)")
    session_idle_ttl: int = setting(
        30 * 24 * 3600, "a session ends after this many seconds without a refresh (30 d)"
    )
    session_max_ttl: int = setting(90 * 24 * 3600, "absolute session lifetime, seconds (90 d)")
    browser_session_idle_ttl: int = setting(
        8 * 3600,
        "the hosted pages' browser session (single sign-on) ends after this long unused, "
        "seconds (8 h; docs/browser-sign-in.md)",
    )
    browser_session_max_ttl: int = setting(
        7 * 24 * 3600, "… and this long after sign-in in any case, seconds (7 d)"
    )
    authorization_code_ttl: int = setting(
        60,
        "seconds an authorization code may wait for its exchange (10 to 600; RFC 6749 "
        "§4.1.2: short)",
    )
    id_token_ttl: int = setting(600, "OpenID Connect ID token lifetime, seconds (60 to 86400)")
    max_sessions_per_user: int = setting(
        10,
        "live sessions (signed-in devices) per user; a new sign-in beyond it ends the "
        "least recently used one (docs/admin.md). 0: no limit",
    )
    admin_auth_max_age: int = setting(
        900,
        "step-up for the admin API: a user's admin token works only while its sign-in with a "
        "password (`amr` holds `pwd`) is at most this many seconds old (`auth_time`); older, "
        "`401 insufficient_user_authentication` (RFC 9470) asks to sign in again (60 to 86400)",
    )
    account_types: str = setting(
        "regular,tenant,landlord,owner,manager,agent,staff",
        "the values `account_type` may take, comma-separated; must include `regular` "
        "(what SMS sign-ups get)",
    )
    refresh_reuse_grace: int = setting(
        10,
        "seconds in which the client presenting a just-rotated refresh token again gets "
        "the same successor (a lost answer, two tabs); later it is reuse",
    )
    jwks_max_age: int = setting(300, "`Cache-Control: max-age` of the JWKS, seconds")
    key_cache_seconds: int = setting(
        10, "how stale an instance's view of the signing keys may be, seconds"
    )
    client_cache_seconds: int = setting(
        5,
        "how stale a process's copy of a client may be: a client disabled or given a new "
        "secret elsewhere is refused here within this time. 0: no cache",
    )
    revocation_cache_seconds: int = setting(
        1,
        "how stale a process's view of revocations may be: a token revoked, a session "
        "ended, a user blocked or a client disabled by another process or instance reads "
        "as such here within this time (at once in the process that did it); each process "
        "checks one number in the database this often instead of querying per token. "
        "0: query per token",
    )
    key_prepublish_seconds: int = setting(
        900,
        "how long a `next` key is published before `keys rotate` may promote it (must "
        "exceed `JWKS_MAX_AGE` + `KEY_CACHE_SECONDS`)",
    )
    key_rotation_interval: int = setting(
        30 * 24 * 3600, "age of the active key after which `keys rotate --if-due` rotates"
    )
    clock_skew: int = setting(
        60, "leeway for `exp`/`iat` checks, and added to retired keys' publication"
    )
    client_assertion_max_lifetime: int = setting(
        300,
        "longest a `private_key_jwt` client assertion may live (its `exp` at most this far "
        "ahead, 10 to 3600): its `jti` is kept this long to refuse a replay",
    )
    dpop_proof_max_age: int = setting(
        60,
        "how old a DPoP proof may be (its `iat`), seconds, 5 to 600; its `jti` is kept this "
        "long (plus the clock skew) to refuse a replay",
    )
    signing_key_bits: int = setting(2048, "RSA size of new signing keys: 2048, 3072 or 4096")
    default_client_scope: str = setting(
        "profile", "allowed scope of a client created without `--scope`"
    )
    first_party_client_id: str = setting(
        "first-party-app", "the public client the seed endpoints act for (created on first use)"
    )
    argon2_time_cost: int = setting(2, "argon2id iterations (at least 2)")
    argon2_memory_cost: int = setting(19456, "argon2id memory in KiB (at least 19456)")
    argon2_parallelism: int = setting(1, "argon2id lanes")
    max_body_bytes: int = setting(64 * 1024, "largest request body, bytes (`413` beyond)")
    trusted_proxies: int = setting(
        0,
        "how many proxies in front append to `X-Forwarded-For` (their `X-Forwarded-*` "
        "headers are then trusted)",
    )
    log_level: str = setting("INFO", "`DEBUG`, `INFO`, `WARNING` or `ERROR` (JSON on stderr)")
    metrics_token: str = setting(
        "",
        "when set, `GET /metrics` requires `Authorization: Bearer <this>`",
        secret=True,
        shown="—",
    )
    debug: bool = setting(False, "Flask debug mode (never in production)")
    generated_keys: tuple[str, ...] = ()  # which keys came from development files (not a setting)

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
    def slowest_sms_send(self) -> float:
        """Seconds one SMS send may hold a thread at most: every webhook attempt timing out
        (connect and read) plus the backoffs between them (authserver/otp/sms.py)."""
        if self.sms_backend != "webhook":
            return 0.0
        attempt = (self.sms_webhook_connect_timeout_ms + self.sms_webhook_read_timeout_ms) / 1000
        backoffs = self.sms_webhook_backoff_ms / 1000 * (2 ** (self.sms_webhook_attempts - 1) - 1)
        return self.sms_webhook_attempts * attempt + backoffs

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
                values[key] = decode_key(var, value) if value.strip() else b""
            else:
                values[key] = value.strip()
        env = str(values.get("env", "development"))
        if env not in ENVIRONMENTS:
            raise ConfigError(f"AUTHSERVER_ENV must be one of {', '.join(ENVIRONMENTS)}")
        instance = Path(str(values.get("instance_dir") or Path.cwd() / "instance")).absolute()
        values["instance_dir"] = str(instance)
        keys_dir = Path(str(values.get("keys_dir") or instance / "keys"))
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
            _private_dir(instance)
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
        if self.browser_session_idle_ttl > self.browser_session_max_ttl:
            raise ConfigError(
                "AUTHSERVER_BROWSER_SESSION_IDLE_TTL cannot exceed "
                "AUTHSERVER_BROWSER_SESSION_MAX_TTL"
            )
        if self.browser_session_idle_ttl < 60:
            raise ConfigError("AUTHSERVER_BROWSER_SESSION_IDLE_TTL must be at least 60 seconds")
        if not 10 <= self.authorization_code_ttl <= 600:
            # RFC 6749 §4.1.2: a code must expire shortly after it is issued (10 min at most).
            raise ConfigError("AUTHSERVER_AUTHORIZATION_CODE_TTL must be between 10 and 600")
        if not 60 <= self.admin_auth_max_age <= 24 * 3600:
            raise ConfigError("AUTHSERVER_ADMIN_AUTH_MAX_AGE must be between 60 and 86400 seconds")
        if not 10 <= self.client_assertion_max_lifetime <= 3600:
            raise ConfigError(
                "AUTHSERVER_CLIENT_ASSERTION_MAX_LIFETIME must be between 10 and 3600 seconds"
            )
        if not 5 <= self.dpop_proof_max_age <= 600:
            raise ConfigError("AUTHSERVER_DPOP_PROOF_MAX_AGE must be between 5 and 600 seconds")
        if not 60 <= self.id_token_ttl <= 24 * 3600:
            raise ConfigError("AUTHSERVER_ID_TOKEN_TTL must be between 60 and 86400 seconds")
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
