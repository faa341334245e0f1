"""The `when:` condition language: its tree, and its parser with positioned problems.

Conditions are data. The parser turns YAML into a small tree (All / AnyOf /
Not over Cmp, Changed and Lines leaves) that engine.compiler turns into
durable_rules JSON; nothing here evaluates user text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from engine.clock import parse_duration, parse_offset
from engine.expr import (
    Bin,
    Expr,
    ExprError,
    Field,
    Num,
    fields_of,
    looks_like_expression,
    parse_expr,
)
from engine.pattern import contains, translate
from engine.schema import DECLARE_HINT, known_fields, line_fields
from orderwatch.yamlsrc import Map, Pos, Seq, pos_of, short

VALUE_OPS = ("eq", "ne", "lt", "le", "gt", "ge")
LIST_OPS = ("in", "not_in")
PRESENCE_OPS = ("exists", "missing")
TEXT_OPS = ("contains", "matches")
TIME_OPS = ("before", "after")
OPERATORS = VALUE_OPS + LIST_OPS + TEXT_OPS + PRESENCE_OPS + TIME_OPS
MAX_LIST = 256  # values of one in/not_in (durable_rules hangs past 512 alternatives)
KEYWORDS = ("all", "any", "not", "changed", "any_line", "all_lines")
_TIME_EXPR = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:([+-])\s*(.+?))?\s*$")


@dataclass(frozen=True, slots=True)
class Now:
    """The evaluation instant plus an offset in seconds (business seconds if `business`)."""

    offset: float = 0.0
    business: bool = False


@dataclass(frozen=True, slots=True)
class At:
    """Another date field of the same entity (or line) plus an offset."""

    field: str
    offset: float = 0.0
    business: bool = False


@dataclass(frozen=True, slots=True)
class Cmp:
    """`field op operand`: operand is a literal, a tuple (in/not_in), Now/At, an Expr or a Pattern."""

    field: str
    op: str
    operand: Any
    pos: Pos

    @property
    def is_time(self) -> bool:
        return isinstance(self.operand, Now)

    def refs(self) -> set[str]:
        """Other fields the operand reads."""
        if isinstance(self.operand, At):
            return {self.operand.field}
        if isinstance(self.operand, (Num, Field, Bin)):
            return fields_of(self.operand)
        return set()


@dataclass(frozen=True, slots=True)
class ChangeSpec:
    """Which history entries count as a change: fields touched (None = any) and who made it."""

    fields: tuple[str, ...] | None
    by_op: str | None = None  # "in" or "not_in"
    by: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """The fact property holding the time of the latest such change."""
        key = _CHANGE_KEYS.get(self)
        if key is None:  # read for every fact built: hashed once per spec
            digest = hashlib.sha1(repr((self.fields, self.by_op, self.by)).encode()).hexdigest()[:8]
            key = _CHANGE_KEYS[self] = f"chg_{digest}__t"
        return key


_CHANGE_KEYS: dict[ChangeSpec, str] = {}


@dataclass(frozen=True, slots=True)
class Changed:
    """A qualifying change exists (after the time in field `after`, within the last `within` s)."""

    spec: ChangeSpec
    after: str | None
    within: float | None
    pos: Pos


@dataclass(frozen=True, slots=True)
class Lines:
    """`any_line` / `all_lines`: a condition over the entity's order lines."""

    quant: str  # "any" or "all"
    cond: Cond
    pos: Pos


@dataclass(frozen=True, slots=True)
class All:
    items: tuple[Cond, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Cond, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Cond


Cond = Cmp | Changed | Lines | All | AnyOf | Not

def leaves(cond: Cond) -> list[Cmp | Changed | Lines]:
    """The leaves of a tree (a Lines node is one leaf; its inside is another scope)."""
    if isinstance(cond, (Cmp, Changed, Lines)):
        return [cond]
    if isinstance(cond, Not):
        return leaves(cond.item)
    return [leaf for item in cond.items for leaf in leaves(item)]


def size(cond: Cond) -> int:
    """How many comparisons a condition makes, those inside line conditions included."""
    if isinstance(cond, Lines):
        return size(cond.cond)
    if isinstance(cond, (Cmp, Changed)):
        return 1
    if isinstance(cond, Not):
        return size(cond.item)
    return sum(size(item) for item in cond.items)


def comparisons(cond: Cond) -> list[Cmp]:
    """Every entity-level comparison, in document order."""
    return [leaf for leaf in leaves(cond) if isinstance(leaf, Cmp)]


class Problems:
    """Collected `(position, message)` pairs; loading reports them all at once."""

    def __init__(self) -> None:
        self.items: list[tuple[Pos, str]] = []

    def add(self, pos: Pos, msg: str) -> None:
        self.items.append((pos, msg))


class ConditionParser:
    """Parses `when:` for one entity; `line=True` parses inside any_line/all_lines."""

    def __init__(self, entity: str, problems: Problems, line: bool = False) -> None:
        self.entity = entity
        self.problems = problems
        self.line = line
        self.fields = line_fields(entity) if line else known_fields(entity)
        self.scope = f"a line of {entity}" if line else entity

    def parse(self, node: Any, pos: Pos) -> Cond | None:
        if not isinstance(node, Map) or not node:
            self.problems.add(pos_of(node, pos), "a condition is a mapping: all/any/not, changed, any_line/all_lines or a field name")
            return None
        parts: list[Cond] = []
        for key, value in node.items():
            kpos = node.at(key)
            if key in ("all", "any"):
                if not isinstance(value, Seq) or not value:
                    self.problems.add(kpos, f"'{key}' takes a non-empty list of conditions")
                    continue
                items = [self.parse(v, value.item_pos[i]) for i, v in enumerate(value)]
                good = tuple(i for i in items if i is not None)
                if good:
                    parts.append(All(good) if key == "all" else AnyOf(good))
            elif key == "not":
                inner = self.parse(value, kpos)
                if inner is not None:
                    parts.append(Not(inner))
            elif key == "changed":
                changed = self._changed(value, kpos)
                if changed is not None:
                    parts.append(changed)
            elif key in ("any_line", "all_lines"):
                lines = self._lines(key, value, kpos)
                if lines is not None:
                    parts.append(lines)
            else:
                parts.extend(self._field(key, value, kpos))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else All(tuple(parts))

    # --- leaves -------------------------------------------------------------

    def _known(self, name: str, pos: Pos) -> bool:
        if name in self.fields:
            return True
        known = ", ".join(sorted(self.fields))
        self.problems.add(pos, f"'{name}' is not a field of {self.scope}; known: {known} {DECLARE_HINT}")
        return False

    def _field(self, name: str, spec: Any, pos: Pos) -> list[Cond]:
        if not self._known(name, pos):
            return []
        if isinstance(spec, Seq):
            spec_map = Map({"in": spec})  # `status: [open, confirmed]` is `status: {in: [...]}`
            spec_map.pos, spec_map.key_pos = pos, {"in": pos}
            spec = spec_map
        if not isinstance(spec, Map):
            # `status: open` is shorthand for `status: {eq: open}`.
            return [Cmp(name, "eq", spec, pos)]
        out: list[Cond] = []
        for op, operand in spec.items():
            cmp = self._operator(name, op, operand, spec.at(op))
            if cmp is not None:
                out.append(cmp)
        return out

    def _operator(self, name: str, op: str, operand: Any, pos: Pos) -> Cmp | None:
        add = self.problems.add
        if op not in OPERATORS:
            add(pos, f"unknown operator '{op}'; known: {', '.join(OPERATORS)}")
            return None
        if op in LIST_OPS:
            if not isinstance(operand, list) or not operand or any(isinstance(v, (dict, list)) for v in operand):
                add(pos, f"'{op}' takes a non-empty list of values")
                return None
            if len(operand) > MAX_LIST:
                add(pos, f"'{op}' takes at most {MAX_LIST} values, got {len(operand):,}")
                return None
            return Cmp(name, op, tuple(operand), pos)
        if op in PRESENCE_OPS:
            if operand is not True:
                add(pos, f"'{op}' takes the value true")
                return None
            return Cmp(name, op, True, pos)
        if op in TIME_OPS:
            return self._time(name, op, operand, pos)
        if isinstance(operand, (dict, list)) or operand is None:
            add(pos, f"'{op}' takes a single value")
            return None
        if op == "contains":
            return Cmp(name, op, contains(str(operand)), pos)
        if op == "matches":
            if not isinstance(operand, str):
                add(pos, "'matches' takes a pattern (a string)")
                return None
            try:
                return Cmp(name, op, translate(operand, check=False), pos)
            except ValueError as exc:
                add(pos, str(exc))
                return None
        if op in ("lt", "le", "gt", "ge") and isinstance(operand, str) and looks_like_expression(operand):
            expr = self._expr(operand, pos)
            return None if expr is None else Cmp(name, op, expr, pos)
        return Cmp(name, op, operand, pos)

    def _expr(self, text: str, pos: Pos) -> Expr | None:
        try:
            expr = parse_expr(text)
        except ExprError as exc:
            self.problems.add(pos, str(exc))
            return None
        unknown = sorted(fields_of(expr) - self.fields)
        if unknown:
            self.problems.add(pos, f"expression {text!r} names '{unknown[0]}', not a field of {self.scope}; known: {', '.join(sorted(self.fields))}")
            return None
        return expr

    def _time(self, name: str, op: str, operand: Any, pos: Pos) -> Cmp | None:
        match = _TIME_EXPR.match(str(operand)) if isinstance(operand, str) else None
        if not match:
            self.problems.add(pos, f"'{op}' takes 'now', 'now - <duration>', '<date field>' or '<date field> + <duration>', got {short(operand)}")
            return None
        base, sign, text = match.groups()
        offset, business = 0.0, False
        if text:
            try:
                parsed = parse_offset(text)
            except ValueError as exc:
                self.problems.add(pos, str(exc))
                return None
            offset = -parsed.seconds if sign == "-" else parsed.seconds
            business = parsed.business
        if base == "now":
            return Cmp(name, op, Now(offset, business), pos)
        if base not in self.fields:
            self.problems.add(pos, f"'{op}' takes 'now', 'now - <duration>' or a date field (± a duration); "
                                   f"'{base}' is not a field of {self.scope}; known: {', '.join(sorted(self.fields))}")
            return None
        return Cmp(name, op, At(base, offset, business), pos)

    def _changed(self, value: Any, pos: Pos) -> Changed | None:
        add = self.problems.add
        if self.line:
            add(pos, "'changed' looks at the whole entity's history; it cannot be used inside any_line/all_lines")
            return None
        spec: Any = value if isinstance(value, Map) else Map({"fields": value})
        if spec is not value:
            spec.pos, spec.key_pos = pos, {"fields": pos}
        for key in spec:
            if key not in ("fields", "by", "after", "within"):
                add(spec.at(key), f"unknown key '{key}' in changed; known: fields, by, after, within")
                return None
        fields_ok, fields = self._change_fields(spec.get("fields", "any"), spec.at("fields"))
        by_ok, by_op, by = self._change_by(spec.get("by"), spec.at("by"))
        after = spec.get("after")
        if after is not None and (not isinstance(after, str) or not self._known(after, spec.at("after"))):
            if not isinstance(after, str):
                add(spec.at("after"), "'after' names a date field of the entity (e.g. approved_at)")
            return None
        within = None
        if "within" in spec:
            try:
                within = parse_duration(spec["within"])
            except ValueError as exc:
                add(spec.at("within"), str(exc))
                return None
        if not (fields_ok and by_ok):
            return None
        return Changed(ChangeSpec(fields, by_op, by), after, within, pos)

    def _change_fields(self, value: Any, pos: Pos) -> tuple[bool, tuple[str, ...] | None]:
        """(valid, the fields; None = any field)."""
        if value == "any":
            return True, None
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            self.problems.add(pos, "changed takes a field name, a list of field names, or 'any'")
            return False, None
        if not all(self._known(n, pos) for n in names):
            return False, None
        return True, tuple(sorted(set(names)))

    def _change_by(self, value: Any, pos: Pos) -> tuple[bool, str | None, tuple[str, ...]]:
        """(valid, "in"/"not_in" or None, people)."""
        if value is None:
            return True, None, ()
        if isinstance(value, list):
            value = {"in": value}
        if isinstance(value, dict) and len(value) == 1:
            op, names = next(iter(value.items()))
            if op in LIST_OPS and isinstance(names, list) and names and all(isinstance(n, str) for n in names):
                return True, op, tuple(sorted(set(names)))
        self.problems.add(pos, "'by' takes {in: [people]} or {not_in: [people]}")
        return False, None, ()

    def _lines(self, key: str, value: Any, pos: Pos) -> Lines | None:
        if self.line:
            self.problems.add(pos, f"'{key}' cannot be nested inside another line condition")
            return None
        if not line_fields(self.entity):
            self.problems.add(pos, f"{self.entity} has no order lines")
            return None
        inner = ConditionParser(self.entity, self.problems, line=True).parse(value, pos)
        if inner is None:
            return None
        return Lines("any" if key == "any_line" else "all", inner, pos)
