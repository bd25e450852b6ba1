"""What we know about the caller of the current request."""

from __future__ import annotations

from flask import request


def client_ip() -> str:
    """The caller's address. Behind trusted proxies ProxyFix has already rewritten it;
    without them forwarded headers are ignored, so nobody can spoof it."""
    return request.remote_addr or "unknown"


def user_agent() -> str:
    return (request.headers.get("User-Agent") or "")[:512]
