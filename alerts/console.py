"""Console delivery: one line per stored transition, readable by the person on call.

With the owners directory, the line speaks the owner's language (their title and summary, counted
to when the line is printed, dates in their time zone) and names them; for an owner the directory
does not know, the line gives both languages (`中文 / English`) and marks the owner unknown.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import TextIO

from alerts.message import AlertItem
from alerts.owners import Directory
from alerts.store import StoredAlert
from alerts.texts import alert_texts
from orderwatch.alert import AlertEvent

_MARK = {"firing": "FIRING  ", "resolved": "RESOLVED"}


def readable(item: AlertItem, directory: Directory | None, zone: str, now: float) -> tuple[str, str]:
    """(owner, text) of an alert for a line on a console: in the owner's language when the directory
    knows them, else both languages; the text as stored when there is no directory."""
    person = directory.person(item.owner) if directory is not None else None
    if directory is None or not item.facts:
        owner = item.owner or "(no owner)"
        if person is not None and person.name != person.id:
            owner = f"{person.id} ({person.name})"
        return owner, item.summary or item.title or item.rule

    def text(language: str, zone_name: str) -> str:
        t = alert_texts(item, language, zone_name, now)
        return " ".join(x for x in (t.summary or t.title, t.outcome) if x)

    if person is not None:
        owner = f"{person.id} ({person.name})" if person.name != person.id else person.id
        return owner, text(person.language, person.timezone)
    owner = f"{item.owner} (unknown)" if item.owner else "(no owner)"
    return owner, " / ".join(dict.fromkeys((text("zh", zone), text("en", zone))))


def item_of(ev: AlertEvent) -> AlertItem:
    return AlertItem(fingerprint=ev.fingerprint, rule=ev.rule, entity=ev.entity, key=ev.key, status=ev.state,
                     state=ev.state, severity=ev.severity, title=ev.title, summary=ev.summary, owner=ev.owner,
                     labels=dict(ev.labels), starts_at=ev.since.isoformat(),
                     ends_at=ev.at.isoformat() if ev.state == "resolved" else None, facts=dict(ev.facts or {}))


def item_of_stored(a: StoredAlert) -> AlertItem:
    """A stored alert as messages read it (its texts rendered from its facts)."""
    return AlertItem(fingerprint=a.fingerprint, rule=a.rule, entity=a.entity, key=a.key,
                     status="resolved" if a.state == "resolved" else "firing", state=a.state,
                     severity=a.severity, title=a.title, summary=a.summary, owner=a.owner, labels=a.labels,
                     starts_at=a.starts_at.isoformat(),
                     ends_at=a.resolved_at.isoformat() if a.resolved_at else None, facts=a.facts or {})


def stored_texts(a: StoredAlert, language: str, zone: str, now: datetime) -> tuple[str, str]:
    """A stored alert's title and summary (or, resolved, what happened) in one language, counted to
    `now` as messages are: for `alerts list`/`show` and the console's pages."""
    t = alert_texts(item_of_stored(a), language, zone, now.timestamp())
    return t.title, t.summary or t.outcome


def format_event(ev: AlertEvent, directory: Directory | None = None, now: float | None = None,
                 zone: str = "UTC") -> str:
    owner, text = readable(item_of(ev), directory, zone, time.time() if now is None else now)
    return f"[{_MARK.get(ev.state, ev.state)}] {ev.severity:<8} {ev.rule}  {ev.entity} {ev.key}  owner={owner}  {text}"


def print_events(events: list[AlertEvent], out: TextIO | None = None, directory: Directory | None = None,
                 now: float | None = None, zone: str = "UTC") -> None:
    stream = out or sys.stdout
    for ev in events:
        stream.write(format_event(ev, directory, now, zone) + "\n")
    stream.flush()
