"""Verify authserver's access tokens in a downstream (resource) service, offline.

A resource service needs only this module, Flask, Authlib and joserfc: it never touches
authserver's database or configuration (importing it loads neither)::

    from authserver.resource import ResourceProtector, current_claims

    protect = ResourceProtector(issuer="https://auth.example.com", audience="properties")

    @app.get("/properties")
    @protect("properties.read")
    def list_properties():
        return {"owner": current_claims["sub"]}

Each token is checked as RFC 9068 asks: RS256 only, ``typ: at+jwt``, a key from the
issuer's JWKS, ``iss``, ``aud``, ``exp`` (with a small leeway), then the scopes,
entitlements or groups the endpoint needs. Failures answer as RFC 6750 says.

The JWKS is found through the RFC 8414 metadata and cached as its ``Cache-Control``
allows (revalidated with ``If-None-Match``). A token signed by a key not in the cache
triggers one refetch at most every ``refetch_interval`` seconds, so a key rotation is
picked up at once while made-up ``kid`` values cannot make the service hammer authserver.
When authserver is unreachable the cached keys keep serving (stale-if-error).

Encrypted access tokens (docs/encrypted-tokens.md): an audience registered at
authserver with a public encryption key receives nested JWTs, the signed token encrypted
to that key (JWE, RSA-OAEP-256 or ECDH-ES with A256GCM, ``cty: JWT``). Give the service
its private key(s) as ``decryption_keys``; each token names its key by ``kid``, so while
a replaced key's tokens run out, configure the old and the new private key together::

    protect = ResourceProtector(issuer=..., audience="https://properties.example.com",
                                decryption_keys=[new_private_pem, old_private_pem],
                                require_encryption=True)

The inner token is then checked exactly as a plain one. Without ``decryption_keys`` an
encrypted token is ``invalid_token``; ``require_encryption=True`` refuses plain tokens.

Offline verification sees a *revoked key* once the cache is refreshed (within the JWKS
``max-age``) and never sees a *revoked token*. Services that must refuse revoked tokens
at once pass ``introspection=(client_id, client_secret)``: every request is then also
checked at authserver's introspection endpoint (nothing cached, fails closed with 503).
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from authlib.integrations.flask_oauth2 import ResourceProtector as _FlaskResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import MissingAuthorizationError
from authlib.oauth2.rfc6750 import InsufficientScopeError, InvalidTokenError
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from authlib.oauth2.rfc9068.claims import JWTAccessTokenClaims
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from flask import g
from joserfc import jwe, jws, jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jwk import ECKey, KeySet, RSAKey
from werkzeug.local import LocalProxy

__all__ = [
    "AccessTokenValidator",
    "AuthserverUnavailable",
    "Introspector",
    "RemoteJWKS",
    "ResourceProtector",
    "current_claims",
]

log = logging.getLogger(__name__)

ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")
ALGORITHMS = ["RS256"]
# Encrypted tokens: key management algorithm -> the key type it needs; one content
# encryption. Nothing else is tried, whatever a token's header says.
ENCRYPTION_ALGORITHMS = {"RSA-OAEP-256": RSAKey, "ECDH-ES": ECKey}
CONTENT_ENCRYPTION = "A256GCM"
MAX_TOKEN_LENGTH = 8192
# An encrypted token is 4/3 of the signed one plus its JWE header and key.
MAX_ENCRYPTED_TOKEN_LENGTH = 2 * MAX_TOKEN_LENGTH
MAX_DOCUMENT_BYTES = 1024 * 1024
MIN_CACHE_SECONDS = 1  # even "max-age=0" must not turn every request into a fetch
MAX_CACHE_SECONDS = 24 * 3600

# --- errors, in RFC 6750 shape --------------------------------------------------------


class _Challenge:
    """Adds the ``WWW-Authenticate: Bearer`` challenge RFC 6750 §3 asks for."""

    realm: str | None = None
    challenge_error = True

    def challenge(self: Any, **extra: str) -> tuple[str, str]:
        parts = [f'realm="{self.realm}"'] if self.realm else []
        if self.challenge_error:
            parts.append(f'error="{self.error}"')
            parts.append(f'error_description="{self.get_error_description()}"')
        parts += [f'{name}="{value}"' for name, value in extra.items()]
        return ("WWW-Authenticate", "Bearer " + ", ".join(parts))


class MissingToken(_Challenge, MissingAuthorizationError):
    """No Bearer token at all: a bare challenge, no error code (RFC 6750 §3.1)."""

    challenge_error = False
    description = "This resource needs a Bearer access token."

    def __init__(self, realm: str | None) -> None:
        super().__init__(auth_type="Bearer", realm=realm)

    def get_body(self) -> list[tuple[str, str]]:
        return [("error_description", self.description)]

    def get_headers(self) -> list[tuple[str, str]]:
        return [*OAuth2Error.get_headers(self), self.challenge()]


class MalformedAuthorization(_Challenge, OAuth2Error):
    error = "invalid_request"
    status_code = 400
    description = "The Authorization header must be 'Bearer <token>'."

    def __init__(self, realm: str | None) -> None:
        super().__init__()
        self.realm = realm

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), self.challenge()]


class InvalidToken(_Challenge, InvalidTokenError):
    """401 ``invalid_token`` with a description that says what was wrong."""

    def get_headers(self) -> list[tuple[str, str]]:
        return [*OAuth2Error.get_headers(self), self.challenge()]


class InsufficientScope(_Challenge, InsufficientScopeError):
    """403 ``insufficient_scope`` naming what is needed (Authlib answers 401 for missing
    entitlements or groups, and sends no challenge)."""

    def __init__(self, kind: str, required: list[str], realm: str | None) -> None:
        needed = " or ".join(required)
        super().__init__(description=f"This request needs the {kind} {needed}.")
        self.kind, self.required, self.realm = kind, required, realm

    def get_headers(self) -> list[tuple[str, str]]:
        extra = {"scope": " ".join(self.required)} if self.kind == "scope" else {}
        return [*super().get_headers(), self.challenge(**extra)]


class AuthserverUnavailable(OAuth2Error):
    """Authserver could not be asked and nothing cached can answer: 503, not the token's
    fault, so no ``invalid_token``."""

    error = "temporarily_unavailable"
    status_code = 503
    description = "The authorization server cannot be reached to verify the token."

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), ("Retry-After", "5")]


class _FetchError(RuntimeError):
    pass


# --- HTTP with the standard library ---------------------------------------------------


def _request(
    url: str,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
) -> tuple[int, Any, bytes]:
    """(status, headers, body) of one request; 304 is an answer, not an error."""
    req = urllib.request.Request(url, data=data, headers=dict(headers or {}))  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310
            body = response.read(MAX_DOCUMENT_BYTES + 1)
            if len(body) > MAX_DOCUMENT_BYTES:
                raise _FetchError(f"{url}: response larger than {MAX_DOCUMENT_BYTES} bytes")
            return response.status, response.headers, body
    except urllib.error.HTTPError as error:
        if error.code == 304:
            return 304, error.headers, b""
        raise _FetchError(f"{url}: HTTP {error.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise _FetchError(f"{url}: {error}") from None


def _json_object(url: str, body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        raise _FetchError(f"{url}: not JSON") from None
    if not isinstance(document, dict):
        raise _FetchError(f"{url}: not a JSON object")
    return document


_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-)?max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\b", re.IGNORECASE)


def cache_seconds(cache_control: str | None, default: int) -> int:
    """How long a response may be used, from its Cache-Control, within sane bounds."""
    if cache_control and _NO_CACHE.search(cache_control):
        return MIN_CACHE_SECONDS
    match = _MAX_AGE.search(cache_control or "")
    seconds = int(match.group(1)) if match else default
    return max(MIN_CACHE_SECONDS, min(seconds, MAX_CACHE_SECONDS))


# --- the key set ----------------------------------------------------------------------


@dataclass(frozen=True)
class _CachedKeys:
    keys: dict[str, RSAKey]
    etag: str | None
    fresh_until: float


class RemoteJWKS:
    """The issuer's signing keys, fetched from its JWKS and cached. Thread-safe.

    - fresh for the response's ``Cache-Control: max-age``, then revalidated with
      ``If-None-Match`` (a 304 only extends the cache);
    - an unknown ``kid`` refetches at once, but at most once per ``refetch_interval``;
    - when authserver cannot be reached, the cached keys keep serving and it is asked
      again only after ``refetch_interval`` (requests do not each wait for a timeout).

    ``clock`` must be monotonic; tests pass their own to step through cache lifetimes.
    """

    def __init__(
        self,
        issuer: str,
        *,
        jwks_uri: str | None = None,
        metadata_url: str | None = None,
        timeout: float = 3.0,
        refetch_interval: float = 30.0,
        default_max_age: int = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.metadata_url = metadata_url or f"{self.issuer}/.well-known/oauth-authorization-server"
        self.timeout = timeout
        self.refetch_interval = refetch_interval
        self.default_max_age = default_max_age
        self._clock = clock
        self._jwks_uri = jwks_uri
        self._metadata: dict[str, Any] | None = None
        self._cached: _CachedKeys | None = None
        self._lock = threading.Lock()  # one JWKS fetch at a time
        self._metadata_lock = threading.Lock()
        self._last_kid_refetch = -math.inf
        self._last_failure = -math.inf

    # metadata ------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """The issuer's RFC 8414 metadata, fetched once (its endpoints do not move)."""
        if self._metadata is None:
            with self._metadata_lock:
                if self._metadata is None:
                    self._metadata = self._fetch_metadata()
        return self._metadata

    def _fetch_metadata(self) -> dict[str, Any]:
        _, _, body = _request(
            self.metadata_url, timeout=self.timeout, headers={"Accept": "application/json"}
        )
        document = _json_object(self.metadata_url, body)
        # RFC 8414 §3.3: the metadata must name the issuer we were configured with.
        if document.get("issuer") != self.issuer:
            raise _FetchError(f"{self.metadata_url}: issuer {document.get('issuer')!r} differs")
        if not isinstance(document.get("jwks_uri"), str):
            raise _FetchError(f"{self.metadata_url}: no jwks_uri")
        return document

    @property
    def jwks_uri(self) -> str:
        if self._jwks_uri is None:
            self._jwks_uri = self.metadata()["jwks_uri"]
        return self._jwks_uri

    # keys ----------------------------------------------------------------------------

    def key_set(self) -> KeySet:
        return KeySet(list(self._current().keys.values()))

    def get_key(self, kid: str) -> RSAKey | None:
        """The published key ``kid``, or None when the issuer does not publish it."""
        key = self._current().keys.get(kid)
        return key if key is not None else self._refetch_for(kid)

    def _current(self) -> _CachedKeys:
        cached = self._cached
        if cached is not None and self._clock() < cached.fresh_until:
            return cached
        if cached is None:
            self._lock.acquire()
        elif not self._lock.acquire(blocking=False):
            return cached  # someone is revalidating: the stale set serves meanwhile
        try:
            cached = self._cached
            if cached is not None and self._clock() < cached.fresh_until:
                return cached
            if self._clock() - self._last_failure < self.refetch_interval:
                if cached is None:
                    raise AuthserverUnavailable()
                return cached
            return self._fetch_locked()
        finally:
            self._lock.release()

    def _refetch_for(self, kid: str) -> RSAKey | None:
        with self._lock:
            cached = self._cached
            if cached is not None and kid in cached.keys:
                return cached.keys[kid]  # another request fetched it while we waited
            now = self._clock()
            if now - self._last_kid_refetch < self.refetch_interval:
                return None
            self._last_kid_refetch = now
            try:
                return self._fetch_locked().keys.get(kid)
            except AuthserverUnavailable:
                return None

    def _fetch_locked(self) -> _CachedKeys:
        """Fetch or revalidate the JWKS (caller holds the lock). On failure the cached set
        stays (stale-if-error); with nothing cached, AuthserverUnavailable."""
        cached = self._cached
        headers = {"Accept": "application/json"}
        if cached is not None and cached.etag:
            headers["If-None-Match"] = cached.etag
        try:
            uri = self.jwks_uri
            status, response_headers, body = _request(uri, timeout=self.timeout, headers=headers)
            ttl = cache_seconds(response_headers.get("Cache-Control"), self.default_max_age)
            fresh_until = self._clock() + ttl
            if status == 304 and cached is not None:
                self._cached = replace(cached, fresh_until=fresh_until)
            else:
                self._cached = _CachedKeys(
                    keys=_signing_keys(_json_object(uri, body)),
                    etag=response_headers.get("ETag"),
                    fresh_until=fresh_until,
                )
        except _FetchError as error:
            self._last_failure = self._clock()
            if cached is None:
                log.warning("JWKS unavailable and nothing cached: %s", error)
                raise AuthserverUnavailable() from None
            log.warning("JWKS refresh failed, serving the cached keys: %s", error)
            return cached
        return self._cached


def _signing_keys(document: dict[str, Any]) -> dict[str, RSAKey]:
    """RS256 signing keys by kid; anything else in the set is ignored."""
    keys: dict[str, RSAKey] = {}
    for entry in document.get("keys") or []:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("alg", "RS256") != "RS256" or "d" in entry:
            continue
        try:
            keys[kid] = RSAKey.import_key(entry)
        except (JoseError, ValueError, TypeError):
            log.warning("JWKS entry %s is not a usable RSA key; ignored", kid)
    return keys


# --- introspection --------------------------------------------------------------------


class Introspector:
    """Asks authserver (RFC 7662) whether a token is still active. Caches nothing: the
    point of this mode is to see a revocation at once. Fails closed (503)."""

    def __init__(self, keys: RemoteJWKS, client_id: str, client_secret: str) -> None:
        self._keys = keys
        raw = f"{_form(client_id)}:{_form(client_secret)}".encode()  # RFC 6749 §2.3.1
        self._authorization = "Basic " + base64.b64encode(raw).decode()

    def active(self, token: str) -> bool:
        try:
            endpoint = self._keys.metadata()["introspection_endpoint"]
            _, _, body = _request(
                endpoint,
                timeout=self._keys.timeout,
                data=urllib.parse.urlencode(
                    {"token": token, "token_type_hint": "access_token"}
                ).encode(),
                headers={
                    "Authorization": self._authorization,
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                },
            )
            return _json_object(endpoint, body).get("active") is True
        except (_FetchError, KeyError) as error:
            log.warning("token introspection failed: %s", error)
            raise AuthserverUnavailable() from None


def _form(value: str) -> str:
    return urllib.parse.quote_plus(value)


def _b64decode(value: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (ValueError, TypeError):
        raise ValueError("not base64url") from None


# --- decryption keys --------------------------------------------------------------------

DecryptionKey = RSAKey | ECKey | Mapping[str, Any] | str | bytes


def load_decryption_keys(
    keys: DecryptionKey | list[DecryptionKey] | tuple[DecryptionKey, ...] | None,
) -> dict[str, RSAKey | ECKey]:
    """Private keys by kid, from a private JWK (dict), a PEM (str or bytes) or a joserfc
    key; one or a list of them. A key's kid is its JWK ``kid``, else its RFC 7638
    thumbprint (what authserver uses when the audience registered its key without a
    kid). ``{kid: key}`` names kids explicitly. Raises ValueError at start-up rather
    than answering requests with a key that cannot decrypt."""
    if keys is None:
        return {}
    named: list[tuple[str | None, Any]]
    if isinstance(keys, Mapping) and "kty" not in keys:
        named = list(keys.items())
    elif isinstance(keys, list | tuple):
        named = [(None, key) for key in keys]
    else:
        named = [(None, keys)]
    loaded: dict[str, RSAKey | ECKey] = {}
    for kid, value in named:
        key = _private_key(value)
        loaded[kid or key.kid or key.thumbprint()] = key
    return loaded


def _private_key(value: Any) -> RSAKey | ECKey:
    if isinstance(value, RSAKey | ECKey):
        key = value
    elif isinstance(value, Mapping):
        kind = {"RSA": RSAKey, "EC": ECKey}.get(value.get("kty"))  # type: ignore[arg-type]
        if kind is None:
            raise ValueError("decryption keys must be RSA or EC keys")
        key = kind.import_key(dict(value))
    elif isinstance(value, str | bytes):
        raw = value.encode() if isinstance(value, str) else value
        if b"PRIVATE KEY" not in raw:
            raise ValueError("a decryption key must be the private key (PEM)")
        loaded = load_pem_private_key(raw, password=None)
        if isinstance(loaded, rsa.RSAPrivateKey):
            key = RSAKey.import_key(loaded)
        elif isinstance(loaded, ec.EllipticCurvePrivateKey):
            key = ECKey.import_key(loaded)
        else:
            raise ValueError("decryption keys must be RSA or EC keys")
    else:
        raise ValueError(f"not a decryption key: {type(value).__name__}")
    if not key.is_private:
        raise ValueError("a decryption key must be the private key")
    return key


# --- the validator --------------------------------------------------------------------


class AccessTokenValidator(JWTBearerTokenValidator):
    """Authlib's RFC 9068 validator, with what it lacks: ``typ`` required, RS256 only,
    clock leeway, keys found by ``kid`` with a throttled refetch, descriptive errors,
    and 403 for missing entitlements or groups."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        keys: RemoteJWKS | None = None,
        leeway: int = 30,
        introspector: Introspector | None = None,
        realm: str | None = None,
        decryption_keys: Any = None,
        require_encryption: bool = False,
    ) -> None:
        super().__init__(issuer=issuer.rstrip("/"), resource_server=audience, realm=realm)
        self.keys = keys or RemoteJWKS(issuer)
        self.leeway = leeway
        self.introspector = introspector
        self.decryption_keys = load_decryption_keys(decryption_keys)
        if require_encryption and not self.decryption_keys:
            raise ValueError("require_encryption needs decryption_keys")
        self.require_encryption = require_encryption

    def get_jwks(self) -> KeySet:
        return self.keys.key_set()

    def _invalid(self, description: str) -> InvalidToken:
        return InvalidToken(description=description, realm=self.realm)

    def authenticate_token(self, token_string: str) -> JWTAccessTokenClaims:
        encrypted = token_string.count(".") == 4
        if len(token_string) > (MAX_ENCRYPTED_TOKEN_LENGTH if encrypted else MAX_TOKEN_LENGTH):
            raise self._invalid("The access token is not a JWT.")
        if encrypted:
            signed = self._decrypt(token_string)
        elif self.require_encryption:
            raise self._invalid("This service accepts only encrypted access tokens.")
        else:
            signed = token_string
        # The presented token (encrypted or not) is what introspection knows it by.
        return self._verify_signed(signed, presented=token_string)

    def _decrypt(self, token_string: str) -> str:
        """The signed token inside an encrypted one (a nested JWT, RFC 7519 §5.2)."""
        if not self.decryption_keys:
            raise self._invalid("The access token is encrypted and this service cannot read it.")
        try:
            header = json.loads(_b64decode(token_string.split(".", 1)[0]))
        except ValueError:
            raise self._invalid("The access token is not a JWT.") from None
        if not isinstance(header, dict):
            raise self._invalid("The access token is not a JWT.")
        alg = header.get("alg")
        if alg not in ENCRYPTION_ALGORITHMS or header.get("enc") != CONTENT_ENCRYPTION:
            raise self._invalid(
                "The access token must be encrypted with RSA-OAEP-256 or ECDH-ES and A256GCM."
            )
        if str(header.get("cty", "")).upper() != "JWT":
            raise self._invalid("The encrypted token does not hold a JWT (cty).")
        if "zip" in header:  # never sent by authserver; no decompression of attacker data
            raise self._invalid("Compressed tokens are not accepted.")
        kid = header.get("kid")
        key = self.decryption_keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise self._invalid("The access token is encrypted to an unknown key.")
        if not isinstance(key, ENCRYPTION_ALGORITHMS[alg]):
            raise self._invalid(
                "The access token is encrypted with an algorithm its key does not use."
            )
        try:
            decrypted = jwe.decrypt_compact(token_string, key, algorithms=[alg, CONTENT_ENCRYPTION])
            signed = decrypted.plaintext.decode("ascii") if decrypted.plaintext else ""
        except (JoseError, ValueError, TypeError, KeyError, UnicodeDecodeError):
            raise self._invalid("The access token cannot be decrypted.") from None
        if signed.count(".") != 2:  # a nested token must be signed, never encrypted again
            raise self._invalid("The encrypted token does not hold a signed JWT.")
        return signed

    def _verify_signed(self, token_string: str, *, presented: str) -> JWTAccessTokenClaims:
        if token_string.count(".") != 2:
            raise self._invalid("The access token is not a JWT.")
        try:
            header = jws.extract_compact(token_string.encode()).headers()
        except (JoseError, ValueError, TypeError):
            raise self._invalid("The access token is not a JWT.") from None
        if header.get("alg") not in ALGORITHMS:
            raise self._invalid("The access token must be signed with RS256.")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise self._invalid("The token is not an access token (typ must be at+jwt).")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise self._invalid("The access token names no signing key (kid).")
        key = self.keys.get_key(kid)
        if key is None:
            raise self._invalid("The access token is signed with an unknown key.")
        try:
            token = jwt.decode(token_string, key, algorithms=ALGORITHMS)
        except (JoseError, ValueError, TypeError):
            raise self._invalid("The access token signature is invalid.") from None
        options: dict[str, Any] = {
            "iss": {"essential": True, "value": self.issuer},
            "aud": {"essential": True, "value": self.resource_server},
            "exp": {"essential": True},
            "iat": {"essential": True},
            "sub": {"essential": True},
            "client_id": {"essential": True},
            "jti": {"essential": True},
        }
        return JWTAccessTokenClaims(token.claims, token.header, options, {"token": presented})

    def validate_token(
        self,
        token: JWTAccessTokenClaims,
        scopes: str | list[str] | None,
        request: Any,
        groups: str | list[str] | None = None,
        roles: str | list[str] | None = None,
        entitlements: str | list[str] | None = None,
    ) -> None:
        try:
            token.validate(leeway=self.leeway)
        except ExpiredTokenError:
            raise self._invalid("The access token has expired.") from None
        except MissingClaimError as error:
            raise self._invalid(f"The access token lacks the {error.claim} claim.") from None
        except InvalidClaimError as error:
            raise self._invalid(_claim_problem(error.claim)) from None
        except JoseError:
            raise self._invalid("The access token claims are invalid.") from None
        if self.introspector is not None and not self.introspector.active(token.params["token"]):
            raise self._invalid("The access token has been revoked.")
        for kind, required, held in (
            ("scope", scopes, str(token.get("scope") or "").split()),
            ("entitlement", entitlements, token.get("entitlements")),
            ("group", groups, token.get("groups")),
            ("role", roles, token.get("roles")),
        ):
            wanted = _alternatives(required)
            if wanted and not any(_held(kind, value, held) for value in wanted):
                raise InsufficientScope(kind, wanted, self.realm)

    def verify(
        self,
        token_string: str,
        scopes: str | list[str] | None = None,
        *,
        entitlements: str | list[str] | None = None,
        groups: str | list[str] | None = None,
    ) -> dict[str, Any]:
        """The claims of a valid token, outside Flask (queues, gRPC, ...). Each of
        ``scopes``, ``entitlements`` and ``groups`` is one value (a string, never split)
        or a list of alternatives. Raises the RFC 6750 errors above."""
        claims = self.authenticate_token(token_string)
        self.validate_token(claims, scopes, None, groups=groups, entitlements=entitlements)
        return dict(claims)


def _alternatives(required: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """What an endpoint asks for: one value (a string, never split into words or
    characters: a group name may hold spaces) or alternatives (a list, any one will do)."""
    if required is None:
        return []
    if isinstance(required, str):
        return [required]
    if not all(isinstance(value, str) for value in required):
        raise TypeError("scopes, groups and entitlements are a string or a list of strings")
    return list(required)


def _held(kind: str, value: str, held: Any) -> bool:
    """Whether the token's claim holds ``value``. A scope value may name several scopes
    (RFC 6749 §3.3: ``"a b"`` needs both); a group, entitlement or role is one name."""
    names = set(held) if isinstance(held, list) else set()
    if kind == "scope":
        return bool(value.split()) and set(value.split()) <= names
    return value in names


def _claim_problem(claim: str) -> str:
    return {
        "aud": "The access token is for another audience.",
        "iss": "The access token comes from another issuer.",
        "nbf": "The access token is not valid yet.",
        "iat": "The access token was issued in the future.",
    }.get(claim, f"The access token has an invalid {claim} claim.")


# --- the Flask decorator --------------------------------------------------------------


class ResourceProtector(_FlaskResourceProtector):
    """A Flask decorator verifying authserver access tokens::

        protect = ResourceProtector(issuer="https://auth.example.com", audience="properties")

        @protect("properties.read")                      # needs this scope
        @protect("a b")                                  # needs both scopes
        @protect(["a", "b"])                             # needs either scope
        @protect(entitlements="properties.admin")        # 403 without it
        @protect(groups="Admin User")                    # this one group (never split)
        @protect(groups=["Admin User", "Manager"])       # either group
        @protect()                                       # any valid token

    ``decryption_keys`` (private keys: PEM, JWK dict or joserfc key; one or a list)
    opens encrypted tokens; ``require_encryption=True`` then refuses plain ones.

    The verified claims are ``current_claims`` (also ``flask.g.token_claims``). Errors
    answer as RFC 6750: 401 + ``WWW-Authenticate`` (a bare ``Bearer realm=...`` when no
    token was sent), 403 ``insufficient_scope``, 503 when authserver cannot be asked and
    nothing cached can answer.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        leeway: int = 30,
        refetch_interval: float = 30.0,
        timeout: float = 3.0,
        realm: str | None = None,
        jwks_uri: str | None = None,
        introspection: tuple[str, str] | None = None,
        keys: RemoteJWKS | None = None,
        decryption_keys: Any = None,
        require_encryption: bool = False,
    ) -> None:
        super().__init__()
        keys = keys or RemoteJWKS(
            issuer, jwks_uri=jwks_uri, timeout=timeout, refetch_interval=refetch_interval
        )
        introspector = Introspector(keys, *introspection) if introspection else None
        self.validator = AccessTokenValidator(
            issuer,
            audience,
            keys=keys,
            leeway=leeway,
            introspector=introspector,
            realm=realm or audience,
            decryption_keys=decryption_keys,
            require_encryption=require_encryption,
        )
        self.register_token_validator(self.validator)

    @property
    def keys(self) -> RemoteJWKS:
        return self.validator.keys

    def parse_request_authorization(self, request: Any) -> tuple[AccessTokenValidator, str]:
        header = request.headers.get("Authorization") or ""
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            # No Bearer credentials at all (none, or another scheme): a plain challenge.
            raise MissingToken(self.validator.realm)
        value = value.strip()
        if not value or " " in value:
            raise MalformedAuthorization(self.validator.realm)
        return self.validator, value

    def acquire_token(self, scopes: Any = None, **kwargs: Any) -> JWTAccessTokenClaims:
        token = super().acquire_token(scopes, **kwargs)
        g.token_claims = token
        return token


def _current_claims() -> dict[str, Any] | None:
    return g.get("token_claims")


current_claims: Any = LocalProxy(_current_claims)
