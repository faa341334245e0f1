"""YAML rules: load, validate (file:line:col), and model them.

A rule watches one entity's current state and fires while its condition
holds. Conditions are data, parsed into a small tree (All / Any / Not / Cmp)
that engine.compiler turns into durable_rules JSON; nothing here evaluates
user text.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from engine.schema import known_fields
from orderwatch.yamlsrc import Map, Pos, Seq, SourceError, load_file, pos_of

SEVERITIES = ("info", "warning", "critical")
RULE_KEYS = {
    "id", "title", "description", "entity", "when", "severity", "owner", "labels",
    "summary", "escalate", "for",
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NOW_EXPR = re.compile(r"^\s*now\s*(?:([+-])\s*(\S+))?\s*$")
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def parse_duration(text: Any) -> float:
    """`90s`, `15m`, `2h`, `1d`, `1w` → seconds; raises ValueError with the reason."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 2h, 1d, 1w)")
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 2h, 1d, 1w)")
    return float(match.group(1)) * _UNIT[match.group(2)]


# --- the condition tree -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Now:
    """The evaluation instant plus an offset in seconds."""

    offset: float = 0.0


@dataclass(frozen=True, slots=True)
class Cmp:
    """`field op operand`; operand is a literal, a list (in/not_in) or Now."""

    field: str
    op: str
    operand: Any
    pos: Pos

    @property
    def is_time(self) -> bool:
        return isinstance(self.operand, Now)


@dataclass(frozen=True, slots=True)
class All:
    items: tuple[Cond, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Cond, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Cond


Cond = Union[Cmp, All, AnyOf, Not]

VALUE_OPS = ("eq", "ne", "lt", "le", "gt", "ge")
LIST_OPS = ("in", "not_in")
PRESENCE_OPS = ("exists", "missing")
TIME_OPS = ("before", "after")
OPERATORS = VALUE_OPS + LIST_OPS + PRESENCE_OPS + TIME_OPS


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    title: str
    entity: str
    when: Cond
    severity: str
    pos: Pos
    owner: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    description: str = ""

    def time_fields(self) -> set[str]:
        return {c.field for c in walk(self.when) if c.is_time}

    def fields(self) -> set[str]:
        return {c.field for c in walk(self.when)}


def walk(cond: Cond) -> list[Cmp]:
    """Every comparison in a condition tree."""
    if isinstance(cond, Cmp):
        return [cond]
    if isinstance(cond, Not):
        return walk(cond.item)
    return [c for item in cond.items for c in walk(item)]


# --- loading --------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.items: list[tuple[Pos, str]] = []

    def add(self, pos: Pos, msg: str) -> None:
        self.items.append((pos, msg))


def _parse_now(text: str, pos: Pos, problems: _Problems) -> Now | None:
    match = _NOW_EXPR.match(text)
    if not match:
        problems.add(pos, f"expected 'now', 'now - <duration>' or 'now + <duration>', got {text!r}")
        return None
    sign, dur = match.groups()
    if not dur:
        return Now(0.0)
    try:
        seconds = parse_duration(dur)
    except ValueError as exc:
        problems.add(pos, str(exc))
        return None
    return Now(-seconds if sign == "-" else seconds)


def _parse_cond(node: Any, entity: str, pos: Pos, problems: _Problems) -> Cond | None:
    if not isinstance(node, Map) or not node:
        problems.add(pos_of(node, pos), "a condition is a mapping: all/any/not or a field name")
        return None
    parts: list[Cond] = []
    for key, value in node.items():
        kpos = node.at(key)
        if key in ("all", "any"):
            if not isinstance(value, Seq) or not value:
                problems.add(kpos, f"'{key}' takes a non-empty list of conditions")
                continue
            items = [_parse_cond(v, entity, value.item_pos[i], problems) for i, v in enumerate(value)]
            good = tuple(i for i in items if i is not None)
            parts.append(All(good) if key == "all" else AnyOf(good))
        elif key == "not":
            inner = _parse_cond(value, entity, kpos, problems)
            if inner is not None:
                parts.append(Not(inner))
        else:
            parts.extend(_parse_field(key, value, entity, kpos, problems))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else All(tuple(parts))


def _parse_field(name: str, spec: Any, entity: str, pos: Pos, problems: _Problems) -> list[Cond]:
    fields = known_fields(entity)
    if name not in fields:
        problems.add(pos, f"'{name}' is not a field of {entity}; known: {', '.join(sorted(fields))}")
        return []
    if not isinstance(spec, Map):
        # `status: open` is shorthand for `status: {eq: open}`.
        return [Cmp(name, "eq", spec, pos)]
    out: list[Cond] = []
    for op, operand in spec.items():
        opos = spec.at(op)
        if op not in OPERATORS:
            problems.add(opos, f"unknown operator '{op}'; known: {', '.join(OPERATORS)}")
        elif op in LIST_OPS:
            if not isinstance(operand, list) or not operand:
                problems.add(opos, f"'{op}' takes a non-empty list")
            else:
                out.append(Cmp(name, op, tuple(operand), opos))
        elif op in PRESENCE_OPS:
            if operand is not True:
                problems.add(opos, f"'{op}' takes the value true")
            else:
                out.append(Cmp(name, op, True, opos))
        elif op in TIME_OPS:
            now = _parse_now(str(operand), opos, problems)
            if now is not None:
                out.append(Cmp(name, op, now, opos))
        else:
            if isinstance(operand, (dict, list)):
                problems.add(opos, f"'{op}' takes a single value")
            else:
                out.append(Cmp(name, op, operand, opos))
    return out


_FORMATTER = string.Formatter()


def check_template(text: str, entity: str, extra: set[str]) -> str | None:
    """Return why a `{field}` template is bad, or None. Only plain names are allowed."""
    allowed = known_fields(entity) | extra
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:
        return f"bad template: {exc}"
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or spec or conv:
            return f"bad template placeholder {{{name}}}: only {{field}} is allowed"
        if name not in allowed:
            return f"template names unknown field '{name}'; known: {', '.join(sorted(allowed))}"
    return None


TEMPLATE_EXTRA = {"key", "entity", "rule", "overdue_days", "now"}


def _parse_rule(node: Any, pos: Pos, problems: _Problems) -> Rule | None:
    if not isinstance(node, Map):
        problems.add(pos_of(node, pos), "a rule is a mapping with at least id, entity and when")
        return None
    before = len(problems.items)
    for key in node:
        if key not in RULE_KEYS:
            problems.add(node.at(key), f"unknown rule key '{key}'; known: {', '.join(sorted(RULE_KEYS))}")
    for key in ("id", "entity", "when"):
        if key not in node:
            problems.add(node.pos, f"rule needs '{key}'")
    if len(problems.items) > before:
        return None
    rule_id = node["id"]
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        problems.add(node.at("id"), f"rule id must be lower-case letters, digits, '-', '_' or '.': {rule_id!r}")
    entity = node["entity"]
    if not isinstance(entity, str) or not known_fields(entity):
        problems.add(node.at("entity"), f"unknown entity {entity!r}")
        return None
    severity = node.get("severity", "warning")
    if severity not in SEVERITIES:
        problems.add(node.at("severity"), f"severity must be one of {', '.join(SEVERITIES)}")
    owner = node.get("owner")
    if owner is not None and owner not in known_fields(entity):
        problems.add(node.at("owner"), f"owner '{owner}' is not a field of {entity}; known: {', '.join(sorted(known_fields(entity)))}")
    labels = node.get("labels", {})
    if not isinstance(labels, dict):
        problems.add(node.at("labels"), "labels is a mapping of name: template")
        labels = {}
    for name, value in labels.items():
        why = check_template(str(value), entity, TEMPLATE_EXTRA)
        if why:
            problems.add(labels.at(name) if isinstance(labels, Map) else node.at("labels"), why)
    for key in ("summary", "title"):
        if key in node:
            why = check_template(str(node[key]), entity, TEMPLATE_EXTRA)
            if why:
                problems.add(node.at(key), why)
    when = _parse_cond(node["when"], entity, node.at("when"), problems)
    if len(problems.items) > before or when is None:
        return None
    return Rule(
        id=rule_id,
        title=str(node.get("title", rule_id)),
        entity=entity,
        when=when,
        severity=severity,
        pos=node.pos,
        owner=owner,
        labels={str(k): str(v) for k, v in labels.items()},
        summary=str(node.get("summary", "")),
        description=str(node.get("description", "")),
    )


def load_rules(paths: list[str | Path]) -> list[Rule]:
    """Load every rule file (a folder means its *.yaml files); raise SourceError listing all problems."""
    problems = _Problems()
    rules: list[Rule] = []
    seen: dict[str, Pos] = {}
    for path in _rule_files(paths, problems):
        try:
            doc = load_file(path)
        except SourceError as exc:
            problems.items.extend(exc.problems)
            continue
        items = doc.get("rules") if isinstance(doc, Map) and "rules" in doc else doc
        if not isinstance(items, Seq):
            problems.add(pos_of(doc, Pos(str(path), 1, 1)), "a rule file is a list of rules (or a mapping with 'rules:')")
            continue
        for index, node in enumerate(items):
            rule = _parse_rule(node, items.item_pos[index], problems)
            if rule is None:
                continue
            if rule.id in seen:
                problems.add(rule.pos, f"duplicate rule id '{rule.id}' (first defined at {seen[rule.id]})")
                continue
            seen[rule.id] = rule.pos
            rules.append(rule)
    if problems.items:
        raise SourceError(sorted(problems.items, key=lambda item: (item[0].file, item[0].line, item[0].col)))
    return rules


def _rule_files(paths: list[str | Path], problems: _Problems) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.endswith(".test.yaml")))
        elif path.is_file():
            files.append(path)
        else:
            problems.add(Pos(str(path), 1, 1), "no such rule file or folder")
    return files
