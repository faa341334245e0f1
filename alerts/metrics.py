"""The alert layer's Prometheus metrics (names are public: deploy/ and the dashboard use them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ALERTS_OPEN = Gauge(
    "orderwatch_alerts_open",
    "Open alerts in the store (firing, acknowledged or silenced), set by the dispatching worker",
    ["family", "severity", "owner", "state"],
)
ACK_SECONDS = Histogram(
    "orderwatch_alert_ack_seconds",
    "Time from an alert starting to fire until someone acknowledged it",
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800),
)
ESCALATIONS = Counter(
    "orderwatch_alert_escalations_total",
    "Alerts that reached an escalation level without being acknowledged",
    ["level"],
)
NOTIFICATIONS_QUEUED = Counter(
    "orderwatch_notifications_queued_total", "Notifications put in the outbox", ["receiver"]
)
NOTIFICATIONS_SENT = Counter(
    "orderwatch_notifications_sent_total", "Notifications the receiver's endpoint accepted", ["receiver", "type"]
)
NOTIFICATIONS_FAILED = Counter(
    "orderwatch_notifications_failed_total",
    "Delivery attempts that failed (each is retried with backoff)",
    ["receiver", "type"],
)
NOTIFICATIONS_SKIPPED = Counter(
    "orderwatch_notifications_skipped_total",
    "Notifications that could not be addressed (no recipient, no receiver, no address)",
    ["reason"],
)
OUTBOX_PENDING = Gauge(
    "orderwatch_outbox_pending", "Notifications waiting in the outbox (new or being retried)", ["receiver"]
)
OUTBOX_DEAD = Gauge(
    "orderwatch_outbox_dead", "Notifications given up after delivery.give_up_after (kept for inspection)"
)
DELIVERY_SECONDS = Histogram(
    "orderwatch_notification_delivery_seconds",
    "Time for one delivery attempt to a receiver's endpoint",
    ["type"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DISPATCH_SECONDS = Histogram(
    "orderwatch_dispatch_seconds",
    "Time of one dispatch pass (routing, grouping, dedup against the notification log)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
