"""Per-line rules (`per: line`): one alert per order line, keyed ORDER#LINE, with the line's fields
over the order's in the condition and in both languages' texts; a line's alert resolves when the
line is fixed, removed, the order deleted or the rule reloaded away."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from alerts.message import AlertItem
from alerts.texts import alert_texts
from engine.evaluator import Evaluator
from engine.rules import load_rules
from engine.state import EntityState, apply_record
from orderwatch.record import ChangeRecord

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "orderwatch"]
EXAMPLE = REPO / "examples" / "rules" / "lines.yaml"
NOW = 1741392000.0  # 2025-03-08T00:00:00Z


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, check=False, cwd=REPO)


def order(seq: int, op: str = "upsert", **fields: Any) -> ChangeRecord:
    return ChangeRecord.from_dict({"source": "erp", "entity": "purchase_order", "key": "PO-9", "op": op,
                                   "ts": "2025-03-07T00:00:00Z", "seq": seq, "fields": fields})


LINES = [{"line_no": 10, "sku": "NUT", "qty": 200, "received_qty": 50},
         {"line_no": 20, "sku": "BOLT", "qty": 100, "received_qty": 100}]


def test_the_example_rule_tests_pass_and_check() -> None:
    done = run("rules", "test", "examples/rules/")
    assert done.returncode == 0, done.stdout + done.stderr
    assert run("rules", "check", "rules", "examples/rules").returncode == 0


def test_a_line_alert_speaks_both_languages_and_resolves_with_its_order() -> None:
    evaluator = Evaluator(load_rules([EXAMPLE]), name="lines-test")
    try:
        state: EntityState | None = apply_record(None, order(1, status="open", supplier="华东五金", buyer="li.wei",
                                                             expected_date="2025-03-01", lines=LINES), 0)
        assert state is not None
        [event] = evaluator.evaluate([state], NOW)
        assert (event.rule, event.entity, event.key, event.state) == (
            "po-line-short-received", "purchase_order", "PO-9#10", "firing")
        assert event.labels == {"family": "delay", "supplier": "华东五金", "sku": "NUT"}
        item = AlertItem.from_dict({**event.to_dict(), "fingerprint": "f", "status": "firing", "state": "firing",
                                    "starts_at": event.at.isoformat()})
        assert alert_texts(item, "zh", "Asia/Shanghai", NOW).summary == (
            "采购单 PO-9 第 10 行(NUT,华东五金)只到货 50/200,预计 2025年3月1日")
        assert alert_texts(item, "en", "UTC", NOW).summary == (
            "PO PO-9 line 10 (NUT, 华东五金): 50 of 200 received, expected 1 Mar 2025")
        assert state["firing"] == {"po-line-short-received#10": NOW}

        state = apply_record(state, order(2, op="delete"), 0)
        assert state is not None
        [event] = evaluator.evaluate([state], NOW + 60)
        assert (event.key, event.state) == ("PO-9#10", "resolved")
        assert state["firing"] == {}
    finally:
        evaluator.close()


def test_a_reload_without_the_rule_resolves_the_lines_alerts() -> None:
    old = Evaluator(load_rules([EXAMPLE]), name="lines-old")
    state = apply_record(None, order(1, status="open", buyer="li.wei", expected_date="2025-03-01", lines=LINES), 0)
    assert state is not None
    assert [e.key for e in old.evaluate([state], NOW)] == ["PO-9#10"]
    new = Evaluator(load_rules([REPO / "rules" / "delays.yaml"]), name="lines-new", previous=old)
    old.close()
    try:
        events = new.evaluate([state], NOW + 60)
        assert {(e.rule, e.key, e.state) for e in events} >= {("po-line-short-received", "PO-9#10", "resolved")}
        assert not any("#" in rule for rule in state["firing"])
    finally:
        new.close()


def test_a_line_alert_is_looked_up_in_its_orders_state() -> None:
    """Where a rebuilt worker looks for an open alert (orderwatch/rebuild.py): a line's alert in its
    order's state; for a rule no longer in the files, the entity's own state first, then the order's."""
    evaluator = Evaluator(load_rules([EXAMPLE, REPO / "rules" / "delays.yaml"]), name="lines-held")
    try:
        assert evaluator.held_as("po-line-short-received", "PO-9#10") == [("PO-9", "po-line-short-received#10")]
        assert evaluator.held_as("po-delivery-overdue", "PO#9") == [("PO#9", "po-delivery-overdue")]
        assert evaluator.held_as("gone", "PO-9") == [("PO-9", "gone")]
        assert evaluator.held_as("gone", "PO-9#10") == [("PO-9#10", "gone"), ("PO-9", "gone#10")]
    finally:
        evaluator.close()


def test_per_line_mistakes_are_reported_with_their_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("""\
- id: invoice-line
  entity: invoice
  per: line
  when: {amount: {gt: 0}}
- id: po-lines
  entity: purchase_order
  per: lines
  when: {qty: {gt: 0}}
- id: po-line-text
  entity: purchase_order
  per: line
  when: {qty: {gt: 0}}
  summary: "line {line} of {order}: {colour}"
""", encoding="utf-8")
    done = run("rules", "check", str(bad))
    assert done.returncode == 1
    assert f"{bad}:3:3: per: line is for entities with lines (purchase_order, sales_order); invoice has none" in done.stdout
    assert f"{bad}:7:3: per is 'line' (a rule per order line, for purchase_order, sales_order), got 'lines'" in done.stdout
    assert f"{bad}:13:3: template names unknown field 'colour'" in done.stdout
