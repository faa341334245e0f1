"""YAML rules: load and validate them (every problem as file:line:col), and model them.

A rule watches one entity's current state (its fields, lines and change
history) and fires while its condition holds, after holding for `for:` if
given. The condition language lives in engine.conditions; this module reads
the rule around it. Nothing here evaluates user text.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import calendar as calendars
from engine.clock import parse_duration
from engine.conditions import (
    OPERATORS,
    All,
    AnyOf,
    At,
    Changed,
    Cmp,
    Cond,
    ConditionParser,
    Lines,
    Not,
    Now,
    Problems,
    comparisons,
    leaves,
    size,
)
from engine.pattern import durable_rejects
from engine.schema import DECLARE_HINT, known_fields, line_fields
from engine.templates import NAME
from orderwatch.record import ENTITIES
from orderwatch.yamlsrc import Map, Pos, Seq, SourceError, load_file, pos_of, short

__all__ = [
    "OPERATORS",
    "SEVERITIES",
    "All",
    "AnyOf",
    "At",
    "Changed",
    "Cmp",
    "Cond",
    "Escalation",
    "Lines",
    "Not",
    "Now",
    "Rule",
    "check_template",
    "load_rules",
    "parse_duration",
    "pattern_problems",
    "rule_files",
    "walk",
]

SEVERITIES = ("info", "warning", "critical")
RULE_KEYS = {
    "id", "title", "description", "entity", "when", "for", "keep_firing_for", "calendar", "severity", "owner",
    "labels", "summary", "escalate", "per",
}
TEMPLATE_EXTRA = {
    "key", "entity", "rule", "now", "overdue_days", "days_left", "changed_fields", "changed_by",
    "changed_at",
}
# What a per-line rule's templates name besides the order's and the line's fields.
LINE_EXTRA = {"order", "line"}
MAX_RULES = 1000  # in all the files loaded together
MAX_CONDITIONS = 32  # comparisons in one rule's `when`, line conditions included
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_LANG = re.compile(r"^[a-z]{2}(?:-[A-Za-z]{2,4})?$")


@dataclass(frozen=True, slots=True)
class Escalation:
    """One escalation step: after the alert has fired this long, raise severity / notify someone."""

    after: float
    severity: str | None = None
    notify: str | None = None
    text: str = ""  # the duration as written

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"after": self.text, "after_seconds": self.after}
        if self.severity:
            out["severity"] = self.severity
        if self.notify:
            out["notify"] = self.notify
        return out


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
    for_seconds: float = 0.0
    # Prometheus' keep_firing_for: once firing, it keeps firing this long after the condition stops.
    keep_firing_for: float = 0.0
    calendar: str | None = None  # the business calendar its `bd` counts on (None: the default one)
    business_calendar: calendars.BusinessCalendar | None = field(default=None, compare=False, repr=False)
    escalate: tuple[Escalation, ...] = ()
    # {"title": {lang: template}, "summary": {...}} when written by language; empty for a single text.
    texts: dict[str, dict[str, str]] = field(default_factory=dict)
    # "line": the rule fires per order line (key ORDER#LINE), on the line's fields over the order's.
    per: str | None = None

    def time_fields(self) -> list[str]:
        """Fields compared with `now`, in document order (the first one is the rule's deadline)."""
        return list(dict.fromkeys(c.field for c in comparisons(self.when) if c.is_time))

    def fields(self) -> set[str]:
        return {c.field for c in comparisons(self.when)}

    def changes(self) -> list[Changed]:
        return [leaf for leaf in leaves(self.when) if isinstance(leaf, Changed)]


def walk(cond: Cond) -> list[Cmp]:
    """Every entity-level comparison in a condition tree."""
    return comparisons(cond)


# --- templates -----------------------------------------------------------

_FORMATTER = string.Formatter()


def check_template(text: str, entity: str, extra: set[str] = TEMPLATE_EXTRA) -> str | None:
    """Why a `{field}` template is bad, or None. Only plain names are allowed."""
    allowed = known_fields(entity) | extra
    try:
        parsed = list(_FORMATTER.parse(text))
    except ValueError as exc:
        return f"bad template: {exc} (a literal brace is written {{{{ or }}}})"
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if not re.fullmatch(NAME, name) or spec or conv:
            return f"bad template placeholder {{{name}}}: only {{field}} is allowed"
        if name not in allowed:
            return f"template names unknown field '{name}'; known: {', '.join(sorted(allowed))} {DECLARE_HINT}"
    return None


def _text(node: Map, key: str, entity: str, problems: Problems,
          extra: set[str] = TEMPLATE_EXTRA) -> tuple[str, dict[str, str]]:
    """A template, or a {language: template} mapping: (the texts joined as 'zh / en', {language: text}).

    Each language's text is checked on its own, so a problem is reported at its own line."""
    value = node.get(key)
    if value is None:
        return "", {}
    if isinstance(value, Map):
        texts: dict[str, str] = {}
        for lang, text in value.items():
            if not _LANG.match(lang):
                problems.add(value.at(lang), f"{key} by language is {{zh: …, en: …}}; got {lang!r}")
                continue
            if not isinstance(text, str) or not text.strip():
                problems.add(value.at(lang), f"{key} in {lang} must be a text, got {short(text)}")
                continue
            why = check_template(text, entity, extra)
            if why:
                problems.add(value.at(lang), f"{key} in {lang}: {why}")
                continue
            texts[lang] = text
        if not value:
            problems.add(node.at(key), f"{key} by language needs at least one text: {{zh: …, en: …}}")
        return " / ".join(texts.values()), texts
    if not isinstance(value, str):
        problems.add(node.at(key), f"{key} is a text or a {{zh: …, en: …}} mapping")
        return "", {}
    why = check_template(value, entity, extra)
    if why:
        problems.add(node.at(key), why)
    return value, {}


# --- loading --------------------------------------------------------------


def _escalations(value: Any, pos: Pos, problems: Problems) -> tuple[Escalation, ...]:
    if value is None:
        return ()
    if not isinstance(value, Seq) or not value:
        problems.add(pos, "escalate is a list of steps, each {after: <duration>, severity: …, notify: …}")
        return ()
    steps: list[Escalation] = []
    for i, step in enumerate(value):
        spos = value.item_pos[i]
        if not isinstance(step, Map) or "after" not in step:
            problems.add(spos, "an escalation step needs 'after: <duration>'")
            continue
        extra = sorted(set(step) - {"after", "severity", "notify"})
        if extra:
            problems.add(step.at(extra[0]), f"unknown key '{extra[0]}' in escalation step; known: after, severity, notify")
            continue
        try:
            after = parse_duration(step["after"])
        except ValueError as exc:
            problems.add(step.at("after"), str(exc))
            continue
        severity = step.get("severity")
        if severity is not None and severity not in SEVERITIES:
            problems.add(step.at("severity"), f"severity must be one of {', '.join(SEVERITIES)}")
            continue
        if steps and after <= steps[-1].after:
            problems.add(step.at("after"), "escalation steps must come in increasing 'after' order")
            continue
        notify = step.get("notify")
        if notify is not None and not isinstance(notify, str):
            problems.add(step.at("notify"), f"notify is one name (a person, a team or 'manager'), got {short(notify)}")
            continue
        steps.append(Escalation(after, severity, None if notify is None else str(notify), str(step["after"])))
    return tuple(steps)


def _parse_rule(node: Any, pos: Pos, problems: Problems,
                known: dict[str, calendars.BusinessCalendar] | None = None) -> Rule | None:
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
        problems.add(node.at("id"), f"rule id must be lower-case letters, digits, '-', '_' or '.': {short(rule_id)}")
    entity = node["entity"]
    if not isinstance(entity, str) or not known_fields(entity):
        problems.add(node.at("entity"), f"unknown entity {short(entity)}")
        return None
    per = node.get("per")
    extra = TEMPLATE_EXTRA
    fields = known_fields(entity)
    having = ", ".join(e for e in ENTITIES if line_fields(e))
    if per is not None and per != "line":
        problems.add(node.at("per"), f"per is 'line' (a rule per order line, for {having}), got {short(per)}")
        per = None
    elif per == "line" and not line_fields(entity):
        problems.add(node.at("per"), f"per: line is for entities with lines ({having}); {entity} has none")
        per = None
    if per == "line":
        fields = fields | line_fields(entity)
        extra = TEMPLATE_EXTRA | line_fields(entity) | LINE_EXTRA
    severity = node.get("severity", "warning")
    if severity not in SEVERITIES:
        problems.add(node.at("severity"), f"severity must be one of {', '.join(SEVERITIES)}")
    owner = node.get("owner")
    if owner is not None and not isinstance(owner, str):
        problems.add(node.at("owner"), f"owner is a field name of {entity}; known: {', '.join(sorted(fields))}")
    elif owner is not None and owner not in fields:
        problems.add(node.at("owner"), f"owner '{owner}' is not a field of {entity}; known: {', '.join(sorted(fields))}")
    labels = node.get("labels")
    if labels is None:
        labels = Map()
    elif not isinstance(labels, Map):
        problems.add(node.at("labels"), "labels is a mapping of name: template")
        labels = Map()
    for name, value in labels.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            problems.add(labels.at(name), f"label '{name}' must be a text (a template), got {short(value)}; write it in quotes")
            continue
        why = check_template(str(value), entity, extra)
        if why:
            problems.add(labels.at(name), why)
    title, titles = _text(node, "title", entity, problems, extra)
    title = title or str(rule_id)
    summary, summaries = _text(node, "summary", entity, problems, extra)
    for_seconds = 0.0
    if "for" in node:
        try:
            for_seconds = parse_duration(node["for"])
        except ValueError as exc:
            problems.add(node.at("for"), str(exc))
    keep_firing_for = 0.0
    if "keep_firing_for" in node:
        try:
            keep_firing_for = parse_duration(node["keep_firing_for"])
        except ValueError as exc:
            problems.add(node.at("keep_firing_for"), str(exc))
    calendar = node.get("calendar")
    business_calendar = None
    if calendar is not None:
        business_calendar = find_calendar(calendar, known or {})
        if business_calendar is None:
            names = sorted({*calendars.SHIPPED, *(known or {})})
            problems.add(node.at("calendar"), f"unknown calendar {short(calendar)}; known: {', '.join(names)} "
                         "(define one under `calendars:`)")
    escalate = _escalations(node.get("escalate"), node.at("escalate"), problems)
    parser = ConditionParser(entity, problems)
    if per == "line":
        parser.fields = fields  # the line's fields, and the order's
        parser.scope = f"a line of {entity} or its order"
    when = parser.parse(node["when"], node.at("when"))
    if when is not None and size(when) > MAX_CONDITIONS:
        problems.add(node.at("when"), f"rule has {size(when)} conditions; at most {MAX_CONDITIONS} (split it into several rules)")
    if len(problems.items) > before or when is None:
        return None
    return Rule(
        id=rule_id, title=title, entity=entity, when=when, severity=severity, pos=node.pos,
        owner=owner, labels={str(k): str(v) for k, v in labels.items()}, summary=summary,
        description=str(node.get("description", "")).strip(), for_seconds=for_seconds,
        keep_firing_for=keep_firing_for, calendar=None if calendar is None else str(calendar),
        business_calendar=business_calendar, escalate=escalate, texts={k: v for k, v in (("title", titles), ("summary", summaries)) if v},
        per=per,
    )


def find_calendar(name: Any, known: dict[str, calendars.BusinessCalendar]) -> calendars.BusinessCalendar | None:
    """A calendar by name: the rule files' own first, then the shipped ones."""
    if not isinstance(name, str):
        return None
    return known.get(name) or calendars.shipped(name)


def _calendars(docs: list[tuple[Path, Any]], problems: Problems) -> dict[str, calendars.BusinessCalendar]:
    """The `calendars:` of every rule file (read before any rule names one)."""
    found: dict[str, calendars.BusinessCalendar] = {}
    for _path, doc in docs:
        node = doc.get("calendars") if isinstance(doc, Map) else None
        if node is None:
            continue
        if not isinstance(node, Map):
            problems.add(doc.at("calendars"), "calendars is a mapping of name: {base, timezone, weekdays, holidays, workdays}")
            continue
        for name, spec in node.items():
            if not isinstance(spec, Map):
                problems.add(node.at(name), f"calendar {name} is a mapping (base, timezone, weekdays, holidays, workdays)")
                continue
            if name in found:
                problems.add(node.at(name), f"calendar {name!r} is defined twice")
                continue
            try:
                found[name] = calendars.parse_calendar(str(name), spec, found)
            except ValueError as exc:
                problems.add(node.at(name), str(exc))
    return found


def pattern_problems(rules: list[Rule]) -> list[tuple[Pos, str]]:
    """The `matches` patterns durable_rules cannot compile (asks durable_rules: call it on its thread)."""
    out: list[tuple[Pos, str]] = []
    pending: list[Cond] = [rule.when for rule in rules]
    while pending:
        cond = pending.pop()
        if isinstance(cond, Lines):
            pending.append(cond.cond)
        elif isinstance(cond, Not):
            pending.append(cond.item)
        elif isinstance(cond, (All, AnyOf)):
            pending.extend(cond.items)
        elif isinstance(cond, Cmp) and cond.op == "matches":
            why = durable_rejects(cond.operand.text)
            if why:
                out.append((cond.pos, f"pattern {short(cond.operand.source)}: {why}"))
    return out


def load_rules(paths: Sequence[str | Path], durable: bool = True) -> list[Rule]:
    """Load every rule file (a folder means its *.yaml files); raise SourceError listing all problems.

    `durable=False` leaves out the one check that asks durable_rules (`pattern_problems`),
    so that rules can be loaded on another thread than the one that runs durable_rules."""
    problems = Problems()
    rules: list[Rule] = []
    seen: dict[str, Pos] = {}
    count = 0
    docs: list[tuple[Path, Any]] = []
    for path in rule_files(paths):
        if not path.is_file():
            problems.add(Pos(str(path), 1, 1), "no such rule file or folder")
            continue
        try:
            docs.append((path, load_file(path)))
        except SourceError as exc:
            problems.items.extend(exc.problems)
    known = _calendars(docs, problems)
    for path, doc in docs:
        items = _rule_list(doc, Pos(str(path), 1, 1), problems)
        if items is None:
            continue
        for index, node in enumerate(items):
            count += 1
            if count > MAX_RULES:
                problems.add(items.item_pos[index], f"more than {MAX_RULES} rules (in all the rule files)")
                break
            rule = _parse_rule(node, items.item_pos[index], problems, known)
            if rule is None:
                continue
            if rule.id in seen:
                problems.add(rule.pos, f"duplicate rule id '{rule.id}' (first defined at {seen[rule.id]})")
                continue
            seen[rule.id] = rule.pos
            rules.append(rule)
    if durable:
        problems.items.extend(pattern_problems(rules))
    if problems.items:
        raise SourceError(sorted(problems.items, key=lambda item: (item[0].file, item[0].line, item[0].col)))
    return rules


def _rule_list(doc: Any, top: Pos, problems: Problems) -> Seq | None:
    """The rules of a file: a list, or a mapping of `rules:` and `lists:` (named lists for YAML anchors)."""
    if doc is None:
        return None  # an empty file holds no rules
    if isinstance(doc, Map):
        for key in doc:
            if key not in ("rules", "lists", "calendars"):
                problems.add(doc.at(key), f"unknown top-level key '{key}'; known: rules, lists, calendars")
        lists = doc.get("lists")
        if lists is not None and not (isinstance(lists, Map) and all(isinstance(v, list) for v in lists.values())):
            problems.add(doc.at("lists"), "lists is a mapping of name: [values] (use them with YAML anchors)")
        doc = doc.get("rules")
        if doc is None:
            return None
    if not isinstance(doc, Seq):
        problems.add(pos_of(doc, top), "a rule file is a list of rules (or a mapping with 'rules:')")
        return None
    return doc


def rule_files(paths: Sequence[str | Path]) -> list[Path]:
    """The rule files named by files and folders (a folder's *.yaml/*.yml, test files excluded)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(
                p for p in path.iterdir()
                if p.suffix in (".yaml", ".yml") and not p.name.endswith((".test.yaml", ".test.yml"))
            ))
        else:
            files.append(path)
    # A file named twice (`rules/` and `rules/delays.yaml`) is read once, not reported as its own duplicate.
    seen: set[Path] = set()
    unique: list[Path] = []
    for path in files:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            unique.append(path)
    return unique
