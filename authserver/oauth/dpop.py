"""DPoP (RFC 9449): tokens bound to a key the client holds.

A client sends ``DPoP: <proof>`` with a token request: a JWT it signed with a private key
whose public half is in the proof's header. The access token then carries
``cnf.jkt``, that key's RFC 7638 thumbprint, and ``token_type`` is ``DPoP``; a public
client's session (so its refresh tokens) is bound to the key too (§5). Where authserver
reads its own tokens (authserver/bearer.py), a bound token is accepted only as
``Authorization: DPoP <token>`` with a fresh proof by the same key over this request and
this token (``ath``).

A proof (§4.3) is accepted when: one ``DPoP`` header; ``typ`` is ``dpop+jwt``; ``alg``
is one of ``SIGNING_ALGS`` (asymmetric only); ``jwk`` is a public RSA, EC or OKP key; the
signature verifies with it; ``htm`` is the request's method and ``htu`` its URL (the
issuer's origin and the path: no query, no fragment, whatever proxies rewrote); ``iat``
is within ``AUTHSERVER_DPOP_PROOF_MAX_AGE`` seconds ago (and not ahead by more than the
clock skew); ``jti`` was never accepted for this key before (oauth/replay.py, shared by
every instance). Server nonces (``DPoP-Nonce``) are not asked for yet.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any

from flask import g, request
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import import_key

from authserver.context import settings
from authserver.errors import InvalidDpopProof
from authserver.oauth.client_assertion import public_key_problem
from authserver.oauth.replay import claim_jti

SIGNING_ALGS = ["ES256", "EdDSA", "RS256", "PS256"]
PROOF_TYPE = "dpop+jwt"
MAX_PROOF_LENGTH = 8192
_REQUEST_KEY = "authserver_dpop_jkt"


def check_proof(access_token: str | None = None) -> str | None:
    """The thumbprint of the key that signed the current request's DPoP proof, None when
    the request carries none; InvalidDpopProof when it carries a bad one.
    ``access_token``: the token the proof must cover (``ath``), at a resource."""
    proofs = request.headers.getlist("DPoP")
    if not proofs:
        return None
    if len(proofs) > 1:
        raise InvalidDpopProof("Send one DPoP header.")
    claims, key = _verified(proofs[0])
    _check_claims(claims, access_token)
    jkt = key.thumbprint()
    expires_at = datetime.fromtimestamp(
        claims["iat"] + settings().dpop_proof_max_age + settings().clock_skew, UTC
    )
    if not claim_jti("dpop", jkt, claims["jti"], expires_at):
        raise InvalidDpopProof("This DPoP proof was used before (jti).")
    return jkt


def _verified(proof: str) -> tuple[dict[str, Any], Any]:
    if len(proof) > MAX_PROOF_LENGTH or proof.count(".") != 2:
        raise InvalidDpopProof("The DPoP proof is not a compact JWS.")
    try:
        header = jws.extract_compact(proof.encode()).headers()
    except (JoseError, ValueError, TypeError, UnicodeError):
        raise InvalidDpopProof("The DPoP proof is not a compact JWS.") from None
    if header.get("typ") != PROOF_TYPE:
        raise InvalidDpopProof(f"The DPoP proof's typ must be {PROOF_TYPE}.")
    if header.get("alg") not in SIGNING_ALGS:
        raise InvalidDpopProof(f"The DPoP proof's alg must be one of {', '.join(SIGNING_ALGS)}.")
    problem = public_key_problem(header.get("jwk"))
    if problem:
        raise InvalidDpopProof(f"The DPoP proof's jwk: {problem}.")
    try:
        key = import_key(header["jwk"])
        verified = jws.deserialize_compact(proof, key, algorithms=SIGNING_ALGS)
        claims = json.loads(verified.payload)
    except (JoseError, ValueError, TypeError, KeyError):
        raise InvalidDpopProof("The DPoP proof's signature does not verify.") from None
    if not isinstance(claims, dict):
        raise InvalidDpopProof("The DPoP proof's payload is not a JSON object.")
    return claims, key


def _check_claims(claims: dict[str, Any], access_token: str | None) -> None:
    jti, iat = claims.get("jti"), claims.get("iat")
    if not isinstance(jti, str) or not 0 < len(jti) <= 255:
        raise InvalidDpopProof("The DPoP proof needs a jti.")
    if claims.get("htm") != request.method:
        raise InvalidDpopProof("The DPoP proof's htm is not this request's method.")
    if claims.get("htu") != settings().issuer + request.path:
        raise InvalidDpopProof("The DPoP proof's htu is not this request's URL.")
    now = time.time()
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise InvalidDpopProof("The DPoP proof needs a numeric iat.")
    if iat > now + settings().clock_skew or iat < now - settings().dpop_proof_max_age:
        raise InvalidDpopProof("The DPoP proof's iat is too old or in the future.")
    if access_token is not None and claims.get("ath") != token_hash(access_token):
        raise InvalidDpopProof("The DPoP proof's ath is not this access token's hash.")


def token_hash(access_token: str) -> str:
    """``ath``: base64url of the SHA-256 of the token (RFC 9449 §4.2)."""
    digest = hashlib.sha256(access_token.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def bind_request(jkt: str | None) -> None:
    """Remember the token request's proof key, for the token generator and the refresh
    grant (``request_key``)."""
    setattr(g, _REQUEST_KEY, jkt)


def request_key() -> str | None:
    """The key thumbprint of the current token request's proof, None without one."""
    return g.get(_REQUEST_KEY)
