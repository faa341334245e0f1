"""The alert transition: what the engine emits and the alert layer stores and routes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

AlertState = Literal["firing", "resolved"]


def fingerprint(rule: str, entity: str, key: str) -> str:
    """Stable identity of an alert: the same rule on the same entity key."""
    return hashlib.sha1(f"{rule}\x00{entity}\x00{key}".encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A firing or resolved transition of one rule on one entity."""

    rule: str
    entity: str
    key: str
    state: AlertState
    at: datetime  # when the transition was observed
    since: datetime  # when this firing episode began
    severity: str
    title: str = ""
    summary: str = ""
    owner: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # The rule's escalation steps ({"after", "after_seconds", "severity"?, "notify"?}), for routing.
    escalate: tuple[dict[str, Any], ...] = ()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.entity, self.key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "rule": self.rule,
            "entity": self.entity,
            "key": self.key,
            "state": self.state,
            "at": self.at.isoformat(),
            "since": self.since.isoformat(),
            "severity": self.severity,
            "title": self.title,
            "summary": self.summary,
            "owner": self.owner,
            "labels": dict(self.labels),
            "escalate": [dict(step) for step in self.escalate],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertEvent:
        return cls(
            rule=data["rule"],
            entity=data["entity"],
            key=data["key"],
            state=data["state"],
            at=datetime.fromisoformat(data["at"]),
            since=datetime.fromisoformat(data["since"]),
            severity=data["severity"],
            title=data.get("title", ""),
            summary=data.get("summary", ""),
            owner=data.get("owner"),
            labels=dict(data.get("labels") or {}),
            escalate=tuple(dict(step) for step in data.get("escalate") or ()),
        )
