"""Acceptance 1: each connector killed (SIGKILL) mid-stream and started again.

Every connector runs as a real `orderwatch connectors run` process against the
embedded broker while its source keeps changing; it is SIGKILLed once it has
published part of the stream, restarted from its bookmarks, and the changes
topic is then compared with the source's changes: nothing missing, nothing twice.

For push and stream sources (webhook, Debezium) every change is an event, so the
published set must equal the set of events exactly. A polled source (SQL, a
sheet) shows its current state only: a version overwritten before any poll saw
it is not a change anyone could read, so there the check is that every final
state (and every delete of a row that was published) arrives, exactly once,
and that nothing published is anything but a real version.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from orderwatch.broker import EmbeddedBroker, free_port
from orderwatch.config import Settings
from tests.dbservers import server_url, unique_name
from tests.test_connectors_kit import make_topics, new_settings, read_records

pytestmark = pytest.mark.integration
CLI = [sys.executable, "-m", "orderwatch", "connectors"]


class ConnectorProcess:
    """`orderwatch connectors run FILE` as a subprocess that can be SIGKILLed and restarted."""

    def __init__(self, config: Path, broker: EmbeddedBroker, app_id: str, datadir: Path) -> None:
        # Created up front so that the test can read the topic before the process has started.
        asyncio.run(make_topics(broker.bootstrap, Settings(broker=broker.url, app_id=app_id, topic_prefix=app_id)))
        self.args = [*CLI, "run", str(config), "--broker", broker.url, "--app-id", app_id,
                     "--datadir", str(datadir), "--interval", "0.2"]
        self.log = datadir / "connectors.log"
        datadir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.tail()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def published(broker: EmbeddedBroker, topic: str, source: str) -> list[dict[str, Any]]:
    return [r for r in read_records(broker.bootstrap, topic, settle=0.3) if r["source"] == source]


def wait_until(check: Callable[[], Any], timeout: float, proc: ConnectorProcess, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}\n{proc.tail()}")


def no_repeats(records: list[dict[str, Any]]) -> None:
    twice = [k for k, n in Counter((r["key"], r["op"], r["seq"]) for r in records).items() if n > 1]
    assert twice == [], f"published twice: {twice[:10]}"


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "connectors.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_sql_connector_killed_mid_stream_on_postgresql(broker: EmbeddedBroker, tmp_path: Path) -> None:
    url = server_url("postgresql")
    engine = sa.create_engine(url)
    table = unique_name("ow_restart")
    with engine.begin() as c:
        c.exec_driver_sql(f"CREATE TABLE {table} (po_number text PRIMARY KEY, supplier text, "
                          "qty int, updated_at timestamp(6))")
    settings = new_settings(broker.url)
    config = write_config(tmp_path, f"""connectors:
  - id: pg-erp
    type: sql
    url: {url}
    table: {table}
    entity: purchase_order
    key: po_number
    cursor: updated_at
    batch_size: 40
    lookback: 1m
    reconcile: 1s
    fields: {{supplier: supplier, qty: {{column: qty, type: integer}}}}
""")
    versions: set[tuple[str, str]] = set()
    final: dict[str, str | None] = {}  # key → seq of its last version, None once deleted
    rng = random.Random(7)
    rounds = 60

    def seq_of(at: datetime) -> str:
        return at.replace(tzinfo=UTC).isoformat(timespec="microseconds")

    def writer() -> None:
        n = 0
        for r in range(rounds):
            with engine.begin() as c:
                changed = []
                for _ in range(5):
                    n += 1
                    changed += c.exec_driver_sql(
                        f"INSERT INTO {table} VALUES (%(k)s, 'new', 1, clock_timestamp()) "
                        "RETURNING po_number, updated_at", {"k": f"PO-{n:04d}"}).all()
                alive = sorted(k for k, v in final.items() if v is not None)
                for key in rng.sample(alive, min(3, len(alive))):
                    changed += c.exec_driver_sql(
                        f"UPDATE {table} SET qty = qty + 1, supplier = 'edited', updated_at = clock_timestamp() "
                        "WHERE po_number = %(k)s RETURNING po_number, updated_at", {"k": key}).all()
                gone = rng.choice(alive) if alive and r % 2 else None
                if gone:
                    c.exec_driver_sql(f"DELETE FROM {table} WHERE po_number = %(k)s", {"k": gone})
            for key, at in changed:
                versions.add((key, seq_of(at)))
                final[key] = seq_of(at)
            if gone:
                final[gone] = None
            time.sleep(0.05)

    proc = ConnectorProcess(config, broker, settings.app_id, tmp_path / "data")
    thread = threading.Thread(target=writer)
    try:
        proc.start()
        thread.start()
        wait_until(lambda: len(published(broker, settings.changes_topic, "pg-erp")) >= 80, 60, proc,
                   "the first records")
        proc.kill()
        time.sleep(0.5)
        proc.start()
        thread.join()

        def complete() -> list[dict[str, Any]] | None:
            records = published(broker, settings.changes_topic, "pg-erp")
            last = {}
            for r in records:
                last[r["key"]] = r
            for key, seq in final.items():
                got = last.get(key)
                if seq is None and got is not None and got["op"] != "delete":
                    return None
                if seq is not None and (got is None or got["seq"] != seq):
                    return None
            return records

        records = wait_until(complete, 90, proc, "every final state")
    finally:
        proc.stop()
        thread.join()
        with engine.begin() as c:
            c.exec_driver_sql(f"DROP TABLE {table}")
        engine.dispose()
    no_repeats(records)
    upserts = [(r["key"], r["seq"]) for r in records if r["op"] == "upsert"]
    assert set(upserts) <= versions  # only real versions, each once
    deletes = Counter(r["key"] for r in records if r["op"] == "delete")
    assert all(n == 1 for n in deletes.values())
    assert set(deletes) == {k for k, v in final.items() if v is None and k in {u[0] for u in upserts}}
    assert {k for k, _ in upserts} <= set(final)


def test_spreadsheet_connector_killed_mid_stream(broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = new_settings(broker.url)
    sheet = tmp_path / "orders.csv"
    config = write_config(tmp_path, f"""connectors:
  - id: sheet
    type: spreadsheet
    path: {sheet}
    entity: purchase_order
    key: 订单号
    settle: 0.3
    fields: {{supplier: 供应商, qty: {{column: 数量, type: number}}}}
""")
    rng = random.Random(11)
    rows: dict[str, tuple[str, int]] = {f"PO-{n:03d}": ("华东五金", n) for n in range(30)}
    snapshots: list[dict[str, tuple[str, int]]] = []

    def write(version: dict[str, tuple[str, int]]) -> None:
        lines = ["订单号,供应商,数量"] + [f"{k},{s},{q}" for k, (s, q) in version.items()]
        tmp = sheet.with_suffix(".tmp")
        tmp.write_bytes(("\r\n".join(lines) + "\r\n").encode("gbk"))
        os.replace(tmp, sheet)  # as Excel saves: a new file in one step
        snapshots.append(dict(version))

    def writer() -> None:
        nonlocal rows
        for v in range(14):
            rows = dict(rows)
            for key in rng.sample(sorted(rows), 4):
                supplier, qty = rows[key]
                rows[key] = (supplier, qty + 100)
            for key in rng.sample(sorted(rows), 2):
                del rows[key]
            for n in range(3):
                rows[f"PO-{100 + v * 3 + n:03d}"] = ("深圳电子", v)
            write(rows)
            time.sleep(0.8)

    write(rows)
    proc = ConnectorProcess(config, broker, settings.app_id, tmp_path / "data")
    thread = threading.Thread(target=writer)
    try:
        proc.start()
        wait_until(lambda: published(broker, settings.changes_topic, "sheet"), 60, proc, "the first snapshot")
        thread.start()
        wait_until(lambda: len(snapshots) >= 6, 60, proc, "some edits")
        proc.kill()
        time.sleep(1.0)
        proc.start()
        thread.join()
        final = snapshots[-1]

        def complete() -> list[dict[str, Any]] | None:
            records = published(broker, settings.changes_topic, "sheet")
            last = {}
            for r in records:
                last[r["key"]] = r
            for key, (supplier, qty) in final.items():
                if key not in last or last[key]["op"] != "upsert" or last[key]["fields"] != {
                        "supplier": supplier, "qty": qty}:
                    return None
            if any(r["op"] != "delete" for k, r in last.items() if k not in final):
                return None
            return records

        records = wait_until(complete, 60, proc, "the final sheet")
    finally:
        proc.stop()
        thread.join()
    no_repeats(records)
    # Nothing twice in content either: no key gets the same values (or a delete) twice in a row.
    history: dict[str, list[tuple[str, Any]]] = {}
    for r in records:
        history.setdefault(r["key"], []).append((r["op"], r["fields"] if r["op"] == "upsert" else None))
    for key, steps in history.items():
        assert all(a != b for a, b in itertools.pairwise(steps)), (key, steps)
    real = {(k, json.dumps({"supplier": s, "qty": q})) for snap in snapshots for k, (s, q) in snap.items()}
    assert {(r["key"], json.dumps(r["fields"])) for r in records if r["op"] == "upsert"} <= real


def test_debezium_connector_killed_mid_stream(broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = new_settings(broker.url)
    topic = f"{settings.app_id}.public.purchase_orders"
    config = write_config(tmp_path, f"""connectors:
  - id: cdc
    type: debezium
    topic: {topic}
    entity: purchase_order
    key: po_number
    batch_size: 25
    fields: {{supplier: supplier_name, qty: {{column: qty, type: integer}}}}
""")
    sent: set[tuple[str, str, int]] = set()  # (key, op, offset) of every change event

    async def produce() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(topic, 3, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        rows: dict[str, dict[str, Any]] = {}
        rng = random.Random(3)
        try:
            for i in range(400):
                if rows and rng.random() < 0.1:
                    key = rng.choice(sorted(rows))
                    before, op, after = rows.pop(key), "d", None
                elif rows and rng.random() < 0.5:
                    key = rng.choice(sorted(rows))
                    before, op = rows[key], "u"
                    after = rows[key] = {**before, "qty": before["qty"] + 1}
                else:
                    key = f"PO-{i:04d}"
                    before, op, after = None, "c", {"po_number": key, "supplier_name": "Acme", "qty": 1}
                    rows[key] = after
                value = json.dumps({"before": before, "after": after, "op": op, "ts_ms": 1_741_168_800_000 + i,
                                    "source": {"ts_ms": 1_741_168_800_000 + i}}).encode()
                meta = await producer.send_and_wait(topic, value, key=key.encode())
                sent.add((key, "delete" if op == "d" else "upsert", meta.offset if meta.partition >= 0 else -1))
                if op == "d":
                    await producer.send_and_wait(topic, None, key=key.encode())  # the tombstone
                await asyncio.sleep(0.01)
        finally:
            await producer.stop()

    proc = ConnectorProcess(config, broker, settings.app_id, tmp_path / "data")
    thread = threading.Thread(target=lambda: asyncio.run(produce()))
    try:
        thread.start()
        time.sleep(0.5)
        proc.start()
        wait_until(lambda: len(published(broker, settings.changes_topic, "cdc")) >= 100, 60, proc,
                   "the first records")
        proc.kill()
        time.sleep(0.5)
        proc.start()
        thread.join()
        records = wait_until(
            lambda: (r := published(broker, settings.changes_topic, "cdc")) and len({(x["key"], x["seq"]) for x in r})
            >= len(sent) and r, 60, proc, "every event")
    finally:
        proc.stop()
        thread.join()
    no_repeats(records)
    assert len(records) == len(sent) == 400
    # Offsets are per partition: compare (key, op, offset), the key fixing the partition.
    assert {(r["key"], r["op"], r["seq"]) for r in records} == sent


def test_webhook_connector_killed_mid_stream(broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = new_settings(broker.url)
    port = free_port()
    config = write_config(tmp_path, f"""connectors:
  - id: push
    type: webhook
    auth: bearer
    token: t0ken
    listen: 127.0.0.1:{port}
    entity: sales_order
""")
    sent: set[tuple[str, int]] = set()
    answers: Counter[int] = Counter()

    def post(body: bytes) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/ingest", data=body, method="POST",
                                         headers={"Authorization": "Bearer t0ken",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0  # down (being restarted): the sender tries again

    def sender() -> None:
        for b in range(80):
            batch = [{"key": f"SO-{(b * 5 + i) % 37:03d}", "seq": b * 5 + i, "ts": "2025-03-05T10:00:00+08:00",
                      "fields": {"customer": "Beta", "n": b * 5 + i}} for i in range(5)]
            body = json.dumps(batch).encode()
            while (status := post(body)) != 200:
                answers[status] += 1
                time.sleep(0.05)
            answers[200] += 1
            sent.update((r["key"], r["seq"]) for r in batch)
            time.sleep(0.02)

    proc = ConnectorProcess(config, broker, settings.app_id, tmp_path / "data")
    thread = threading.Thread(target=sender)
    try:
        proc.start()
        thread.start()
        wait_until(lambda: len(published(broker, settings.changes_topic, "push")) >= 100, 60, proc,
                   "the first records")
        proc.kill()
        time.sleep(0.5)
        proc.start()
        thread.join(120)
        records = wait_until(lambda: (r := published(broker, settings.changes_topic, "push"))
                             and len(r) >= len(sent) and r, 30, proc, "every record")
    finally:
        proc.stop()
        thread.join()
    assert answers[200] == 80 and answers[0] >= 1  # it was down for a while, and came back
    no_repeats(records)
    assert len(records) == len(sent) == 400
    assert {(r["key"], r["seq"]) for r in records} == sent
