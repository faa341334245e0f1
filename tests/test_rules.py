"""Rules: loading with positioned errors, compilation to durable_rules, evaluation over time."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.compiler import compile_rules
from engine.evaluator import Evaluator
from engine.rules import load_rules
from engine.state import apply_record
from orderwatch.record import ChangeRecord, InvalidRecord
from orderwatch.yamlsrc import SourceError
from tests.conftest import ORDERWATCH

REPO = Path(__file__).resolve().parent.parent


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def record(key: str, seq: int, **fields: object) -> ChangeRecord:
    return ChangeRecord.from_dict({
        "source": "erp", "entity": "purchase_order", "key": key, "ts": "2025-03-01T08:00:00+08:00",
        "seq": seq, "fields": fields,
    })


def test_shipped_overdue_rule_compiles_to_this_durable_rules_json() -> None:
    program = compile_rules(load_rules([REPO / "rules"]))["purchase_order"]
    assert program.rulesets[0]["po-delivery-overdue"] == {"all": [{"m": {"$and": [
        {"$or": [{"$nex": {"status": 1}}, {"$and": [
            {"$neq": {"status": "received"}}, {"$neq": {"status": "closed"}}, {"$neq": {"status": "cancelled"}}]}]},
        {"$lt": {"expected_date__t": {"$sub": {"$l": {"$m": "now__t"}, "$r": 86400.0}}}},
    ]}}]}
    assert program.time_offsets == (("expected_date", -86400.0),)


def test_overdue_fires_when_time_passes_and_resolves_on_receipt() -> None:
    ev = Evaluator(load_rules([REPO / "rules"]), name="t1")
    state = apply_record(None, record("PO-7", 1, status="open", expected_date="2025-03-05",
                                      supplier="Acme", buyer="li.wei"), 0)
    assert state is not None
    assert ev.evaluate([state], ts("2025-03-05T12:00:00")) == []
    # The deadline is known without a new record: expected date + 1 day.
    assert state["due"] == ts("2025-03-06T00:00:00")
    (fired,) = ev.evaluate([state], ts("2025-03-09T00:00:00"))
    assert (fired.state, fired.owner, fired.labels) == ("firing", "li.wei", {"family": "delay", "supplier": "Acme"})
    assert fired.summary == "PO PO-7 from Acme is 4 days late (expected 2025-03-05)"
    assert ev.evaluate([state], ts("2025-03-10T00:00:00")) == []  # still firing: no new transition
    state = apply_record(state, record("PO-7", 2, status="received", expected_date="2025-03-05",
                                       supplier="Acme", buyer="li.wei"), 0)
    (resolved,) = ev.evaluate([state], ts("2025-03-10T00:00:00"))
    assert resolved.state == "resolved" and resolved.since == fired.since


@pytest.mark.parametrize("when, fields, expected", [
    ({"status": "open"}, {"status": "open"}, True),
    ({"status": {"ne": "open"}}, {}, True),
    ({"status": {"ne": "open"}}, {"status": "open"}, False),
    ({"qty": {"gt": 100}}, {"qty": 150}, True),
    ({"qty": {"le": 100}}, {"qty": 150}, False),
    ({"qty": {"lt": 100}}, {}, False),
    ({"status": {"in": ["open", "confirmed"]}}, {"status": "confirmed"}, True),
    ({"status": {"not_in": ["open"]}}, {}, True),
    ({"approved_by": {"missing": True}}, {"approved_by": "x"}, False),
    ({"approved_by": {"exists": True}}, {"approved_by": "x"}, True),
    ({"expected_date": {"after": "now + 2d"}}, {"expected_date": "2025-03-20"}, True),
    ({"not": {"qty": {"lt": 100}}}, {}, True),
    ({"not": {"all": [{"qty": {"lt": 100}}, {"status": "open"}]}}, {"qty": 5, "status": "open"}, False),
    ({"any": [{"qty": {"lt": 100}}, {"status": "open"}]}, {"qty": 500, "status": "open"}, True),
])
def test_operators(tmp_path: Path, when: dict, fields: dict, expected: bool) -> None:
    import yaml

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump([{"id": "r", "entity": "purchase_order", "when": when}]))
    ev = Evaluator(load_rules([path]), name="ops")
    state = apply_record(None, record("K", 1, **fields), 0)
    events = ev.evaluate([state], ts("2025-03-10T00:00:00"))
    assert bool(events) is expected


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
    assert "duplicate rule id" not in text  # the second rule was rejected before that check


def test_rules_check_cli(tmp_path: Path) -> None:
    ok = subprocess.run(ORDERWATCH + ["rules", "check", str(REPO / "rules")], capture_output=True, text=True)
    assert ok.returncode == 0 and "1 rule(s) OK" in ok.stdout
    bad = tmp_path / "syntax.yaml"
    bad.write_text("- id: x\n  entity: purchase_order\n  when: {status: [open\n")
    res = subprocess.run(ORDERWATCH + ["rules", "check", str(bad)], capture_output=True, text=True)
    assert res.returncode == 1
    assert res.stdout.startswith(f"{bad}:4:1: YAML syntax")


@pytest.mark.parametrize("patch, field", [
    ({"key": ""}, "key"),
    ({"op": "merge"}, "op"),
    ({"ts": "2025-03-01T08:00:00"}, "ts"),
    ({"seq": None}, "seq"),
    ({"fields": [1]}, "fields"),
    ({"changed": {"qty": [1]}}, "changed"),
])
def test_invalid_records_name_the_bad_field(patch: dict, field: str) -> None:
    data = {"source": "erp", "entity": "purchase_order", "key": "K", "ts": "2025-03-01T08:00:00+08:00", "seq": 1}
    data.update(patch)
    with pytest.raises(InvalidRecord) as err:
        ChangeRecord.from_dict(data)
    assert err.value.field == field
