"""From an entity state to the fact durable_rules matches, and to its next deadline.

The fact carries exactly what `FactSpec` asks for (engine.compiler documents
the property names). Values that durable_rules cannot compute itself are
derived here, in plain Python over the state: the time of the latest change
matching a `changed:` spec, and comparisons between two fields of one line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from engine.clock import to_epoch
from engine.conditions import At, ChangeSpec
from engine.expr import compute
from engine.factspec import NOW, NOW_B, FactSpec, LineCheck

# Bookkeeping columns that change with every edit: not a change of substance for `changed: any`.
IGNORED_CHANGES = frozenset({"updated_at"})
_SCALAR = (str, int, float, bool)


def latest_change(history: Sequence[Any], spec: ChangeSpec) -> Any:
    """The newest history entry that is a change matching `spec`."""
    for entry in reversed(history):
        if entry.get("op") != "upsert":
            continue
        changed = entry.get("changed") or {}
        if spec.fields is None:
            touched = any(k not in IGNORED_CHANGES for k in changed)
        else:
            touched = any(k in changed for k in spec.fields)
        if not touched:
            continue
        if spec.by_op:
            actor = entry.get("actor")
            # A change whose author is unknown neither passes nor fails a `by` test: it is skipped.
            if actor is None or (actor in spec.by) != (spec.by_op == "in"):
                continue
        return entry
    return None


def _put_times(out: dict[str, Any], source: dict[str, Any], props: tuple[tuple[str, str | None, str | None], ...],
               business_seconds: Callable[[float], float]) -> None:
    for name, plain, business in props:
        value = source.get(name)
        if value is None:
            continue
        epoch = to_epoch(value)
        if epoch is None:
            continue
        if plain is not None:
            out[plain] = epoch
        if business is not None:
            out[business] = business_seconds(epoch)


def _line_check(check: LineCheck, line: dict[str, Any], business_seconds: Callable[[float], float]) -> bool | None:
    c = check.cmp
    if isinstance(c.operand, At):
        left, right = to_epoch(line.get(c.field)), to_epoch(line.get(c.operand.field))
        if left is None or right is None:
            return None
        if c.operand.business:
            left, right = business_seconds(left), business_seconds(right)
        right += c.operand.offset
        return left <= right if c.op == "before" else left > right
    left_value = line.get(c.field)
    right = compute(c.operand, line)
    if right is None or isinstance(left_value, bool) or not isinstance(left_value, (int, float)):
        return None
    left = float(left_value)
    return {"lt": left < right, "le": left <= right, "gt": left > right, "ge": left >= right}[c.op]


def _put_values(out: dict[str, Any], source: dict[str, Any], names: Iterable[str]) -> None:
    """The scalar values of `names` (durable_rules compares those; the rest stays out)."""
    for name in names:
        value = source.get(name)
        if value is not None and isinstance(value, _SCALAR):
            out[name] = value


def _line_fact(spec: FactSpec, line: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put_values(out, line, spec.line_values)
    _put_times(out, line, spec.line_time_props, spec.calendar.seconds)  # type: ignore[attr-defined]
    for check in spec.line_checks:
        result = _line_check(check, line, spec.calendar.seconds)
        if result is not None:
            out[check.prop] = result
    return out


def build_fact(spec: FactSpec, fields: dict[str, Any], history: Sequence[Any], now: float) -> dict[str, Any]:
    """The fact for one state at `now` (without id/sid, which the matcher adds)."""
    fact: dict[str, Any] = {NOW: now}
    if spec.now_business:
        fact[NOW_B] = spec.calendar.seconds(now)
    _put_values(fact, fields, spec.values)
    _put_times(fact, fields, spec.time_props, spec.calendar.seconds)  # type: ignore[attr-defined]
    for computed in spec.computed:
        value = compute(computed.expr, fields)
        if value is not None:
            fact[computed.prop] = value
    for change in spec.changes:
        entry = latest_change(history, change)
        epoch = to_epoch(entry["ts"]) if entry else None
        if epoch is not None:
            fact[change.key] = epoch
    if spec.uses_lines:
        lines = fields.get("lines")
        if isinstance(lines, list):
            items = [_line_fact(spec, line) for line in lines if isinstance(line, dict)]
            if items:  # no lines: `lines` stays absent, so all_lines is false and its negation true
                fact["lines"] = items
    return fact


def next_flip(spec: FactSpec, fact: dict[str, Any], now: float, guards: set[str] | None = None) -> float | None:
    """The first instant after `now` at which one of the fact's time comparisons changes truth;
    with `guards` (the guard rules the fact matched), only comparisons that can matter."""
    best: float | None = None
    lines = fact.get("lines") or ()
    from_business_seconds = spec.calendar.from_seconds
    for flip in spec.flips:
        if guards is not None and flip.guards is not None and flip.guards.isdisjoint(guards):
            continue
        values = [line.get(flip.prop) for line in lines] if flip.line else [fact.get(flip.prop)]
        for value in values:
            if value is None:
                continue
            at = from_business_seconds(value - flip.offset) if flip.business else value - flip.offset
            if at > now and (best is None or at < best):
                best = at
    return best
