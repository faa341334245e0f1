"""After a crash: find what connectors published but had not yet bookmarked.

The runner saves, with each bookmark, the changes-topic offsets just past the
connector's last published message. Anything of the connector's found on the
topic from there on was published by a run that died before saving its
bookmark: the restarted connector would read and publish it again. Reading
it back lets the runner drop that replay by (source, entity, key, seq), so
the topic holds each change once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from orderwatch.record import ChangeRecord, decode_message

Identity = tuple[str, str, str | int]  # (entity, key, seq) within one source


def identity(record: ChangeRecord) -> Identity:
    return (record.entity, record.key, record.seq)


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The current end of each partition of `topic`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = await consumer.end_offsets(parts) if parts else {}
        return {tp.partition: int(offset) for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def published_since(
    bootstrap: str,
    topic: str,
    starts: Mapping[str, Mapping[int, int]],
    timeout: float = 30.0,
) -> dict[str, list[ChangeRecord]]:
    """Records of each source in `starts` at or after its per-partition start offsets."""
    found: dict[str, list[ChangeRecord]] = {source: [] for source in starts}
    first: dict[int, int] = {}
    for offsets in starts.values():
        for partition, offset in offsets.items():
            first[partition] = min(first.get(partition, offset), offset)
    if not first:
        return found
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = {p: TopicPartition(topic, p) for p in first}
        consumer.assign(list(parts.values()))
        ends = {tp.partition: int(o) for tp, o in (await consumer.end_offsets(list(parts.values()))).items()}
        todo = {p for p in parts if first[p] < ends.get(p, 0)}
        for p in todo:
            consumer.seek(parts[p], first[p])
        deadline = asyncio.get_running_loop().time() + timeout
        while todo:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"reading back {topic} took longer than {timeout}s")
            batches = await consumer.getmany(*(parts[p] for p in todo), timeout_ms=500)
            for tp, messages in batches.items():
                for message in messages:
                    records, _ = decode_message(message.value or b"")
                    for record in records:
                        start = starts.get(record.source, {}).get(tp.partition)
                        if start is not None and message.offset >= start:
                            found[record.source].append(record)
            for p in list(todo):
                if await consumer.position(parts[p]) >= ends[p]:
                    todo.discard(p)
    finally:
        await consumer.stop()
    return found
