"""`orderwatch demo`: the whole pipeline on the embedded default, with shipped demo data.

It builds a small SQLite "ERP" (dates relative to today, so the story is the
same whenever it runs), reads a GBK-encoded branch spreadsheet with Chinese
headers, starts the embedded broker, runs connectors, engine and alert sink in
one process, prints alerts as they fire and a summary at the end.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from connectors.base import BookmarkStore
from connectors.publisher import Publisher
from connectors.runner import ConnectorRunner
from orderwatch.app import Worker, build_worker, request_stop, run_worker
from orderwatch.broker import EmbeddedBroker, free_port
from orderwatch.config import REPO_ROOT, Settings
from orderwatch.topics import bootstrap_of

DEMO_DIR = REPO_ROOT / "examples" / "demo"

# (po_number, supplier, buyer, status, expected in days from today, qty, unit_price, currency)
_PURCHASE_ORDERS = [
    ("PO-2025-0042", "华东五金 Huadong Hardware", "li.wei", "open", -12, 500, 12.5, "CNY"),
    ("PO-2025-0043", "Acme Bearings", "anna.schmidt", "received", -20, 120, 48.0, "EUR"),
    ("PO-2025-0044", "苏州精密 Suzhou Precision", "li.wei", "confirmed", 5, 2000, 3.2, "CNY"),
    ("PO-2025-0045", "Nordic Steel AB", "anna.schmidt", "open", -3, 40, 910.0, "EUR"),
    ("PO-2025-0046", "深圳电子 Shenzhen Electronics", "zhang.min", "partially_received", -2, 800, 6.75, "CNY"),
    ("PO-2025-0047", "Acme Bearings", "anna.schmidt", "cancelled", -60, 10, 48.0, "EUR"),
    ("PO-2025-0048", "Lyon Packaging SARL", "zhang.min", "open", 14, 5000, 0.4, "EUR"),
]


def build_erp(path: Path, today: date | None = None) -> None:
    """Create the demo ERP database (a fresh file)."""
    today = today or date.today()
    path.unlink(missing_ok=True)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    with sqlite3.connect(path) as db:
        db.execute(
            """CREATE TABLE purchase_orders (
                po_number TEXT PRIMARY KEY, supplier_name TEXT, buyer TEXT, status TEXT,
                order_date TEXT, expected_date TEXT, qty REAL, unit_price REAL, amount REAL,
                currency TEXT, updated_at TEXT, updated_by TEXT)"""
        )
        for i, (po, supplier, buyer, status, days, qty, price, cur) in enumerate(_PURCHASE_ORDERS):
            expected = today + timedelta(days=days)
            ordered = expected - timedelta(days=30)
            updated = (now - timedelta(minutes=len(_PURCHASE_ORDERS) - i)).isoformat()
            db.execute(
                "INSERT INTO purchase_orders VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (po, supplier, buyer, status, ordered.isoformat(), expected.isoformat(), qty, price,
                 round(qty * price, 2), cur, updated, buyer),
            )


def _load_connectors(config_path: Path, bookmarks: BookmarkStore) -> list[Any]:
    from connectors.config import build_connector, load_config

    return [build_connector(cfg, bookmarks.load(cfg.id)) for cfg in load_config(config_path)]


async def _drive(worker: Worker, exit_when_idle: bool, datadir: Path) -> None:
    settings = worker.settings
    bookmarks = BookmarkStore(datadir / "bookmarks")
    publisher = Publisher(bootstrap_of(settings.broker), settings.changes_topic, settings.deadletter_topic)
    await publisher.start()
    runner = ConnectorRunner(_load_connectors(DEMO_DIR / "connectors.yaml", bookmarks), publisher,
                             bookmarks, interval=1.0)
    stop = asyncio.Event()
    task = asyncio.ensure_future(runner.run(stop))
    try:
        idle_checks = 0
        while True:
            await asyncio.sleep(0.5)
            if not exit_when_idle:
                continue
            engine, sink = worker.engine.stats, worker.sink.stats
            caught_up = (
                runner.rounds >= 2
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
    by_rule = Counter(a.rule for a in firing)
    print("\n=== orderwatch demo summary ===")
    print(f"change records processed: {worker.engine.stats.records}")
    print(f"dead-lettered payloads:   {dead_letters} (topic {worker.settings.deadletter_topic})")
    print(f"open alerts:              {len(firing)}")
    for rule, count in sorted(by_rule.items()):
        print(f"  {rule}: {count}")
    for a in firing:
        print(f"  - {a.key} owner={a.owner or '-'}: {a.summary}")
    print(f"alert store:              {worker.settings.store_url}", flush=True)


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
        worker = build_worker(settings)
        print(f"orderwatch demo: embedded broker {broker.bootstrap}, "
              f"metrics http://{settings.web_host}:{settings.web_port}/metrics", flush=True)
        print("alerts as they fire:", flush=True)
        return run_worker(worker, on_started=lambda w: _drive(w, exit_when_idle, data))
