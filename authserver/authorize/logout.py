"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) on Authlib's
``EndSessionEndpoint``.

With a valid ``id_token_hint`` (signed by a key this server publishes, expired or not)
the browser session ends at once and the browser goes to the ``post_logout_redirect_uri``
if the client registered exactly that URI (with ``state``). Without one the person is
asked to confirm (a page with a CSRF-protected form: a link alone must not sign anyone
out), and nobody is redirected anywhere afterwards (§3: no legitimacy without the hint).
A hint that does not verify, or a ``client_id`` that is not its audience, is an error
page: never a redirect.
"""

from __future__ import annotations

from authlib.oidc.rpinitiated import EndSessionEndpoint as _EndSessionEndpoint
from authlib.oidc.rpinitiated import EndSessionRequest
from joserfc.jwk import KeySet

from authserver.authorize.browser_sessions import sign_out_browser
from authserver.context import keyring
from authserver.oauth.models import Client


class EndSessionEndpoint(_EndSessionEndpoint):
    def get_server_jwks(self) -> KeySet:
        return keyring().snapshot().verifying

    def get_algorithms(self) -> list[str]:
        return ["RS256"]

    def _is_valid_post_logout_redirect_uri(self, client: Client, uri: str) -> bool:
        return uri in client.post_logout_redirect_uri_list()

    def end_session(self, end_session_request: EndSessionRequest) -> None:
        sign_out_browser()
