"""The engine's output keeps to the message limit: alerts, contributions and changelog split by bytes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from engine.changelog import MARKER_KEY, Output, _json
from orderwatch.broker import EmbeddedBroker
from orderwatch.sizes import MAX_MESSAGE_BYTES, pack
from tests.test_connectors_kit import make_topics, new_settings, read_topic


def test_pack_keeps_order_and_sets_aside_what_cannot_fit() -> None:
    parts = [b"a" * 40, b"b" * 40, b"c" * 200, b"d" * 40, b"e" * 99, b"f"]
    messages, oversized = pack(parts, limit=100)
    assert oversized == [2, 4]  # 99 + 2 brackets > 100
    assert messages == [[0, 1], [3, 5]]  # 2 + 40 + 1 + 40 = 83; a third would not fit
    assert pack([], limit=100) == ([], [])


def test_states_are_written_whatever_their_keys_and_numbers() -> None:
    # The usual state (string keys) takes orjson's fast path; the rest still gets written.
    state = {"entity": "stock", "key": "SKU-1@WH1", "fields": {"on_hand": 5.0, "名称": "螺丝"}, "firing": {}}
    assert json.loads(_json(state)) == state
    assert json.loads(_json({"index": {7: "x", "by_day": {20261206: 2}}})) == {"index": {"7": "x", "by_day": {"20261206": 2}}}
    assert json.loads(_json({"total": 2**70, 3: None})) == {"total": float(2**70), "3": None}


async def changelog(bootstrap: str, topic: str) -> list[tuple[bytes, bytes | None]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        out: list[tuple[bytes, bytes | None]] = []
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while loop.time() - quiet_since < 0.5:
            for messages in (await consumer.getmany(timeout_ms=100)).values():
                out.extend((m.key, m.value) for m in messages)
                quiet_since = loop.time()
        return out
    finally:
        await consumer.stop()


@pytest.mark.integration
def test_large_alert_batches_and_changelogs_are_split_and_an_oversized_item_dead_lettered(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = new_settings(broker.url, partitions=1)
    table_topic = f"{settings.app_id}-order_state-changelog"
    events = [{"rule": "late", "entity_key": f"purchase_order:PO-{n}", "n": n, "text": "t" * 1000}
              for n in range(3000)]
    events.insert(1500, {"rule": "late", "entity_key": "purchase_order:PO-HUGE", "text": "t" * 1_200_000})
    states = {f"purchase_order:PO-{n}": {"key": f"PO-{n}", "fields": {"note": "s" * 1000}} for n in range(3000)}
    states["purchase_order:PO-HUGE"] = {"key": "PO-HUGE", "fields": {"note": "s" * 1_200_000}}

    async def go() -> None:
        await make_topics(broker.bootstrap, settings)
        output = Output(broker.bootstrap, settings.deadletter_topic)
        try:
            await output.send_json(settings.alerts_topic, events, partition=0)
            await output.write_states(table_topic, 0, states)
        finally:
            await output.stop()
        sent = await read_topic(broker.bootstrap, settings.alerts_topic)
        assert len(sent) >= 3 and all(len(json.dumps(m, separators=(",", ":")).encode()) <= MAX_MESSAGE_BYTES for m in sent)
        assert [e["n"] for batch in sent for e in batch] == list(range(3000))  # in order, all but one
        log = await changelog(broker.bootstrap, table_topic)
        assert all(len(k) + len(v or b"") <= MAX_MESSAGE_BYTES for k, v in log)
        assert [json.loads(k) for k, _ in log] == [*list(states)[:3000], MARKER_KEY]
        dead = await read_topic(broker.bootstrap, settings.deadletter_topic)
        assert [(d["payload"]["entity_key"], d["where"]["topic"]) for d in dead] == [
            ("purchase_order:PO-HUGE", settings.alerts_topic), ("purchase_order:PO-HUGE", table_topic)]
        assert all(d["reason"].startswith(("item too large: 1,2", "state (kept in memory only")) for d in dead)
        assert all(len(json.dumps(d)) < 2000 for d in dead)

    asyncio.run(go())
