"""Escalation: an alert nobody acknowledged reaches more people as time passes.

Steps come from the rule (`escalate: [{after: 2d, severity: critical,
notify: manager}]`, carried on the alert) and from its route (`escalate:
[{after: 4h, to: [manager]}, {after: 1d, to: [team]}]`); both apply, in order
of time, so each person is brought in by the earliest step that names them.
Time counts from when the alert started firing; an acknowledgement stops it.
A rule step's `severity` raises the alert's severity from then on (so routes
for critical alerts apply, and quiet hours no longer hold it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from alerts.route import Route

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Level:
    after: float
    to: tuple[str, ...]  # recipient specs (see alerts/route.py)
    severity: str | None = None


def _rule_specs(notify: Any) -> tuple[str, ...]:
    """A rule's `notify` (free text): `manager`, `team`, `person:x`, `team:x` or a bare id, comma-separated."""
    if not notify:
        return ()
    out = []
    for part in str(notify).replace(";", ",").split(","):
        part = part.strip()
        if part:
            out.append(part if part in ("owner", "manager", "team") or ":" in part else f"id:{part}")
    return tuple(out)


def rule_levels(rule_steps: Sequence[dict[str, Any]] | None) -> list[Level]:
    """The rule's own steps (as the engine puts them on the alert)."""
    out = []
    for step in rule_steps or ():
        after = step.get("after_seconds")
        if isinstance(after, (int, float)):
            out.append(Level(float(after), _rule_specs(step.get("notify")), step.get("severity")))
    return sorted(out, key=lambda lv: lv.after)


def levels(route: Route | None, rule_steps: Sequence[dict[str, Any]] | None) -> list[Level]:
    """Every level that applies to an alert on a route: the rule's and the route's steps, by time."""
    own = rule_levels(rule_steps)
    routed = [Level(step.after, step.to) for step in (route.escalate if route else ())]
    return sorted(own + routed, key=lambda lv: lv.after)


def reached(steps: Iterable[Level], firing_for: float) -> int:
    """How many levels an alert firing for `firing_for` seconds has reached."""
    return sum(1 for step in steps if firing_for >= step.after)


def severity(base: str, steps: Sequence[Level], level: int) -> str:
    """The alert's severity after `level` levels: the highest of its own and the steps'."""
    best = base
    for step in steps[:level]:
        if step.severity and SEVERITY_RANK.get(step.severity, -1) > SEVERITY_RANK.get(best, -1):
            best = step.severity
    return best
