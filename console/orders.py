"""The order page: an order's current fields and lines, and its timeline (the audit trail).

The timeline merges what the engine recorded about the order (every change: who, when, which field
from what to what) with what the alert store recorded about its alerts (fired, resolved, notified
whom, acknowledged, commented, snoozed, escalated, reassigned), oldest first, in the viewer's
language and time zone. The order's state lives on the worker that holds its partition: the web
side (console/web.py) asks that worker when it is not this one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from alerts import locale
from alerts.config import AlertsConfig
from alerts.console import stored_texts
from alerts.store import AlertStore
from alerts.texts import FIELDS, entity_name, word
from console.pages import Viewer, alert_doc, sees, zone_of

# (state, address of the worker that holds it or None when it is here or nobody holds it)
Locate = Callable[[str], tuple[Mapping[str, Any] | None, str | None]]


def language_of(config: AlertsConfig, viewer: Viewer, lang: str | None = None) -> str:
    return lang or (viewer.person.language if viewer.person else config.language)


def show(name: str, value: Any, values: Mapping[str, Any], language: str, zone: str) -> str:
    """A field's value the reader's way: dates in their zone and locale, amounts with the currency."""
    if value is None or value == "":
        return "–"
    if isinstance(value, (list, dict)):
        return f"{len(value)}" if isinstance(value, list) else ", ".join(f"{k}={v}" for k, v in value.items())
    return locale.value_text(name, value, dict(values), language, zone)


def erp_link(config: AlertsConfig, entity: str, key: str, state: Mapping[str, Any] | None) -> str | None:
    """The order in its ERP, from the URL template of the source it came from (console.order_links)."""
    templates = config.console.order_links
    sources = list((state or {}).get("seqs") or {}) + [c.get("source") for c in (state or {}).get("history") or []]
    fields = dict((state or {}).get("fields") or {})
    values = {**{k: quote(str(v), safe="") for k, v in fields.items() if not isinstance(v, (list, dict))},
              "key": quote(key, safe=""), "entity": entity}
    for source in sources:
        if source in templates:
            out = templates[source]
            for name, value in values.items():
                out = out.replace("{" + name + "}", value)
            return out
    return None


def person_name(config: AlertsConfig, who: str | None) -> str:
    person = config.directory.person(who) if who else None
    return person.name if person else (who or "–")


def addressees(config: AlertsConfig, refs: str | list[str]) -> str:
    """Who a notification or an escalation reached (`person:li.wei`, `team:purchasing`), by name."""
    names = []
    for ref in [refs] if isinstance(refs, str) else refs:
        kind, _, ident = str(ref).partition(":")
        team = config.directory.teams.get(ident) if kind == "team" else None
        names.append(team.name if team else person_name(config, ident or kind))
    return ", ".join(n for n in names if n and n != "–")


def order_page(store: AlertStore, config: AlertsConfig, viewer: Viewer, entity: str, key: str,
               state: Mapping[str, Any] | None, now: datetime, lang: str | None = None) -> dict[str, Any] | None:
    """The order page's data; None when the viewer sees none of its alerts (a machine sees all)."""
    alerts = store.list(entity=entity, key=key)
    if viewer.person is not None and not any(sees(config, viewer, a) for a in alerts):
        return None
    language = language_of(config, viewer, lang)
    zone = zone_of(config, viewer)
    zone_name = str(zone)
    fields = dict((state or {}).get("fields") or {})

    def when(iso: str | datetime) -> str:
        moment = locale.as_time(iso) if isinstance(iso, str) else iso
        return locale.datetime_text(moment, language, zone_name) if isinstance(moment, datetime) else str(iso)

    timeline: list[dict[str, Any]] = []
    for change in (state or {}).get("history") or []:
        timeline.append({
            "at": change["ts"], "at_local": when(change["ts"]), "event": "changed",
            "by": person_name(config, change.get("actor")), "source": change.get("source"),
            "changes": [{"field": name, "label": word(FIELDS, name, language),
                         "old": show(name, old, fields, language, zone_name),
                         "new": show(name, new, fields, language, zone_name)}
                        for name, (old, new) in (change.get("changed") or {}).items()],
        })
    docs = []
    for a in alerts:
        title, summary = stored_texts(a, language, zone_name, now)
        doc = {**alert_doc(a, now, zone, config.directory), "title": title, "summary": summary}
        docs.append(doc)
        for e in store.events(a.fingerprint):
            detail = e.detail or {}
            timeline.append({
                "at": e.at.isoformat(), "at_local": when(e.at), "event": e.state, "by": person_name(config, e.actor),
                "comment": e.comment, "alert": a.fingerprint, "title": title,
                "to": addressees(config, detail.get("recipient") or detail.get("to") or ""),
                "receiver": detail.get("receiver"),
                "from_owner": person_name(config, detail.get("from")) if e.state == "reassigned" else None,
                "to_owner": person_name(config, detail.get("to")) if e.state == "reassigned" else None,
            })
    timeline.sort(key=lambda e: (locale.as_time(e["at"]) or now, e["event"] != "changed"))
    lines = fields.pop("lines", None) or []
    columns = sorted({k for line in lines if isinstance(line, dict) for k in line})
    return {
        "viewer": viewer.to_dict(), "entity": entity, "key": key, "entity_name": entity_name(entity, language),
        "held": state is not None, "erp_url": erp_link(config, entity, key, state),
        "fields": [{"name": k, "label": word(FIELDS, k, language), "value": show(k, v, fields, language, zone_name),
                    "raw": v} for k, v in sorted(fields.items())],
        "lines": {"columns": [{"name": c, "label": word(FIELDS, c, language)} for c in columns],
                  "rows": [[show(c, line.get(c), fields, language, zone_name) for c in columns]
                           for line in lines if isinstance(line, dict)]},
        "alerts": docs, "timeline": timeline,
        "people": sorted(({"id": p.id, "name": p.name} for p in config.directory.people.values()),
                         key=lambda p: p["id"]),
    }
