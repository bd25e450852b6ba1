"""Plain request rates with Flask-Limiter: limits are declared where they apply, counted in
AUTHSERVER_RATELIMIT_STORAGE_URL and keyed by the client address by default."""

from __future__ import annotations

from flask_limiter import Limiter

from authserver.net import client_ip

limiter = Limiter(key_func=client_ip, default_limits=[])
