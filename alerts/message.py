"""What a notification carries: the alerts of one group, for one receiver and one recipient.

This is the record the outbox persists and every integration receives; it
holds data, not text, so a retry renders the same message and each
integration formats it its own way (email, chat markdown, JSON).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def alert_url(external_url: str, fingerprint: str = "") -> str:
    """The HTTP API address of one alert (or, without a fingerprint, of the alert list)."""
    base = f"{external_url.rstrip('/')}/api/alerts"
    return f"{base}/{fingerprint}" if fingerprint else base


@dataclass(frozen=True)
class AlertItem:
    fingerprint: str
    rule: str
    entity: str
    key: str
    status: str  # "firing" | "resolved" (what this message says about it)
    state: str  # the stored state: firing, acknowledged, silenced, resolved
    severity: str
    title: str
    summary: str
    owner: str | None
    labels: dict[str, str]
    starts_at: str  # ISO 8601
    ends_at: str | None = None
    level: int = 0  # escalation level reached (0: the first recipients)
    owner_name: str | None = None  # from the owners directory
    facts: dict[str, Any] = field(default_factory=dict)  # texts by language and their values (rendered when sent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertItem:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Notification:
    receiver: str
    group_key: str
    group_labels: dict[str, str]
    recipient: dict[str, Any] | None  # Recipient.to_dict(), or None for a receiver without recipients
    language: str
    timezone: str
    level: int
    alerts: list[AlertItem]
    created_at: str
    external_url: str = ""
    id: int = 0  # the outbox row; stable across retries (email Message-ID, webhook idempotency key)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def firing(self) -> list[AlertItem]:
        return [a for a in self.alerts if a.status == "firing"]

    @property
    def resolved(self) -> list[AlertItem]:
        return [a for a in self.alerts if a.status == "resolved"]

    @property
    def status(self) -> str:
        return "firing" if self.firing else "resolved"

    def common_labels(self) -> dict[str, str]:
        if not self.alerts:
            return {}
        first = self.alerts[0].labels
        return {k: v for k, v in first.items() if all(a.labels.get(k) == v for a in self.alerts[1:])}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], id: int = 0) -> Notification:
        values = dict(data)
        values["alerts"] = [AlertItem.from_dict(a) for a in data.get("alerts", [])]
        values["id"] = id or data.get("id", 0)
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})
