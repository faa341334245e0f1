"""The alert transition: what the engine emits and the alert layer stores and routes.

Besides its texts rendered once (`title`, `summary`: the languages joined, for
readers whose language is unknown), an alert carries its *facts*: the rule's
texts by language and the values they name, so that each message is rendered
when it is sent, in its reader's language, and says how late an order is then:

    {"texts": {"title": {"zh": ..., "en": ...}, "summary": {...}},
     "values": {"key": "PO-1", "supplier": "Acme", "expected_date": "2026-11-24", "status": "open", ...},
     "deadline": 1795478400.0,            # the rule's first time field, epoch seconds (for overdue_days)
     "changed": [["qty", 100, 120]]}      # the change behind {changed_fields}, if the rule watches one
"""

from __future__ import annotations

import hashlib
import math
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
    facts: dict[str, Any] = field(default_factory=dict)

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
            "facts": self.facts,
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
            facts=dict(data.get("facts") or {}),
        )


def text_template(facts: dict[str, Any], kind: str, language: str) -> str | None:
    """The rule's `title`/`summary` template in a language; a missing translation falls back to
    another language's text (a rule written as one text has it under ""); None if none is known."""
    by_lang = (facts.get("texts") or {}).get(kind) or {}
    if language in by_lang:
        return str(by_lang[language])
    return next((str(text) for text in by_lang.values()), None)


def values_at(facts: dict[str, Any], now: float) -> dict[str, Any]:
    """The values a text names, with {overdue_days}/{days_left} counted at `now` (epoch seconds)."""
    values = dict(facts.get("values") or {})
    deadline = facts.get("deadline")
    if isinstance(deadline, (int, float)):
        values["overdue_days"] = max(0, math.floor((now - deadline) / 86400))
        values["days_left"] = max(0, math.ceil((deadline - now) / 86400))
    return values
