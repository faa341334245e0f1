"""The team page: open exceptions by owner and age, and the escalations waiting, as plain data.

Whose: a manager's team is every person whose manager chain (their own `manager`, else their
team's manager) leads to them, and themselves; anybody else's is themselves; a machine (an API
token) sees everyone. The alerts counted are those the viewer sees on "my exceptions"
(console/scope.py), so a team page never shows more than the person's own list.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from alerts import escalation
from alerts.config import AlertsConfig
from alerts.owners import Directory
from alerts.states import OPEN_STATES
from alerts.store import StoredAlert
from console.pages import Viewer, visible
from console.scope import context

AGES = (("lt1d", 86400.0), ("1-3d", 3 * 86400.0), ("3-7d", 7 * 86400.0), ("7d+", float("inf")))


def people_of(directory: Directory, viewer: Viewer) -> set[str] | None:
    """The ids of the people whose orders and alerts the viewer's team pages cover; None: everyone."""
    if viewer.person is None:
        return None
    me = viewer.person.id
    out = {me}
    for person in directory.people.values():
        boss, seen = directory.manager_of(person), set()
        while boss is not None and boss.id not in seen:
            if boss.id == me:
                out.add(person.id)
                break
            seen.add(boss.id)
            boss = directory.manager_of(boss)
    return out


def owner_id(directory: Directory, raw: str | None) -> str:
    """An owner as the directory knows them (an alias becomes the person's id); unknown ones as written."""
    person = directory.person(raw)
    return person.id if person else str(raw or "")


def age_of(seconds: float) -> str:
    return next(name for name, upto in AGES if seconds < upto)


def next_escalation(config: AlertsConfig, alert: StoredAlert) -> tuple[float, escalation.Level] | None:
    """When (epoch seconds) and to whom a firing alert escalates next, if it has a level left."""
    ctx = context(config, alert)
    routes = config.route.match(ctx.labels) if config.route is not None else [None]
    found: list[tuple[float, escalation.Level]] = []
    for route in routes:
        steps = escalation.levels(route, alert.escalate)
        if alert.escalation_level < len(steps):
            step = steps[alert.escalation_level]
            found.append((alert.starts_at.timestamp() + step.after, step))
    return min(found, key=lambda f: f[0]) if found else None


def team_page(alerts: Iterable[StoredAlert], config: AlertsConfig, viewer: Viewer, now: datetime) -> dict[str, Any]:
    """Open alerts the viewer sees, per owner and age; firing alerts with an escalation to come."""
    d = config.directory
    team = people_of(d, viewer)
    shown = visible(config, viewer, [a for a in alerts if a.state in OPEN_STATES])
    rows: dict[str, dict[str, Any]] = {}
    for pid in sorted(team if team is not None else d.people):
        rows[pid] = _row(d, pid)
    waiting = []
    for a in shown:
        row = rows.setdefault(owner_id(d, a.owner), _row(d, owner_id(d, a.owner)))
        row["ages"][age_of((now - a.starts_at).total_seconds())] += 1
        row["open"] += 1
        row[a.state] = row.get(a.state, 0) + 1
        nxt = next_escalation(config, a) if a.state == "firing" else None
        if nxt is not None:
            at, step = nxt
            waiting.append({"fingerprint": a.fingerprint, "page": f"/console/alerts/{a.fingerprint}",
                            "title": a.title or a.rule, "entity": a.entity, "key": a.key, "owner": a.owner,
                            "severity": a.severity, "level": a.escalation_level + 1, "to": list(step.to),
                            "due_at": datetime.fromtimestamp(at, now.tzinfo).isoformat(),
                            "due_in_seconds": round(at - now.timestamp())})
    people = sorted(rows.values(), key=lambda r: (-r["open"], r["id"]))
    totals = {name: sum(r["ages"][name] for r in people) for name, _ in AGES}
    return {"viewer": viewer.to_dict(), "people": people, "ages": [name for name, _ in AGES],
            "totals": {"open": sum(r["open"] for r in people), "ages": totals},
            "escalations": sorted(waiting, key=lambda w: (w["due_in_seconds"], w["key"]))}


def _row(d: Directory, pid: str) -> dict[str, Any]:
    person = d.people.get(pid)
    return {"id": pid, "name": person.name if person else pid, "known": person is not None,
            "team": person.team if person else None, "open": 0, "firing": 0, "acknowledged": 0, "silenced": 0,
            "ages": {name: 0 for name, _ in AGES}}
