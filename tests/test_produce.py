"""`orderwatch produce` as a person runs it: any file goes through, a broker that does not answer is said so."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from orderwatch.broker import EmbeddedBroker, free_port
from orderwatch.record import decode_message
from orderwatch.sizes import MAX_MESSAGE_BYTES
from tests.conftest import paused_broker
from tests.test_connectors_kit import make_topics, new_settings

pytestmark = pytest.mark.integration
PRODUCE = [sys.executable, "-m", "orderwatch", "produce"]


def record(key: str, seq: int, pad: int = 0) -> bytes:
    doc = {"source": "file", "entity": "purchase_order", "key": key, "op": "upsert",
           "ts": "2025-03-05T10:00:00+08:00", "seq": seq, "fields": {"note": "n" * pad}}
    return json.dumps(doc).encode()


async def raw_messages(bootstrap: str, topic: str) -> list[tuple[int, bytes]]:
    """Every (partition, value) of `topic` as bytes, in partition and offset order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=16 * 1024 * 1024)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out: list[tuple[int, int, bytes]] = []
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()  # read until quiet: Tansu's end offsets stop at the last batch
        while loop.time() - quiet_since < 0.5:
            for tp, messages in (await consumer.getmany(timeout_ms=100)).items():
                out.extend((tp.partition, m.offset, m.value) for m in messages)
                quiet_since = loop.time()
        return [(p, v) for p, _, v in sorted(out, key=lambda x: (x[0], x[1]))]
    finally:
        await consumer.stop()


def test_bad_lines_go_through_unchanged_and_a_big_partition_goes_in_several_messages(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = new_settings(broker.url)
    asyncio.run(make_topics(broker.bootstrap, settings))
    bad = [
        record("PO-\xff", 1).replace(b"\\u00ff", b"\xff"),  # not UTF-8
        b"[" * 1000 + b"]" * 1000,  # nested 1,000 levels
        b'{"source": "file", "entity": "purchase_order"}',  # not a valid record
    ]
    big = [record("PO-BIG", seq, pad=600) for seq in range(1, 15_001)]  # ~10 MB, all one partition
    lines = [record("PO-1", 1), bad[0], *big[:7000], bad[1], *big[7000:], bad[2], record("PO-2", 1)]
    path = tmp_path / "changes.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert path.stat().st_size > 9 * 1024 * 1024

    done = subprocess.run([*PRODUCE, str(path), "--broker", broker.url, "--app-id", settings.app_id],
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"published 15002 records in " in done.stdout and b"3 invalid lines sent" in done.stdout

    messages = asyncio.run(raw_messages(broker.bootstrap, settings.changes_topic))
    values = [v for _, v in messages]
    assert [v for v in values if v in bad] == bad  # as they were in the file, byte for byte
    assert all(len(v) <= MAX_MESSAGE_BYTES for v in values)
    records, dead = [], []
    for value in values:
        got, letters = decode_message(value)  # what the engine reads: the bad lines become dead letters
        records.extend(got)
        dead.extend(letters)
    assert [r.seq for r in records if r.key == "PO-BIG"] == list(range(1, 15_001))  # in order
    assert {r.key for r in records} == {"PO-1", "PO-2", "PO-BIG"}
    assert len({p for p, v in messages if b"PO-BIG" in v}) == 1
    assert sum(b"PO-BIG" in v for v in values) >= 10  # split by bytes
    assert sorted(d.reason.split(":")[0] for d in dead) == ["key", "not JSON", "record"]


def test_a_closed_port_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "changes.jsonl"
    path.write_bytes(record("PO-1", 1) + b"\n")
    port = free_port()
    done = subprocess.run([*PRODUCE, str(path), "--broker", f"kafka://127.0.0.1:{port}"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    expected = (f"orderwatch: cannot reach the broker at 127.0.0.1:{port} (connection refused); "
                "is it running? check --broker / ORDERWATCH_BROKER")
    assert done.stderr.strip().splitlines() == [expected]


def test_a_paused_broker_is_given_up_on_after_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "changes.jsonl"
    path.write_bytes(record("PO-1", 1) + b"\n")
    with paused_broker() as paused:
        done = subprocess.run([*PRODUCE, str(path), "--broker", paused.url, "--timeout", "2"],
                              capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"orderwatch: cannot reach the broker at {paused.bootstrap} (it accepts connections "
                           "but answers no Kafka request")
