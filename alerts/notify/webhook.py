"""Generic webhook: Alertmanager's webhook JSON (version 4) plus orderwatch's fields, optionally signed.

With `secret`, the body is signed: `X-Orderwatch-Signature: sha256=<hex HMAC-SHA256 of
"<timestamp>.<body>">` and `X-Orderwatch-Timestamp: <unix seconds>`, so the
receiver can check origin and freshness.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

from alerts.message import AlertItem, Notification, alert_url
from alerts.notify import Receiver, SendContext, http_url, string_map
from alerts.notify.http import post_json
from alerts.yamlcheck import Problems, get_str
from orderwatch.yamlsrc import Map

TYPE = "webhook"
KEYS = {"url", "headers", "secret"}


def _alert(a: AlertItem, external_url: str) -> dict[str, Any]:
    labels = {"alertname": a.rule, **a.labels, "entity": a.entity, "key": a.key, "severity": a.severity}
    if a.owner:
        labels["owner"] = a.owner
    return {
        "status": a.status, "labels": labels, "annotations": {"title": a.title, "summary": a.summary},
        "startsAt": a.starts_at, "endsAt": a.ends_at or "0001-01-01T00:00:00Z",
        "generatorURL": alert_url(external_url, a.fingerprint) if external_url else "",
        "fingerprint": a.fingerprint, "state": a.state, "escalationLevel": a.level,
    }


def payload(n: Notification, ctx: SendContext) -> dict[str, Any]:
    """The JSON body: Alertmanager webhook fields first, then orderwatch's."""
    return {
        "version": "4", "groupKey": n.group_key, "truncatedAlerts": 0, "status": n.status,
        "receiver": n.receiver, "groupLabels": n.group_labels, "commonLabels": n.common_labels(),
        "commonAnnotations": {}, "externalURL": n.external_url,
        "alerts": [_alert(a, n.external_url) for a in n.alerts],
        "orderwatch": {
            "notificationId": n.id, "recipient": n.recipient, "language": n.language,
            "escalationLevel": n.level, "subject": ctx.renderer.subject(n), "text": ctx.renderer.body(n),
            "links": [{"label": label, "url": url} for label, url in ctx.renderer.links(n)],
        },
    }


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class WebhookReceiver(Receiver):
    type = TYPE

    def __init__(self, name: str, url: str, headers: dict[str, str], secret: str | None) -> None:
        super().__init__(name)
        self.url, self.headers, self.secret = url, headers, secret

    async def send(self, n: Notification, ctx: SendContext) -> None:
        body = json.dumps(payload(n, ctx), ensure_ascii=False).encode()
        headers = {**self.headers, "Idempotency-Key": f"orderwatch-{n.id}"}
        if self.secret:
            ts = str(int(time.time()))  # wall time: the receiver compares it with its own clock
            headers["X-Orderwatch-Timestamp"] = ts
            headers["X-Orderwatch-Signature"] = sign(self.secret, ts, body)
        await post_json(ctx, self.url, None, self.timeout, headers, body=body)


def parse(name: str, doc: Map, problems: Problems, base_dir: Path) -> Receiver:
    return WebhookReceiver(name, http_url(doc, "url", problems, f"receiver {name}"),
                           string_map(doc, "headers", problems), get_str(doc, "secret", problems))
