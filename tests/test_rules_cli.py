"""The rule authors' commands, run as a user runs them: `orderwatch rules check`,
`orderwatch rules test`, `orderwatch backtest`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "orderwatch"]


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + list(args), capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


@pytest.mark.parametrize("verb", [["rules", "check"], ["rules", "test"], ["backtest"]])
def test_every_verb_has_help(verb: list[str]) -> None:
    res = run(*verb, "--help")
    assert res.returncode == 0, res.stderr
    assert "usage:" in res.stdout and len(res.stdout.splitlines()) > 4


def test_rules_check_accepts_the_shipped_packs() -> None:
    res = run("rules", "check", "rules")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == "20 rule(s) OK"



def test_rules_check_verifies_every_shipped_rule_speaks_zh_and_en(tmp_path: Path) -> None:
    res = run("rules", "check", "--languages", "zh,en", "rules")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip() == "20 rule(s) OK, each titled and summarised in zh, en"
    rule = tmp_path / "half.yaml"
    rule.write_text("- id: half\n  entity: invoice\n  when: {status: open}\n  title: {zh: 发票未付}\n"
                    "  summary: 'Invoice {key} is open'\n", encoding="utf-8")
    res = run("rules", "check", "--languages", "zh,en", str(rule))
    assert res.returncode == 1
    assert res.stdout.splitlines() == [
        f"{rule}:1:3: rule 'half': title has no en text (it has zh)",
        f"{rule}:1:3: rule 'half': summary has no zh or en text (it is one text, not {{zh: …, en: …}})",
    ]


BROKEN = {
    "syntax.yaml": "- id: x\n  entity: purchase_order\n  when: {status: [open\n",
    "operator.yaml": "- id: op\n  entity: purchase_order\n  when:\n    qty: {greater: 3}\n",
    "field.yaml": "- id: field\n  entity: sales_order\n  when:\n    all:\n      - status: open\n      - promise_date: {before: now}\n",
    "duration.yaml": "- id: dur\n  entity: invoice\n  when: {due_date: {before: now - 3 days}}\n  for: 1y\n",
    "duplicate.yaml": "- id: op\n  entity: invoice\n  when: {status: open}\n",
    "template.yaml": "- id: tmpl\n  entity: invoice\n  when: {status: open}\n  summary: '{customer.name} owes'\n",
    "owner.yaml": "- id: own\n  entity: invoice\n  when: {status: open}\n  owner: salesman\n",
    "pattern.yaml": "- id: pat\n  entity: invoice\n  when: {note: {matches: 'a\\b'}}\n",
    "entity.yaml": "- id: ent\n  entity: purchase_orders\n  when: {status: open}\n",
}


def test_rules_check_reports_every_problem_of_a_broken_folder_at_its_line(tmp_path: Path) -> None:
    for name, text in BROKEN.items():
        (tmp_path / name).write_text(text)
    res = run("rules", "check", str(tmp_path))
    assert res.returncode == 1
    out = res.stdout.replace(str(tmp_path) + "/", "")
    lines = out.splitlines()
    assert lines == sorted(lines), "problems come sorted by file and line"
    for expected in [
        "syntax.yaml:4:1: YAML syntax",
        "operator.yaml:4:11: unknown operator 'greater'; known: eq, ne, lt, le, gt, ge, in, not_in, contains,",
        "field.yaml:6:9: 'promise_date' is not a field of sales_order; known: ",
        "duration.yaml:3:21: not a duration: '3 days' (use e.g. 30m, 2h, 1d, 1w, 1d12h, or 2bd for business days)",
        "duration.yaml:4:3: not a duration: '1y'",
        "template.yaml:4:3: bad template placeholder {customer.name}: only {field} is allowed",
        "owner.yaml:4:3: owner 'salesman' is not a field of invoice; known: ",
        "pattern.yaml:3:17: pattern 'a\\\\b': '\\b' is not supported (use \\d, \\s, \\w or escape a special character)",
        "entity.yaml:2:3: unknown entity 'purchase_orders'",
    ]:
        assert any(line.startswith(expected) for line in lines), f"{expected!r} not in:\n{out}"
    assert len(lines) == 9  # nothing else, nothing twice
    assert "promised_date" in next(line for line in lines if line.startswith("field.yaml"))  # says what exists


def test_rules_check_reports_a_duplicate_id_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("- {id: same, entity: invoice, when: {status: open}}\n")
    (tmp_path / "b.yaml").write_text("\n- {id: same, entity: invoice, when: {status: paid}}\n")
    res = run("rules", "check", str(tmp_path))
    assert res.returncode == 1
    assert res.stdout.strip() == f"{tmp_path}/b.yaml:2:3: duplicate rule id 'same' (first defined at {tmp_path}/a.yaml:1:3)"


def test_an_unclosed_quote_is_reported_where_it_opens_not_at_the_end_of_the_file(tmp_path: Path) -> None:
    (tmp_path / "late.yaml").write_text(
        '- id: po-late\n  entity: purchase_order\n  summary: "PO {key} is late\n'
        "  when:\n    status: {eq: open}\n  severity: warning\n", encoding="utf-8")
    res = run("rules", "check", str(tmp_path / "late.yaml"))
    assert res.returncode == 1
    assert res.stdout.strip() == (f"{tmp_path}/late.yaml:3:12: YAML syntax: found unexpected end of stream "
                                  "(while scanning a quoted scalar at 3:12)")


def test_rules_check_reports_values_of_the_wrong_kind_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "kinds.yaml").write_text(
        "- id: own\n  entity: invoice\n  when: {status: open}\n  owner: [clerk]\n"
        "- id: lab\n  entity: invoice\n  when: {status: open}\n  labels: {a: [x], b: {c: d}, e: null, f: yes, g: 1}\n"
        "- id: ttl\n  entity: invoice\n  when: {status: open}\n  title: {zh: [逾期], en: Overdue}\n",
        encoding="utf-8")
    res = run("rules", "check", str(tmp_path / "kinds.yaml"))
    assert res.returncode == 1
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stdout.replace(str(tmp_path) + "/", "").splitlines()
    assert lines[0].startswith("kinds.yaml:4:3: owner is a field name of invoice; known: ")
    assert lines[1:] == [f"kinds.yaml:8:{col}: label '{name}' must be a text (a template), got {got}; write it in quotes"
                         for col, name, got in ((12, "a", "['x']"), (20, "b", "{'c': 'd'}"), (31, "e", "None"),
                                                (40, "f", "True"))] + [
        "kinds.yaml:12:11: title in zh must be a text, got ['逾期']"]


def test_rules_check_reads_non_ascii_template_placeholders_as_field_names(tmp_path: Path) -> None:
    (tmp_path / "zh.yaml").write_text(
        "- id: zh\n  entity: invoice\n  when: {status: open}\n  summary: '{客户} 逾期 {key}'\n", encoding="utf-8")
    res = run("rules", "check", str(tmp_path / "zh.yaml"))
    assert res.returncode == 1
    assert res.stdout.startswith(f"{tmp_path}/zh.yaml:4:3: template names unknown field '客户'; known: amount, "), res.stdout


def test_rules_check_reads_a_file_named_twice_once(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("- {id: same, entity: invoice, when: {status: open}}\n")
    res = run("rules", "check", str(tmp_path), str(tmp_path / "a.yaml"), str(tmp_path / "." / "a.yaml"))
    assert (res.returncode, res.stdout.strip()) == (0, "1 rule(s) OK"), res.stdout


def test_rules_test_passes_on_every_shipped_pack() -> None:
    res = run("rules", "test", "rules")
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().endswith("17 test(s), 0 failed")
    for pack in ("delays", "unapproved_changes", "stock", "payments"):
        assert f"rules/{pack}.test.yaml" in res.stdout


def test_rules_test_fails_with_a_readable_diff(tmp_path: Path) -> None:
    (tmp_path / "late.yaml").write_text((REPO / "rules" / "delays.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "late.test.yaml").write_text(
        "tests:\n"
        "  - name: wrong on purpose\n"
        "    start: 2025-03-03T00:00:00Z\n"
        "    records:\n"
        "      - {at: 0h, entity: purchase_order, key: PO-1, fields: {status: open, expected_date: 2025-03-05, buyer: li.wei, supplier: Acme}}\n"
        "    expect:\n"
        "      - at: 3d\n"
        "        firing:\n"
        "          - {rule: po-delivery-overdue, key: PO-1, owner: anna.schmidt, labels: {supplier: Acme}}\n"
        "          - {rule: so-shipment-overdue, key: SO-9}\n"
        "      - at: 4d\n"
        "        firing: []\n",
        encoding="utf-8",
    )
    res = run("rules", "test", str(tmp_path / "late.test.yaml"))
    assert res.returncode == 1
    out = res.stdout
    assert "FAIL  wrong on purpose" in out
    assert f"{tmp_path}/late.test.yaml:7:9: at 2025-03-06T00:00:00+00:00:" in out
    assert "po-delivery-overdue PO-1: owner: expected 'anna.schmidt', got 'li.wei'" in out
    assert "missing firing:    so-shipment-overdue SO-9" in out
    assert "unexpected firing: po-delivery-overdue purchase_order:PO-1 owner=li.wei" in out  # at 4d
    assert out.strip().endswith("1 test(s), 1 failed")


def test_rules_test_reports_a_broken_test_file_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("- {id: x, entity: invoice, when: {status: open}}\n")
    (tmp_path / "x.test.yaml").write_text(
        "tests:\n  - name: t\n    start: 2025-03-03T00:00:00Z\n    records:\n      - {at: soon, key: A}\n"
        "    expect:\n      - {at: 1d, firing: [{rule: x}]}\n")
    res = run("rules", "test", str(tmp_path))
    assert res.returncode == 1
    assert f"{tmp_path}/x.test.yaml:5:10: 'at' is an ISO time or an offset from 'start'" in res.stdout
    assert f"{tmp_path}/x.test.yaml:7:27: an expected alert needs 'rule' and 'key'" in res.stdout


def test_rules_test_reports_parts_of_the_wrong_kind_at_their_line(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("- {id: x, entity: invoice, when: {status: open}}\n")
    (tmp_path / "x.test.yaml").write_text(
        "tests:\n"
        "  - {name: a, start: 2025-03-03T00:00:00Z, defaults: [invoice], records: [{at: 0h, key: A}]}\n"
        "  - {name: b, start: 2025-03-03T00:00:00Z, records: {at: 0h, key: A}, expect: {at: 1d}}\n"
        "  - {name: c, start: yesterday, records: [{at: 0h, key: A, entity: invoice}]}\n"
        "  - {name: d, start: 2025-03-03T00:00:00Z, expect: [{at: 1h, firing: [{rule: x, key: A, labels: [a]},\n"
        "                                                               {rule: x, key: B}, {rule: x, key: B}]}]}\n")
    res = run("rules", "test", str(tmp_path / "x.test.yaml"))
    assert res.returncode == 1
    assert "Traceback" not in res.stderr, res.stderr
    assert res.stdout.replace(str(tmp_path) + "/", "").splitlines()[1:] == [
        "x.test.yaml:2:44: defaults is a mapping of record keys (entity, source, actor…)",
        "x.test.yaml:2:75: not a valid change record: entity: required, a non-empty string",
        "x.test.yaml:3:44: records is a list of records, each {at, key, fields …}",
        "x.test.yaml:3:71: expect is a list of expectations, each {at, firing …}",
        "x.test.yaml:4:15: 'start' is an ISO time (2025-03-03T00:00:00Z), got 'yesterday'",
        "x.test.yaml:5:89: labels is a mapping of name: value (the labels to compare)",
        "x.test.yaml:6:83: alert x B is listed twice",
        "0 test(s), 0 failed, and files with problems",
    ]


def test_rules_test_names_rule_ids_that_no_rule_file_defines(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("- {id: x, entity: invoice, when: {status: open}}\n")
    (tmp_path / "x.test.yaml").write_text(
        "tests:\n"
        "  - start: 2025-03-03T00:00:00Z\n"
        "    records: [{at: 0h, entity: invoice, key: A, fields: {status: open}}]\n"
        "    expect:\n"
        "      - {at: 1h, firing: [{rule: y, key: A}]}\n"
        "      - {at: 2h, firing: [], rules: x}\n"
        "      - {at: 3h, firing: [], resolved: [{rule: x, key: A}], rules: [x, z]}\n")
    res = run("rules", "test", str(tmp_path / "x.test.yaml"))
    assert res.returncode == 1
    assert res.stdout.replace(str(tmp_path) + "/", "").splitlines()[1:] == [
        "x.test.yaml:6:30: rules is a list of rule ids",
        "0 test(s), 0 failed, and files with problems",
    ]
    text = (tmp_path / "x.test.yaml").read_text().replace("rules: x}", "rules: [x]}")
    (tmp_path / "x.test.yaml").write_text(text)
    res = run("rules", "test", str(tmp_path / "x.test.yaml"))
    assert res.returncode == 1
    assert res.stdout.replace(str(tmp_path) + "/", "").splitlines()[1:] == [
        "x.test.yaml:5:28: no rule 'y' in x.yaml; known: x",
        "x.test.yaml:7:72: no rule 'z' in x.yaml; known: x",
        "0 test(s), 0 failed, and files with problems",
    ]


@pytest.fixture(scope="module")
def demo_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "demo.jsonl"
    subprocess.run([sys.executable, "-m", "orderwatch.demo", "history", str(path)], check=True, cwd=REPO)
    return path


def test_backtest_prints_the_timeline_and_per_rule_counts(demo_history: Path) -> None:
    res = run("backtest", "--rules", "rules", "--input", str(demo_history), "--to", "now", "--no-progress")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "FIRING   critical po-changed-by-unauthorized   purchase_order:PO-2025-0044  owner=li.wei" in out
    assert "stock:BOLT-M8@SH1  owner=wang.fang" in out
    assert "rule                              fired  resolved  firing at end" in out
    assert "27 records (0 replays ignored, 0 invalid)" in out


def test_backtest_json_is_one_object_per_transition_and_from_filters(demo_history: Path, tmp_path: Path) -> None:
    res = run("backtest", "--input", str(demo_history), "--to", "now", "--format", "json")
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert events and all(set(e) >= {"rule", "entity", "key", "state", "at", "owner", "labels"} for e in events)
    families = {e["labels"].get("family") for e in events}
    assert families == {"delay", "unapproved_change", "stock", "payment"}
    last = max(e["at"] for e in events)
    res = run("backtest", "--input", str(demo_history), "--to", "now", "--format", "json", "--from", last)
    assert [json.loads(line)["at"] for line in res.stdout.splitlines()] == [last] * len(res.stdout.splitlines())
    # Bad lines are reported with their line number and skipped.
    bad = tmp_path / "bad.jsonl"
    bad.write_text(demo_history.read_text(encoding="utf-8") + '{"entity": "invoice"}\nnot json\n', encoding="utf-8")
    res = run("backtest", "--input", str(bad), "--format", "json")
    assert res.returncode == 0
    assert f"invalid record: {bad}:28: source: required, a non-empty string" in res.stderr
    assert f"invalid record: {bad}:29: not JSON" in res.stderr


def test_backtest_reports_a_line_that_is_not_utf8_and_goes_on(tmp_path: Path) -> None:
    good = ('{"source": "erp", "entity": "purchase_order", "key": "PO-1", "ts": "2025-03-03T00:00:00+08:00", '
            '"seq": 1, "fields": {"status": "open", "expected_date": "2025-03-04", "supplier": "华东", "buyer": "li.wei"}}\n')
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(good.encode() + '{"note": "加急"}\n'.encode("gbk") + b"\n")
    res = run("backtest", "--rules", "rules", "--input", str(path), "--to", "2025-03-06T00:00:00Z", "--format", "json")
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == 0
    assert f"invalid record: {path}:2: not UTF-8" in res.stderr
    assert [json.loads(line)["key"] for line in res.stdout.splitlines()] == ["PO-1"]


def test_backtest_refuses_a_from_later_than_to(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    res = run("backtest", "--input", str(path), "--from", "2025-03-09", "--to", "2025-03-01")
    assert res.returncode == 2
    assert res.stderr.strip() == "--from 2025-03-09 is later than --to 2025-03-01: nothing to report"
    res = run("backtest", "--input", str(path), "--from", "yesterday")
    assert (res.returncode, res.stderr.strip()) == (2, "--from: expected an ISO date/time or 'now', got 'yesterday'")


def test_backtest_reads_a_file_that_starts_with_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"  # what Windows tools write
    record = {"source": "erp", "entity": "invoice", "key": "AR-1", "ts": "2025-03-01T00:00:00Z", "seq": 1,
              "fields": {"status": "open", "due_date": "2025-03-02", "direction": "receivable"}}
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(record).encode() + b"\n")
    res = run("backtest", "--input", str(path), "--to", "2025-03-10", "--format", "json")
    assert res.returncode == 0 and "invalid" not in res.stderr, res.stderr
    assert {json.loads(line)["key"] for line in res.stdout.splitlines()} == {"AR-1"}


def test_rules_check_says_how_to_write_what_it_rejects(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "- id: a\n  entity: invoice\n  summary: \"{key} is {late\"\n  when:\n    due_date: {before: tomorrow}\n"
        "  escalate:\n    - {after: 1d, notify: [li.wei, zhao.min]}\n", encoding="utf-8")
    res = run("rules", "check", str(tmp_path / "r.yaml"))
    assert res.returncode == 1
    lines = res.stdout.replace(str(tmp_path) + "/", "").splitlines()
    assert lines[0] == "r.yaml:3:3: bad template: expected '}' before end of string (a literal brace is written {{ or }})"
    assert lines[1].startswith("r.yaml:5:16: 'before' takes 'now', 'now - <duration>' or a date field (± a duration); "
                               "'tomorrow' is not a field of invoice; known: ")
    assert lines[2] == "r.yaml:7:19: notify is one name (a person, a team or 'manager'), got ['li.wei', 'zhao.min']"
