"""What the console's pages show, as plain data (the JSON of each page; the templates render it).

Thin over the store and the owners directory: "my exceptions" is the open alerts the viewer
sees (console/scope.py), filtered and counted by the labels people route by, sorted by
severity then age.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from alerts import locale
from alerts.api import alert_json
from alerts.config import AlertsConfig
from alerts.console import stored_texts
from alerts.escalation import SEVERITY_RANK
from alerts.owners import Directory, Person
from alerts.states import OPEN_STATES
from alerts.store import AlertStore, StoredAlert
from alerts.texts import entity_name
from console.scope import audience

FILTERS = ("family", "severity", "state", "supplier", "customer")


@dataclass(frozen=True)
class Viewer:
    """Who asks: a person (signed in) or a machine (an API token, which sees everything)."""

    actor: str  # recorded as who acted: the person's id or the token's name
    person: Person | None = None

    @property
    def machine(self) -> bool:
        return self.person is None

    def to_dict(self) -> dict[str, Any]:
        if self.person is None:
            return {"kind": "token", "id": self.actor}
        p = self.person
        return {"kind": "person", "id": p.id, "name": p.name, "language": p.language, "team": p.team}


def value_of(alert: StoredAlert, name: str) -> str:
    """A filterable value: severity and state are the alert's own, the rest its labels."""
    if name in ("severity", "state"):
        return str(getattr(alert, name))
    return str(alert.labels.get(name, "") or "")


def visible(config: AlertsConfig, viewer: Viewer, alerts: list[StoredAlert]) -> list[StoredAlert]:
    if viewer.person is None:
        return alerts
    pid = viewer.person.id
    return [a for a in alerts if pid in audience(config, a)]


def sees(config: AlertsConfig, viewer: Viewer, alert: StoredAlert) -> bool:
    return viewer.person is None or viewer.person.id in audience(config, alert)


def _order(a: StoredAlert) -> tuple[int, datetime, str]:
    return (-SEVERITY_RANK.get(a.severity, -1), a.starts_at, a.fingerprint)


def zone_of(config: AlertsConfig, viewer: Viewer) -> ZoneInfo:
    """Times are shown in the person's time zone (a machine: the alerts file's)."""
    return ZoneInfo(viewer.person.timezone if viewer.person else config.timezone)


def alert_doc(a: StoredAlert, now: datetime, zone: ZoneInfo, directory: Directory | None = None,
              language: str | None = None) -> dict[str, Any]:
    """An alert as the pages show it; with a language, its title and summary in that language only
    (counted to now, as messages are) and its start written the reader's way."""
    doc = alert_json(a, directory=directory)
    doc["age_seconds"] = max(0, int((now - a.starts_at).total_seconds()))
    doc["since_local"] = a.starts_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    doc["page"] = f"/console/alerts/{a.fingerprint}"
    doc["order_page"] = f"/console/orders/{quote(a.entity, safe='')}/{quote(a.key, safe='')}"
    if language is not None:
        doc["title"], doc["summary"] = stored_texts(a, language, str(zone), now)
        doc["since_text"] = locale.datetime_text(a.starts_at, language, str(zone))
        doc["entity_name"] = entity_name(a.entity, language)
    return doc


def my_exceptions(store: AlertStore, config: AlertsConfig, viewer: Viewer, query: Mapping[str, str],
                  now: datetime, language: str | None = None) -> dict[str, Any]:
    """The viewer's open alerts with the chosen filters, counts per filter value, sorted (blocking)."""
    mine = visible(config, viewer, store.list(state=list(OPEN_STATES)))
    chosen = {name: query[name] for name in FILTERS if query.get(name)}
    shown = sorted((a for a in mine if all(value_of(a, k) == v for k, v in chosen.items())), key=_order)
    counts: dict[str, dict[str, int]] = {}
    for name in FILTERS:
        found = Counter(value_of(a, name) for a in mine)
        counts[name] = {k: found[k] for k in sorted(found, key=lambda k: (-found[k], k)) if k}
    zone = zone_of(config, viewer)
    digest = hashlib.sha256("|".join(f"{a.fingerprint}:{a.state}:{a.severity}:{a.last_change.isoformat()}"
                                     for a in shown).encode()).hexdigest()[:16]
    return {"viewer": viewer.to_dict(), "filters": chosen, "total": len(mine), "shown": len(shown),
            "counts": counts, "version": digest, "alerts": [alert_doc(a, now, zone, config.directory, language) for a in shown]}


def alert_page(store: AlertStore, config: AlertsConfig, viewer: Viewer, fingerprint: str,
               now: datetime, language: str | None = None) -> dict[str, Any] | None:
    """One alert the viewer sees, with its history; None if there is none (or not theirs)."""
    found = store.get(fingerprint)
    if found is None or not sees(config, viewer, found):
        return None
    zone = zone_of(config, viewer)
    doc = alert_doc(found, now, zone, config.directory, language)
    lang = language or "en"
    doc["history"] = [{**e.to_dict(), "at_local": e.at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                       "at_text": locale.datetime_text(e.at, lang, str(zone)),
                       "by_name": _name(config.directory, e.actor)} for e in store.events(fingerprint)]
    doc["people"] = sorted(({"id": p.id, "name": p.name} for p in config.directory.people.values()),
                           key=lambda p: p["id"])
    return {"viewer": viewer.to_dict(), "alert": doc}


def _name(directory: Directory, who: str) -> str:
    person = directory.person(who)
    return person.name if person else who
