"""Compile rules to durable_rules rulesets, and record what each fact must carry.

Each entity's rules become durable_rules rulesets (split so that none grows
near the engine's ~480-rule limit). An entity state is asserted as a fact
whose properties are what the rules read (see `FactSpec`):

    <field>             the value (scalars only)
    <field>__t          a date/time field as epoch seconds     (before/after)
    <field>__b          the same in business seconds            (… 2bd)
    now__t, now__b      the evaluation instant
    chg_<hash>__t       time of the latest change matching a `changed:` spec
    <field>__mt<hash>   whether a pattern matches, for negated contains/matches
    __x<hash>           an expression dividing by a field, computed by the engine
                        (durable_rules' integer division by zero kills the process)
    lines               the order lines, each with the line properties above and
                        __c<hash> booleans for comparisons between two fields of
                        one line (durable_rules cannot compare array items with
                        each other, so the engine computes those in Python)

Semantics, documented in the README: a comparison on a missing field is
false, except `ne`, `not_in`, `missing` and negations, which hold when the
field is absent. `before` means at or before, `after` strictly after, so a
time condition flips exactly at `field - offset` (the engine's deadline).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from engine import calendar as calendars
from engine.conditions import All, At, Changed, ChangeSpec, Cmp, Cond, Lines, Not, Now, leaves
from engine.expr import Bin, Field, Num, divides_by_field, fields_of, to_durable
from engine.factspec import (
    NOW,
    NOW_B,
    Computed,
    FactSpec,
    Flip,
    LineCheck,
    NegatedPattern,
    time_key,
)
from engine.guards import GUARD, guard, has_time
from engine.pattern import Pattern
from engine.rules import Rule
from orderwatch.yamlsrc import SourceError

__all__ = [
    "GUARD",
    "LINE_PROGRAM",
    "NOW",
    "NOW_B",
    "EntityProgram",
    "FactSpec",
    "Flip",
    "compile_cond",
    "compile_entity",
    "compile_rule",
    "compile_rules",
    "time_key",
]

MAX_RULES_PER_RULESET = 200
MAX_FACT_PROPERTIES = 240  # durable_rules rejects events with more than 255 properties
# Tests in one compiled rule: durable_rules hangs (for ever, holding the GIL) creating a
# ruleset with an alternative of more than 512 branches.
MAX_TESTS = 400

_ORDERED = {"lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}
_NEGATED = {"lt": "ge", "le": "gt", "gt": "le", "ge": "lt"}
_TIME = {"before": "le", "after": "gt"}


def _digest(*parts: Any) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:8]


@dataclass
class _Needs:
    """What the compiled conditions read; becomes the FactSpec."""

    values: set[str] = field(default_factory=set)
    times: set[str] = field(default_factory=set)
    btimes: set[str] = field(default_factory=set)
    changes: dict[str, ChangeSpec] = field(default_factory=dict)
    line_values: set[str] = field(default_factory=set)
    line_times: set[str] = field(default_factory=set)
    line_btimes: set[str] = field(default_factory=set)
    line_checks: dict[str, LineCheck] = field(default_factory=dict)
    negated: dict[str, NegatedPattern] = field(default_factory=dict)
    computed: dict[str, Computed] = field(default_factory=dict)
    flips: dict[Flip, set[str]] = field(default_factory=dict)  # flip → rules using it
    unguarded: set[str] = field(default_factory=set)  # rules whose flips always matter
    now_business: bool = False
    uses_lines: bool = False
    calendar: calendars.BusinessCalendar | None = None

    def spec(self) -> FactSpec:
        return FactSpec(
            values=frozenset(self.values), times=frozenset(self.times), btimes=frozenset(self.btimes),
            changes=tuple(self.changes[k] for k in sorted(self.changes)),
            line_values=frozenset(self.line_values), line_times=frozenset(self.line_times),
            line_btimes=frozenset(self.line_btimes),
            line_checks=tuple(self.line_checks[k] for k in sorted(self.line_checks)),
            negated_patterns=tuple(self.negated[k] for k in sorted(self.negated)),
            computed=tuple(self.computed[k] for k in sorted(self.computed)),
            flips=tuple(sorted((self._guarded_flip(f, rules) for f, rules in self.flips.items()),
                               key=lambda f: (f.prop, f.offset, f.line))),
            now_business=self.now_business, uses_lines=self.uses_lines, calendar=self.calendar or calendars.default(),
        )

    def _guarded_flip(self, flip: Flip, rules: set[str]) -> Flip:
        if rules & self.unguarded:
            return flip
        return Flip(flip.prop, flip.offset, flip.business, flip.line, frozenset(GUARD + r for r in rules))

    def size(self) -> int:
        return (len(self.values) + len(self.times) + len(self.btimes) + len(self.changes)
                + len(self.negated) + len(self.computed) + 2 + (1 if self.uses_lines else 0))


def _one(op: str, parts: list[Any]) -> Any:
    """`{op: parts}`, with a single part unwrapped and nested lists of the same op flattened."""
    flat: list[Any] = []
    for part in parts:
        if isinstance(part, dict) and list(part) == [op]:
            flat.extend(part[op])
        else:
            flat.append(part)
    return flat[0] if len(flat) == 1 else {op: flat}


class _Compiler:
    """Turns condition trees into durable_rules expressions, collecting the fact's needs."""

    def __init__(self, needs: _Needs, rule_id: str = "") -> None:
        self.needs = needs
        self.rule_id = rule_id

    def _flip(self, flip: Flip) -> None:
        self.needs.flips.setdefault(flip, set()).add(self.rule_id)

    def cond(self, cond: Cond, negate: bool = False, line: bool = False) -> Any:
        """A condition as a durable_rules expression (negation pushed to the leaves)."""
        if isinstance(cond, Cmp):
            return self.cmp(cond, negate, line)
        if isinstance(cond, Changed):
            return self.changed(cond, negate)
        if isinstance(cond, Lines):
            return self.lines(cond, negate)
        if isinstance(cond, Not):
            return self.cond(cond.item, not negate, line)
        conj = isinstance(cond, All) != negate
        parts = [self.cond(item, negate, line) for item in cond.items]
        return _one("$and" if conj else "$or", parts)

    # --- helpers ------------------------------------------------------------

    @staticmethod
    def _name(prop: str, line: bool) -> str:
        return f"$i.{prop}" if line else prop

    def _missing(self, prop: str, line: bool) -> dict[str, Any]:
        return {"$nex": {self._name(prop, line): 1}}

    def _exists(self, prop: str, line: bool) -> dict[str, Any]:
        return {"$ex": {self._name(prop, line): 1}}

    def _value(self, name: str, line: bool) -> str:
        (self.needs.line_values if line else self.needs.values).add(name)
        return name

    def _time(self, name: str, business: bool, line: bool) -> str:
        if line:
            (self.needs.line_btimes if business else self.needs.line_times).add(name)
        else:
            (self.needs.btimes if business else self.needs.times).add(name)
        return time_key(name, business)

    def _now(self, now: Now) -> Any:
        base = {"$m": NOW_B if now.business else NOW}
        if now.business:
            self.needs.now_business = True
        if now.offset == 0:
            return base
        return {"$add" if now.offset > 0 else "$sub": {"$l": base, "$r": abs(now.offset)}}

    # --- leaves -------------------------------------------------------------

    def cmp(self, c: Cmp, negate: bool, line: bool) -> Any:
        operand = c.operand
        if line and isinstance(operand, (At, Num, Field, Bin)):
            return self._line_check(c, negate)
        if c.op in ("before", "after"):
            return self._time_cmp(c, negate, line)
        if c.op in ("contains", "matches"):
            return self._pattern(c, negate, line)
        f = self._name(self._value(c.field, line), line)
        if c.op in ("exists", "missing"):
            present = (c.op == "exists") != negate
            return {"$ex": {f: 1}} if present else {"$nex": {f: 1}}
        if c.op in ("in", "not_in"):
            if (c.op == "in") != negate:
                return _one("$or", [{f: v} for v in operand])
            return {"$or": [{"$nex": {f: 1}}, _one("$and", [{"$neq": {f: v}} for v in operand])]}
        if c.op in ("eq", "ne"):
            if (c.op == "eq") != negate:
                return {f: operand}
            return {"$or": [{"$nex": {f: 1}}, {"$neq": {f: operand}}]}
        op = _NEGATED[c.op] if negate else c.op
        if isinstance(operand, (Num, Field, Bin)):
            if divides_by_field(operand):
                prop = f"__x{_digest(operand)}"
                self.needs.computed[prop] = Computed(prop, operand)
                return self._guarded(f, _ORDERED[op], {"$m": prop}, [prop], negate)
            refs = sorted(fields_of(operand))
            rhs = to_durable(operand, lambda n: {"$m": self._value(n, False)})
            return self._guarded(f, _ORDERED[op], rhs, refs, negate)
        if negate:
            return {"$or": [{"$nex": {f: 1}}, {_ORDERED[op]: {f: operand}}]}
        return {_ORDERED[op]: {f: operand}}

    def _guarded(self, lhs: str, op: str, rhs: Any, refs: list[str], negate: bool) -> Any:
        """A comparison whose right side reads other properties: durable_rules treats a missing
        right-hand property unpredictably, so presence is tested explicitly."""
        if negate:
            return {"$or": [{"$nex": {lhs: 1}}, *({"$nex": {r: 1}} for r in refs), {op: {lhs: rhs}}]}
        return _one("$and", [*({"$ex": {r: 1}} for r in refs), {op: {lhs: rhs}}])

    def _time_cmp(self, c: Cmp, negate: bool, line: bool) -> Any:
        operand = c.operand
        op = _TIME[c.op]
        if negate:
            op = _NEGATED[op]
        lhs = self._name(self._time(c.field, operand.business, line), line)
        if isinstance(operand, Now):
            self._flip(Flip(time_key(c.field, operand.business), operand.offset, operand.business, line))
            rhs = self._now(operand)
            if negate:
                return {"$or": [{"$nex": {lhs: 1}}, {_ORDERED[op]: {lhs: rhs}}]}
            return {_ORDERED[op]: {lhs: rhs}}
        assert isinstance(operand, At)
        ref = self._time(operand.field, operand.business, False)
        other: Any = {"$m": ref}
        if operand.offset:
            other = {"$add" if operand.offset > 0 else "$sub": {"$l": other, "$r": abs(operand.offset)}}
        return self._guarded(lhs, _ORDERED[op], other, [ref], negate)

    def _pattern(self, c: Cmp, negate: bool, line: bool) -> Any:
        pattern: Pattern = c.operand
        f = self._name(self._value(c.field, line), line)
        if not negate:
            return {"$imt" if pattern.ignore_case else "$mt": {f: pattern.text}}
        if line:
            raise SourceError([(c.pos, f"'not {c.op}' is not supported inside any_line/all_lines")])
        prop = f"{c.field}__mt{_digest(pattern)}"
        self.needs.negated[prop] = NegatedPattern(prop, c.field, pattern)
        return {"$or": [{"$nex": {f: 1}}, {prop: False}]}

    def _line_check(self, c: Cmp, negate: bool) -> Any:
        prop = f"__c{_digest(c.field, c.op, c.operand)}"
        self.needs.line_checks[prop] = LineCheck(prop, c)
        self._value(c.field, True)
        if isinstance(c.operand, At):
            business = c.operand.business
            self._time(c.field, business, True)
            self._time(c.operand.field, business, True)
        else:
            for name in fields_of(c.operand):
                self._value(name, True)
        name = f"$i.{prop}"
        if negate:
            return {"$or": [{"$nex": {name: 1}}, {name: False}]}
        return {name: True}

    def changed(self, c: Changed, negate: bool) -> Any:
        prop = c.spec.key
        self.needs.changes[prop] = c.spec
        tests: list[tuple[str, Any]] = []  # (op, rhs) that the change time must pass
        refs: list[str] = []
        if c.after is not None:
            ref = self._time(c.after, False, False)
            refs.append(ref)
            tests.append(("$gt", {"$m": ref}))
        if c.within is not None:
            self._flip(Flip(prop, -c.within, False, False))
            tests.append(("$gt", self._now(Now(-c.within))))
        if negate:
            return _one("$or", [
                {"$nex": {prop: 1}}, *({"$nex": {r: 1}} for r in refs),
                *({"$lte": {prop: rhs}} for _, rhs in tests),
            ])
        return _one("$and", [
            {"$ex": {prop: 1}}, *({"$ex": {r: 1}} for r in refs), *({op: {prop: rhs}} for op, rhs in tests),
        ])

    def lines(self, c: Lines, negate: bool) -> Any:
        self.needs.uses_lines = True
        inner = self.cond(c.cond, negate, line=True)
        if not negate:
            return {"$iany" if c.quant == "any" else "$iall": {"lines": inner}}
        # not any(C) = no lines or all(not C); not all(C) = no lines or any(not C).
        quant = "$iall" if c.quant == "any" else "$iany"
        return {"$or": [{"$nex": {"lines": 1}}, {quant: {"lines": inner}}]}


def compile_cond(cond: Cond, negate: bool = False) -> Any:
    """A condition tree as a durable_rules expression (for tests and documentation)."""
    return _Compiler(_Needs()).cond(cond, negate)


# Every fact carries now__t; durable_rules' session state object does not. Requiring it keeps a
# condition made of negative tests (`$nex`) from matching that state object.
_IS_FACT = {"$ex": {NOW: 1}}


def _definition(expr: Any) -> dict[str, Any]:
    return {"all": [{"m": _one("$and", [_IS_FACT, expr])}]}


def _tests(expr: Any) -> int:
    """How many tests a durable_rules expression makes."""
    if isinstance(expr, list):
        return sum(_tests(e) for e in expr)
    if isinstance(expr, dict) and len(expr) == 1:
        ((op, inner),) = expr.items()
        if op in ("$and", "$or"):
            return _tests(inner)
        if op in ("$iany", "$iall"):
            return sum(_tests(v) for v in inner.values())
    return 1


def _bounded(rule: Rule, expr: Any) -> Any:
    tests = _tests(expr)
    if tests > MAX_TESTS:
        why = (f"rule '{rule.id}' compiles to {tests} tests; at most {MAX_TESTS} "
               "(shorten its in/not_in lists or split it into several rules)")
        raise SourceError([(rule.pos, why)])
    return expr


def compile_rule(rule: Rule, needs: _Needs | None = None) -> dict[str, Any]:
    """One rule as a durable_rules rule definition (the action is attached by the matcher)."""
    return _definition(_bounded(rule, _Compiler(needs or _Needs(), rule.id).cond(rule.when)))


@dataclass(frozen=True, slots=True)
class EntityProgram:
    """Everything the engine needs to evaluate one entity's rules."""

    entity: str
    rules: tuple[Rule, ...]
    rulesets: tuple[dict[str, Any], ...]  # durable_rules definitions, rule id → rule
    spec: FactSpec


def _counts_business_days(cond: Cond) -> bool:
    for leaf in leaves(cond):
        if isinstance(leaf, Lines):
            if _counts_business_days(leaf.cond):
                return True
        elif isinstance(leaf, Cmp) and isinstance(leaf.operand, (Now, At)) and leaf.operand.business:
            return True
    return False


def _calendar(rules: list[Rule]) -> tuple[calendars.BusinessCalendar | None, list[tuple[Any, str]]]:
    """The one calendar the entity's `bd` rules count on (facts carry one business-time axis)."""
    chosen: dict[str, Rule] = {}
    for rule in rules:
        if _counts_business_days(rule.when):
            chosen.setdefault(rule.calendar or calendars.DEFAULT, rule)
    if len(chosen) <= 1:
        only = next(iter(chosen.values()), None)
        return (only.business_calendar if only else None), []
    (first, a), (second, b) = list(chosen.items())[:2]
    why = (f"rules of {a.entity} count business days (bd) on one calendar: {a.id} ({a.pos}) uses "
           f"{first!r}, {b.id} uses {second!r}; give them the same `calendar:`")
    return None, [(b.pos, why)]


def compile_entity(entity: str, rules: list[Rule]) -> EntityProgram:
    needs = _Needs()
    definitions: dict[str, Any] = {}
    needs.calendar, problems = _calendar(rules)
    for rule in rules:
        try:
            definitions[rule.id] = compile_rule(rule, needs)
        except SourceError as exc:
            problems.extend(exc.problems)
            continue
        if not has_time(rule.when):
            continue
        open_time = guard(rule.when)
        if open_time is True:
            needs.unguarded.add(rule.id)
        elif open_time is not False:
            expr = _Compiler(needs, rule.id).cond(open_time)
            flips = [f for f, ids in needs.flips.items() if rule.id in ids]
            if flips and not any(f.line for f in flips):
                # A fact with none of the rule's times has no deadline for it: no need to match.
                expr = _one("$and", [expr, _one("$or", [{"$ex": {p: 1}} for p in sorted({f.prop for f in flips})])])
            definitions[GUARD + rule.id] = _definition(_bounded(rule, expr))
    if problems:
        raise SourceError(problems)
    if needs.size() > MAX_FACT_PROPERTIES:
        why = (f"the {entity} rules read {needs.size()} properties; durable_rules allows "
               f"{MAX_FACT_PROPERTIES} per fact (split or simplify rules)")
        raise SourceError([(rules[0].pos, why)])
    ids = list(definitions)
    chunks = [ids[i : i + MAX_RULES_PER_RULESET] for i in range(0, len(ids), MAX_RULES_PER_RULESET)]
    return EntityProgram(
        entity=entity,
        rules=tuple(rules),
        rulesets=tuple({rid: definitions[rid] for rid in chunk} for chunk in chunks),
        spec=needs.spec(),
    )


LINE_PROGRAM = "#line"  # the suffix of a per-line program's key


def compile_rules(rules: list[Rule]) -> dict[str, EntityProgram]:
    """Group rules by entity and compile each group; raise SourceError on what cannot compile.
    Per-line rules (`per: line`) make a program of their own, keyed `<entity>#line`."""
    by_entity: dict[str, list[Rule]] = {}
    for rule in rules:
        by_entity.setdefault(rule.entity + LINE_PROGRAM if rule.per == "line" else rule.entity, []).append(rule)
    programs: dict[str, EntityProgram] = {}
    problems = []
    for entity, group in by_entity.items():
        try:
            programs[entity] = compile_entity(entity, group)
        except SourceError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SourceError(sorted(problems, key=lambda p: (p[0].file, p[0].line, p[0].col)))
    return programs
