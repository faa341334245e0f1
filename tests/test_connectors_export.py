"""Backtests from sources: `connectors export` reads a PostgreSQL history table (a `ts:` column
says when each change happened) and a flat sheet of order lines, `backtest --to` a past date
shows what was true then and reports the records after it; drivers and columns that are
missing are named in one sentence."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

from tests.dbservers import server_url, unique_name

CLI = [sys.executable, "-m", "orderwatch"]
ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def po_history() -> tuple[str, str]:
    """A PostgreSQL table of purchase-order versions (one row per change, as an ERP's audit
    table keeps them); yields its URL and name, drops it after."""
    url, table = server_url("postgresql"), unique_name("po_history")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            f"CREATE TABLE {table} (version_id integer PRIMARY KEY, po_no text NOT NULL, supplier text, "
            "buyer text, status text, expected date, changed_at timestamp without time zone)"))
        conn.execute(sa.text(f"INSERT INTO {table} VALUES (:v, :po, :s, 'li.wei', :st, :e, :at)"), [
            {"v": 1, "po": "PO-1", "s": "Acme", "st": "approved", "e": "2025-03-01", "at": "2025-02-10 09:00"},
            {"v": 2, "po": "PO-2", "s": "Globex", "st": "approved", "e": "2025-03-20", "at": "2025-02-12 10:00"},
            # PO-1 arrives on 15 March: late from 3 March until then.
            {"v": 3, "po": "PO-1", "s": "Acme", "st": "received", "e": "2025-03-01", "at": "2025-03-15 16:00"},
            {"v": 4, "po": "PO-3", "s": "Initech", "st": "approved", "e": "2025-04-02", "at": "2025-03-25 08:30"},
        ])
    try:
        yield url, table
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {table}"))
        engine.dispose()


def sql_connectors(tmp_path: Path, url: str, table: str, extra: str = "") -> Path:
    config = tmp_path / "connectors.yaml"
    config.write_text(f"""\
connectors:
  - id: erp-po
    type: sql
    url: {url}
    table: {table}
    entity: purchase_order
    key: po_no
    cursor: version_id
    ts: changed_at
    timezone: Asia/Shanghai
    fields:
      supplier: supplier
      buyer: buyer
      status: status
      expected_date: {{column: expected, type: date}}
{extra}""", encoding="utf-8")
    return config


def test_export_of_a_history_table_then_backtest_to_a_past_date(tmp_path: Path, po_history: tuple[str, str]) -> None:
    url, table = po_history
    config = sql_connectors(tmp_path, url, table)
    records = tmp_path / "records.jsonl"
    done = run("connectors", "export", str(config), "--out", str(records))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "erp-po: 4 row(s) read, 4 record(s), 0 dead letter(s)" in done.stderr
    written = [json.loads(line) for line in records.read_text(encoding="utf-8").splitlines()]
    # The ts column (Shanghai time) is when each change happened, not when it was read.
    assert [(r["key"], r["ts"], r["seq"]) for r in written] == [
        ("PO-1", "2025-02-10T09:00:00+08:00", 1), ("PO-2", "2025-02-12T10:00:00+08:00", 2),
        ("PO-1", "2025-03-15T16:00:00+08:00", 3), ("PO-3", "2025-03-25T08:30:00+08:00", 4),
    ]

    # On 10 March PO-1 was a week late; the two later changes are reported, not silently dropped.
    done = run("backtest", "--input", str(records), "--to", "2025-03-10T00:00:00Z", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "po-delivery-overdue" in done.stdout and "purchase_order:PO-1" in done.stdout
    assert ("2 record(s) after --to 2025-03-10T00:00:00+00:00 were not replayed "
            "(the first at 2025-03-15T16:00:00+08:00)") in done.stdout
    done = run("backtest", "--input", str(records), "--to", "2025-03-10T00:00:00Z", "--format", "summary")
    summary = json.loads(done.stdout)
    assert summary["rules"]["po-delivery-overdue"] == {"fired": 1, "resolved": 0, "firing_at_end": 1}
    assert (summary["records"], summary["after_to"]) == (2, 2)
    assert "2 record(s) after --to" in done.stderr

    # By 1 April PO-1 had arrived (resolved) and PO-2, due 20 March, was late.
    done = run("backtest", "--input", str(records), "--to", "2025-04-01T00:00:00Z", "--format", "summary")
    summary = json.loads(done.stdout)
    assert summary["rules"]["po-delivery-overdue"] == {"fired": 2, "resolved": 1, "firing_at_end": 1}
    assert summary["after_to"] == 0 and summary["records"] == 4

    # Everything before --to: "0 records" comes with the reason.
    done = run("backtest", "--input", str(records), "--to", "2025-01-01T00:00:00Z", "--format", "json")
    assert done.returncode == 0 and done.stdout == ""
    assert "4 record(s) after --to 2025-01-01T00:00:00+00:00 were not replayed" in done.stderr
    assert "no record of" in done.stderr


def test_a_ts_cell_that_is_not_a_time_is_a_dead_letter_and_export_fails(tmp_path: Path) -> None:
    (tmp_path / "po.csv").write_text("PO,Supplier,Due,Changed\nPO-1,Acme,2025-03-01,2025-02-10 09:00\n"
                                     "PO-2,Globex,2025-03-05,soon\n", encoding="utf-8")
    config = tmp_path / "connectors.yaml"
    config.write_text("""\
connectors:
  - id: sheet
    type: spreadsheet
    path: po.csv
    entity: purchase_order
    key: PO
    ts: Changed
    fields: {supplier: Supplier, expected_date: {column: Due, type: date}}
""", encoding="utf-8")
    done = run("connectors", "export", str(config), "--out", "-")
    assert done.returncode == 1
    [record] = [json.loads(line) for line in done.stdout.splitlines()]
    assert (record["key"], record["ts"]) == ("PO-1", "2025-02-10T09:00:00+00:00")
    assert "sheet: 2 row(s) read, 1 record(s), 1 dead letter(s)" in done.stderr
    assert "field 'ts' (column 'Changed')" in done.stderr


FLAT = [
    ["PO No", "Supplier", "Buyer", "Expected", "Line", "SKU", "Ordered", "Received"],
    ["PO-7", "Acme", "li.wei", datetime(2025, 3, 1), 1, "BOLT-M8", 100, 100],
    ["PO-7", "Acme", "li.wei", datetime(2025, 3, 1), 2, "NUT-M8", 200, 50],
    ["PO-8", "Globex", "li.wei", datetime(2025, 3, 1), 1, "BOLT-M8", 10, 10],
    ["PO-7", "Acme Ltd", "li.wei", datetime(2025, 3, 1), 3, "WASHER", 40, 40],
]
LINES_CONFIG = """\
connectors:
  - id: flat
    type: spreadsheet
    path: {path}
    entity: purchase_order
    key: PO No
    fields:
      supplier: Supplier
      buyer: Buyer
      expected_date: {{column: Expected, type: date}}
    lines:
      fields:
        line_no: {{column: Line, type: integer}}
        sku: SKU
        qty: {{column: Ordered, type: number}}
        received_qty: {{column: Received, type: number}}
"""


@pytest.mark.parametrize("kind", ["xlsx", "csv", "folder"])
def test_a_flat_export_of_order_lines_becomes_orders_with_lines(tmp_path: Path, kind: str) -> None:
    if kind == "xlsx":
        book = openpyxl.Workbook()
        for row in FLAT:
            book.active.append(row)
        book.save(tmp_path / "po_lines.xlsx")
        path = "po_lines.xlsx"
    else:
        text = "\n".join(",".join(v.strftime("%Y-%m-%d") if isinstance(v, datetime) else str(v) for v in row)
                         for row in FLAT) + "\n"
        folder = tmp_path / "exports" if kind == "folder" else tmp_path
        folder.mkdir(exist_ok=True)
        (folder / "po_lines.csv").write_text(text, encoding="utf-8")
        path = "exports" if kind == "folder" else "po_lines.csv"
    config = tmp_path / "connectors.yaml"
    config.write_text(LINES_CONFIG.format(path=path), encoding="utf-8")

    done = run("connectors", "check", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "summary: 4 row(s) read, 2 record(s), 0 dead letter(s)" in done.stdout
    # The header field that differs between the rows of one order is reported; the first row wins.
    assert "note: order 'PO-7': supplier is 'Acme Ltd' in row 5 but 'Acme' in row 2" in done.stdout

    records = tmp_path / "records.jsonl"
    done = run("connectors", "export", str(config), "--out", str(records))
    assert done.returncode == 0, done.stderr
    orders = {r["key"]: r["fields"] for r in map(json.loads, records.read_text(encoding="utf-8").splitlines())}
    assert orders["PO-7"]["supplier"] == "Acme"
    assert orders["PO-7"]["lines"] == [
        {"line_no": 1, "sku": "BOLT-M8", "qty": 100, "received_qty": 100},
        {"line_no": 2, "sku": "NUT-M8", "qty": 200, "received_qty": 50},
        {"line_no": 3, "sku": "WASHER", "qty": 40, "received_qty": 40},
    ]
    assert [line["sku"] for line in orders["PO-8"]["lines"]] == ["BOLT-M8"]

    done = run("backtest", "--input", str(records), "--to", "now", "--format", "json")
    fired = {(e["rule"], e["key"]) for e in map(json.loads, done.stdout.splitlines()) if e["state"] == "firing"}
    assert ("po-partially-received", "PO-7") in fired  # line 2: 50 of 200
    assert ("po-partially-received", "PO-8") not in fired

    # Counted per line with the example per-line rule: the short line alone, keyed ORDER#LINE.
    done = run("backtest", "--input", str(records), "--to", "now", "--format", "summary",
               "--rules", str(ROOT / "rules"), "--rules", str(ROOT / "examples" / "rules"))
    assert json.loads(done.stdout)["rules"]["po-line-short-received"]["firing_at_end"] == 1
    done = run("backtest", "--input", str(records), "--to", "now", "--format", "json",
               "--rules", str(ROOT / "examples" / "rules"))
    assert [(e["key"], e["labels"]["sku"]) for e in map(json.loads, done.stdout.splitlines())] == [("PO-7#2", "NUT-M8")]


def test_without_the_driver_the_error_names_the_extra(tmp_path: Path) -> None:
    config = sql_connectors(tmp_path, "postgresql://orderwatch@127.0.0.1:5432/test", "po")
    # This Python as it would be after a plain `pip install orderwatch`: no PostgreSQL driver.
    code = ("import sys; sys.modules['psycopg2'] = sys.modules['psycopg'] = None; "
            "from orderwatch.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", code, "connectors", "check", str(config)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert "the database driver 'psycopg' is not installed; install it with: pip install 'orderwatch[postgres]'" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_a_url_without_a_driver_name_uses_the_installed_one(tmp_path: Path, po_history: tuple[str, str]) -> None:
    url, table = po_history
    plain = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    done = run("connectors", "check", str(sql_connectors(tmp_path, plain, table)))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "summary: 4 row(s) read, 4 record(s)" in done.stdout


def test_columns_the_table_lacks_are_named_all_at_once(tmp_path: Path, po_history: tuple[str, str]) -> None:
    url, table = po_history
    extra = "      warehouse: Warehouse\n      note: remarks\n"
    done = run("connectors", "check", str(sql_connectors(tmp_path, url, table, extra)))
    assert done.returncode == 1
    assert f"FAILED: MissingColumns: table '{table}' has no column(s) 'Warehouse', 'remarks'; it has: 'version_id'" in done.stdout
    assert "SELECT" not in done.stdout


def test_the_extras_the_readme_names_exist() -> None:
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert any(dep.startswith("psycopg2") for dep in extras["postgres"])
    assert any(dep.lower().startswith("pymysql") for dep in extras["mysql"])
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install -e '.[postgres]'" in readme and "pip install -e '.[mysql]'" in readme
