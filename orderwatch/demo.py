"""`orderwatch demo`: the whole pipeline on the embedded default, with shipped demo data.

It builds a small SQLite "ERP" (dates relative to today, so the story is the
same whenever it runs), reads a GBK-encoded branch spreadsheet with Chinese
headers, starts the embedded broker, runs connectors, engine and alert sink in
one process, prints alerts as they fire and a summary at the end.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sqlite3
import time
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from alerts.console import item_of_stored, readable
from connectors.base import BookmarkStore
from connectors.publisher import Publisher
from connectors.runner import ConnectorRunner
from console.links import link_for
from orderwatch.app import Worker, build_worker, request_stop, run_worker
from orderwatch.broker import EmbeddedBroker, free_port
from orderwatch.config import REPO_ROOT, Settings
from orderwatch.record import ChangeRecord
from orderwatch.topics import bootstrap_of

DEMO_DIR = REPO_ROOT / "examples" / "demo"

# The demo ERP, told as a story relative to today (day offsets). Each table is a
# list of rows; None means NULL. The alerts the shipped rule packs raise on it
# are listed in the README ("The demo").
_PO_COLUMNS = ("po_number", "supplier_name", "buyer", "status", "expected", "qty", "received_qty", "unit_price",
               "currency", "sku", "warehouse", "approval_status", "approved_days_ago", "sent_days_ago",
               "confirmed")
_PURCHASE_ORDERS = [
    ("PO-2025-0042", "华东五金 Huadong Hardware", "li.wei", "open", -12, 500, None, 12.5, "CNY", "BOLT-M8", "SH1",
     "approved", 45, 44, True),
    ("PO-2025-0043", "Acme Bearings", "anna.schmidt", "received", -20, 120, 120, 48.0, "EUR", "BRG-6204", "SH1",
     "approved", 50, 50, True),
    ("PO-2025-0044", "苏州精密 Suzhou Precision", "li.wei", "confirmed", 5, 2000, None, 3.2, "CNY", "GEAR-12", "SZ",
     "approved", 10, 10, True),
    ("PO-2025-0045", "Nordic Steel AB", "anna.schmidt", "open", -3, 40, None, 910.0, "EUR", "PLATE-S4", "SH1",
     "approved", 33, 33, True),
    ("PO-2025-0046", "深圳电子 Shenzhen Electronics", "zhang.min", "partially_received", -2, 800, 500, 6.75, "CNY",
     "PCB-A7", "SZ", "approved", 30, 30, True),
    ("PO-2025-0047", "Acme Bearings", "anna.schmidt", "cancelled", -60, 10, None, 48.0, "EUR", "BRG-6204", "SH1",
     "approved", 90, 90, True),
    ("PO-2025-0048", "Lyon Packaging SARL", "zhang.min", "open", 14, 5000, None, 0.4, "EUR", "CARTON-L", "SH1",
     "approved", 16, 16, True),
    # Over the 50,000 limit and still waiting for approval.
    ("PO-2025-0049", "深圳电子 Shenzhen Electronics", "zhang.min", "open", 21, 40000, None, 1.6, "CNY", "PCB-B2",
     "SZ", "pending", None, 1, False),
    # Sent a week ago; the supplier has not confirmed.
    ("PO-2025-0050", "Lyon Packaging SARL", "anna.schmidt", "sent", 25, 800, None, 2.1, "EUR", "TAPE-50", "SH1",
     "approved", 8, 7, False),
]

# (so_number, customer, sales_rep, status, promised, delivered, qty, unit_price, currency, sku, warehouse,
#  approval_status, approval requested days ago)
_SALES_ORDERS = [
    ("SO-2025-0101", "上海百货 Shanghai Stores", "amy.chen", "open", -2, None, 300, 18.0, "CNY", "PCB-A7", "SZ",
     "approved", 20),
    ("SO-2025-0102", "Big Retail GmbH", "tom.keller", "delivered", -8, -6, 60, 95.0, "EUR", "BRG-6204", "SH1",
     "approved", 25),
    # Needs more BOLT-M8 than the shelf holds plus what is inbound.
    ("SO-2025-0103", "上海百货 Shanghai Stores", "amy.chen", "open", 6, None, 1800, 1.9, "CNY", "BOLT-M8", "SH1",
     "approved", 12),
    ("SO-2025-0104", "Big Retail GmbH", "tom.keller", "open", 30, None, 40, 120.0, "EUR", "PLATE-S4", "SH1",
     "pending", 6),
]

# (sku, warehouse, on_hand, reserved, safety_stock, owner)
_INVENTORY = [
    ("BOLT-M8", "SH1", 1200, 0, 500, "wang.fang"),
    ("CARTON-L", "SH1", 800, 0, 1000, "wang.fang"),
    ("GEAR-12", "SZ", 3000, 200, 1000, "chen.jie"),
    ("PCB-A7", "SZ", 900, 300, 200, "chen.jie"),
]

# (invoice_no, direction, counterparty, amount, paid_amount, currency, due in days, status, clerk)
_INVOICES = [
    ("AR-2025-0301", "receivable", "上海百货 Shanghai Stores", 86000, 0, "CNY", -10, "open", "zhao.min"),
    ("AR-2025-0302", "receivable", "上海百货 Shanghai Stores", 30000, 10000, "CNY", -4, "partially_paid", "zhao.min"),
    ("AR-2025-0303", "receivable", "Big Retail GmbH", 5700, 0, "EUR", 2, "open", "julia.braun"),
    ("AP-2025-0088", "payable", "Nordic Steel AB", 36400, 0, "EUR", -5, "open", "julia.braun"),
    ("AP-2025-0089", "payable", "Acme Bearings", 5760, 5760, "EUR", -15, "paid", "julia.braun"),
]


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def build_erp(path: Path, today: date | None = None) -> None:
    """Create the demo ERP database (a fresh file): purchase and sales orders, stock, invoices."""
    today = today or date.today()
    path.unlink(missing_ok=True)
    now = datetime.now(UTC).replace(microsecond=0)
    tick = iter(range(100, 0, -1))  # rows were last updated a few minutes ago, in table order

    def updated() -> str:
        return _iso(now - timedelta(minutes=next(tick)))

    def day(offset: int | None) -> str | None:
        return None if offset is None else (today + timedelta(days=offset)).isoformat()

    def ago(days: int | None) -> str | None:
        return None if days is None else _iso(now - timedelta(days=days))

    with sqlite3.connect(path) as db:
        db.execute(
            """CREATE TABLE purchase_orders (
                po_number TEXT PRIMARY KEY, supplier_name TEXT, buyer TEXT, status TEXT,
                order_date TEXT, expected_date TEXT, qty REAL, received_qty REAL, unit_price REAL, amount REAL,
                currency TEXT, sku TEXT, warehouse TEXT, approval_status TEXT, approved_by TEXT,
                approved_at TEXT, approval_requested_at TEXT, sent_date TEXT, confirmed_date TEXT,
                updated_at TEXT, updated_by TEXT)"""
        )
        for (po, supplier, buyer, status, expected, qty, received, price, cur, sku, wh, approval, approved_ago,
             sent_ago, confirmed) in _PURCHASE_ORDERS:
            expected_date = today + timedelta(days=expected)
            sent = ago(sent_ago)
            db.execute(
                "INSERT INTO purchase_orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (po, supplier, buyer, status, (expected_date - timedelta(days=30)).isoformat(),
                 expected_date.isoformat(), qty, received, price, round(qty * price, 2), cur, sku, wh, approval,
                 "anna.schmidt" if approval == "approved" else None, ago(approved_ago),
                 ago(approved_ago if approved_ago is not None else sent_ago), sent,
                 day(-(sent_ago or 0) + 1) if confirmed and sent else None, updated(), buyer),
            )
        db.execute(
            """CREATE TABLE sales_orders (
                so_number TEXT PRIMARY KEY, customer TEXT, sales_rep TEXT, status TEXT, promised_date TEXT,
                shipped_date TEXT, delivered_date TEXT, qty REAL, unit_price REAL, amount REAL,
                invoiced_amount REAL, currency TEXT, sku TEXT, warehouse TEXT, approval_status TEXT,
                approved_at TEXT, approval_requested_at TEXT, updated_at TEXT, updated_by TEXT)"""
        )
        for (so, customer, rep, status, promised, delivered, qty, price, cur, sku, wh, approval,
             requested_ago) in _SALES_ORDERS:
            db.execute(
                "INSERT INTO sales_orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (so, customer, rep, status, day(promised), day(delivered - 1) if delivered is not None else None,
                 day(delivered), qty, price, round(qty * price, 2), None, cur, sku, wh, approval,
                 ago(requested_ago - 1) if approval == "approved" else None, ago(requested_ago), updated(), rep),
            )
        db.execute(
            """CREATE TABLE inventory (
                sku TEXT, warehouse TEXT, on_hand REAL, reserved REAL, safety_stock REAL, owner TEXT,
                updated_at TEXT, PRIMARY KEY (sku, warehouse))"""
        )
        for sku, wh, on_hand, reserved, safety, owner in _INVENTORY:
            db.execute("INSERT INTO inventory VALUES (?,?,?,?,?,?,?)",
                       (sku, wh, on_hand, reserved, safety, owner, updated()))
        db.execute(
            """CREATE TABLE invoices (
                invoice_no TEXT PRIMARY KEY, direction TEXT, counterparty TEXT, amount REAL, paid_amount REAL,
                currency TEXT, issue_date TEXT, due_date TEXT, status TEXT, clerk TEXT, updated_at TEXT)"""
        )
        for number, direction, party, amount, paid, cur, due, status, clerk in _INVOICES:
            db.execute("INSERT INTO invoices VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (number, direction, party, amount, paid, cur, day(due - 30), day(due), status, clerk,
                        updated()))


def apply_story(path: Path) -> None:
    """What happens in the ERP while the demo runs: a warehouse clerk, who may not, lowers
    the price of an approved purchase order (the unapproved-changes pack sees it)."""
    now = datetime.now(UTC).replace(microsecond=0)
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE purchase_orders SET unit_price = 2.9, amount = 5800, updated_at = ?, updated_by = 'zhou.kai' "
            "WHERE po_number = 'PO-2025-0044'",
            (now.isoformat(),),
        )


# The branch office's sheet: (order, supplier, owner, status, due in days from today, date format, qty, price).
_BRANCH_ROWS = [
    ("SZ-PO-0101", "宁波紧固件有限公司", "wang.fang", "open", -9, "slash", "1200", "0.85"),
    ("SZ-PO-0102", "广州包装材料厂", "wang.fang", "received", -3, "chinese", "300", "2.40"),
    ("SZ-PO-0103", "东莞塑胶制品", "chen.jie", "open", 30, "serial", "80", "15.00"),
    ("SZ-PO-0104", "佛山铝业", "chen.jie", "open", 200, "dots", "50", "120.00"),
]


def _sheet_date(day: date, style: str) -> str:
    """A date the way branch sheets write them: 2025/3/5, 2025年4月1日, an Excel serial number, 2025.6.30."""
    if style == "slash":
        return f"{day.year}/{day.month}/{day.day}"
    if style == "chinese":
        return f"{day.year}年{day.month}月{day.day}日"
    if style == "serial":
        return str((day - date(1899, 12, 30)).days)
    return f"{day.year}.{day.month}.{day.day}"


def demo_sources(datadir: Path, today: date | None = None) -> Path:
    """The demo's connectors file in `datadir`, with the branch office's sheet beside it (GBK CSV,
    Chinese headers), its dates relative to today like the ERP's; one row's date (下周三, "next
    Wednesday") cannot be read and is dead-lettered. Returns the connectors file."""
    today = today or date.today()
    rows = ["订单号,供应商,负责人,状态,交货日期,数量,单价"]
    for key, supplier, owner, status, offset, style, qty, price in _BRANCH_ROWS:
        rows.append(",".join((key, supplier, owner, status, _sheet_date(today + timedelta(days=offset), style),
                              qty, price)))
    rows.append("SZ-PO-0105,杭州电机,wang.fang,open,下周三,10,880.00")
    (datadir / "branch_orders.csv").write_bytes(("\r\n".join(rows) + "\r\n").encode("gbk"))
    config = datadir / "connectors.yaml"
    shutil.copyfile(DEMO_DIR / "connectors.yaml", config)
    return config


def _load_connectors(config_path: Path, bookmarks: BookmarkStore) -> list[Any]:
    from connectors.config import build_connector, load_config

    return [build_connector(cfg, bookmarks.load(cfg.id)) for cfg in load_config(config_path)]


async def _drive(worker: Worker, exit_when_idle: bool, datadir: Path) -> None:
    settings = worker.settings
    bookmarks = BookmarkStore(datadir / "bookmarks")
    publisher = Publisher(bootstrap_of(settings.broker), settings.changes_topic, settings.deadletter_topic)
    await publisher.start()
    runner = ConnectorRunner(_load_connectors(demo_sources(datadir), bookmarks), publisher,
                             bookmarks, interval=1.0)
    stop = asyncio.Event()
    task = asyncio.ensure_future(runner.run(stop))
    story_round: int | None = None
    try:
        idle_checks = 0
        while True:
            await asyncio.sleep(0.5)
            if story_round is None and runner.rounds >= 1:
                apply_story(datadir / "erp.sqlite")
                story_round = runner.rounds
            if not exit_when_idle or story_round is None:
                continue
            engine, sink = worker.engine.stats, worker.sink.stats
            caught_up = (
                runner.rounds >= story_round + 2
                and runner.last_round_records == 0
                and engine.records >= publisher.published
                and sink.received >= engine.alert_events
                and engine.ticks >= 1
            )
            idle_checks = idle_checks + 1 if caught_up else 0
            if idle_checks >= 3:
                print_summary(worker, publisher.dead_lettered + engine.dead)
                request_stop()
                return
    finally:
        stop.set()
        await task
        runner.close()
        await publisher.stop()


def print_summary(worker: Worker, dead_letters: int) -> None:
    alerts = worker.store.list()
    firing = [a for a in alerts if a.state == "firing"]
    config, now = worker.sink.config, time.time()
    by_rule = Counter(a.rule for a in firing)
    print("\n=== orderwatch demo summary ===")
    print(f"change records processed: {worker.engine.stats.records}")
    print(f"dead-lettered payloads:   {dead_letters} (topic {worker.settings.deadletter_topic})")
    print(f"open alerts:              {len(firing)}")
    for rule, count in sorted(by_rule.items()):
        print(f"  {rule}: {count}")
    families = Counter(a.labels.get("family", "-") for a in firing)
    print("by family:                " + ", ".join(f"{f} {n}" for f, n in sorted(families.items())))
    for a in sorted(firing, key=lambda a: (a.labels.get("family", ""), a.rule, a.key)):
        owner, text = readable(item_of_stored(a), config.directory, config.timezone, now)
        print(f"  - [{a.labels.get('family', '-')}] {a.key} owner={owner}: {text}")
    print(f"alert store:              {worker.settings.store_url}")
    folder = _shown(Path(worker.settings.datadir))
    print(f"see them:                 orderwatch alerts list --datadir {folder}")
    first = min(firing, key=lambda a: a.starts_at, default=None)
    if first is not None:
        print(f"one alert's history:      orderwatch alerts show {first.fingerprint} --datadir {folder}", flush=True)


# The demo data's owners, for the console: who sees what, in which language.
_DEMO_OWNERS = """
owners:
  people:
    li.wei: {name: 李伟, language: zh, team: purchasing}
    wang.fang: {name: 王芳, language: zh, team: purchasing}
    zhang.min: {name: 张敏, language: zh}
    chen.jie: {name: 陈杰, language: zh}
    anna.schmidt: {name: Anna Schmidt, language: en}
    amy.chen: {name: 陈艾米 Amy Chen, language: zh, team: sales}
    tom.keller: {name: Tom Keller, language: en, team: sales}
    zhao.min: {name: 赵敏, language: zh, team: finance}
    julia.braun: {name: Julia Braun, language: en}
  teams:
    purchasing: {name: 采购部 Purchasing, manager: wang.fang}
    sales: {name: 销售部 Sales}
    finance: {name: 财务部 Finance}
"""


def _console_file(data: Path, base: str, token: str) -> Path:
    """The demo's alerts file: its owners, a console secret and an API token for this run (nobody is
    notified). `orderwatch alerts list --datadir <the demo's folder>` reads it for people's names."""
    path = data / "alerts.yaml"
    path.write_text(f"external_url: {base}\nconsole: {{secret: {secrets.token_hex(32)}}}\n"
                    f"api:\n  tokens: [{{name: demo, token: {token}}}]\n{_DEMO_OWNERS}", encoding="utf-8")
    return path


def _shown(path: Path) -> str:
    """A path as the person typed it: relative when under the current folder."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def run_demo(exit_when_idle: bool, web_port: int | None, datadir: str) -> int:
    data = Path(datadir).resolve()
    shutil.rmtree(data, ignore_errors=True)  # the embedded broker starts empty, so do bookmarks
    data.mkdir(parents=True)
    erp = data / "erp.sqlite"
    build_erp(erp)
    os.environ["ORDERWATCH_DEMO_ERP"] = str(erp)
    with EmbeddedBroker() as broker:
        settings = Settings(
            broker=broker.url, datadir=str(data), app_id="orderwatch-demo",
            web_port=web_port if web_port else free_port(), tick_seconds=1.0,
        )
        base = f"http://{settings.web_host}:{settings.web_port}"
        token = secrets.token_urlsafe(24)
        settings = replace(settings, alerts=str(_console_file(data, base, token)))
        worker = build_worker(settings)
        print(f"orderwatch demo: embedded broker {broker.bootstrap}, metrics {base}/metrics", flush=True)
        print(f"API: curl -H 'Authorization: Bearer {token}' {base}/api/alerts", flush=True)
        print(f"console (signed in as wang.fang, purchasing manager): "
              f"{link_for(worker.sink.config, 'wang.fang', '/console/', time.time())}", flush=True)
        print("alerts as they fire:", flush=True)
        return run_worker(worker, on_started=lambda w: _drive(w, exit_when_idle, data))


def demo_records(datadir: Path) -> list[ChangeRecord]:
    """The change records the demo's connectors emit (before and after the story), read
    in-process without a broker: the demo history for `backtest` and its tests."""
    datadir.mkdir(parents=True, exist_ok=True)
    erp = datadir / "erp.sqlite"
    build_erp(erp)
    os.environ["ORDERWATCH_DEMO_ERP"] = str(erp)
    connectors = _load_connectors(demo_sources(datadir), BookmarkStore(datadir / "bookmarks"))
    records: list[ChangeRecord] = []

    def drain() -> None:
        for conn in connectors:
            deadline = time.monotonic() + 30
            while True:
                result = conn.poll()
                if result.pending and time.monotonic() < deadline:
                    time.sleep(0.2)  # a sheet just written (the branch office's) is read once it settled
                    continue
                records.extend(result.records)
                conn.commit(result)
                if not result.more:
                    break

    try:
        drain()
        apply_story(erp)
        drain()
    finally:
        for conn in connectors:
            conn.close()
    return records


def main(argv: list[str] | None = None) -> int:
    """`python -m orderwatch.demo history FILE.jsonl`: write the demo history for `backtest`."""
    import argparse
    import json
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m orderwatch.demo")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("history", help="write the demo's change records as JSON lines")
    p.add_argument("file", help="output file ('-': stdout)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        records = demo_records(Path(tmp))
    lines = "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in records)
    if args.file == "-":
        print(lines, end="")
    else:
        Path(args.file).write_text(lines, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
