"""The connectors file: what a valid one builds, and where an invalid one is wrong."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from connectors.config import build_connector, load_config
from connectors.mapping import FieldSpec
from connectors.spreadsheet import SpreadsheetConfig, SpreadsheetConnector
from connectors.sql import SqlConfig, SqlConnector
from orderwatch.yamlsrc import SourceError

VALID = """\
connectors:
  - id: demo-erp
    type: sql
    url: sqlite:///data/erp.sqlite
    entity: purchase_order
    table: purchase_orders
    key: po_number
    cursor: updated_at
    batch_size: 500
    timezone: Asia/Shanghai
    fields:
      supplier: supplier_name
      expected_date: {column: expected_date, type: date}
    actor: updated_by
  - id: branch-sheet
    type: spreadsheet
    path: data/branch_orders.csv
    entity: purchase_order
    key: [分店, 订单号]
    encoding: auto
    fields: {supplier: 供应商, qty: {column: 数量, type: number}}
  - id: prod-erp
    type: sql
    url: postgresql+psycopg2://watcher:${OW_TEST_ERP_PASSWORD}@db.example:5432/erp
    entity: sales_order
    query: SELECT so_no, customer, changed_at FROM so WHERE deleted = 0
    key: so_no
    cursor: changed_at
    fields: {customer: customer}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "connectors.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line number of the nth line containing `needle`."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[nth - 1]


def problems(tmp_path: Path, text: str) -> list[tuple[int, int, str]]:
    path = write(tmp_path, text)
    with pytest.raises(SourceError) as info:
        load_config(path, env={})
    assert all(pos.file == str(path) for pos, _ in info.value.problems)
    return [(pos.line, pos.col, message) for pos, message in info.value.problems]


def test_a_valid_file_gives_typed_configs(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    erp, sheet, prod = load_config(path, env={"OW_TEST_ERP_PASSWORD": "s3cret"})
    assert isinstance(erp, SqlConfig) and isinstance(sheet, SpreadsheetConfig)
    assert erp.url == f"sqlite:///{tmp_path / 'data' / 'erp.sqlite'}"  # relative to the file
    assert (erp.table, erp.query, erp.key, erp.cursor, erp.batch_size, erp.actor) == (
        "purchase_orders",
        None,
        ("po_number",),
        "updated_at",
        500,
        "updated_by",
    )
    assert erp.timezone == ZoneInfo("Asia/Shanghai")
    assert erp.mapping.specs == (
        FieldSpec("supplier", "supplier_name", "string"),
        FieldSpec("expected_date", "expected_date", "date"),
    )
    assert sheet.path == tmp_path / "data" / "branch_orders.csv"
    assert sheet.key == ("分店", "订单号")
    assert (sheet.encoding, sheet.delimiter, sheet.timezone) == ("auto", ",", UTC)
    assert sheet.mapping.specs[1] == FieldSpec("qty", "数量", "number")
    assert isinstance(prod, SqlConfig)
    assert prod.url == "postgresql+psycopg2://watcher:s3cret@db.example:5432/erp"
    assert prod.query is not None and prod.table is None and prod.batch_size == 1000


def test_built_connectors_read_their_sources(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    db = sqlite3.connect(tmp_path / "data" / "erp.sqlite")
    db.execute(
        "CREATE TABLE purchase_orders (po_number TEXT, supplier_name TEXT,"
        " expected_date TEXT, updated_at TEXT, updated_by TEXT)"
    )
    db.execute(
        "INSERT INTO purchase_orders VALUES"
        " ('PO-1', 'Acme', '2025/3/5', '2025-03-05 10:00:00', 'bob')"
    )
    db.commit()
    db.close()
    sheet = tmp_path / "data" / "branch_orders.csv"
    sheet.write_bytes('分店,订单号,供应商,数量\n上海,SO-9,华东五金,"1,200"\n'.encode("gb18030"))
    os.utime(sheet, (1_741_000_000, 1_741_000_000))  # saved a while ago: settled
    erp_cfg, sheet_cfg, _ = load_config(write(tmp_path, VALID), env={"OW_TEST_ERP_PASSWORD": ""})
    erp = build_connector(erp_cfg, None)
    sheet = build_connector(sheet_cfg, None)
    assert isinstance(erp, SqlConnector) and isinstance(sheet, SpreadsheetConnector)
    [po] = erp.poll().records
    erp.close()
    assert (po.key, po.fields, po.actor) == (
        "PO-1",
        {"supplier": "Acme", "expected_date": "2025-03-05"},
        "bob",
    )
    assert po.ts.isoformat() == "2025-03-05T10:00:00+08:00"  # naive times in the given zone
    [so] = sheet.poll().records
    assert (so.key, so.fields) == ("上海:SO-9", {"supplier": "华东五金", "qty": 1200})


def test_an_unknown_key_is_reported_where_it_is_with_the_known_keys(tmp_path: Path) -> None:
    text = VALID.replace("    batch_size: 500\n", "    batchsize: 500\n")
    [(line, col, message)] = problems(tmp_path, text.replace("${OW_TEST_ERP_PASSWORD}", "x"))
    assert (line, col) == (line_of(text, "batchsize"), 5)
    assert message.startswith("unknown key 'batchsize' for type sql; known: id, type, entity")
    assert "batch_size" in message


def test_a_missing_environment_variable_is_reported_at_its_value(tmp_path: Path) -> None:
    [(line, _, message)] = problems(tmp_path, VALID)
    assert line == line_of(VALID, "OW_TEST_ERP_PASSWORD")
    assert message == "environment variable OW_TEST_ERP_PASSWORD is not set"


def test_every_problem_is_reported_at_once_each_on_its_line(tmp_path: Path) -> None:
    text = """\
connectors:
  - id: erp
    type: sql
    url: sqlite:///erp.sqlite
    entity: purchase_order
    table: po
    query: SELECT 1
    key: po_number
    fields:
      expected_date: {column: due_date, type: day}
  - id: erp
    type: spreadsheet
    path: sheet.csv
    entity: purchase_ordr
    key: 订单号
    fields: {supplier: 供应商}
    timezone: Mars/Olympus
  - id: other
    type: excel
"""
    found = problems(tmp_path, text)
    assert [(line, message.split(";")[0].split(" (")[0]) for line, _, message in found] == [
        (2, "sql connector needs 'cursor'"),
        (7, "give 'table' or 'query', not both"),
        (10, "field 'expected_date': unknown type 'day'"),
        (11, "duplicate id 'erp'"),
        (14, "unknown entity 'purchase_ordr'"),
        (17, "unknown time zone 'Mars/Olympus'"),
        (19, "type must be one of sql, spreadsheet, debezium, webhook, got 'excel'"),
    ]
    assert found[3][2] == f"duplicate id 'erp' (first at {tmp_path / 'connectors.yaml'}:2:5)"


@pytest.mark.parametrize(
    ("bad", "good", "fragment"),
    [
        ("batch_size: 500", "batch_size: 0", "batch_size must be a positive integer"),
        ("id: demo-erp", "id: demo erp/1", "may only hold letters, digits"),
        ("key: po_number", "key: []", "key is a column name or a list"),
        ("supplier: supplier_name", "supplier: [a, b]", "give a column name or"),
        ("encoding: auto", "encoding: klingon", "unknown encoding 'klingon'"),
        ("url: sqlite:///data/erp.sqlite", "url: not a url", "not an SQLAlchemy URL"),
    ],
)
def test_bad_values_name_the_problem(tmp_path: Path, bad: str, good: str, fragment: str) -> None:
    text = VALID.replace("${OW_TEST_ERP_PASSWORD}", "x").replace(bad, good)
    [(line, _, message)] = problems(tmp_path, text)
    assert fragment in message
    assert line == line_of(text, good.split(":")[0] + ":")


def test_a_file_without_a_connectors_list_is_rejected(tmp_path: Path) -> None:
    [(line, col, message)] = problems(tmp_path, "sources:\n  - id: x\n")
    assert (line, col) == (1, 1)
    assert "connectors:" in message


MORE = """\
connectors:
  - id: erp
    type: sql
    url: sqlite:///erp.sqlite
    entity: purchase_order
    table: po
    key: po_number
    cursor: updated_at
    lookback: 10m
    reconcile: 1h
    fields: {supplier: supplier_name}
    lines:
      table: po_line
      parent: po_number
      order_by: [line_no]
      fields: {sku: sku, qty: {column: qty, type: number}}
  - id: sheets
    type: spreadsheet
    path: branches
    pattern: ["*.xlsx"]
    sheet: 订单
    header_row: 2
    settle: 5
    entity: purchase_order
    key: 订单号
    fields: {supplier: 供应商}
  - id: cdc
    type: debezium
    topic: erp.public.purchase_orders
    bootstrap: kafka.example:9092
    start: latest
    entity: purchase_order
    key: po_number
    fields: {supplier: supplier_name}
  - id: push
    type: webhook
    auth: hmac
    secret: ${OW_TEST_HOOK_SECRET}
    listen: 127.0.0.1:8099
    max_bytes: 65536
"""


def test_the_other_connector_types_and_options(tmp_path: Path) -> None:
    from datetime import timedelta

    from connectors.debezium import DebeziumConfig
    from connectors.webhook import WebhookConfig

    erp, sheets, cdc, push = load_config(write(tmp_path, MORE), env={"OW_TEST_HOOK_SECRET": "k"})
    assert isinstance(erp, SqlConfig)
    assert (erp.lookback, erp.reconcile) == (timedelta(minutes=10), 3600.0)
    assert erp.lines is not None and (erp.lines.table, erp.lines.parent, erp.lines.match) == (
        "po_line", "po_number", "po_number")  # match defaults to the first key column
    assert erp.lines.order_by == ("line_no",) and erp.lines.mapping.specs[1] == FieldSpec("qty", "qty", "number")
    assert isinstance(sheets, SpreadsheetConfig)
    assert (sheets.path, sheets.pattern, sheets.sheet, sheets.header_row, sheets.settle) == (
        tmp_path / "branches", ("*.xlsx",), "订单", 2, 5.0)
    assert isinstance(cdc, DebeziumConfig)
    assert (cdc.topic, cdc.bootstrap, cdc.start, cdc.batch_size) == (
        "erp.public.purchase_orders", "kafka.example:9092", "latest", 1000)
    assert isinstance(push, WebhookConfig)
    assert (push.auth, push.secret, push.host, push.port, push.path, push.max_bytes, push.mapping) == (
        "hmac", "k", "127.0.0.1", 8099, "/ingest", 65536, None)


@pytest.mark.parametrize(
    ("bad", "good", "fragment"),
    [
        ("lookback: 10m", "lookback: soon", "lookback: not a duration: 'soon'"),
        ("reconcile: 1h", "reconcile: hourly", "reconcile is a duration like 30s, 10m, 2h or 1d"),
        ("      parent: po_number\n", "", "lines needs 'parent'"),
        ("      order_by: [line_no]", "      orderby: [line_no]", "unknown key 'orderby' for lines"),
        ("    start: latest", "    start: middle", "start must be one of earliest, latest"),
        ("    auth: hmac", "    auth: basic", "auth must be one of hmac, bearer, none"),
        ("    secret: ${OW_TEST_HOOK_SECRET}\n", "", "auth: hmac needs 'secret'"),
        ("    listen: 127.0.0.1:8099", "    listen: everywhere", "listen is host:port"),
        ("    max_bytes: 65536", "    max_bytes: 65536\n    key: so_no",
         "key, seq, op, ts and actor map rows: give 'fields' too"),
        ("    settle: 5", "    settle: -1", "settle is a number of seconds"),
    ],
)
def test_mistakes_in_the_new_keys(tmp_path: Path, bad: str, good: str, fragment: str) -> None:
    assert bad in MORE
    text = MORE.replace(bad, good)
    found = problems(tmp_path, text.replace("${OW_TEST_HOOK_SECRET}", "k"))
    assert any(fragment in message for _, _, message in found), found


@pytest.mark.parametrize("name", ["odoo.yaml", "erpnext.yaml", "sheets.yaml", "debezium.yaml", "webhook.yaml"])
def test_the_shipped_examples_are_valid(name: str) -> None:
    env = {k: "x" for k in ("ODOO_DB_PASSWORD", "ERPNEXT_DB_PASSWORD", "ORDERWATCH_WEBHOOK_SECRET",
                             "ORDERWATCH_MES_TOKEN")}
    examples = Path(__file__).resolve().parent.parent / "examples" / "connectors"
    assert load_config(examples / name, env=env)
