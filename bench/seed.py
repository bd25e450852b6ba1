"""Seed the benchmark database: a password user, two clients, and a pool of refresh tokens.

Run by bench/run.py in the benchmark's environment (its PostgreSQL, its keys). Every
refresh token is the one live token of its own session, and sessions are spread over
many users (below AUTHSERVER_MAX_SESSIONS_PER_USER each), as in real traffic: a token
used once rotates, so the benchmark never replays one nor crowds one session's row.
Sessions and tokens are written with bulk INSERTs (the services' one-at-a-time path
would take minutes for 50,000 of them); their values are what the services would write.
"""

from __future__ import annotations

import json
import secrets
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert

from authserver import create_app
from authserver.accounts.services import create_user
from authserver.context import keyed_hash, settings
from authserver.extensions import db, utcnow
from authserver.oauth.clients import create_client
from authserver.oauth.models import AuthSession, RefreshToken

PASSWORD = "bench password 1"
PHONE = "+33612975634"
SESSIONS_PER_USER = 8
SCOPE = "profile properties.read"


def seed(pool_size: int, tokens_path: Path) -> dict:
    create_user(PHONE, PASSWORD, first_name="Bench")
    db.session.commit()
    app_client, app_secret = create_client(
        name="bench app", actor="bench", grant_types=["password", "refresh_token"], scope=SCOPE
    )
    service, service_secret = create_client(
        name="bench service",
        actor="bench",
        grant_types=["client_credentials"],
        scope="properties.read",
        resource_server=True,
    )
    users = []
    for index in range(-(-pool_size // SESSIONS_PER_USER)):
        users.append(create_user(f"+3361{index:07d}", None, first_name="Bench"))
    db.session.commit()
    now = utcnow()
    sessions, tokens, values = [], [], []
    for index in range(pool_size):
        session_id = uuid.uuid4()
        sessions.append(
            {
                "id": session_id,
                "user_id": users[index // SESSIONS_PER_USER].id,
                "client_id": app_client.client_id,
                "scope": SCOPE,
                "amr": "otp",
                "device_name": "bench",
                "user_agent": "wrk",
                "created_at": now,
                "last_used_at": now,
                "expires_at": now + timedelta(seconds=settings().session_max_ttl),
            }
        )
        value = secrets.token_urlsafe(32)
        values.append(value)
        tokens.append(
            {
                "token_hash": keyed_hash(value),
                "session_id": session_id,
                "created_at": now,
                "expires_at": now + timedelta(seconds=settings().session_idle_ttl),
            }
        )
    for start in range(0, pool_size, 5000):
        db.session.execute(insert(AuthSession), sessions[start : start + 5000])
        db.session.execute(insert(RefreshToken), tokens[start : start + 5000])
    db.session.commit()
    tokens_path.write_text("\n".join(values) + "\n")
    return {
        "app": [app_client.client_id, app_secret],
        "svc": [service.client_id, service_secret],
    }


if __name__ == "__main__":
    app = create_app()
    with app.app_context():
        print(json.dumps(seed(int(sys.argv[1]), Path(sys.argv[2]))))
