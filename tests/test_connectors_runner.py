"""The connector runner on the real embedded broker: publish, bookmark, back off, recover, measure."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from prometheus_client import REGISTRY

from connectors.base import BookmarkStore
from connectors.mapping import FieldMapping, FieldSpec
from connectors.publisher import Publisher
from connectors.runner import ConnectorRunner
from connectors.spreadsheet import SpreadsheetConfig, SpreadsheetConnector
from connectors.sql import SqlConfig, SqlConnector
from orderwatch.broker import EmbeddedBroker
from tests.test_connectors_kit import flatten, make_topics, new_settings, read_topic

pytestmark = pytest.mark.integration


def metric(name: str, connector: str) -> float:
    return REGISTRY.get_sample_value(name, {"connector": connector}) or 0.0


def erp(path: Path, rows: int, start: int = 0) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS po (po_number TEXT PRIMARY KEY, supplier TEXT, updated_at TEXT)")
        db.executemany("INSERT INTO po VALUES (?, ?, ?)",
                       [(f"PO-{n:04d}", f"supplier {n}", f"2025-03-05 10:{n // 60:02d}:{n % 60:02d}")
                        for n in range(start, start + rows)])


def sql_connector(cid: str, path: Path, bookmark: dict[str, Any] | None, batch: int = 10) -> SqlConnector:
    cfg = SqlConfig(id=cid, entity="purchase_order", url=f"sqlite:///{path}", key=("po_number",),
                    cursor="updated_at", table="po", batch_size=batch,
                    mapping=FieldMapping((FieldSpec("supplier", "supplier"),)))
    return SqlConnector(cfg, bookmark)


class Rig:
    def __init__(self, broker: EmbeddedBroker, tmp_path: Path) -> None:
        self.broker, self.tmp = broker, tmp_path
        self.settings = new_settings(broker.url)
        self.store = BookmarkStore(tmp_path / "bookmarks")

    def publisher(self) -> Publisher:
        return Publisher(self.broker.bootstrap, self.settings.changes_topic, self.settings.deadletter_topic)

    async def records(self) -> list[dict[str, Any]]:
        return flatten(await read_topic(self.broker.bootstrap, self.settings.changes_topic))

    async def dead(self) -> list[dict[str, Any]]:
        return await read_topic(self.broker.bootstrap, self.settings.deadletter_topic)


def test_a_crash_between_publishing_and_bookmarking_does_not_publish_twice(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    rig = Rig(broker, tmp_path)
    db = tmp_path / "erp.sqlite"
    erp(db, 25)

    async def go() -> None:
        await make_topics(broker.bootstrap, rig.settings)
        publisher = rig.publisher()
        await publisher.start()
        runner = ConnectorRunner([sql_connector("erp", db, rig.store.load("erp"))], publisher, rig.store)
        await runner.poll_once()  # 10 rows published and bookmarked
        before_crash = (rig.store.directory / "erp.json").read_bytes()
        await runner.poll_once()  # 10 more published…
        # …and the process dies before the bookmark file is replaced: put the old one back.
        (rig.store.directory / "erp.json").write_bytes(before_crash)
        runner.close()

        restarted = ConnectorRunner([sql_connector("erp", db, rig.store.load("erp"))], publisher, rig.store)
        for _ in range(4):
            await restarted.poll_once()
        restarted.close()
        await publisher.stop()
        keys = [r["key"] for r in await rig.records()]
        assert len(keys) == 25 and sorted(keys) == [f"PO-{n:04d}" for n in range(25)]
        assert metric("orderwatch_connector_duplicates_total", "erp") >= 10

    asyncio.run(go())


def test_a_source_that_is_down_is_retried_with_backoff_and_reported(broker: EmbeddedBroker, tmp_path: Path) -> None:
    rig = Rig(broker, tmp_path)
    db = tmp_path / "later.sqlite"  # does not exist yet: the ERP is down

    async def go() -> None:
        await make_topics(broker.bootstrap, rig.settings)
        publisher = rig.publisher()
        await publisher.start()
        runner = ConnectorRunner([sql_connector("down", db, None)], publisher, rig.store,
                                 interval=0.05, max_backoff=0.4)
        errors = metric("orderwatch_connector_errors_total", "down")
        delays = []
        for _ in range(5):
            await runner.poll_once()
            delays.append(metric("orderwatch_connector_backoff_seconds", "down"))
            await asyncio.sleep(delays[-1] + 0.01)
        assert delays == [0.1, 0.2, 0.4, 0.4, 0.4]  # doubling, capped
        assert metric("orderwatch_connector_up", "down") == 0
        assert metric("orderwatch_connector_errors_total", "down") == errors + 5
        assert not db.exists()  # read-only: the connector never creates the database
        erp(db, 3)
        await asyncio.sleep(0.5)
        await runner.poll_once()
        assert metric("orderwatch_connector_up", "down") == 1
        assert metric("orderwatch_connector_backoff_seconds", "down") == 0
        assert metric("orderwatch_connector_last_success_timestamp_seconds", "down") > time.time() - 5
        runner.close()
        await publisher.stop()
        assert len(await rig.records()) == 3

    asyncio.run(go())


def test_run_keeps_polling_while_there_is_more_and_counts_per_connector(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    rig = Rig(broker, tmp_path)
    db = tmp_path / "erp.sqlite"
    erp(db, 95)

    async def go() -> None:
        await make_topics(broker.bootstrap, rig.settings)
        publisher = rig.publisher()
        await publisher.start()
        runner = ConnectorRunner([sql_connector("busy", db, None)], publisher, rig.store, interval=30)
        rows = metric("orderwatch_connector_rows_total", "busy")
        stop = asyncio.Event()
        task = asyncio.ensure_future(runner.run(stop))
        started = time.monotonic()
        while metric("orderwatch_connector_rows_total", "busy") - rows < 95 and time.monotonic() - started < 20:
            await asyncio.sleep(0.05)
        took = time.monotonic() - started
        stop.set()
        await task
        runner.close()
        await publisher.stop()
        # 9 full batches and a last one, without waiting 30 s between them.
        assert runner.rounds == 10 and took < 10
        assert metric("orderwatch_connector_rows_total", "busy") - rows == 95
        assert metric("orderwatch_connector_records_emitted_total", "busy") >= 95
        assert metric("orderwatch_connector_lag_seconds", "busy") == 0  # caught up
        assert len(await rig.records()) == 95

    asyncio.run(go())


def test_sheets_with_chinese_headers_send_bad_dates_to_the_dead_letter_topic(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Acceptance 3: a GBK CSV and an XLSX, mixed date formats; the bad date on the topic."""
    rig = Rig(broker, tmp_path)
    folder = tmp_path / "sheets"
    folder.mkdir()
    header = "订单号,供应商,负责人,交货日期,数量"
    rows = [header, "GZ-1,华东五金,张伟,2025/3/5,10", "GZ-2,深圳电子,王芳,2025年3月6日,5", "GZ-3,北方钢材,李娜,下周三,1"]
    (folder / "华南.csv").write_bytes("\r\n".join(rows).encode("gbk"))
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = "华北"
    ws.append(header.split(","))
    ws.append(["BJ-1", "Acme", "张伟", 45727, 3])
    ws.append(["BJ-2", "Acme", "张伟", "2025.3.12", 4])
    ws.append(["BJ-3", "Acme", "张伟", "3月12日前", 4])
    book.save(folder / "华北.xlsx")
    for f in folder.iterdir():
        os.utime(f, (1_741_000_000, 1_741_000_000))
    mapping = FieldMapping((FieldSpec("supplier", "供应商"), FieldSpec("buyer", "负责人"),
                            FieldSpec("expected_date", "交货日期", "date"), FieldSpec("qty", "数量", "number")))
    cfg = SpreadsheetConfig(id="branches", entity="purchase_order", path=folder, key=("订单号",), mapping=mapping)

    async def go() -> None:
        await make_topics(broker.bootstrap, rig.settings)
        publisher = rig.publisher()
        await publisher.start()
        runner = ConnectorRunner([SpreadsheetConnector(cfg)], publisher, rig.store)
        await runner.poll_once()
        await publisher.stop()
        records = {r["key"]: r["fields"]["expected_date"] for r in await rig.records()}
        assert records == {"GZ-1": "2025-03-05", "GZ-2": "2025-03-06", "BJ-1": "2025-03-11", "BJ-2": "2025-03-12"}
        dead = sorted((Path(d["where"]["file"]).name, d["where"]["sheet"], d["where"]["row"],
                       d["where"]["column"], d["where"]["text"]) for d in await rig.dead())
        assert dead == [("华北.xlsx", "华北", 4, "交货日期", "3月12日前"), ("华南.csv", None, 4, "交货日期", "下周三")]

    asyncio.run(go())
    assert REGISTRY.get_sample_value("orderwatch_records_dead_lettered_total", {"stage": "connector:branches"}) == 2


def test_the_bookmark_file_keeps_the_offsets_after_the_last_publication(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    rig = Rig(broker, tmp_path)
    db = tmp_path / "erp.sqlite"
    erp(db, 3)

    async def go() -> None:
        await make_topics(broker.bootstrap, rig.settings)
        publisher = rig.publisher()
        await publisher.start()
        runner = ConnectorRunner([sql_connector("offsets", db, None)], publisher, rig.store)
        await runner.start()
        assert rig.store.load_published("offsets") == {p: 0 for p in range(4)}  # saved before publishing
        assert rig.store.load("offsets") is None
        await runner.poll_once()
        runner.close()
        await publisher.stop()
        offsets = rig.store.load_published("offsets")
        assert offsets is not None and sum(offsets.values()) >= 1
        assert rig.store.load("offsets") == {"cursor": "2025-03-05 10:00:02", "key": ["PO-0002"]}

    asyncio.run(go())
    shutil.rmtree(tmp_path / "bookmarks")


def big_rows(path: Path, rows: int, size: int, start: int = 0) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS po (po_number TEXT PRIMARY KEY, supplier TEXT, updated_at TEXT)")
        db.executemany("INSERT INTO po VALUES (?, ?, ?)",
                       [(f"PO-{n:04d}", f"{n:04d}" + "x" * (size - 4), f"2025-03-05 {n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}")
                        for n in range(start, start + rows)])


def test_rows_of_40_kb_are_published_in_messages_below_the_limit(broker: EmbeddedBroker, tmp_path: Path) -> None:
    """1,000 rows of 40 KB in one read: 10 MB per partition goes out as several messages, all of them."""
    from orderwatch.sizes import MAX_MESSAGE_BYTES

    rig = Rig(broker, tmp_path)
    db = tmp_path / "erp.sqlite"
    big_rows(db, 1000, 40_000)

    async def go() -> None:
        await make_topics(broker.bootstrap, rig.settings)
        publisher = rig.publisher()
        await publisher.start()
        runner = ConnectorRunner([sql_connector("wide", db, None, batch=1000)], publisher, rig.store)
        for _ in range(3):
            await runner.poll_once()
        runner.close()
        await publisher.stop()
        messages = await read_topic(broker.bootstrap, rig.settings.changes_topic)
        records = flatten(messages)
        assert sorted(r["key"] for r in records) == [f"PO-{n:04d}" for n in range(1000)]
        assert all(r["fields"]["supplier"] == r["key"][3:] + "x" * 39_996 for r in records)
        assert all(len(json.dumps(m).encode()) <= MAX_MESSAGE_BYTES for m in messages)
        assert rig.store.load("wide") == {"cursor": "2025-03-05 00:16:39", "key": ["PO-0999"]}
        assert await rig.dead() == []

    asyncio.run(go())


def test_a_row_too_large_for_any_message_is_dead_lettered_and_the_others_go_on(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    rig = Rig(broker, tmp_path)
    db = tmp_path / "erp.sqlite"
    big_rows(db, 3, 100)
    big_rows(db, 1, 1_500_000, start=3)  # 1.5 MB: more than one message may hold
    big_rows(db, 2, 100, start=4)

    async def go() -> None:
        await make_topics(broker.bootstrap, rig.settings)
        publisher = rig.publisher()
        await publisher.start()
        runner = ConnectorRunner([sql_connector("huge", db, None)], publisher, rig.store)
        for _ in range(3):
            await runner.poll_once()
        runner.close()
        await publisher.stop()
        assert sorted(r["key"] for r in await rig.records()) == ["PO-0000", "PO-0001", "PO-0002", "PO-0004", "PO-0005"]
        [dead] = await rig.dead()
        assert dead["reason"].startswith("record too large: 1,500,")
        assert "1,000,000-byte message limit" in dead["reason"]
        assert dead["payload"]["key"] == "PO-0003" and dead["payload"]["source"] == "huge"
        assert dead["payload"]["bytes"] > 1_500_000
        assert dead["source"] == "huge"
        assert len(json.dumps(dead)) < 2000  # named, not copied
        assert rig.store.load("huge") == {"cursor": "2025-03-05 00:00:05", "key": ["PO-0005"]}  # not retried

    asyncio.run(go())
    assert REGISTRY.get_sample_value("orderwatch_records_dead_lettered_total", {"stage": "connector:huge"}) == 1
