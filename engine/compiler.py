"""Compile rules to durable_rules rulesets, and derive when their truth can change.

Each entity's rules become one durable_rules ruleset (split in chunks so that
no ruleset grows near the engine's ~480-rule limit). An entity state is
asserted as a fact whose properties are the fields the rules name, plus
`<field>__t` (epoch seconds) for fields compared with time, plus `now__t`.

Semantics, documented in the README: a comparison on a missing field is
false, except `ne`, `not_in` and `missing`, which hold when the field is absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.rules import All, AnyOf, Cmp, Cond, Not, Now, Rule, walk

MAX_RULES_PER_RULESET = 200
NOW = "now__t"

_DR_OP = {"lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}
_NEGATED = {"lt": "ge", "le": "gt", "gt": "le", "ge": "lt"}


def time_key(field: str) -> str:
    return f"{field}__t"


def _missing(field: str) -> dict[str, Any]:
    return {"$nex": {field: 1}}


def _now_expr(now: Now) -> dict[str, Any]:
    if now.offset == 0:
        return {"$m": NOW}
    op = "$add" if now.offset > 0 else "$sub"
    return {op: {"$l": {"$m": NOW}, "$r": abs(now.offset)}}


def _cmp(c: Cmp, negate: bool) -> dict[str, Any]:
    f = c.field
    if c.op in ("before", "after"):
        op = "lt" if c.op == "before" else "gt"
        if negate:
            return {"$or": [_missing(time_key(f)), {_DR_OP[_NEGATED[op]]: {time_key(f): _now_expr(c.operand)}}]}
        return {_DR_OP[op]: {time_key(f): _now_expr(c.operand)}}
    if c.op in ("exists", "missing"):
        present = (c.op == "exists") != negate
        return {"$ex": {f: 1}} if present else _missing(f)
    if c.op in ("in", "not_in"):
        member = (c.op == "in") != negate
        if member:
            alts = [{f: v} for v in c.operand]
            return alts[0] if len(alts) == 1 else {"$or": alts}
        return {"$or": [_missing(f), {"$and": [{"$neq": {f: v}} for v in c.operand]}]}
    if c.op in ("eq", "ne"):
        equal = (c.op == "eq") != negate
        return {f: c.operand} if equal else {"$or": [_missing(f), {"$neq": {f: c.operand}}]}
    if negate:
        return {"$or": [_missing(f), {_DR_OP[_NEGATED[c.op]]: {f: c.operand}}]}
    return {_DR_OP[c.op]: {f: c.operand}}


def compile_cond(cond: Cond, negate: bool = False) -> dict[str, Any]:
    """A condition tree as a durable_rules expression (negation pushed to the leaves)."""
    if isinstance(cond, Cmp):
        return _cmp(cond, negate)
    if isinstance(cond, Not):
        return compile_cond(cond.item, not negate)
    conj = isinstance(cond, All) != negate
    parts = [compile_cond(item, negate) for item in cond.items]
    if len(parts) == 1:
        return parts[0]
    return {"$and": parts} if conj else {"$or": parts}


def compile_rule(rule: Rule) -> dict[str, Any]:
    """One rule as a durable_rules rule definition (the action is attached by the matcher)."""
    return {"all": [{"m": compile_cond(rule.when)}]}


@dataclass(frozen=True, slots=True)
class EntityProgram:
    """Everything the engine needs to evaluate one entity's rules."""

    entity: str
    rules: tuple[Rule, ...]
    rulesets: tuple[dict[str, Any], ...]  # durable_rules definitions, rule id → rule
    value_fields: frozenset[str]  # fields copied into the fact as they are
    time_fields: frozenset[str]  # fields also copied as epoch seconds
    time_offsets: tuple[tuple[str, float], ...]  # (field, offset): truth may flip at field - offset


def compile_entity(entity: str, rules: list[Rule]) -> EntityProgram:
    chunks = [rules[i : i + MAX_RULES_PER_RULESET] for i in range(0, len(rules), MAX_RULES_PER_RULESET)]
    offsets = sorted(
        {(c.field, c.operand.offset) for r in rules for c in walk(r.when) if isinstance(c.operand, Now)}
    )
    return EntityProgram(
        entity=entity,
        rules=tuple(rules),
        rulesets=tuple({r.id: compile_rule(r) for r in chunk} for chunk in chunks),
        value_fields=frozenset(f for r in rules for f in r.fields()),
        time_fields=frozenset(f for r in rules for f in r.time_fields()),
        time_offsets=tuple(offsets),
    )


def compile_rules(rules: list[Rule]) -> dict[str, EntityProgram]:
    """Group rules by entity and compile each group."""
    by_entity: dict[str, list[Rule]] = {}
    for rule in rules:
        by_entity.setdefault(rule.entity, []).append(rule)
    return {entity: compile_entity(entity, group) for entity, group in by_entity.items()}
