"""Operability: probes, metrics and the per-request bookkeeping (request id, access log
line, request metrics). See docs/operating.md."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from authserver.context import migrations_directory
from authserver.logs import annotate_request, log_request, request_id_from
from authserver.ops.metrics import HTTP_LATENCY, HTTP_REQUESTS, RATE_LIMIT_HITS, TOKENS_ISSUED

# Probes, scrapes and the public documents every verifier re-fetches on a schedule (JWKS,
# metadata) arrive all the time and say nothing about anyone: their successful lines
# are DEBUG. Formatting a line costs ~15% of such a request (make bench).
QUIET_ENDPOINTS = frozenset(
    {"ops.healthz", "ops.readyz", "ops.metrics", "signing.jwks", "oauth.metadata"}
)
# Any other method token is counted as "other", so no client can create new series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def init_app(app: Flask) -> None:
    # Here, not at the top: other packages load this one for its services; its views,
    # and what they import, load only when the app is built (else an import cycle).
    from authserver.ops.views import bp, script_heads

    app.register_blueprint(bp)
    script_heads(migrations_directory(app))  # once, at start-up (cached per process)
    # First of all before-request functions: the clock and the request id must exist
    # even when another hook (a rate limit) answers the request early.
    app.before_request_funcs.setdefault(None, []).insert(0, _start_request)
    app.after_request(_finish_request)


def token_issued(grant_type: str, client_id: str, user_id: object | None) -> None:
    """Count an issued access token and name its client and user in the request log."""
    TOKENS_ISSUED.labels(grant_type).inc()
    annotate_request(client_id=client_id, user_id=user_id)


def _start_request() -> None:
    g.request_started = time.perf_counter()
    g.request_id = request_id_from(request.headers.get("X-Request-ID"))


# The series of each (URL rule, method, status) seen, looked up once: prometheus-client's
# ``labels()`` validates and locks on every call. Bounded like the label values.
_series: dict[tuple[str, str, int], tuple] = {}


def _request_series(endpoint: str, method: str, status: int) -> tuple:
    series = _series.get((endpoint, method, status))
    if series is None:
        series = (
            HTTP_REQUESTS.labels(endpoint, method, str(status)),
            HTTP_LATENCY.labels(endpoint, method),
        )
        _series[(endpoint, method, status)] = series
    return series


def _finish_request(response: Response) -> Response:
    seconds = time.perf_counter() - g.get("request_started", time.perf_counter())
    current = request._get_current_object()  # type: ignore[attr-defined]  (one proxy lookup)
    # The URL rule ("/oauth/token"), never the raw path: bounded label values.
    endpoint = current.url_rule.rule if current.url_rule else "unmatched"
    method = current.method if current.method in METHODS else "other"
    status = response.status_code
    requests, latency = _request_series(endpoint, method, status)
    requests.inc()
    latency.observe(seconds)
    if status == 429:
        RATE_LIMIT_HITS.labels(endpoint).inc()
    request_id = g.get("request_id") or request_id_from(None)
    response.headers["X-Request-ID"] = request_id
    log_request(response, endpoint, seconds, quiet=current.endpoint in QUIET_ENDPOINTS)
    return response
