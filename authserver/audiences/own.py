"""authserver's own APIs as audiences: a token opens ``/account`` or ``/admin`` only when
it was issued for that API.

Invariants:

- ``{issuer}/account`` (scope ``authserver:account``) and ``{issuer}/admin`` (scope
  ``authserver:admin``) are built in: never rows of ``audiences``, never encrypted
  (authserver reads these tokens itself).
- A client gets them by asking with RFC 8707 ``resource`` at the token endpoint, and only
  when it is first-party or registered with the API's scope (``permits``); the token then
  carries the API's scope whatever else it was asked for.
- A token of any other audience (a resource server's, or the bare issuer that tokens
  without ``resource`` get) never opens these APIs (authserver/bearer.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from authserver.context import settings


class _Client(Protocol):
    first_party: bool

    def allowed_scopes(self) -> set[str]: ...


@dataclass(frozen=True)
class OwnApi:
    """One of authserver's own APIs: its audience is the issuer followed by ``path``."""

    path: str
    scope: str

    @property
    def identifier(self) -> str:
        return settings().issuer + self.path

    def permits(self, client: _Client) -> bool:
        """Whether ``client`` may be given tokens for this API."""
        return client.first_party or self.scope in client.allowed_scopes()


ACCOUNT_API = OwnApi("/account", "authserver:account")
ADMIN_API = OwnApi("/admin", "authserver:admin")
OWN_APIS = (ACCOUNT_API, ADMIN_API)


def own_api_named(identifier: str) -> OwnApi | None:
    """The own API whose audience is ``identifier``, if any."""
    return next((api for api in OWN_APIS if api.identifier == identifier), None)
