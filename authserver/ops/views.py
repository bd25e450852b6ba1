"""``/healthz`` (liveness), ``/readyz`` (readiness) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import hmac
import logging
import time
from functools import cache
from typing import Literal

from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import Blueprint, Response, jsonify, request
from limits.storage import storage_from_string
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from authserver.context import RATE_LIMIT_PROBE, keyring, migrations_directory, per_app, settings
from authserver.errors import error_response
from authserver.extensions import db
from authserver.openapi import PUBLIC, ApiErrorBody, Reply, documented
from authserver.ops.metrics import render, signing_key_families
from authserver.signing.models import SigningKey

log = logging.getLogger(__name__)
bp = Blueprint("ops", __name__)

NO_STORE = {"Cache-Control": "no-store"}
REDIS_SCHEMES = ("redis://", "rediss://", "redis+unix://", "redis+sentinel://", "redis+cluster://")


class Health(BaseModel):
    """The process answers."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ok"]


class Readiness(BaseModel):
    """Each check: "ok", or why not."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ready", "not_ready"]
    checks: dict[str, str] = Field(
        description="database, migrations, signing_key and, with a Redis rate-limit "
        "storage, rate_limit_storage.",
        examples=[{"database": "ok", "migrations": "ok", "signing_key": "ok"}],
    )


@bp.get("/healthz")
@documented(
    "Liveness: the process answers",
    tags=["ops"],
    responses={200: Reply(Health, headers=NO_STORE)},
    security=PUBLIC,
)
def healthz() -> Response:
    """The process answers. Touches no dependency: a database outage must not make an
    orchestrator restart every instance (that would turn an outage into a crash loop)."""
    return _json({"status": "ok"}, 200)


@bp.get("/readyz")
@documented(
    "Readiness: this instance can serve",
    tags=["ops"],
    responses={
        200: Reply(Readiness, "Ready: every check says ok.", headers=NO_STORE),
        503: Reply(Readiness, "Not ready: the checks that failed say why.", headers=NO_STORE),
    },
    security=PUBLIC,
)
def readyz() -> Response:
    """Whether this instance can serve: 200 when every check says "ok", else 503 with
    the reason of each check that failed."""
    checks: dict[str, str] = {"database": _database()}
    if checks["database"] == "ok":
        checks["migrations"] = _migrations()
        checks["signing_key"] = _signing_key()
    else:
        checks["migrations"] = checks["signing_key"] = "unknown: database unreachable"
    if settings().ratelimit_storage_url.startswith(REDIS_SCHEMES):
        checks["rate_limit_storage"] = _rate_limit_storage()
    ready = all(result == "ok" for result in checks.values())
    return _json(
        {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503
    )


@bp.get("/metrics")
@documented(
    "Prometheus metrics",
    tags=["ops"],
    responses={
        200: Reply(str, "The Prometheus text format.", media_type="text/plain", headers=NO_STORE),
        401: Reply(
            ApiErrorBody,
            "AUTHSERVER_METRICS_TOKEN is set and the request does not bear it.",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        ),
    },
    security=["metrics", "none"],
)
def metrics() -> Response:
    token = settings().metrics_token
    if token and not _bearer_matches(token):
        challenge = {**NO_STORE, "WWW-Authenticate": 'Bearer realm="metrics"'}
        return error_response(401, "unauthorized", "Bearer token required.", headers=challenge)
    try:
        rows = db.session.execute(
            select(SigningKey.kid, SigningKey.state, SigningKey.created_at)
        ).all()
        extra = signing_key_families(rows, time.time())
    except SQLAlchemyError as error:
        # The counters are still worth a scrape while the database is away.
        db.session.rollback()
        log.warning("signing-key metrics skipped: %s", type(error).__name__)
        extra = []
    return Response(render(extra), mimetype=CONTENT_TYPE_LATEST, headers=NO_STORE)


def _bearer_matches(expected: str) -> bool:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), expected.encode()
    )


def _database() -> str:
    try:
        db.session.execute(text("SELECT 1"))
        return "ok"
    except SQLAlchemyError as error:
        db.session.rollback()
        return f"unreachable ({type(error).__name__})"


def _migrations() -> str:
    try:
        current = set(db.session.scalars(text("SELECT version_num FROM alembic_version")))
    except SQLAlchemyError:
        db.session.rollback()
        return "not migrated: run `authserver db upgrade`"
    expected = script_heads(migrations_directory())
    if current != expected:
        return f"database at {sorted(current)}, code expects {sorted(expected)}"
    return "ok"


def _signing_key() -> str:
    try:
        active = keyring().snapshot().active_kid
    except Exception as error:  # a database error or an undecryptable key: not ready
        db.session.rollback()
        return f"unavailable ({type(error).__name__})"
    return "ok" if active else "no active signing key: run `authserver keys ensure`"


def _rate_limit_storage() -> str:
    # Short timeouts: a probe must answer within the proxy's probe timeout.
    storage = per_app(
        RATE_LIMIT_PROBE,
        lambda: storage_from_string(
            settings().ratelimit_storage_url, socket_connect_timeout=1, socket_timeout=1
        ),
    )
    return "ok" if storage.check() else "unreachable"


@cache
def script_heads(directory: str) -> frozenset[str]:
    """The head revisions of the migration scripts: read once per process."""
    config = Config()
    config.set_main_option("script_location", directory)
    return frozenset(ScriptDirectory.from_config(config).get_heads())


def _json(body: dict, status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers.update(NO_STORE)
    return response
