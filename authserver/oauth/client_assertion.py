"""``private_key_jwt`` client authentication (RFC 7523 §2.2, OpenID Connect Core §9).

A client registered with this method holds no secret: it signs a short JWT with a key
whose public half it registered (``clients.jwks``), and sends it as ``client_assertion``.
Authlib's ``JWTBearerClientAssertion`` reads it; this module decides what it accepts:

- the keys: public RSA, EC or OKP keys only, each with a ``kid`` and at most
  ``MAX_KEYS``; checked at registration, so a stored JWKS never holds a secret;
- the algorithms: ``SIGNING_ALGS`` (asymmetric; never ``none`` nor an HMAC);
- ``iss`` = ``sub`` = the client id (and the form's ``client_id`` when sent);
- ``aud``: the issuer or the token endpoint URL (RFC 7523bis direction, RFC 9126);
- ``exp`` at most ``AUTHSERVER_CLIENT_ASSERTION_MAX_LIFETIME`` seconds ahead;
- ``jti`` accepted once until ``exp`` (oauth/replay.py, shared by every instance).

Every refusal is ``invalid_client`` (401); the server gives them one text.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import url_for
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from authserver.context import settings
from authserver.errors import InvalidJwks
from authserver.oauth.replay import claim_jti

METHOD = "private_key_jwt"
SIGNING_ALGS = ["RS256", "PS256", "ES256", "EdDSA"]
KEY_TYPES = ("RSA", "EC", "OKP")
MAX_KEYS = 10
# Members that only a private or symmetric key has (RFC 7518 §6, RFC 8037 §2).
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


def registered_jwks(jwks: Any) -> str:
    """The client's JWKS as stored (compact JSON), or InvalidJwks."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise InvalidJwks('the JWKS must be an object with a "keys" array')
    keys = jwks["keys"]
    if not 1 <= len(keys) <= MAX_KEYS:
        raise InvalidJwks(f"the JWKS must hold between 1 and {MAX_KEYS} keys")
    kids = set()
    for key in keys:
        problem = public_key_problem(key)
        if problem:
            raise InvalidJwks(problem)
        kid = key.get("kid")
        if not isinstance(kid, str) or not kid or kid in kids:
            raise InvalidJwks("each key needs its own kid")
        kids.add(kid)
        if key.get("use", "sig") != "sig":
            raise InvalidJwks('a key for client authentication has "use": "sig" or no use')
    stored = json.dumps({"keys": keys}, separators=(",", ":"), sort_keys=True)
    try:
        _key_set(stored)
    except (JoseError, ValueError, TypeError, KeyError) as error:
        raise InvalidJwks(f"the JWKS does not import: {error}") from None
    return stored


def public_key_problem(key: Any) -> str | None:
    """Why a JWK is not an asymmetric public key (None: it is one). Client keys here,
    DPoP proof keys (oauth/dpop.py)."""
    if not isinstance(key, dict) or key.get("kty") not in KEY_TYPES:
        return "each key must be an RSA, EC or OKP public key"
    if any(member in key for member in PRIVATE_MEMBERS):
        return "the key holds private key material: public keys only"
    return None


@lru_cache(maxsize=256)
def _key_set(stored: str) -> KeySet:
    # Keyed by the stored text: a re-registered JWKS is a new entry, never a stale one.
    return KeySet.import_key_set(json.loads(stored))


def _refused(description: str) -> InvalidClientError:
    return InvalidClientError(status_code=401, description=description)


class PrivateKeyJwt(JWTBearerClientAssertion):
    """Authlib's client-assertion reader, configured as the module docstring says."""

    CLIENT_AUTH_METHOD = METHOD

    def __init__(self, leeway: int) -> None:
        super().__init__(validate_jti=True, leeway=leeway)

    def __call__(self, query_client, request):
        client = super().__call__(query_client, request)
        form_client_id = request.form.get("client_id")
        if client is not None and form_client_id not in (None, client.client_id):
            raise _refused("client_id does not match the assertion's subject")
        return client

    def get_audiences(self) -> list[str]:
        issuer = settings().issuer
        return [issuer, issuer + url_for("oauth.token")]

    def resolve_client_public_key(self, client) -> KeySet:
        if not client.jwks:
            raise _refused("The client has no registered keys.")
        return _key_set(client.jwks)

    def process_assertion_claims(self, assertion, resolve_key):
        # Authlib's own decode lets the library's default algorithms through (HS256
        # among them); only the asymmetric ones are accepted here. A header without
        # ``alg`` or with an unknown ``kid`` is a refusal too, never a 500.
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=SIGNING_ALGS)
        except (JoseError, ValueError, KeyError, TypeError) as error:
            raise _refused(getattr(error, "description", None) or "Invalid assertion.") from None
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims) -> None:
        now = time.time()
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise _refused("The assertion needs a numeric exp.")
        longest = settings().client_assertion_max_lifetime
        if exp > now + longest + self.leeway:
            raise _refused(f"The assertion may live at most {longest} seconds.")
        if iat is not None and (not isinstance(iat, int | float) or iat > now + self.leeway):
            raise _refused("The assertion's iat is in the future.")
        super().verify_claims(claims)

    def validate_jti(self, claims, jti) -> bool:
        if not isinstance(jti, str) or not 0 < len(jti) <= 255:
            return False
        expires_at = datetime.fromtimestamp(claims["exp"] + self.leeway, UTC)
        return claim_jti(METHOD, claims["iss"], jti, expires_at)
