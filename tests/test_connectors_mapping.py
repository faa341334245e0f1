"""Real exports as they come: US dates, status codes, constants and a site's own fields, mapped in the
connectors file alone (no SQL, no file edits), checked by `connectors check` and fired by the rules."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

from connectors.config import build_connector, load_config
from connectors.dates import DateStyle, parse_date
from engine.fields import NONE
from engine.schema import fields_markdown
from orderwatch.yamlsrc import SourceError
from tests.dbservers import server_url, unique_name

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "orderwatch"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, check=False)


# A US ERP's purchase-order export: M/D/YYYY dates, M/D/YY H:MM times, integer status codes.
US_CSV = """\
PO Number,Vendor,Order Date,Due Date,Status,Created
PO-1,Acme Corp,3/5/2024,3/20/2024,2,3/5/24 9:07
PO-2,Globex,12/1/2024,12/31/2024,3,12/1/24 14:30
PO-3,Initech,1/2/2024,1/15/2024,9,1/2/24 8:00
PO-4,Umbrella,2/3/2099,2/14/2099,2,2/3/99 16:45
"""

US_CONNECTORS = """\
connectors:
  - id: us-po
    type: spreadsheet
    path: po.csv
    entity: purchase_order
    key: PO Number
    settle: 0
    dates: {monthfirst: true}
    fields:
      supplier: Vendor
      order_date: {column: Order Date, type: date}
      expected_date: {column: Due Date, type: date}
      created_at: {column: Created, type: datetime, format: "%m/%d/%y %H:%M"}
      status: {column: Status, map: {1: draft, 2: approved, 3: received, 9: cancelled}}
      warehouse: {value: WH1}
  - id: ar-sheet
    type: spreadsheet
    path: invoices.xlsx
    entity: invoice
    key: Invoice
    settle: 0
    fields:
      customer: Customer
      counterparty: Customer
      amount: {column: Amount, type: number}
      due_date: {column: Due, type: date}
      status: {column: State, map: {1: open, 2: paid, 3: cancelled}, default: open}
      direction: {value: receivable}
"""


def write_sources(folder: Path) -> None:
    (folder / "po.csv").write_text(US_CSV, encoding="utf-8")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Invoice", "Customer", "Amount", "Due", "State"])
    sheet.append(["AR-1", "Contoso", 1200, datetime(2024, 5, 31), 1])  # open, long past due
    sheet.append(["AR-2", "Fabrikam", 800, datetime(2024, 5, 31), 2])  # paid
    sheet.append(["AR-3", "Northwind", 450, datetime(2024, 6, 30), 7])  # unknown code: the default, open
    book.save(folder / "invoices.xlsx")


def records_of(config: Path, out: Path) -> Path:
    """The connectors' records as a backtest input (what `connectors run` would publish)."""
    lines = []
    for cfg in load_config(config):
        result = build_connector(cfg).poll()
        assert not result.dead, [d.reason for d in result.dead]
        lines += [json.dumps(r.to_dict(), ensure_ascii=False) for r in result.records]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def backtest(records: Path, *extra: str) -> list[dict[str, object]]:
    done = run("backtest", "--input", str(records), "--to", "now", "--format", "json", "--no-progress", *extra)
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def test_a_us_export_and_a_sheet_of_status_codes_map_and_fire_the_shipped_rules(tmp_path: Path) -> None:
    write_sources(tmp_path)
    config = tmp_path / "connectors.yaml"
    config.write_text(US_CONNECTORS, encoding="utf-8")

    done = run("connectors", "check", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "summary: 4 row(s) read, 4 record(s), 0 dead letter(s)" in done.stdout
    assert "summary: 3 row(s) read, 3 record(s), 0 dead letter(s)" in done.stdout
    assert "map of field 'status' (column 'State') lacks '7' ×1 (given the default)" in done.stdout

    [po, ar] = load_config(config)
    by_key = {r.key: r.fields for r in build_connector(po).poll().records}
    assert by_key["PO-1"] == {
        "supplier": "Acme Corp", "order_date": "2024-03-05", "expected_date": "2024-03-20",
        "created_at": "2024-03-05T09:07:00+00:00", "status": "approved", "warehouse": "WH1",
    }
    assert by_key["PO-2"]["created_at"] == "2024-12-01T14:30:00+00:00" and by_key["PO-2"]["status"] == "received"
    assert by_key["PO-4"]["created_at"] == "1999-02-03T16:45:00+00:00"  # %y: 99 is 1999
    invoices = {r.key: r.fields for r in build_connector(ar).poll().records}
    assert invoices["AR-1"] == {"customer": "Contoso", "counterparty": "Contoso", "amount": 1200,
                                "due_date": "2024-05-31", "status": "open", "direction": "receivable"}
    assert invoices["AR-2"]["status"] == "paid" and invoices["AR-3"]["status"] == "open"

    events = backtest(records_of(config, tmp_path / "records.jsonl"))
    fired = {(e["rule"], e["key"]) for e in events if e["state"] == "firing"}
    # Approved and late fires; received, cancelled (code 9) and not yet due do not.
    assert ("po-delivery-overdue", "PO-1") in fired
    assert not {k for r, k in fired if r == "po-delivery-overdue"} - {"PO-1"}
    # Open (code 1, and the default for code 7) and past due fires; paid (code 2) does not.
    assert {k for r, k in fired if r == "invoice-overdue"} == {"AR-1", "AR-3"}


@pytest.mark.parametrize("server", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration),
                                    pytest.param("mariadb", marks=pytest.mark.integration)])
def test_an_erp_table_with_status_codes_and_us_text_dates_maps_without_a_case_in_sql(
        server: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}" if server == "sqlite" else server_url(server)
    engine = sa.create_engine(url)
    table = sa.Table(unique_name("ow_so"), sa.MetaData(),
                     sa.Column("so_no", sa.String(20), primary_key=True),
                     sa.Column("cust", sa.String(50)),
                     sa.Column("promised", sa.String(20)),  # text, as a US ERP writes it
                     sa.Column("state", sa.Numeric(3, 0)),  # a NUMERIC code: Decimal(2) from the driver
                     sa.Column("changed", sa.Integer))
    table.create(engine)
    try:
        with engine.begin() as conn:
            conn.execute(table.insert(), [
                {"so_no": "SO-1", "cust": "Contoso", "promised": "12/31/2024", "state": 2, "changed": 1},
                {"so_no": "SO-2", "cust": "Fabrikam", "promised": "1/2/2025", "state": 4, "changed": 2},
            ])
        config = tmp_path / "connectors.yaml"
        config.write_text(f"""\
connectors:
  - id: erp-sales
    type: sql
    url: {url}
    table: {table.name}
    entity: sales_order
    key: so_no
    cursor: changed
    fields:
      customer: cust
      promised_date: {{column: promised, type: date, monthfirst: true}}
      status: {{column: state, map: {{1: draft, 2: confirmed, 3: shipped, 4: closed}}}}
      warehouse: {{value: WH1}}
""", encoding="utf-8")
        [cfg] = load_config(config)
        connector = build_connector(cfg)
        try:
            result = connector.poll()
        finally:
            connector.close()
        assert not result.dead, [d.reason for d in result.dead]
        assert {r.key: r.fields for r in result.records} == {
            "SO-1": {"customer": "Contoso", "promised_date": "2024-12-31", "status": "confirmed", "warehouse": "WH1"},
            "SO-2": {"customer": "Fabrikam", "promised_date": "2025-01-02", "status": "closed", "warehouse": "WH1"},
        }
    finally:
        table.drop(engine)
        engine.dispose()


AMBIGUOUS = """\
connectors:
  - id: eu-or-us
    type: spreadsheet
    path: orders.csv
    entity: sales_order
    key: Order
    fields:
      customer: Customer
      order_date: {column: Ordered, type: date}
      promised_date: {column: Promised, type: date}
"""


def test_an_ambiguous_date_column_is_reported_and_a_setting_settles_it(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text(
        "Order,Customer,Ordered,Promised\n"
        "SO-1,Contoso,3/5/2025,20/5/2025\n"
        "SO-2,Fabrikam,4/6/2025,13/6/2025\n", encoding="utf-8")
    config = tmp_path / "connectors.yaml"
    config.write_text(AMBIGUOUS, encoding="utf-8")
    done = run("connectors", "check", str(config))
    assert done.returncode == 1, done.stdout
    out = done.stdout
    assert "dates of field 'order_date' (column 'Ordered'): 2 read either way (e.g. '3/5/2025', '4/6/2025')" in out
    assert "AMBIGUOUS: every value reads either way; say which with monthfirst: true or dayfirst: true" in out
    assert "dates of field 'promised_date' (column 'Promised'): 2 read only day-first" in out
    assert "    set dayfirst: true" in out
    assert "summary: 2 row(s) read, 0 record(s), 2 dead letter(s)" in out
    assert "puts day and month before the year" in out

    config.write_text(AMBIGUOUS.replace("    fields:\n", "    dates: {dayfirst: true}\n    fields:\n"), encoding="utf-8")
    done = run("connectors", "check", str(config))
    assert done.returncode == 0, done.stdout
    assert "ambiguous: every value reads either way; dayfirst: true decides" in done.stdout
    assert "consistent with dayfirst: true" in done.stdout
    assert '"order_date": "2025-05-03"' in done.stdout and '"promised_date": "2025-05-20"' in done.stdout

    # The wrong order: the values that cannot be month-first say so, and the check fails.
    config.write_text(AMBIGUOUS.replace("    fields:\n", "    dates: {monthfirst: true}\n    fields:\n"), encoding="utf-8")
    done = run("connectors", "check", str(config))
    assert done.returncode == 1
    assert "monthfirst is set, but some values read only day-first: is the column day-first?" in done.stdout
    assert "it reads day-first: is the column day-first?" in done.stdout


CUSTOM = """\
fields:
  purchase_order:
    revision: {type: integer, description: revision number of the PO}
    disputed: {type: bool, description: the supplier disputes the order}
connectors:
  - id: po-sheet
    type: spreadsheet
    path: po.csv
    entity: purchase_order
    key: PO
    settle: 0
    fields:
      supplier: Supplier
      revision: Rev
      disputed: {column: Disputed, map: {D: true, "-": false}}
"""

REVISION_RULE = """\
- id: po-revised-often
  title: PO revised too often
  entity: purchase_order
  when:
    all:
      - revision: {ge: 3}
      - disputed: true
  labels: {family: change, revision: "{revision}"}
  summary: "PO {key} from {supplier} is at revision {revision}"
"""


def test_a_declared_custom_field_is_checked_mapped_and_fires_a_rule_with_its_value(tmp_path: Path) -> None:
    (tmp_path / "po.csv").write_text("PO,Supplier,Rev,Disputed\nPO-7,Acme,4,D\nPO-8,Globex,5,-\nPO-9,Initech,1,D\n",
                                     encoding="utf-8")
    config = tmp_path / "connectors.yaml"
    config.write_text(CUSTOM, encoding="utf-8")
    rule = tmp_path / "revision.yaml"
    rule.write_text(REVISION_RULE, encoding="utf-8")

    # Without the declaration the rule's field is unknown, with its file:line:col.
    done = run("rules", "check", str(rule))
    assert done.returncode == 1
    assert f"{rule}:6:9: 'revision' is not a field of purchase_order; known: " in done.stdout
    assert f"{rule}:8:28: template names unknown field 'revision'" in done.stdout
    done = run("rules", "check", str(rule), str(ROOT / "rules"), "--fields", str(config))
    assert done.returncode == 0, done.stdout
    assert "rule(s) OK" in done.stdout

    check = run("connectors", "check", str(config))
    assert check.returncode == 0, check.stdout
    assert '"revision": 4' in check.stdout and '"disputed": true' in check.stdout  # declared integer: read as one

    events = backtest(records_of(config, tmp_path / "records.jsonl"), "--rules", str(rule), "--fields", str(config))
    [alert] = [e for e in events if e["rule"] == "po-revised-often"]
    assert alert["key"] == "PO-7" and alert["state"] == "firing"
    assert alert["summary"] == "PO PO-7 from Acme is at revision 4"
    assert alert["labels"] == {"family": "change", "revision": "4"}


def test_a_fields_file_of_its_own_with_line_fields(tmp_path: Path) -> None:
    (tmp_path / "fields.yaml").write_text(
        "fields:\n  purchase_order:\n    lines:\n      rejected_qty: {type: number, description: rejected at inspection}\n",
        encoding="utf-8")
    config = tmp_path / "connectors.yaml"
    config.write_text("""\
fields: fields.yaml
connectors:
  - id: erp
    type: sql
    url: sqlite:///erp.sqlite
    table: po
    entity: purchase_order
    key: po_number
    cursor: updated_at
    fields: {supplier: supplier}
    lines:
      table: po_line
      parent: po_number
      fields: {sku: sku, qty: {column: qty, type: number}, rejected_qty: rejected}
""", encoding="utf-8")
    [cfg] = load_config(config)
    assert cfg.lines is not None
    assert [(s.name, s.type) for s in cfg.lines.mapping.specs][-1] == ("rejected_qty", "number")
    rule = tmp_path / "rejects.yaml"
    rule.write_text("""\
- id: po-line-rejected
  entity: purchase_order
  when:
    any_line: {rejected_qty: {gt: 0}}
  summary: "PO {key} has rejected goods"
""", encoding="utf-8")
    assert run("rules", "check", str(rule)).returncode == 1
    done = run("rules", "check", str(rule), "--fields", str(tmp_path / "fields.yaml"))
    assert done.returncode == 0, done.stdout
    done = run("rules", "check", str(rule), "--fields", str(config))  # the connectors file names it
    assert done.returncode == 0, done.stdout


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "connectors.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SourceError) as caught:
        load_config(path)
    return [f"{pos.line}:{pos.col}: {message}" for pos, message in caught.value.problems]


SHEET = """\
connectors:
  - id: sheet
    type: spreadsheet
    path: po.csv
    entity: purchase_order
    key: PO
    fields:
"""


def test_a_typo_or_an_undeclared_field_is_an_error_with_its_line(tmp_path: Path) -> None:
    found = problems(tmp_path, SHEET + "      supplier: Supplier\n      delivery_date: {column: Due, type: date}\n")
    assert len(found) == 1
    assert found[0].startswith("9:7: 'delivery_date' is not a field of purchase_order; known: amount, ")
    assert "expected_date" in found[0] and "declared first: fields: {purchase_order: {delivery_date: …}}" in found[0]

    found = problems(tmp_path, SHEET + "      revision: Rev\n")
    assert found[0].startswith("8:7: 'revision' is not a field of purchase_order")

    declared = "fields:\n  purchase_order:\n    revision: integer\n    status: string\n  stock:\n    x: number\n"
    found = problems(tmp_path, declared + SHEET + "      revision: {column: Rev, type: date}\n")
    assert found == [
        "4:5: 'status' is already a canonical field of purchase_order: declare only new ones",
        "5:3: fields: unknown entity 'stock'; known: approval, inventory, invoice, payment, purchase_order, sales_order",
        "14:31: field 'revision': declared as integer under fields:, mapped as date here",
    ]


def test_mistakes_in_formats_maps_and_constants_are_reported_at_load(tmp_path: Path) -> None:
    found = problems(tmp_path, SHEET + """\
      order_date: {column: A, type: date, format: "%Y"}
      expected_date: {column: B, type: date, monthfirst: true, dayfirst: true}
      supplier: {column: C, format: "%m/%d/%Y"}
      qty: {column: D, type: integer, map: {1: one}}
      warehouse: {column: E, value: WH1}
      status: {column: F, map: {yes: approved}}
      amount: {column: G, type: number, default: 0}
      created_at: {value: not a time, type: datetime}
""")
    assert found == [
        "8:43: field 'order_date': format '%Y' has no day (%d)",
        "9:64: field 'expected_date': give monthfirst or dayfirst, not both",
        "10:29: field 'supplier': format, monthfirst and dayfirst are for date and datetime fields; this one is string (add type: date)",
        "11:45: field 'qty': map value for '1': not a number: 'one'",
        "12:19: field 'warehouse': 'value' is a constant: give it without 'column'",
        "13:33: field 'status': map key True was read by YAML as yes/no; write the source value in quotes ('yes', 'on', 'true')",
        "14:41: field 'amount': 'default' is the value for what 'map' lacks: give 'map' too",
        "15:20: field 'created_at': value: not a date: 'not a time'; expected e.g. 2025-03-05, 2025/3/5, 2025年3月5日, an ISO datetime or an Excel serial number",
    ]


def test_values_a_map_lacks_without_a_default_are_dead_letters_counted_by_reason(tmp_path: Path) -> None:
    (tmp_path / "po.csv").write_text("PO,Status\nPO-1,1\nPO-2,5\nPO-3,5\nPO-4,X\n", encoding="utf-8")
    config = tmp_path / "connectors.yaml"
    config.write_text(SHEET + "      status: {column: Status, map: {1: draft, 2: approved}}\n", encoding="utf-8")
    done = run("connectors", "check", str(config))
    assert done.returncode == 1
    out = done.stdout
    assert "summary: 4 row(s) read, 1 record(s), 3 dead letter(s)" in out
    assert "    3 × field 'status' (column 'Status'): … is not in the field's map (it has '1', '2'); add it to map: or give default:" in out
    assert "map of field 'status' (column 'Status') lacks '5' ×2, 'X' ×1 (dead letters)" in out
    assert out.rstrip().endswith("1 connector(s) checked, 1 failed")


@pytest.mark.parametrize(("text", "style", "expected"), [
    ("3/5/2025", DateStyle(order="monthfirst"), date(2025, 3, 5)),
    ("3/5/2025", DateStyle(order="dayfirst"), date(2025, 5, 3)),
    ("05.03.25", DateStyle(order="dayfirst"), date(2025, 3, 5)),
    ("3/5/25 2:05 PM", DateStyle(order="monthfirst"), datetime.fromisoformat("2025-03-05T14:05:00+00:00")),
    ("12/31/25 9:07", DateStyle(formats=("%m/%d/%y %H:%M",)), datetime.fromisoformat("2025-12-31T09:07:00+00:00")),
    ("2025-03-05", DateStyle(formats=("%m/%d/%Y",)), date(2025, 3, 5)),  # year first reads as always
    (45721, DateStyle(order="dayfirst"), date(2025, 3, 5)),  # an Excel serial too
])
def test_date_styles(text: object, style: DateStyle, expected: object) -> None:
    assert parse_date(text, style=style) == expected


def test_a_field_format_keeps_the_connectors_order_for_what_it_does_not_match(tmp_path: Path) -> None:
    config = tmp_path / "connectors.yaml"
    config.write_text(SHEET.replace("    fields:\n", "    dates: {monthfirst: true}\n    fields:\n")
                      + '      created_at: {column: Created, type: datetime, format: "%m/%d/%y %H:%M"}\n',
                      encoding="utf-8")
    [cfg] = load_config(config)
    assert cfg.mapping.apply({"Created": "3/5/24 9:07"}) == {"created_at": "2024-03-05T09:07:00+00:00"}
    assert cfg.mapping.apply({"Created": "3/5/2024 9:07"}) == {"created_at": "2024-03-05T09:07:00+00:00"}


def test_a_day_and_month_text_is_never_guessed() -> None:
    with pytest.raises(ValueError, match=r"puts day and month before the year \(either way\)"):
        parse_date("3/5/2025")
    with pytest.raises(ValueError, match=r"only day-first here"):
        parse_date("31/12/2025")
    with pytest.raises(ValueError, match=r"does not match %m/%d/%Y"):
        parse_date("3/5/25", style=DateStyle(formats=("%m/%d/%Y",)))


def test_the_readme_lists_every_canonical_field_as_the_schema_has_them() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    begin = readme.index("<!-- canonical fields: generated by `python -m engine.schema`")
    begin = readme.index("\n", begin) + 1
    end = readme.index("<!-- end of canonical fields -->")
    assert readme[begin:end] == fields_markdown(), "run `python -m engine.schema` and paste its table into the README"


def test_the_worker_reads_the_declaration_from_its_fields_setting(tmp_path: Path) -> None:
    from orderwatch.app import build_worker
    from orderwatch.config import load_settings

    (tmp_path / "fields.yaml").write_text(CUSTOM.split("connectors:")[0], encoding="utf-8")
    (tmp_path / "revision.yaml").write_text(REVISION_RULE, encoding="utf-8")
    settings_file = tmp_path / "settings.yaml"
    # A broker that is not there: building a worker connects to nothing.
    settings_file.write_text("broker: kafka://127.0.0.1:1\nrules: [revision.yaml]\ndatadir: data\n", encoding="utf-8")
    done = run("worker", "--config", str(settings_file))
    assert done.returncode == 2
    assert f"{tmp_path / 'revision.yaml'}:6:9: 'revision' is not a field of purchase_order" in done.stderr

    with settings_file.open("a", encoding="utf-8") as f:
        f.write("fields: fields.yaml\n")
    settings = load_settings(str(settings_file))
    assert settings.fields_file == str(tmp_path / "fields.yaml")
    worker = build_worker(settings)
    try:
        assert [r.id for r in worker.engine.evaluator.rules] == ["po-revised-often"]
    finally:
        worker.engine.evaluator.close()
        worker.store.close()
        NONE.install()  # the declaration is the process's: leave none to the next test


def test_the_us_export_example_loads_and_its_fields_check_with_the_shipped_rules() -> None:
    example = ROOT / "examples" / "connectors" / "us_export.yaml"
    [cfg] = load_config(example)
    assert {s.name: s.type for s in cfg.mapping.specs}["revision"] == "integer"
    done = run("rules", "check", str(ROOT / "rules"), "--fields", str(example))
    assert done.returncode == 0, done.stdout
