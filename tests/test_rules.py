"""The rule language: loading with positioned errors, the durable_rules JSON it compiles to,
every operator, templates, `for:` and escalation."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.compiler import compile_rules
from engine.evaluator import Evaluator
from engine.matcher import Matcher
from engine.rules import load_rules
from engine.state import EntityState, apply_record
from orderwatch.alert import AlertEvent
from orderwatch.record import ChangeRecord, InvalidRecord
from orderwatch.yamlsrc import SourceError

REPO = Path(__file__).resolve().parent.parent
NOW = "2025-03-10T00:00:00"  # a Monday


def ts(text: str) -> float:
    dt = datetime.fromisoformat(text)
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def record(key: str, seq: int, entity: str = "purchase_order", at: str = "2025-03-01T08:00:00+08:00",
           actor: str | None = None, **fields: Any) -> ChangeRecord:
    data: dict[str, Any] = {"source": "erp", "entity": entity, "key": key, "ts": at, "seq": seq, "fields": fields}
    if actor:
        data["actor"] = actor
    return ChangeRecord.from_dict(data)


def write_rules(tmp_path: Path, rules: list[dict[str, Any]], name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(rules, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def holds(tmp_path: Path, when: dict[str, Any], fields: dict[str, Any], now: str = NOW,
          entity: str = "purchase_order") -> bool:
    """Whether a one-rule condition holds for an entity with these fields at `now`."""
    ev = Evaluator(load_rules([write_rules(tmp_path, [{"id": "r", "entity": entity, "when": when}])]), name="ops")
    state = apply_record(None, record("K", 1, entity=entity, **fields), 0)
    assert state is not None
    return bool(ev.evaluate([state], ts(now)))


# --- compiled durable_rules JSON of the shipped rules -----------------------------------

def shipped(entity: str, rule_id: str) -> dict[str, Any]:
    program = compile_rules(load_rules([REPO / "rules"]))[entity]
    return next(rs[rule_id] for rs in program.rulesets if rule_id in rs)


def test_po_delivery_overdue_compiles_to_this_durable_rules_json() -> None:
    assert shipped("purchase_order", "po-delivery-overdue") == {"all": [{"m": {"$and": [
        # every fact carries now__t, durable_rules' session state object does not
        {"$ex": {"now__t": 1}},
        {"$or": [{"$nex": {"status": 1}}, {"$and": [
            {"$neq": {"status": "received"}}, {"$neq": {"status": "partially_received"}},
            {"$neq": {"status": "closed"}}, {"$neq": {"status": "cancelled"}}]}]},
        # not received_qty > 0: missing, or <= 0
        {"$or": [{"$nex": {"received_qty": 1}}, {"$lte": {"received_qty": 0}}]},
        # not any line with received_qty > 0: no lines, or every line has none
        {"$or": [{"$nex": {"lines": 1}}, {"$iall": {"lines": {"$or": [
            {"$nex": {"$i.received_qty": 1}}, {"$lte": {"$i.received_qty": 0}}]}}}]},
        # before: at or before now − 1 day, on epoch seconds
        {"$lte": {"expected_date__t": {"$sub": {"$l": {"$m": "now__t"}, "$r": 86400.0}}}},
    ]}}]}


def test_arithmetic_and_line_conditions_compile_to_durable_expressions() -> None:
    program = compile_rules(load_rules([REPO / "rules"]))["purchase_order"]
    (check,) = program.spec.line_checks  # received_qty < qty * 0.95 between two fields of one line
    assert shipped("purchase_order", "po-partially-received") == {"all": [{"m": {"$and": [
        {"$ex": {"now__t": 1}},
        {"$or": [{"$nex": {"status": 1}}, {"$and": [
            {"$neq": {"status": "received"}}, {"$neq": {"status": "closed"}}, {"$neq": {"status": "cancelled"}}]}]},
        {"$lte": {"expected_date__t": {"$sub": {"$l": {"$m": "now__t"}, "$r": 86400.0}}}},
        {"$or": [
            {"$and": [{"$gt": {"received_qty": 0}}, {"$ex": {"qty": 1}},
                      {"$lt": {"received_qty": {"$mul": {"$l": {"$m": "qty"}, "$r": 0.95}}}}]},
            {"$iany": {"lines": {"$and": [{"$gt": {"$i.received_qty": 0}}, {f"$i.{check.prop}": True}]}}},
            {"$and": [{"status": "partially_received"}, {"$nex": {"received_qty": 1}}]},
        ]},
    ]}}]}


def test_change_predicates_and_business_days_compile_to_durable_expressions() -> None:
    changed = shipped("purchase_order", "po-changed-after-approval")["all"][0]["m"]["$and"]
    (key,) = changed[2]["$ex"]
    assert key.startswith("chg_") and key.endswith("__t")
    assert changed == [
        {"$ex": {"now__t": 1}},
        {"approval_status": "approved"},
        {"$ex": {key: 1}}, {"$ex": {"approved_at__t": 1}}, {"$gt": {key: {"$m": "approved_at__t"}}},
    ]
    within = shipped("purchase_order", "po-changed-by-unauthorized")["all"][0]["m"]["$and"]
    assert within[2] == {"$gt": {within[1]["$ex"].popitem()[0]: {"$sub": {"$l": {"$m": "now__t"}, "$r": 2592000.0}}}}
    confirmation = shipped("purchase_order", "po-confirmation-overdue")["all"][0]["m"]["$and"]
    assert {"$lte": {"sent_date__b": {"$sub": {"$l": {"$m": "now__b"}, "$r": 172800.0}}}} in confirmation
    assert {"$nex": {"confirmed_date": 1}} in confirmation


def test_division_by_a_field_is_computed_by_the_engine_not_by_durable_rules() -> None:
    # durable_rules' integer division by zero kills the process: 50000 / unit_price is
    # computed into a property of the fact, and compared there.
    limit = shipped("purchase_order", "po-over-limit-unapproved")["all"][0]["m"]["$and"][3]
    (prop,) = limit["$or"][1]["$and"][1]["$ex"]
    assert prop.startswith("__x")
    assert limit == {"$or": [
        {"$gt": {"amount": 50000}},
        {"$and": [{"$nex": {"amount": 1}}, {"$ex": {prop: 1}}, {"$gt": {"qty": {"$m": prop}}}]},
    ]}


def test_negated_patterns_are_decided_by_durable_rules_in_a_first_pass(tmp_path: Path) -> None:
    path = write_rules(tmp_path, [{"id": "not-urgent", "entity": "purchase_order",
                                   "when": {"not": {"note": {"contains": "加急"}}}}])
    program = compile_rules(load_rules([path]))["purchase_order"]
    (neg,) = program.spec.negated_patterns
    assert neg.pattern.text == ".*加急.*"
    assert program.rulesets[0]["not-urgent"] == {"all": [{"m": {"$and": [
        {"$ex": {"now__t": 1}}, {"$or": [{"$nex": {"note": 1}}, {neg.prop: False}]}]}}]}


def test_a_batch_of_facts_leaves_nothing_behind_in_durable_rules() -> None:
    # After each batch the facts are retracted (by id and session): durable_rules refuses a
    # fact id it still holds, so the same ids asserted again prove the first batch is gone.
    matcher = Matcher("leftovers", ({"open": {"all": [{"m": {"$and": [
        {"$ex": {"now__t": 1}}, {"status": "open"}]}}]}},))
    try:
        facts = [{"now__t": 1.0, "status": status} for status in ("open", "closed", "open")]
        assert matcher.match([dict(f) for f in facts]) == [{"open"}, set(), {"open"}]
        matcher._ids = itertools.count()  # the same fact ids again
        assert matcher.match([dict(f) for f in facts]) == [{"open"}, set(), {"open"}]
    finally:
        matcher.close()


def test_time_comparisons_wake_an_entity_only_while_the_rest_of_their_rule_can_hold() -> None:
    # The guard of a rule is its condition with the time comparisons left open. A received PO
    # does not match the guard of po-delivery-overdue, so its expected date is no deadline.
    assert shipped("purchase_order", "guard:po-delivery-overdue") == {"all": [{"m": {"$and": [
        {"$ex": {"now__t": 1}},
        {"$or": [{"$nex": {"status": 1}}, {"$and": [
            {"$neq": {"status": "received"}}, {"$neq": {"status": "partially_received"}},
            {"$neq": {"status": "closed"}}, {"$neq": {"status": "cancelled"}}]}]},
        {"$or": [{"$nex": {"received_qty": 1}}, {"$lte": {"received_qty": 0}}]},
        {"$or": [{"$nex": {"lines": 1}}, {"$iall": {"lines": {"$or": [
            {"$nex": {"$i.received_qty": 1}}, {"$lte": {"$i.received_qty": 0}}]}}}]},
        # Without an expected date there is no deadline to wake for: the guard need not match.
        {"$ex": {"expected_date__t": 1}},
    ]}}]}
    ev = Evaluator(load_rules([REPO / "rules" / "delays.yaml"]), name="guards")
    open_po = apply_record(None, record("PO-1", 1, status="open", expected_date="2025-03-20", buyer="b"), 0)
    received = apply_record(None, record("PO-2", 1, status="received", expected_date="2025-03-20",
                                         received_date="2025-03-09", buyer="b"), 0)
    ev.evaluate([open_po, received], ts(NOW))
    assert open_po["due"] == ts("2025-03-21T00:00:00")
    assert received["due"] == ts("2025-03-23T00:00:00")  # received_date + 14d (not invoiced), not 03-21


# --- every operator -------------------------------------------------------------

@pytest.mark.parametrize("when, fields, expected", [
    # eq (or a bare value), ne
    ({"status": "open"}, {"status": "open"}, True),
    ({"status": {"eq": "open"}}, {"status": "closed"}, False),
    ({"status": "open"}, {}, False),
    ({"status": {"ne": "open"}}, {}, True),
    ({"status": {"ne": "open"}}, {"status": "open"}, False),
    ({"status": {"ne": "open"}}, {"status": "closed"}, True),
    # lt le gt ge, numbers and ISO strings
    ({"qty": {"gt": 100}}, {"qty": 150}, True),
    ({"qty": {"gt": 100}}, {"qty": 100}, False),
    ({"qty": {"ge": 100}}, {"qty": 100}, True),
    ({"qty": {"lt": 100}}, {"qty": 100}, False),
    ({"qty": {"le": 100}}, {"qty": 100}, True),
    ({"qty": {"le": 100}}, {"qty": 150}, False),
    ({"qty": {"lt": 100}}, {}, False),
    ({"order_date": {"lt": "2025-03-01"}}, {"order_date": "2025-02-01"}, True),
    # in / not_in, and a bare list meaning in
    ({"status": {"in": ["open", "confirmed"]}}, {"status": "confirmed"}, True),
    ({"status": ["open", "confirmed"]}, {"status": "closed"}, False),
    ({"status": {"not_in": ["open"]}}, {}, True),
    ({"status": {"not_in": ["open"]}}, {"status": "open"}, False),
    # contains (a substring, case-sensitive, special characters literal)
    ({"supplier": {"contains": "Bear"}}, {"supplier": "Acme Bearings"}, True),
    ({"supplier": {"contains": "bear"}}, {"supplier": "Acme Bearings"}, False),
    ({"supplier": {"contains": "精密"}}, {"supplier": "苏州精密 Suzhou Precision"}, True),
    ({"note": {"contains": "a.b"}}, {"note": "axb"}, False),
    ({"note": {"contains": "a.b"}}, {"note": "see a.b"}, True),
    ({"note": {"contains": "x"}}, {}, False),
    # matches (the whole value; \d, (?i))
    ({"key": {"matches": r"K"}}, {}, True),  # `key` is the entity's key unless the source sends one
    ({"supplier": {"matches": r"Acme"}}, {"supplier": "Acme Bearings"}, False),
    ({"supplier": {"matches": r"^Acme.*$"}}, {"supplier": "Acme Bearings"}, True),
    ({"note": {"matches": r"PO-\d{4}-\d+"}}, {"note": "PO-2025-0042"}, True),
    ({"note": {"matches": r"PO-\d{4}-\d+"}}, {"note": "PO-25-0042"}, False),
    ({"supplier": {"matches": "(?i)acme.*"}}, {"supplier": "ACME Ltd"}, True),
    ({"supplier": {"matches": "[A-C]cme (Ltd|GmbH)"}}, {"supplier": "Acme GmbH"}, True),
    # negated contains / matches (a missing field does not contain anything)
    ({"not": {"note": {"contains": "加急"}}}, {"note": "普通"}, True),
    ({"not": {"note": {"contains": "加急"}}}, {"note": "请加急处理"}, False),
    ({"not": {"note": {"contains": "加急"}}}, {}, True),
    ({"not": {"note": {"matches": r"\d+"}}}, {"note": "123"}, False),
    # exists / missing
    ({"approved_by": {"missing": True}}, {"approved_by": "x"}, False),
    ({"approved_by": {"missing": True}}, {}, True),
    ({"approved_by": {"exists": True}}, {"approved_by": "x"}, True),
    # before (at or before) / after (strictly after), now ± duration; now is 2025-03-10 00:00
    ({"expected_date": {"before": "now - 1d"}}, {"expected_date": "2025-03-09"}, True),
    ({"expected_date": {"before": "now - 1d"}}, {"expected_date": "2025-03-09T00:00:01Z"}, False),
    ({"expected_date": {"before": "now"}}, {"expected_date": "2025-03-10T08:00:00+08:00"}, True),
    ({"expected_date": {"after": "now + 2d"}}, {"expected_date": "2025-03-12"}, False),
    ({"expected_date": {"after": "now + 2d"}}, {"expected_date": "2025-03-12T00:00:01Z"}, True),
    ({"expected_date": {"after": "now + 1d12h"}}, {"expected_date": "2025-03-11T13:00:00Z"}, True),
    ({"expected_date": {"before": "now - 1w"}}, {"expected_date": "2025-03-03"}, True),
    ({"expected_date": {"before": "now - 30m"}}, {"expected_date": "not a date"}, False),
    ({"not": {"expected_date": {"before": "now"}}}, {}, True),
    # another date field ± duration
    ({"received_date": {"after": "expected_date + 1d"}}, {"received_date": "2025-03-07", "expected_date": "2025-03-05"}, True),
    ({"received_date": {"after": "expected_date + 2d"}}, {"received_date": "2025-03-07", "expected_date": "2025-03-05"}, False),
    ({"received_date": {"after": "expected_date"}}, {"received_date": "2025-03-07"}, False),
    ({"not": {"received_date": {"after": "expected_date"}}}, {"received_date": "2025-03-07"}, True),
    # business days (Monday to Friday): Thu → Mon is two business days, Fri → Mon one
    ({"sent_date": {"before": "now - 2bd"}}, {"sent_date": "2025-03-06"}, True),
    ({"sent_date": {"before": "now - 2bd"}}, {"sent_date": "2025-03-07"}, False),
    ({"sent_date": {"before": "now - 2bd"}}, {"sent_date": "2025-03-08T12:00:00Z"}, False),
    ({"received_date": {"after": "expected_date + 1bd"}}, {"received_date": "2025-03-08T12:00:00Z", "expected_date": "2025-03-07"}, False),
    ({"received_date": {"after": "expected_date + 1bd"}}, {"received_date": "2025-03-11T09:00:00Z", "expected_date": "2025-03-07"}, True),
    # arithmetic between fields
    ({"received_qty": {"lt": "qty * 0.95"}}, {"received_qty": 90, "qty": 100}, True),
    ({"received_qty": {"lt": "qty * 0.95"}}, {"received_qty": 96, "qty": 100}, False),
    ({"received_qty": {"lt": "qty * 0.95"}}, {"received_qty": 10}, False),
    ({"not": {"received_qty": {"lt": "qty * 0.95"}}}, {"received_qty": 10}, True),
    ({"amount": {"lt": "(qty - received_qty) * unit_price + 1"}}, {"amount": 100, "qty": 10, "received_qty": 0, "unit_price": 10}, True),
    ({"received_qty": {"le": "qty / 2"}}, {"received_qty": 3.5, "qty": 7}, True),
    ({"qty": {"gt": "50000 / unit_price"}}, {"qty": 30000, "unit_price": 2}, True),
    ({"qty": {"gt": "50000 / unit_price"}}, {"qty": 30000, "unit_price": 0}, False),  # no crash
    # arithmetic over numbers only is computed, not compared as text; dates stay literals
    ({"qty": {"gt": "100 * 2"}}, {"qty": 150}, False),
    ({"qty": {"lt": "(100 + 50) * 2"}}, {"qty": 250}, True),
    ({"qty": {"gt": "100 - 5"}}, {"qty": 99}, True),
    ({"order_date": {"lt": "2025-01-01"}}, {"order_date": "2024-12-31"}, True),
    ({"order_date": {"lt": "2025-01-01"}}, {"order_date": "2025-01-02"}, False),
    ({"qty": {"gt": "-received_qty"}}, {"qty": 0, "received_qty": 5}, True),
    # order lines
    ({"any_line": {"qty": {"gt": 5}}}, {"lines": [{"qty": 1}, {"qty": 9}]}, True),
    ({"any_line": {"qty": {"gt": 5}}}, {"lines": [{"qty": 1}]}, False),
    ({"any_line": {"qty": {"gt": 5}}}, {"lines": []}, False),
    ({"all_lines": {"status": "received"}}, {"lines": [{"status": "received"}, {"status": "received"}]}, True),
    ({"all_lines": {"status": "received"}}, {"lines": [{"status": "received"}, {"status": "open"}]}, False),
    ({"all_lines": {"status": "received"}}, {}, False),
    ({"not": {"all_lines": {"status": "received"}}}, {"lines": [{"status": "open"}]}, True),
    ({"not": {"any_line": {"qty": {"gt": 5}}}}, {}, True),
    ({"not": {"any_line": {"qty": {"gt": 5}}}}, {"lines": [{"qty": 6}]}, False),
    ({"any_line": {"received_qty": {"lt": "qty * 0.95"}}}, {"lines": [{"qty": 10, "received_qty": 10}, {"qty": 10, "received_qty": 5}]}, True),
    ({"all_lines": {"received_qty": {"ge": "qty"}}}, {"lines": [{"qty": 10, "received_qty": 10}, {"qty": 10}]}, False),
    ({"any_line": {"expected_date": {"before": "now - 1d"}, "status": {"ne": "received"}}},
     {"lines": [{"expected_date": "2025-03-01", "status": "received"}, {"expected_date": "2025-03-05"}]}, True),
    ({"any_line": {"received_date": {"after": "expected_date"}}},
     {"lines": [{"expected_date": "2025-03-01", "received_date": "2025-03-02"}]}, True),
    ({"any_line": {"sku": {"matches": "BOLT-.*"}}}, {"lines": [{"sku": "NUT-1"}, {"sku": "BOLT-M8"}]}, True),
    # nesting
    ({"not": {"qty": {"lt": 100}}}, {}, True),
    ({"not": {"all": [{"qty": {"lt": 100}}, {"status": "open"}]}}, {"qty": 5, "status": "open"}, False),
    ({"any": [{"qty": {"lt": 100}}, {"status": "open"}]}, {"qty": 500, "status": "open"}, True),
    ({"qty": {"gt": 1, "lt": 10}, "status": "open"}, {"qty": 5, "status": "open"}, True),
])
def test_operators(tmp_path: Path, when: dict[str, Any], fields: dict[str, Any], expected: bool) -> None:
    assert holds(tmp_path, when, fields) is expected


# --- positioned problems ------------------------------------------------------------

def test_rule_mistakes_are_reported_with_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "- id: late\n"
        "  entity: purchase_order\n"
        "  when:\n"
        "    expected_dat: {before: now - 1d}\n"
        "- id: late\n"
        "  entity: purchase_order\n"
        "  when: {qty: {greater: 3}, expected_date: {before: now - 1y}}\n"
        "  owner: nobody\n"
        "  summary: 'PO {key} {__class__.x}'\n"
        "- id: ok\n"
        "  entity: purchase_order\n"
        "  when: {received_qty: {lt: qty * fudge}, note: {matches: 'a(?=b)'}, any_line: {colour: red}}\n"
        "  for: soon\n"
        "  escalate: [{after: 1d, severity: urgent}]\n"
        "- id: ok\n"
        "  entity: purchase_order\n"
        "  when: {changed: {fields: [qty], by: someone}}\n"
    )
    with pytest.raises(SourceError) as err:
        load_rules([path])
    lines = str(err.value).splitlines()
    assert lines[0].startswith(f"{path}:4:5: 'expected_dat' is not a field of purchase_order; known: ")
    text = "\n".join(lines)
    assert f"{path}:7:16: unknown operator 'greater'" in text
    assert f"{path}:7:45: not a duration: '1y'" in text
    assert f"{path}:8:3: owner 'nobody' is not a field of purchase_order" in text
    assert f"{path}:9:3: bad template placeholder" in text
    assert f"{path}:12:25: expression 'qty * fudge' names 'fudge', not a field of purchase_order" in text
    assert f"{path}:12:50: pattern 'a(?=b)': '(?' groups are not supported" in text
    assert f"{path}:12:81: 'colour' is not a field of a line of purchase_order; known: " in text
    assert f"{path}:13:3: not a duration: 'soon'" in text
    assert f"{path}:14:26: severity must be one of info, warning, critical" in text
    assert f"{path}:17:35: 'by' takes {{in: [people]}} or {{not_in: [people]}}" in text
    assert "duplicate rule id" not in text  # the broken duplicates were rejected before that check


def test_duplicate_ids_unknown_keys_and_bad_templates(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(
        "rules:\n"
        "  - {id: a, entity: invoice, when: {status: open}}\n"
        "  - {id: a, entity: invoice, when: {status: open}, summary: '{nope}'}\n"
        "  - {id: b, entity: invoice, when: {status: open}, sevrity: info}\n"
        "  - {id: c, entity: invoice, when: {status: open}}\n"
        "  - {id: c, entity: invoice, when: {status: open}}\n"
        "listz: []\n"
    )
    with pytest.raises(SourceError) as err:
        load_rules([path])
    text = str(err.value)
    assert f"{path}:3:52: template names unknown field 'nope'" in text
    assert f"{path}:4:52: unknown rule key 'sevrity'" in text
    assert f"{path}:6:5: duplicate rule id 'c' (first defined at {path}:5:5)" in text
    assert f"{path}:7:1: unknown top-level key 'listz'; known: rules, lists" in text


# --- templates, titles, escalation, for ---------------------------------------------

def test_titles_by_language_summaries_numbers_and_escalation_travel_in_the_event(tmp_path: Path) -> None:
    path = write_rules(tmp_path, [{
        "id": "big", "entity": "purchase_order", "when": {"amount": {"gt": 1000}},
        "title": {"zh": "大额采购", "en": "Large PO"}, "owner": "buyer", "severity": "critical",
        "summary": "PO {key}: {amount} {currency} ({qty} × {unit_price}) {{literal}}",
        "labels": {"family": "test", "who": "{buyer}"},
        "escalate": [{"after": "1d", "severity": "critical", "notify": "manager"}, {"after": "3d", "notify": "cfo"}],
    }])
    ev = Evaluator(load_rules([path]), name="tmpl")
    state = apply_record(None, record("PO-1", 1, amount=1234.5, currency="CNY", qty=3.0, unit_price=411.5,
                                      buyer="li.wei"), 0)
    (event,) = ev.evaluate([state], ts(NOW))
    assert event.title == "大额采购 / Large PO"
    assert event.summary == "PO PO-1: 1234.5 CNY (3 × 411.5) {literal}"
    assert (event.owner, event.severity, event.labels) == ("li.wei", "critical", {"family": "test", "who": "li.wei"})
    assert event.escalate == (
        {"after": "1d", "after_seconds": 86400.0, "severity": "critical", "notify": "manager"},
        {"after": "3d", "after_seconds": 259200.0, "notify": "cfo"},
    )
    assert AlertEvent.from_dict(event.to_dict()) == event
    old = event.to_dict()
    del old["escalate"]  # an event from before escalation existed still reads
    assert AlertEvent.from_dict(old).escalate == ()


def test_templates_substitute_field_names_in_any_script_and_numbers_print_as_people_write_them() -> None:
    from engine.templates import render

    assert render("{客户} 欠款 {金额} {{客户}}", {"客户": "上海百货", "金额": 86000.0}) == "上海百货 欠款 86000 {客户}"
    values = {"a": 2.5, "b": 1234567.891, "c": -0.001, "d": -2.0, "e": 0.1 + 0.2}
    assert render("{a} {b} {c} {d} {e}", values) == "2.5 1234567.89 0 -2 0.3"


def test_for_holds_the_alert_pending_until_the_condition_held_that_long(tmp_path: Path) -> None:
    path = write_rules(tmp_path, [{"id": "held", "entity": "purchase_order", "when": {"status": "blocked"},
                                   "for": "2h"}])
    ev = Evaluator(load_rules([path]), name="for")
    state = apply_record(None, record("PO-1", 1, status="blocked"), 0)
    t0 = ts(NOW)
    assert ev.evaluate([state], t0) == []
    assert state["pending"] == {"held": t0} and state["due"] == t0 + 7200
    assert ev.evaluate([state], t0 + 3600) == []
    (fired,) = ev.evaluate([state], t0 + 7200)
    assert fired.state == "firing" and fired.since.timestamp() == t0  # since: when it started to hold
    assert "pending" not in state
    # Stops holding: resolves; starts again: pending again from scratch.
    state = apply_record(state, record("PO-1", 2, status="open"), 0)
    (resolved,) = ev.evaluate([state], t0 + 8000)
    assert resolved.state == "resolved" and resolved.since == fired.since
    state = apply_record(state, record("PO-1", 3, status="blocked"), 0)
    assert ev.evaluate([state], t0 + 9000) == [] and state["pending"] == {"held": t0 + 9000}
    state = apply_record(state, record("PO-1", 4, status="open"), 0)
    assert ev.evaluate([state], t0 + 9500) == [] and "pending" not in state  # never announced


def test_overdue_fires_when_time_passes_and_resolves_on_receipt() -> None:
    ev = Evaluator(load_rules([REPO / "rules" / "delays.yaml"]), name="t1")
    state = apply_record(None, record("PO-7", 1, status="open", expected_date="2025-03-05",
                                      supplier="Acme", buyer="li.wei"), 0)
    assert state is not None
    assert ev.evaluate([state], ts("2025-03-05T12:00:00")) == []
    # The deadline is known without a new record: expected date + 1 day.
    assert state["due"] == ts("2025-03-06T00:00:00")
    (fired,) = ev.evaluate([state], ts("2025-03-06T00:00:00"))
    assert (fired.state, fired.owner, fired.labels) == ("firing", "li.wei", {"family": "delay", "supplier": "Acme"})
    assert fired.summary == "采购单 PO-7(Acme)已逾期 1 天,预计到货 2025-03-05 / PO PO-7 from Acme is 1 days late (expected 2025-03-05)"
    assert fired.title == "采购到货逾期 / PO delivery overdue"
    assert ev.evaluate([state], ts("2025-03-10T00:00:00")) == []  # still firing: no new transition
    state = apply_record(state, record("PO-7", 2, status="received", expected_date="2025-03-05",
                                       supplier="Acme", buyer="li.wei"), 0)
    (resolved,) = ev.evaluate([state], ts("2025-03-10T00:00:00"))
    assert resolved.state == "resolved" and resolved.since == fired.since


def test_a_deleted_entity_resolves_its_alerts() -> None:
    ev = Evaluator(load_rules([REPO / "rules" / "delays.yaml"]), name="del")
    state = apply_record(None, record("PO-8", 1, status="open", expected_date="2025-03-01", buyer="b"), 0)
    assert [e.state for e in ev.evaluate([state], ts(NOW))] == ["firing"]
    gone = ChangeRecord.from_dict({"source": "erp", "entity": "purchase_order", "key": "PO-8", "op": "delete",
                                   "ts": "2025-03-10T01:00:00+00:00", "seq": 2})
    state = apply_record(state, gone, 0)
    (resolved,) = ev.evaluate([state], ts(NOW) + 3600)
    assert resolved.state == "resolved" and state["firing"] == {} and state["due"] is None


def test_first_sighting_is_not_a_change_and_is_kept_small() -> None:
    state: EntityState | None = apply_record(None, record("PO-9", 1, qty=1, status="open"), 0)
    assert state is not None and state["history"] == [] and state["fields"] == {"qty": 1, "status": "open"}
    state = apply_record(state, record("PO-9", 2, qty=2, status="open"), 0)
    assert state is not None and state["seqs"] == {"erp": 2}
    assert [(c["seq"], c["changed"]) for c in state["history"]] == [(2, {"qty": [1, 2]})]
    # A source that says what changed is believed, even on first sight (CDC started late).
    cdc = ChangeRecord.from_dict({"source": "cdc", "entity": "purchase_order", "key": "PO-10", "seq": 7,
                                  "ts": "2025-03-01T00:00:00+00:00", "fields": {"qty": 5}, "changed": {"qty": [4, 5]}})
    seen = apply_record(None, cdc, 0)
    assert seen is not None and seen["history"][0]["changed"] == {"qty": [4, 5]}
    assert apply_record(state, record("PO-9", 2, qty=3), 0) is None  # a replay


@pytest.mark.parametrize("patch, field", [
    ({"key": ""}, "key"),
    ({"op": "merge"}, "op"),
    ({"ts": "2025-03-01T08:00:00"}, "ts"),
    ({"seq": None}, "seq"),
    ({"fields": [1]}, "fields"),
    ({"changed": {"qty": [1]}}, "changed"),
])
def test_invalid_records_name_the_bad_field(patch: dict[str, Any], field: str) -> None:
    data = {"source": "erp", "entity": "purchase_order", "key": "K", "ts": "2025-03-01T08:00:00+08:00", "seq": 1}
    data.update(patch)
    with pytest.raises(InvalidRecord) as err:
        ChangeRecord.from_dict(data)
    assert err.value.field == field
