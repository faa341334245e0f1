"""Evaluate entity states against the compiled rules: the one place where alerts are decided.

The live pipeline and offline tools call the same `Evaluator.evaluate`: given
states and an instant, it updates each state's `firing` set and `due` time and
returns the firing/resolved transitions.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timezone
from typing import Any, Iterable

from engine.compiler import NOW, EntityProgram, compile_rules, time_key
from engine.matcher import Matcher
from engine.rules import Rule
from engine.state import EntityState
from orderwatch.alert import AlertEvent

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def to_epoch(value: Any) -> float | None:
    """Epoch seconds of a date or timestamp value; dates count from midnight UTC."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def render(template: str, values: dict[str, Any]) -> str:
    """Substitute `{name}` placeholders; nothing else in a template is interpreted."""

    def sub(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        value = values.get(match.group(1))
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(sub, template)


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


class Evaluator:
    """Compiled rules for every entity, and the durable_rules matchers that run them."""

    def __init__(self, rules: list[Rule], name: str = "orderwatch") -> None:
        self.rules = rules
        self.programs: dict[str, EntityProgram] = compile_rules(rules)
        self._matchers = {e: Matcher(f"{name}.{e}", p.rulesets) for e, p in self.programs.items()}
        self._rules = {r.id: r for r in rules}

    def fact(self, program: EntityProgram, state: EntityState, now: float) -> dict[str, Any]:
        fields = state["fields"]
        fact: dict[str, Any] = {NOW: now}
        for name in program.value_fields:
            value = fields.get(name)
            if value is not None and not isinstance(value, (dict, list)):
                fact[name] = value
        for name in program.time_fields:
            epoch = to_epoch(fields.get(name))
            if epoch is not None:
                fact[time_key(name)] = epoch
        return fact

    def next_due(self, program: EntityProgram, fact: dict[str, Any], now: float) -> float | None:
        """The next instant after `now` at which a time comparison of this entity flips."""
        best: float | None = None
        for field, offset in program.time_offsets:
            epoch = fact.get(time_key(field))
            if epoch is None:
                continue
            flip = epoch - offset
            if flip > now and (best is None or flip < best):
                best = flip
        return best

    def evaluate(self, states: Iterable[EntityState], now: float) -> list[AlertEvent]:
        """Re-evaluate states at `now` (epoch seconds); mutate firing/due; return transitions."""
        by_entity: dict[str, list[EntityState]] = {}
        for state in states:
            by_entity.setdefault(state["entity"], []).append(state)
        events: list[AlertEvent] = []
        for entity, group in by_entity.items():
            program = self.programs.get(entity)
            live = [s for s in group if not s["deleted"]] if program else []
            facts = [self.fact(program, s, now) for s in live] if program else []
            matched = self._matchers[entity].match(facts) if program else []
            for state, fact, rules in zip(live, facts, matched):
                state["due"] = self.next_due(program, fact, now) if program else None
                events.extend(self._transitions(state, rules, fact, now))
            for state in group:
                if state["deleted"] or not program:
                    state["due"] = None
                    events.extend(self._transitions(state, set(), {}, now))
        return events

    def _transitions(
        self, state: EntityState, matched: set[str], fact: dict[str, Any], now: float
    ) -> list[AlertEvent]:
        out: list[AlertEvent] = []
        firing = state["firing"]
        for rule_id in sorted(matched - firing.keys()):
            firing[rule_id] = now
            out.append(self._event(rule_id, state, "firing", now, now, fact))
        for rule_id in sorted(firing.keys() - matched):
            since = firing.pop(rule_id)
            if rule_id in self._rules:
                out.append(self._event(rule_id, state, "resolved", now, since, fact))
        return out

    def _event(
        self, rule_id: str, state: EntityState, kind: str, now: float, since: float, fact: dict[str, Any]
    ) -> AlertEvent:
        rule = self._rules[rule_id]
        values: dict[str, Any] = dict(state["fields"])
        values.update(key=state["key"], entity=state["entity"], rule=rule.id, now=_dt(now).isoformat())
        deadline = next((fact.get(time_key(f)) for f in sorted(rule.time_fields()) if time_key(f) in fact), None)
        if deadline is not None:
            values["overdue_days"] = max(0, math.floor((now - deadline) / 86400))
        owner = state["fields"].get(rule.owner) if rule.owner else None
        return AlertEvent(
            rule=rule.id,
            entity=state["entity"],
            key=state["key"],
            state="firing" if kind == "firing" else "resolved",
            at=_dt(now),
            since=_dt(since),
            severity=rule.severity,
            title=render(rule.title, values),
            summary=render(rule.summary, values),
            owner=None if owner is None else str(owner),
            labels={k: render(v, values) for k, v in rule.labels.items()},
        )
