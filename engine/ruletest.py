"""`rules test`: YAML unit tests for rules, in the spirit of `promtool test rules`.

A test file names rule files and lists tests; each test gives change records
at instants and expects, at later instants, exactly which alerts are firing
(and optionally which resolved since the previous check):

    rule_files: [delays.yaml]            # relative to this file; default: <name>.yaml
    tests:
      - name: overdue one day after the expected date, resolved on receipt
        start: 2025-03-03T00:00:00Z      # `at` values are offsets from here, or ISO times
        defaults: {entity: purchase_order}
        records:
          - at: 0h
            key: PO-1
            fields: {status: open, expected_date: 2025-03-05, supplier: Acme, buyer: li.wei}
        expect:
          - at: 3d
            firing:
              - {rule: po-delivery-overdue, key: PO-1, owner: li.wei, labels: {supplier: Acme}}
          - at: 9d
            firing: []
            resolved: [{rule: po-delivery-overdue, key: PO-1}]

The records run through engine.simulate (the live engine code on simulated
time). Only the attributes an expected alert lists are compared (`labels` as a
subset). `rules: [ids]` in an expectation restricts it to those rules. A rule
written in several languages is checked in any of them: an expected `title` or
`summary` text matches the alert's text in one language (values as stored: ISO
dates, plain numbers) or all of them joined `zh / en`; `{zh: …, en: …}` checks
each language given.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.clock import iso, parse_duration, to_epoch
from engine.evaluator import Evaluator
from engine.rules import load_rules
from engine.simulate import Simulation, sort_records
from engine.templates import render
from orderwatch.alert import AlertEvent, values_at
from orderwatch.record import ChangeRecord, InvalidRecord
from orderwatch.yamlsrc import Map, Pos, Seq, SourceError, load_file

_TEST_KEYS = {"name", "start", "defaults", "records", "expect"}
_RECORD_KEYS = {"at", "entity", "key", "source", "seq", "op", "fields", "changed", "actor"}
_EXPECT_KEYS = {"at", "firing", "resolved", "rules"}
_ALERT_KEYS = {"rule", "entity", "key", "owner", "severity", "title", "summary", "labels"}


@dataclass
class Check:
    at: float
    pos: Pos
    firing: list[Map]
    resolved: list[Map] | None
    rules: set[str] | None
    rule_refs: list[tuple[str, Pos]] = field(default_factory=list)  # every rule id named, and where


@dataclass
class Case:
    name: str
    pos: Pos
    records: list[ChangeRecord]
    checks: list[Check]


@dataclass
class Result:
    case: Case
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


class _Reader:
    """Validates a test file, collecting positioned problems."""

    def __init__(self) -> None:
        self.problems: list[tuple[Pos, str]] = []

    def fail(self, pos: Pos, msg: str) -> None:
        self.problems.append((pos, msg))

    def keys(self, node: Map, allowed: set[str], what: str) -> bool:
        extra = [k for k in node if k not in allowed]
        for key in extra:
            self.fail(node.at(key), f"unknown key '{key}' in {what}; known: {', '.join(sorted(allowed))}")
        return not extra

    def instant(self, value: Any, start: float | None, pos: Pos) -> float | None:
        text = str(value)
        epoch = to_epoch(text) if "-" in text[1:] or "T" in text else None
        if epoch is not None:
            return epoch
        try:
            offset = parse_duration(value)
        except ValueError as exc:
            self.fail(pos, f"'at' is an ISO time or an offset from 'start': {exc}")
            return None
        if start is None:
            self.fail(pos, "an offset 'at' needs 'start' in the test")
            return None
        return start + offset

    def listed(self, node: Map, key: str, what: str) -> Seq:
        value = node.get(key)
        if value is None:
            return Seq()
        if not isinstance(value, Seq):
            self.fail(node.at(key), f"{key} is a list of {what}")
            return Seq()
        return value

    def case(self, node: Any, pos: Pos) -> Case | None:
        if not isinstance(node, Map) or not self.keys(node, _TEST_KEYS, "a test"):
            if not isinstance(node, Map):
                self.fail(pos, "a test is a mapping: name, start, defaults, records, expect")
            return None
        start = None
        if "start" in node:
            start = to_epoch(str(node["start"]))
            if start is None:
                self.fail(node.at("start"), f"'start' is an ISO time (2025-03-03T00:00:00Z), got {node['start']!r}")
                return None
        defaults = node.get("defaults") or {}
        if not isinstance(defaults, dict):
            self.fail(node.at("defaults"), "defaults is a mapping of record keys (entity, source, actor…)")
            defaults = {}
        records: list[ChangeRecord] = []
        seq = 0
        for i, rec in enumerate(self.listed(node, "records", "records, each {at, key, fields …}")):
            rpos = node["records"].item_pos[i]
            if not isinstance(rec, Map) or not self.keys(rec, _RECORD_KEYS, "a record") or "at" not in rec:
                self.fail(rpos, "a record needs 'at' (and key, fields …)")
                continue
            at = self.instant(rec["at"], start, rec.at("at"))
            if at is None:
                continue
            seq += 1
            data = {"source": "test", "seq": seq, **defaults, **{k: v for k, v in rec.items() if k != "at"}}
            data["ts"] = iso(at)
            try:
                records.append(ChangeRecord.from_dict(data))
            except InvalidRecord as exc:
                self.fail(rpos, f"not a valid change record: {exc}")
        checks: list[Check] = []
        for i, exp in enumerate(self.listed(node, "expect", "expectations, each {at, firing …}")):
            epos = node["expect"].item_pos[i]
            if not isinstance(exp, Map) or not self.keys(exp, _EXPECT_KEYS, "an expectation") or "at" not in exp:
                self.fail(epos, "an expectation needs 'at' and 'firing'")
                continue
            at = self.instant(exp["at"], start, exp.at("at"))
            firing = self.alerts(exp.get("firing", []), exp.at("firing"))
            resolved = self.alerts(exp["resolved"], exp.at("resolved")) if "resolved" in exp else None
            rules = exp.get("rules")
            if rules is not None and not (isinstance(rules, Seq) and all(isinstance(r, str) for r in rules)):
                self.fail(exp.at("rules"), "rules is a list of rule ids")
                continue
            refs = [(str(a["rule"]), a.at("rule")) for a in (firing or []) + (resolved or [])]
            if rules:
                refs += [(r, rules.item_pos[i]) for i, r in enumerate(rules)]
            if at is not None and firing is not None:
                checks.append(Check(at, epos, firing, resolved, set(rules) if rules else None, refs))
        if any(b.at < a.at for a, b in itertools.pairwise(checks)):
            self.fail(node.at("expect"), "expectations must be in time order")
        return Case(str(node.get("name", f"test at line {pos.line}")), pos, records, checks)

    def alerts(self, value: Any, pos: Pos) -> list[Map] | None:
        if not isinstance(value, list):
            self.fail(pos, "a list of alerts, each {rule, key, …}")
            return None
        out = []
        seen: set[tuple[str, str]] = set()
        for i, item in enumerate(value):
            ipos = value.item_pos[i] if isinstance(value, Seq) else pos
            if not isinstance(item, Map) or "rule" not in item or "key" not in item:
                self.fail(ipos, "an expected alert needs 'rule' and 'key'")
                continue
            if item.get("labels") is not None and not isinstance(item["labels"], Map):
                self.fail(item.at("labels"), "labels is a mapping of name: value (the labels to compare)")
                continue
            if _ident(item) in seen:
                self.fail(ipos, f"alert {item['rule']} {item['key']} is listed twice")
                continue
            seen.add(_ident(item))
            if self.keys(item, _ALERT_KEYS, "an expected alert"):
                out.append(item)
        return out


def load_test_file(path: Path) -> tuple[list[Path], list[Case]]:
    """The rule files and cases of a test file; raises SourceError with every problem."""
    doc = load_file(path)
    reader = _Reader()
    top = Pos(str(path), 1, 1)
    if not isinstance(doc, Map) or not isinstance(doc.get("tests"), Seq):
        raise SourceError([(getattr(doc, "pos", top), "a test file is a mapping with 'tests:' (and 'rule_files:')")])
    reader.keys(doc, {"rule_files", "tests"}, "a test file")
    default = path.with_name(path.name.replace(".test.yaml", ".yaml").replace(".test.yml", ".yml"))
    names = doc.get("rule_files", [default.name])
    rule_paths = [path.parent / n for n in names] if isinstance(names, list) else []
    if not rule_paths:
        reader.fail(doc.at("rule_files"), "rule_files is a list of rule files, relative to this file")
    cases = [c for i, node in enumerate(doc["tests"]) if (c := reader.case(node, doc["tests"].item_pos[i]))]
    if reader.problems:
        raise SourceError(reader.problems)
    return rule_paths, cases


def _ident(alert: Any) -> tuple[str, str]:
    if isinstance(alert, AlertEvent):
        return alert.rule, alert.key
    return str(alert["rule"]), str(alert["key"])


def _show(event: AlertEvent) -> str:
    return f"{event.rule} {event.entity}:{event.key} owner={event.owner or '-'} severity={event.severity} summary={event.summary!r}"


def _compare(expected: list[Map], actual: list[AlertEvent], what: str) -> list[str]:
    lines: list[str] = []
    got = {_ident(e): e for e in actual}
    want = {_ident(e): e for e in expected}
    for ident in sorted(want.keys() - got.keys()):
        lines.append(f"  missing {what}:    {ident[0]} {ident[1]}")
    for ident in sorted(got.keys() - want.keys()):
        lines.append(f"  unexpected {what}: {_show(got[ident])}")
    for ident in sorted(want.keys() & got.keys()):
        exp, event = want[ident], got[ident]
        for key in sorted(set(exp) - {"rule", "key"}):
            if key == "labels":
                labels = exp["labels"] or {}
                wrong = {k: (v, event.labels.get(k)) for k, v in labels.items() if str(v) != event.labels.get(k)}
                for name, (w, g) in sorted(wrong.items()):
                    lines.append(f"  {ident[0]} {ident[1]}: label {name}: expected {w!r}, got {g!r}")
            elif key in ("title", "summary"):
                lines.extend(f"  {ident[0]} {ident[1]}: {line}" for line in _text_problems(key, exp[key], event))
            elif str(exp[key]) != str(getattr(event, key)):
                lines.append(f"  {ident[0]} {ident[1]}: {key}: expected {str(exp[key])!r}, got {getattr(event, key)!r}")
    return lines


def _text_problems(kind: str, expected: Any, event: AlertEvent) -> list[str]:
    """How an alert's title/summary differs from the expected text (any language) or {language: text}."""
    by_lang = (event.facts.get("texts") or {}).get(kind) or {}
    values = {**(event.facts.get("values") or {}), **values_at(event.facts, event.at.timestamp())}
    rendered = {lang: render(text, values, currency=True) for lang, text in by_lang.items() if lang}
    joined = str(getattr(event, kind))
    if isinstance(expected, Map):
        return [f"{kind} in {lang}: expected {str(text)!r}, got {rendered.get(str(lang))!r}"
                for lang, text in expected.items() if str(text) != rendered.get(str(lang))]
    if str(expected) == joined or str(expected) in rendered.values():
        return []
    got = rendered.get("en") or joined
    return [f"{kind}: expected {str(expected)!r}, got {got!r}"]


def run_case(evaluator: Evaluator, case: Case) -> Result:
    """Run one test case on simulated time."""
    result = Result(case)
    sim = Simulation(evaluator)
    records = sort_records(case.records)
    done = 0
    for check in case.checks:
        upto = done
        while upto < len(records) and records[upto].ts.timestamp() <= check.at:
            upto += 1
        sim.feed(records[done:upto])
        done = upto
        sim.advance(check.at)
        events = sim.take_events()
        wanted = check.rules

        def keep(event: AlertEvent, wanted: set[str] | None = wanted) -> bool:
            return wanted is None or event.rule in wanted

        lines = _compare(check.firing, [e for e in sim.firing() if keep(e)], "firing")
        if check.resolved is not None:
            resolved = [e for e in events if e.state == "resolved" and keep(e)]
            lines += _compare(check.resolved, resolved, "resolved")
        if lines:
            when = datetime.fromtimestamp(check.at, UTC).isoformat()
            result.failures.append(f"{check.pos}: at {when}:\n" + "\n".join(lines))
    return result


def run_file(path: Path) -> list[Result]:
    """Load a test file and its rules, and run every case; raises SourceError on load problems."""
    rule_paths, cases = load_test_file(path)
    rules = load_rules(rule_paths)
    ids = sorted(r.id for r in rules)
    unknown = [(pos, f"no rule '{rule_id}' in {', '.join(p.name for p in rule_paths)}; known: {', '.join(ids)}")
               for case in cases for check in case.checks for rule_id, pos in check.rule_refs if rule_id not in ids]
    if unknown:
        raise SourceError(unknown)
    evaluator = Evaluator(rules, name=f"ruletest.{path.stem}")
    return [run_case(evaluator, case) for case in cases]
