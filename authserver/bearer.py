"""The one Bearer-token check of authserver's own APIs: ``/account``, ``/admin``, userinfo
and the seed profile endpoints (after Authlib's ResourceProtector)::

    @bp.get("/profile")
    @authenticate(ACCOUNT_API)
    def profile():
        user = current_token().user

Checks, in this order, each failure with its RFC 6750 / RFC 9470 answer (a
``BearerError``; each family of views words the body its own way, the status and
``WWW-Authenticate`` challenge are the same everywhere):

1. a Bearer token in the ``Authorization`` header (the seed profile endpoints also read
   a cookie), or ``Authorization: DPoP <token>``. None: 401 with a bare ``Bearer``
   challenge, no error code (RFC 6750 §3.1);
2. signed by us, ``typ: at+jwt``, our ``iss``, unexpired: else 401 ``invalid_token``;
   a DPoP-bound token (``cnf.jkt``) only as ``DPoP`` with a valid proof of this request
   by the same key covering this token (``ath``; oauth/dpop.py): else 401
   ``invalid_token`` (presented as Bearer) or ``invalid_dpop_proof`` (a ``DPoP``
   challenge naming the accepted ``algs``, RFC 9449 §7.1);
3. issued for this API's audience (audiences/own.py): a token of a resource server's
   audience, or of the bare issuer, is 401 ``invalid_token`` here, whoever holds it;
4. not revoked (its session live, its user not blocked, its client active): else 401;
5. carries the API's scope: else 403 ``insufficient_scope``;
6. a user's token where a user is needed (else 403), whose user still exists (else 401);
   a client's token (admin automation) only from a client still allowed the scope;
7. the user holds ``permission`` now, read from the database (else 403);
8. ``step_up``: signed in with a password (``amr`` holds ``pwd``) at most
   ``AUTHSERVER_ADMIN_AUTH_MAX_AGE`` seconds ago (``auth_time``): else 401
   ``insufficient_user_authentication`` with ``max_age`` (RFC 9470).

The token's facts are then ``current_token()`` for the rest of the request.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import g, request

from authserver.accounts.models import User
from authserver.audiences.own import OWN_APIS, OwnApi
from authserver.context import settings
from authserver.errors import AuthserverError, InvalidAccessToken
from authserver.extensions import db
from authserver.oauth import dpop
from authserver.oauth.models import Client
from authserver.oauth.tokens import access_token_revoked, decode_access_token
from authserver.openapi import ApiErrorBody, Reply, secured

View = TypeVar("View", bound=Callable[..., Any])
_CURRENT = "authserver_bearer_token"


# --- failures ---------------------------------------------------------------------------
class BearerError(AuthserverError):
    """A request refused by ``authenticate``: ``status``, the body's ``error`` and the
    ``WWW-Authenticate`` challenge (``headers``) are the answer's, whatever the body
    style of the view."""

    status = 401
    error = "invalid_token"
    description = "The access token is invalid."

    def __init__(self, description: str | None = None, **params: str) -> None:
        super().__init__(description)
        self.params = params

    @property
    def challenge_error(self) -> str | None:
        """The error code of the challenge (None: the challenge names none)."""
        return self.error

    scheme = "Bearer"

    def challenge(self) -> str:
        parts = []
        if self.challenge_error:
            # Descriptions are ours; a quote or backslash would break the header's syntax.
            text = self.description.replace("\\", "").replace('"', "'")
            parts += [f'error="{self.challenge_error}"', f'error_description="{text}"']
        parts += [f'{name}="{value}"' for name, value in self.params.items()]
        return f"{self.scheme} " + ", ".join(parts) if parts else self.scheme

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": self.challenge()}


class MissingToken(BearerError):
    """No credentials: RFC 6750 §3.1 says the challenge carries no error code."""

    description = "Send an access token: Authorization: Bearer <token>."

    @property
    def challenge_error(self) -> str | None:
        return None


class InvalidToken(BearerError):
    pass


class InvalidDpopProof(BearerError):
    """RFC 9449 §7.1: a DPoP request whose proof does not hold."""

    scheme = "DPoP"
    error = "invalid_dpop_proof"
    description = "The DPoP proof is invalid."

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description, algs=" ".join(dpop.SIGNING_ALGS))


class InsufficientScope(BearerError):
    status = 403
    error = "insufficient_scope"
    description = "The access token does not allow this."


class InsufficientUserAuthentication(BearerError):
    """RFC 9470: the user must sign in again, with a password and recently."""

    error = "insufficient_user_authentication"
    description = "Sign in again with your password to do this."


# --- the token of the request -----------------------------------------------------------
@dataclass(frozen=True)
class BearerToken:
    """The checked access token of the current request."""

    claims: dict[str, Any]
    user: User | None  # None for a client's own token (client credentials)

    @property
    def client_id(self) -> str:
        return self.claims["client_id"]

    @property
    def session_id(self) -> uuid.UUID | None:
        sid = self.claims.get("sid")
        return uuid.UUID(sid) if sid else None

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(str(self.claims.get("scope") or "").split())

    @property
    def actor(self) -> str:
        """Who acts, for the audit log: the user's id, or the client's id."""
        return str(self.user.id) if self.user is not None else self.client_id


def current_token() -> BearerToken:
    """The token ``authenticate`` checked for this request."""
    return g.get(_CURRENT)


def current_user() -> User:
    """The user of the request's token (views behind ``authenticate(user=True)``)."""
    user = current_token().user
    assert user is not None, "authenticate(user=True) lets only users' tokens through"
    return user


# --- the check --------------------------------------------------------------------------
@dataclass(frozen=True)
class Requirement:
    """What one protected view asks of a token (see ``authenticate``)."""

    audiences: Callable[[], frozenset[str]]
    scopes: tuple[str, ...]
    user: bool
    permission: str | None
    step_up: bool
    cookie: bool
    seed_tokens: bool

    def check(self) -> BearerToken:
        claims = self._claims()
        seed = self.seed_tokens and _is_seed_token(claims)
        if not seed and not _audiences_of(claims) & self.audiences():
            raise InvalidToken("The access token was not issued for this API (aud).")
        if access_token_revoked(claims):
            raise InvalidToken("The access token has been revoked.")
        granted = frozenset(str(claims.get("scope") or "").split())
        missing = [scope for scope in self.scopes if scope not in granted]
        if missing and not seed:
            raise InsufficientScope(
                f"The access token lacks the scope '{' '.join(missing)}'.",
                scope=" ".join(self.scopes),
            )
        if not claims.get("sid"):
            self._check_client(claims)
            return BearerToken(claims, None)
        user = db.session.get(User, _uuid(claims["sub"]))
        if user is None:
            raise InvalidToken("The access token's user no longer exists.")
        if self.permission and self.permission not in user.entitlements():
            raise InsufficientScope(f"The user lacks the '{self.permission}' permission.")
        if self.step_up:
            _check_step_up(claims)
        return BearerToken(claims, user)

    def _claims(self) -> dict[str, Any]:
        header = request.headers.get("Authorization") or (
            request.cookies.get("Authorization", "") if self.cookie else ""
        )
        scheme, _, value = header.strip().partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme not in ("bearer", "dpop") or not value:
            raise MissingToken()
        try:
            claims = decode_access_token(value)
        except InvalidAccessToken as error:
            raise InvalidToken(error.description) from None
        bound_to = (claims.get("cnf") or {}).get("jkt")
        if scheme == "bearer":
            if bound_to is not None:
                raise InvalidToken("This token is bound to a DPoP key: send it as DPoP.")
            return claims
        try:
            proven_by = dpop.check_proof(access_token=value)
        except dpop.InvalidDpopProof as error:
            raise InvalidDpopProof(error.description) from None
        if proven_by is None:
            raise InvalidDpopProof("Send a DPoP proof with a DPoP token.")
        if proven_by != bound_to:
            raise InvalidDpopProof("The DPoP proof is not signed by the token's key.")
        return claims

    def _check_client(self, claims: dict[str, Any]) -> None:
        """A client's own token passes only where no user is needed, from a client that
        is still allowed every scope asked (taking the scope away works at once)."""
        if self.user:
            raise InsufficientScope("This token does not belong to a user.")
        client = db.session.get(Client, claims["client_id"])
        if client is None or not set(self.scopes) <= client.allowed_scopes():
            raise InsufficientScope(
                f"The client is not allowed the scope '{' '.join(self.scopes)}'.",
                scope=" ".join(self.scopes),
            )


def _audiences_of(claims: dict[str, Any]) -> frozenset[str]:
    aud = claims.get("aud")
    return frozenset(aud if isinstance(aud, list) else [aud])


def _is_seed_token(claims: dict[str, Any]) -> bool:
    """What the seed apps hold: a token of the default audience that the seed endpoints
    obtained for them, as their first-party client (oauth/internal.py)."""
    return claims.get(
        "client_id"
    ) == settings().first_party_client_id and settings().audience in _audiences_of(claims)


def _check_step_up(claims: dict[str, Any]) -> None:
    max_age = settings().admin_auth_max_age
    amr = claims.get("amr") or []
    auth_time = claims.get("auth_time")
    if "pwd" not in amr:
        raise InsufficientUserAuthentication(
            "This needs a sign-in with your password: sign in again with it.",
            max_age=str(max_age),
        )
    if not isinstance(auth_time, int | float) or time.time() - auth_time > max_age:
        raise InsufficientUserAuthentication(
            f"Your sign-in is older than {max_age} seconds: sign in again with your "
            "password to do this.",
            max_age=str(max_age),
        )


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError):
        raise InvalidToken("The access token's subject is not a user id.") from None


def own_audiences() -> frozenset[str]:
    """Every audience authserver reads itself: the default one (tokens without
    ``resource``) and its own APIs'. Userinfo takes any of them (OpenID Connect)."""
    return frozenset({settings().audience, *(api.identifier for api in OWN_APIS)})


def authenticate(
    api: OwnApi | None,
    *,
    scopes: Sequence[str] | None = None,
    user: bool = True,
    permission: str | None = None,
    step_up: bool = False,
    cookie: bool = False,
    seed_tokens: bool = False,
) -> Callable[[View], View]:
    """Let the view run only for a token meant for ``api`` (None: any of authserver's own
    audiences) carrying ``scopes`` (default: the API's scope).

    - ``user``: a user's token is needed (else a client's own token may do, from a
      client still allowed the scopes);
    - ``permission``: the user must hold it now (read from the database);
    - ``step_up``: the user signed in with a password within AUTHSERVER_ADMIN_AUTH_MAX_AGE;
    - ``cookie``: also read a cookie named ``Authorization`` (seed 004's apps);
    - ``seed_tokens``: also accept the default-audience tokens the seed endpoints issued
      to their first-party client (what the seed apps hold).
    """
    needed = tuple(scopes) if scopes is not None else ((api.scope,) if api else ())
    requirement = Requirement(
        audiences=(lambda: frozenset({api.identifier})) if api else own_audiences,
        scopes=needed,
        user=user,
        permission=permission,
        step_up=step_up,
        cookie=cookie,
        seed_tokens=seed_tokens,
    )

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def protected(*args: Any, **kwargs: Any) -> Any:
            setattr(g, _CURRENT, requirement.check())
            return view(*args, **kwargs)

        # The seed apps' tokens carry no scope of ours: none is documented for them.
        documented_scopes = () if seed_tokens else needed
        return secured(protected, [("bearer", documented_scopes)], _answers(api, requirement))

    return decorate


def _answers(api: OwnApi | None, requirement: Requirement) -> dict[int | str, Reply]:
    """The 401 and 403 answers of a protected view, for the OpenAPI document."""
    audience = f"`{{issuer}}{api.path}`" if api else "the issuer or one of its own APIs"
    refused = (
        "No token (challenge `Bearer`, no error code), or `invalid_token`: not ours, "
        f"expired, revoked, or issued for another audience than {audience} (ask for it "
        "with `resource` at the token endpoint), or a DPoP-bound token sent as Bearer. "
        "`invalid_dpop_proof` (challenge `DPoP`, RFC 9449): `Authorization: DPoP` without "
        "a valid proof by the token's key over this request and token."
    )
    if requirement.step_up:
        refused += (
            " `insufficient_user_authentication` (RFC 9470, with `max_age`): a user's "
            "sign-in is not a password sign-in within AUTHSERVER_ADMIN_AUTH_MAX_AGE."
        )
    challenge = 'Bearer, or Bearer error="…", error_description="…"'
    answers: dict[int | str, Reply] = {
        401: Reply(ApiErrorBody, refused, headers={"WWW-Authenticate": challenge})
    }
    if requirement.seed_tokens:
        return answers  # the seed endpoints answer every refusal with their 401
    scope = " ".join(requirement.scopes)
    forbidden = f"`insufficient_scope`: the token lacks the scope `{scope}`" if scope else ""
    if requirement.user:
        forbidden += ("; or " if forbidden else "`insufficient_scope`: ") + "not a user's token"
    if requirement.permission:
        forbidden += f"; or the user lacks the permission `{requirement.permission}`"
    if forbidden:
        answers[403] = Reply(
            ApiErrorBody,
            forbidden + ".",
            headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="…"'},
        )
    return answers
