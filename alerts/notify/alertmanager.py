"""Prometheus Alertmanager: POST /api/v2/alerts, so a team already running Alertmanager routes there.

Each alert becomes a postable alert: labels (alertname = the rule, the
alert's labels, entity, key, severity, owner), annotations (title, summary),
startsAt, endsAt, generatorURL. A firing alert's endsAt is now + `ends_after`
(default 1h): Alertmanager resolves what is not re-sent, so keep the route's
repeat_interval below it. A resolved alert carries its resolution time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alerts.clock import now_of
from alerts.message import AlertItem, Notification, alert_url
from alerts.notify import Receiver, SendContext, http_url, string_map
from alerts.notify.http import post_json
from alerts.yamlcheck import Problems, get_duration
from orderwatch.yamlsrc import Map

TYPE = "alertmanager"
KEYS = {"url", "ends_after", "headers"}


def postable(a: AlertItem, n: Notification, ends_after: float, now: datetime) -> dict[str, Any]:
    labels = {"alertname": a.rule, **a.labels, "entity": a.entity, "key": a.key, "severity": a.severity,
              "source": "orderwatch"}
    if a.owner:
        labels["owner"] = a.owner
    labels = {k: str(v) for k, v in labels.items() if v not in (None, "")}
    if a.ends_at:
        ends = a.ends_at
    else:
        # From when it is sent: a notification retried for longer than ends_after must not arrive resolved.
        sent = max(datetime.fromisoformat(n.created_at), now)
        ends = (sent + timedelta(seconds=ends_after)).isoformat()
    out = {"labels": labels, "annotations": {"title": a.title, "summary": a.summary, "fingerprint": a.fingerprint},
           "startsAt": _rfc3339(a.starts_at), "endsAt": _rfc3339(ends)}
    if n.external_url:
        out["generatorURL"] = alert_url(n.external_url, a.fingerprint)
    return out


def _rfc3339(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(UTC).isoformat().replace("+00:00", "Z")


class AlertmanagerReceiver(Receiver):
    type = TYPE

    def __init__(self, name: str, url: str, ends_after: float, headers: dict[str, str]) -> None:
        super().__init__(name)
        self.url, self.ends_after, self.headers = url.rstrip("/"), ends_after, headers

    async def send(self, n: Notification, ctx: SendContext) -> None:
        body = [postable(a, n, self.ends_after, now_of(ctx.clock)) for a in n.alerts]
        await post_json(ctx, f"{self.url}/api/v2/alerts", body, self.timeout, self.headers)


def parse(name: str, doc: Map, problems: Problems, base_dir: Path) -> Receiver:
    return AlertmanagerReceiver(name, http_url(doc, "url", problems, f"receiver {name}"),
                                get_duration(doc, "ends_after", problems, 3600.0) or 3600.0,
                                string_map(doc, "headers", problems))
