"""Every Prometheus metric orderwatch exports, in one place.

Names are part of the public surface: the Grafana dashboard and the example
alerting rules in deploy/ refer to them, and a test checks that they exist.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS_IN = Counter(
    "orderwatch_records_in_total", "Change records accepted by the engine", ["entity"]
)
RECORDS_DUPLICATE = Counter(
    "orderwatch_records_duplicate_total",
    "Change records ignored because their seq was not newer than the state's",
    ["entity"],
)
RECORDS_DEAD_LETTERED = Counter(
    "orderwatch_records_dead_lettered_total",
    "Payloads sent to the dead-letter topic, by the stage that rejected them",
    ["stage"],
)
RULE_EVALUATIONS = Counter(
    "orderwatch_rule_evaluations_total",
    "Entity states matched against the compiled rules (one per entity and evaluation)",
    ["trigger"],
)
ALERTS_FIRED = Counter(
    "orderwatch_alerts_fired_total", "Alert transitions to firing", ["rule", "severity"]
)
ALERTS_RESOLVED = Counter(
    "orderwatch_alerts_resolved_total", "Alert transitions to resolved", ["rule"]
)
ALERTS_STORED = Counter(
    "orderwatch_alerts_stored_total",
    "Alert transitions written to the alert store (duplicates excluded)",
    ["state"],
)
RULE_RELOADS = Counter(
    "orderwatch_rule_reloads_total",
    "Rule reloads (a changed rule file or SIGHUP): ok, or rejected with the old rules kept",
    ["result"],
)
PROCESSING_SECONDS = Histogram(
    "orderwatch_processing_seconds",
    "Time to process one input message (a batch of change records) end to end in the engine",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
TICK_SECONDS = Histogram(
    "orderwatch_tick_seconds",
    "Time to re-evaluate the entities whose deadline passed, per tick",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
INPUT_RESEEKS = Counter(
    "orderwatch_input_reseeks_total",
    "Partitions of the engine's input fetched again from their committed offset: Faust handed "
    "their waiting messages to nobody, and no later message showed a hole",
)
INPUT_REFETCHED = Counter(
    "orderwatch_input_refetched_total",
    "Messages the consumer skipped (Faust's fetch loop, around a rebalance) that were read from the broker directly",
    ["component"],
)
WORKER_RESTARTS = Counter(
    "orderwatch_worker_restarts_total",
    "Times a worker started itself afresh (exec), by reason; counted in the process that restarts",
    ["reason"],
)
WORKER_FAILURES = Counter(
    "orderwatch_worker_failures_total",
    "Failures that stopped a worker without acknowledging the input being handled",
    ["component"],
)
EVALUATION_FAILURES = Counter(
    "orderwatch_evaluation_failures_total",
    "Entity states the rules could not be evaluated on at a tick or reload (left as they were)",
    ["trigger"],
)
STORE_RETRIES = Counter(
    "orderwatch_alert_store_retries_total",
    "Batches of alert transitions retried because the alert store could not be written",
)
ENTITIES_TRACKED = Gauge(
    "orderwatch_entities_tracked", "Entities held in this worker's state table", ["entity"]
)
DEADLINES_PENDING = Gauge(
    "orderwatch_deadlines_pending", "Entities scheduled for a time-based re-evaluation"
)
CONNECTOR_ROWS = Counter(
    "orderwatch_connector_rows_total", "Rows or events read from a source", ["connector"]
)
CONNECTOR_EMITTED = Counter(
    "orderwatch_connector_records_emitted_total",
    "Change records published to the input topic",
    ["connector"],
)
CONNECTOR_LAST_SUCCESS = Gauge(
    "orderwatch_connector_last_success_timestamp_seconds",
    "Unix time of the connector's last successful poll",
    ["connector"],
)
