"""Audiences and their encryption keys, below HTTP and the CLI; and the token side:
which audience a token request asks for, encrypting its access token, and finding an
encrypted token again for introspection and revocation.

Every change records an audit event naming the actor and is committed by the caller.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from flask import g
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import and_, delete, select

from authserver.audiences.models import (
    KEY_ALGORITHMS,
    Audience,
    AudienceEncryptionKey,
    EncryptedAccessToken,
)
from authserver.audiences.own import own_api_named
from authserver.audit import record_event
from authserver.context import keyed_hash, keyring, settings
from authserver.errors import (
    AudienceConflict,
    InvalidEncryptionKey,
    InvalidIdentifier,
    UnknownResource,
)
from authserver.extensions import db, utcnow
from authserver.oauth.models import RevokedAccessToken

CONTENT_ENCRYPTION = "A256GCM"
CURVES = ("P-256", "P-384", "P-521")
MIN_RSA_BITS = 2048
MAX_IDENTIFIER_LENGTH = 255
# Members that only a private (or symmetric) JWK has.
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_KTY_OF = {"RSA-OAEP-256": "RSA", "ECDH-ES": "EC"}
_DEFAULT_ALG = {"RSA": "RSA-OAEP-256", "EC": "ECDH-ES"}
_KID = re.compile(r"^[\x21-\x7e]{1,128}$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")


# --- validating input -----------------------------------------------------------------


def check_identifier(value: str) -> str:
    """An audience identifier is an absolute URI without a fragment (RFC 8707 §2), e.g.
    ``https://properties.example.com`` or ``urn:example:properties``."""
    if not isinstance(value, str) or not value:
        raise InvalidIdentifier("Give the audience's identifier, an absolute URI.")
    if len(value) > MAX_IDENTIFIER_LENGTH:
        raise InvalidIdentifier(f"At most {MAX_IDENTIFIER_LENGTH} characters.")
    if any(not 0x21 <= ord(char) <= 0x7E for char in value):
        raise InvalidIdentifier("Only printable ASCII characters, no spaces.")
    parts = urlsplit(value)
    if not parts.scheme or not _SCHEME.match(parts.scheme) or not (parts.netloc or parts.path):
        raise InvalidIdentifier(
            "Not an absolute URI (RFC 8707): e.g. https://properties.example.com."
        )
    if "#" in value:
        raise InvalidIdentifier("An audience identifier must not contain a fragment (#).")
    if parts.scheme.lower() in ("http", "https") and not parts.hostname:
        raise InvalidIdentifier("An http(s) identifier needs a host.")
    return value


@dataclass(frozen=True)
class PublicEncryptionKey:
    """A validated public key: ``jwk`` holds only its public members plus kid/alg/use."""

    kid: str
    alg: str
    jwk: dict[str, Any]


def public_key_from_jwk(data: Any, alg: str | None = None) -> PublicEncryptionKey:
    """Validate a public JWK for RSA-OAEP-256 (RSA, at least 2048 bits) or ECDH-ES (EC
    P-256/P-384/P-521). ``alg`` defaults to the JWK's own, else to the one its kty
    implies. The kid is the JWK's, else its RFC 7638 thumbprint."""
    if not isinstance(data, dict):
        raise InvalidEncryptionKey("The encryption key must be a JWK (a JSON object).")
    private = [name for name in PRIVATE_MEMBERS if name in data]
    if private:
        raise InvalidEncryptionKey(
            f"This JWK holds private members ({', '.join(private)}): send only the public "
            "key. The private key stays with the resource server."
        )
    kty = data.get("kty")
    if kty not in _DEFAULT_ALG:
        raise InvalidEncryptionKey(
            f"Unsupported key type {kty!r}: use an RSA key (RSA-OAEP-256) or an EC key on "
            f"{', '.join(CURVES)} (ECDH-ES)."
        )
    given = data.get("alg")
    if alg and given and alg != given:
        raise InvalidEncryptionKey(f"The JWK says alg {given!r} but {alg!r} was asked for.")
    alg = alg or given or _DEFAULT_ALG[kty]
    if alg not in KEY_ALGORITHMS:
        raise InvalidEncryptionKey(
            f"Unsupported alg {alg!r}: use {' or '.join(KEY_ALGORITHMS)} (with A256GCM)."
        )
    if _KTY_OF[alg] != kty:
        raise InvalidEncryptionKey(f"alg {alg} needs an {_KTY_OF[alg]} key, not {kty}.")
    if data.get("use", "enc") != "enc":
        raise InvalidEncryptionKey("This key is not for encryption (its use must be enc).")
    ops = data.get("key_ops")
    encrypting = {"encrypt", "wrapKey", "deriveKey"}
    if ops is not None and not (isinstance(ops, list) and encrypting & set(ops)):
        raise InvalidEncryptionKey("The key's key_ops do not allow encryption.")
    kid = data.get("kid")
    if kid is not None and not (isinstance(kid, str) and _KID.match(kid)):
        raise InvalidEncryptionKey("kid must be 1 to 128 printable ASCII characters.")
    key = _import_public(kty, data)
    public = key.as_dict(private=False)
    kid = kid or key.thumbprint()
    return PublicEncryptionKey(
        kid=kid, alg=alg, jwk={**public, "kid": kid, "alg": alg, "use": "enc"}
    )


def _import_public(kty: str, data: dict[str, Any]) -> RSAKey | ECKey:
    # Only the members that define the key: anything else (x5c, key_ops, ...) is dropped.
    try:
        if kty == "RSA":
            # Measured before importing: joserfc warns about (but takes) small keys.
            n = data["n"]
            bits = int.from_bytes(base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))).bit_length()
            if bits < MIN_RSA_BITS:
                raise InvalidEncryptionKey(
                    f"RSA keys need at least {MIN_RSA_BITS} bits, not {bits}."
                )
            return RSAKey.import_key({"kty": "RSA", "n": n, "e": data["e"]})
        if data.get("crv") not in CURVES:
            raise InvalidEncryptionKey(
                f"Unsupported curve {data.get('crv')!r}: use {', '.join(CURVES)}."
            )
        # cryptography refuses a point that is not on the curve.
        return ECKey.import_key({"kty": "EC", "crv": data["crv"], "x": data["x"], "y": data["y"]})
    except InvalidEncryptionKey:
        raise
    except (KeyError, JoseError, ValueError, TypeError):
        raise InvalidEncryptionKey(f"This is not a valid {kty} public key.") from None


def public_key_from_file(raw: bytes, alg: str | None = None) -> PublicEncryptionKey:
    """A public key from a file: a JWK (JSON) or a PEM public key."""
    text = raw.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise InvalidEncryptionKey("The file is neither a JWK (JSON) nor a PEM key.") from None
        return public_key_from_jwk(data, alg)
    if "PRIVATE KEY" in text:
        raise InvalidEncryptionKey(
            "This is a private key: send only the public key (openssl pkey -pubout). "
            "The private key stays with the resource server."
        )
    try:
        loaded = load_pem_public_key(text.encode())
    except ValueError:
        raise InvalidEncryptionKey(
            "The file is neither a JWK (JSON) nor a PEM public key."
        ) from None
    if isinstance(loaded, rsa.RSAPublicKey):
        key: RSAKey | ECKey = RSAKey.import_key(loaded)
    elif isinstance(loaded, ec.EllipticCurvePublicKey):
        try:
            key = ECKey.import_key(loaded)
        except (JoseError, ValueError, KeyError):
            raise InvalidEncryptionKey(f"Unsupported curve: use {', '.join(CURVES)}.") from None
    else:
        raise InvalidEncryptionKey(
            "Unsupported key type: use an RSA key (RSA-OAEP-256) or an EC key (ECDH-ES)."
        )
    return public_key_from_jwk(key.as_dict(private=False), alg)


# --- audiences ------------------------------------------------------------------------


def find_audience(reference: str) -> Audience | None:
    """By id (a UUID) or by identifier."""
    try:
        found = db.session.get(Audience, uuid.UUID(reference))
    except ValueError:
        found = None
    if found is not None:
        return found
    return db.session.scalar(select(Audience).where(Audience.identifier == reference))


def list_audiences() -> list[Audience]:
    return list(db.session.scalars(select(Audience).order_by(Audience.identifier)))


def _refuse_default_audience(identifier: str) -> None:
    if own_api_named(identifier) is not None:
        raise InvalidIdentifier(
            "This is the audience of one of authserver's own APIs (/account, /admin): "
            "authserver reads these tokens itself, so they cannot be encrypted."
        )
    if identifier == settings().audience:
        raise InvalidEncryptionKey(
            "This is authserver's own default audience (AUTHSERVER_ACCESS_TOKEN_AUDIENCE): "
            "authserver must read these tokens itself (userinfo, account and admin APIs), "
            "so they cannot be encrypted."
        )


def create_audience(
    identifier: str, name: str = "", key: PublicEncryptionKey | None = None, *, actor: str
) -> Audience:
    identifier = check_identifier(identifier)
    if db.session.scalar(select(Audience.id).where(Audience.identifier == identifier)):
        raise AudienceConflict("An audience with this identifier already exists.", "identifier")
    if key is not None:
        _refuse_default_audience(identifier)
    audience = Audience(identifier=identifier, name=name or "")
    db.session.add(audience)
    db.session.flush()
    if key is not None:
        audience.keys.append(_key_row(key))
        db.session.flush()
    record_event(
        "audience.created",
        actor=actor,
        audience=identifier,
        kid=key.kid if key else None,
        alg=key.alg if key else None,
    )
    return audience


def _key_row(key: PublicEncryptionKey) -> AudienceEncryptionKey:
    return AudienceEncryptionKey(kid=key.kid, alg=key.alg, public_jwk=key.jwk, state="active")


def set_encryption_key(
    audience: Audience, key: PublicEncryptionKey, *, actor: str
) -> AudienceEncryptionKey:
    """Register or replace the audience's key. The previous key becomes ``replaced``:
    tokens already encrypted to it stay valid until they expire, so the service keeps
    its private key that long. Setting the active key again changes nothing."""
    _refuse_default_audience(audience.identifier)
    same_kid = next((row for row in audience.keys if row.kid == key.kid), None)
    if same_kid is not None and same_kid.public_jwk != key.jwk:
        raise AudienceConflict(
            f"The kid {key.kid!r} already names another key of this audience: give the new "
            "key a kid of its own (services pick their private key by kid).",
            "encryption_key",
        )
    previous = audience.active_key
    if previous is not None and previous is same_kid:
        return previous
    now = utcnow()
    if previous is not None:
        previous.state, previous.replaced_at = "replaced", now
        db.session.flush()  # before the new active row: at most one active per audience
    if same_kid is not None:  # a key used before comes back
        same_kid.state, same_kid.replaced_at = "active", None
        row = same_kid
    else:
        row = _key_row(key)
        audience.keys.insert(0, row)
    db.session.flush()
    record_event(
        "audience.key_set",
        actor=actor,
        audience=audience.identifier,
        kid=row.kid,
        alg=row.alg,
        replaced_kid=previous.kid if previous else None,
    )
    return row


def remove_encryption_key(audience: Audience, *, actor: str) -> AudienceEncryptionKey | None:
    """From now on the audience gets plain signed tokens; the removed key is kept as
    ``replaced`` (tokens encrypted to it live until they expire)."""
    previous = audience.active_key
    if previous is None:
        return None
    previous.state, previous.replaced_at = "replaced", utcnow()
    db.session.flush()
    record_event(
        "audience.key_removed", actor=actor, audience=audience.identifier, kid=previous.kid
    )
    return previous


def delete_audience(audience: Audience, *, actor: str) -> None:
    """Tokens already issued for it stay valid until they expire; new requests for it
    get ``invalid_target``."""
    record_event("audience.deleted", actor=actor, audience=audience.identifier)
    db.session.delete(audience)
    db.session.flush()


def describe_key(row: AudienceEncryptionKey) -> dict[str, Any]:
    described: dict[str, Any] = {
        "kid": row.kid,
        "alg": row.alg,
        "enc": CONTENT_ENCRYPTION,
        "state": row.state,
        "created_at": row.created_at.isoformat(),
        "replaced_at": row.replaced_at.isoformat() if row.replaced_at else None,
        "jwk": row.public_jwk,
    }
    if row.replaced_at is not None:
        # The last token encrypted to it expires then (plus what verifiers allow): until
        # then the service keeps the matching private key.
        window = settings().access_token_ttl + settings().clock_skew
        described["tokens_valid_until"] = (row.replaced_at + timedelta(seconds=window)).isoformat()
    return described


def describe_audience(audience: Audience) -> dict[str, Any]:
    active = audience.active_key
    return {
        "id": str(audience.id),
        "identifier": audience.identifier,
        "name": audience.name,
        "created_at": audience.created_at.isoformat(),
        "encrypted": active is not None,
        "encryption_key": describe_key(active) if active else None,
        "replaced_keys": [describe_key(row) for row in audience.keys if row.state != "active"],
    }


# --- the token endpoint ---------------------------------------------------------------


@dataclass(frozen=True)
class TokenTarget:
    """The audience a token request asked for, and its active key if it has one.
    ``scope``: for one of authserver's own APIs (audiences/own.py), the scope its tokens
    carry."""

    identifier: str
    key_id: uuid.UUID | None = None
    kid: str | None = None
    alg: str | None = None
    jwk: dict[str, Any] | None = None
    scope: str | None = None


_TARGET = "authserver_token_target"


def resolve_resource(values: list[str]) -> TokenTarget | None:
    """The audience named by a token request's ``resource`` values (RFC 8707), or None
    for the default audience (no ``resource``, or the default audience itself, whose
    tokens are never encrypted). authserver's own APIs are audiences without a row.
    Whether the client may ask for it is the grant's question. Raises UnknownResource."""
    if not values:
        return None
    if len(values) > 1:
        raise UnknownResource("Ask for one resource per token request.")
    value = values[0]
    if value == settings().audience:
        return None
    own = own_api_named(value)
    if own is not None:
        return TokenTarget(own.identifier, scope=own.scope)
    if not value or len(value) > MAX_IDENTIFIER_LENGTH:
        raise UnknownResource("The resource is not a registered audience.")
    row = db.session.execute(
        select(
            Audience.identifier,
            AudienceEncryptionKey.id,
            AudienceEncryptionKey.kid,
            AudienceEncryptionKey.alg,
            AudienceEncryptionKey.public_jwk,
        )
        .outerjoin(
            AudienceEncryptionKey,
            and_(
                AudienceEncryptionKey.audience_id == Audience.id,
                AudienceEncryptionKey.state == "active",
            ),
        )
        .where(Audience.identifier == value)
    ).first()
    if row is None:
        raise UnknownResource("The resource is not a registered audience.")
    return TokenTarget(row[0], row[1], row[2], row[3], row[4])


def use_token_target(target: TokenTarget | None) -> None:
    """Hand the chosen audience to the token generator, which Authlib calls without the
    request."""
    setattr(g, _TARGET, target)


def token_target() -> TokenTarget | None:
    return g.get(_TARGET)


# Imported public keys by key row id: rows are immutable, and a kid is unique only within
# one audience (two services may both call their key "key-1").
_public_keys: dict[uuid.UUID, RSAKey | ECKey] = {}
_public_keys_lock = threading.Lock()


def _public_key(target: TokenTarget) -> RSAKey | ECKey:
    assert target.key_id is not None and target.jwk is not None
    key = _public_keys.get(target.key_id)
    if key is None:
        kind = RSAKey if target.jwk["kty"] == "RSA" else ECKey
        key = kind.import_key(target.jwk)
        with _public_keys_lock:
            _public_keys[target.key_id] = key
    return key


def _segment(value: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


def encrypt_access_token(target: TokenTarget, signed: str) -> str:
    """The signed token encrypted to the audience's key (a nested JWT, ``cty: JWT``), and
    a record of it for introspection: the claims and signing kid, by keyed hash."""
    assert target.alg is not None and target.kid is not None
    header_part, payload_part, _ = signed.split(".")
    claims, signing_kid = _segment(payload_part), _segment(header_part)["kid"]
    protected = {"alg": target.alg, "enc": CONTENT_ENCRYPTION, "cty": "JWT", "kid": target.kid}
    token = jwe.encrypt_compact(
        protected, signed, _public_key(target), algorithms=[target.alg, CONTENT_ENCRYPTION]
    )
    db.session.add(
        EncryptedAccessToken(
            token_hash=keyed_hash(token),
            jti=claims["jti"],
            signing_kid=signing_kid,
            claims=claims,
            expires_at=datetime.fromtimestamp(claims["exp"], tz=UTC),
        )
    )
    return token


def encrypted_token_claims(value: str) -> dict[str, Any] | None:
    """The claims of an encrypted access token we issued, while it is unexpired (with the
    clock-skew leeway plain tokens get) and its signing key still published (a revoked
    key ends its tokens, as for plain tokens). None otherwise. Does not consult
    revocation: see ``access_token_revoked``."""
    row = db.session.get(EncryptedAccessToken, keyed_hash(value))
    if row is None:
        return None
    if row.expires_at + timedelta(seconds=settings().clock_skew) <= utcnow():
        return None
    if row.signing_kid not in keyring().snapshot().states:
        return None
    return dict(row.claims)


def purge_expired_token_records() -> dict[str, int]:
    """Delete what only served tokens that have now expired (past the clock-skew leeway):
    encrypted-token records and revoked access-token jtis."""

    cutoff = utcnow() - timedelta(seconds=settings().clock_skew)
    purged = {}
    for name, model in (
        ("encrypted_access_tokens", EncryptedAccessToken),
        ("revoked_access_tokens", RevokedAccessToken),
    ):
        result = db.session.execute(delete(model).where(model.expires_at < cutoff))
        purged[name] = result.rowcount or 0  # type: ignore[attr-defined]
    return purged
