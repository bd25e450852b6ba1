"""Prometheus metrics: what operators graph and alert on (docs/operating.md).

Counters live at module level so any module can increment them with one line. Label
values always come from a small fixed set (a Flask URL rule, a grant type, a reason
name), never from user input, so no request can create new time series.

With several worker processes each counts on its own; when
``PROMETHEUS_MULTIPROC_DIR`` is set (``authserver serve`` does it from AUTHSERVER_METRICS_DIR)
prometheus-client writes every value to files in that directory and ``/metrics`` sums
the files of all workers, so any worker answers for the whole server.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    multiprocess,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

# No "<name>_created" series: they double the output and multiprocess mode lacks them.
disable_created_metrics()

HTTP_REQUESTS = Counter(
    "authserver_http_requests",
    "Requests answered, by Flask URL rule (never the raw path), method and status.",
    ["endpoint", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "authserver_http_request_duration_seconds",
    "Time from the start of a request to its response, by Flask URL rule and method.",
    ["endpoint", "method"],
    # argon2id makes a password login ~50-250 ms; RSA signing ~1 ms.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
TOKENS_ISSUED = Counter(
    "authserver_tokens_issued", "Access tokens issued, by grant type.", ["grant_type"]
)
REFRESH_TOKEN_REUSE = Counter(
    "authserver_refresh_token_reuse_detections",
    "Rotated refresh tokens presented again: each one revoked a whole session.",
)
REFRESH_TOKEN_REPLAYS = Counter(
    "authserver_refresh_token_replays",
    "Just-rotated refresh tokens presented again by their client within the grace window "
    "(a lost answer, two tabs): answered with the same successor.",
)
FAILED_LOGINS = Counter(
    "authserver_failed_logins",
    "Sign-in attempts refused, by grant type and reason.",
    ["grant_type", "reason"],
)
RATE_LIMIT_HITS = Counter(
    "authserver_rate_limit_hits",
    "Requests answered 429 Too Many Requests, by Flask URL rule.",
    ["endpoint"],
)
OTP_SENT = Counter("authserver_otp_sent", "Codes handed to the SMS sender.", ["purpose"])
OTP_SEND_FAILURES = Counter(
    "authserver_otp_send_failures", "Codes that could not be sent (the SMS gateway failed)."
)
OTP_BLOCKED = Counter(
    "authserver_otp_blocked",
    "Code requests refused before sending, by the limit that refused them.",
    ["limit"],
)
OTP_VERIFY_FAILURES = Counter(
    "authserver_otp_verify_failures", "Codes presented that were wrong, expired or spent."
)
SMS_GATEWAY_ERRORS = Counter(
    "authserver_sms_gateway_errors",
    "Failed attempts to reach the SMS gateway (each retry counts), by reason.",
    ["reason"],
)


def multiprocess_mode() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def render(extra: Iterable[Metric] = ()) -> bytes:
    """The text exposition of every counter (of all workers in multiprocess mode) plus
    ``extra`` families computed at scrape time."""
    if multiprocess_mode():
        base = CollectorRegistry()
        multiprocess.MultiProcessCollector(base)
    else:
        base = REGISTRY
    families = list(extra)

    class _Scrape:
        def collect(self) -> Iterator[Metric]:
            yield from base.collect()
            yield from families

    return generate_latest(_Scrape())  # type: ignore[arg-type]


def signing_key_families(rows: Iterable, now: float) -> list[Metric]:
    """Key state and age, read from the database at scrape time (the same in every
    worker, so nothing to sum). ``rows`` carry ``kid``, ``state``, ``created_at``."""
    count = GaugeMetricFamily("authserver_signing_keys", "Signing keys by state.", labels=["state"])
    age = GaugeMetricFamily(
        "authserver_signing_key_age_seconds",
        "Seconds since each next or active signing key was created.",
        labels=["kid", "state"],
    )
    by_state = {"next": 0, "active": 0, "retired": 0, "revoked": 0}
    for row in rows:
        by_state[row.state] = by_state.get(row.state, 0) + 1
        if row.state in ("next", "active"):
            age.add_metric([row.kid, row.state], max(0.0, now - row.created_at.timestamp()))
    for state, n in by_state.items():
        count.add_metric([state], n)
    return [count, age]
