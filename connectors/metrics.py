"""Per-connector Prometheus metrics (the first three live in orderwatch.metrics).

All carry the label `connector` (the connector id). Dead letters are counted
by `orderwatch_records_dead_lettered_total{stage="connector:<id>"}`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from orderwatch.metrics import (
    CONNECTOR_EMITTED,
    CONNECTOR_LAST_SUCCESS,
    CONNECTOR_ROWS,
    RECORDS_DEAD_LETTERED,
)

__all__ = [
    "BACKOFF",
    "CONNECTOR_EMITTED",
    "CONNECTOR_LAST_SUCCESS",
    "CONNECTOR_ROWS",
    "DUPLICATES",
    "ERRORS",
    "LAG",
    "NOTICES",
    "POLL_SECONDS",
    "RECORDS_DEAD_LETTERED",
    "UP",
    "WEBHOOK_REQUESTS",
]

ERRORS = Counter(
    "orderwatch_connector_errors_total",
    "Polls that failed (source down, unreadable); each is retried with backoff",
    ["connector"],
)
UP = Gauge(
    "orderwatch_connector_up",
    "1 when the connector's last poll succeeded, 0 while it backs off",
    ["connector"],
)
BACKOFF = Gauge(
    "orderwatch_connector_backoff_seconds",
    "Current wait before the next try of a failing connector (0 when healthy)",
    ["connector"],
)
LAG = Gauge(
    "orderwatch_connector_lag_seconds",
    "How far behind the source the connector is: age of the newest change it emitted "
    "while it still had a backlog, 0 once caught up",
    ["connector"],
)
DUPLICATES = Counter(
    "orderwatch_connector_duplicates_total",
    "Records not published because the same (source, key, seq) already was (replays)",
    ["connector"],
)
NOTICES = Counter(
    "orderwatch_connector_notices_total",
    "Oddities reported without loss of data (blank rows between data rows, …)",
    ["connector"],
)
POLL_SECONDS = Histogram(
    "orderwatch_connector_poll_seconds",
    "Time to read, publish and bookmark one poll",
    ["connector"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
WEBHOOK_REQUESTS = Counter(
    "orderwatch_webhook_requests_total",
    "HTTP requests to a webhook connector, by status code",
    ["connector", "code"],
)
