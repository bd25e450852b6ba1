"""What a registered redirect URI (or post-logout redirect URI) may be.

Compared later as exact strings (RFC 9700 §4.1.1), so they are checked once, here:
absolute, no fragment (RFC 6749 §3.1.2), no user information, at most 2000 characters;
``https``, or ``http`` on a loopback host (RFC 8252 §7.3) — other ``http`` hosts only
outside production — or a private-use scheme of a native app written as a reversed
domain name (RFC 8252 §7.1, ``com.example.app:/callback``). Schemes that run code or
read files (``javascript:``, ``data:``, ``file:``, …) never.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from authserver.errors import InvalidRedirectUri

MAX_LENGTH = 2000
MAX_URIS = 20
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
# RFC 8252 §7.1: a reversed domain name with at least one dot.
PRIVATE_USE_SCHEME = re.compile(r"^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+$")
FORBIDDEN_SCHEMES = {"javascript", "data", "file", "vbscript", "blob", "about", "ftp"}


def check_redirect_uri(uri: str, *, production: bool) -> str:
    """The URI as given, or raise InvalidRedirectUri saying why."""
    if not isinstance(uri, str) or not uri or len(uri) > MAX_LENGTH:
        raise InvalidRedirectUri(f"a redirect URI is 1 to {MAX_LENGTH} characters")
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in uri):
        raise InvalidRedirectUri(f"{uri!r}: no spaces or control characters")
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        raise InvalidRedirectUri(f"{uri!r} is not a URI") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise InvalidRedirectUri(f"{uri!r} is not absolute")
    if parts.fragment or "#" in uri:
        raise InvalidRedirectUri(f"{uri!r}: a redirect URI has no fragment (RFC 6749 §3.1.2)")
    if parts.username is not None or parts.password is not None:
        raise InvalidRedirectUri(f"{uri!r}: no user information in a redirect URI")
    if scheme in FORBIDDEN_SCHEMES:
        raise InvalidRedirectUri(f"{uri!r}: the {scheme} scheme is refused")
    if scheme in ("http", "https"):
        if not host:
            raise InvalidRedirectUri(f"{uri!r} has no host")
        if scheme == "http" and host not in LOOPBACK_HOSTS and production:
            raise InvalidRedirectUri(
                f"{uri!r}: use https (plain http only on a loopback host, RFC 8252 §7.3)"
            )
        return uri
    if not PRIVATE_USE_SCHEME.match(scheme):
        raise InvalidRedirectUri(
            f"{uri!r}: a native app's scheme is a reversed domain name (RFC 8252 §7.1)"
        )
    return uri


def normalize_redirect_uris(uris: list[str] | tuple[str, ...], *, production: bool) -> str:
    """The URIs as stored: checked, each once, space-separated, in the order given."""
    checked = [check_redirect_uri(uri, production=production) for uri in uris]
    unique = list(dict.fromkeys(checked))
    if len(unique) > MAX_URIS:
        raise InvalidRedirectUri(f"at most {MAX_URIS} redirect URIs")
    return " ".join(unique)
