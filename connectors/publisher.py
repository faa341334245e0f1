"""Publishes change records to the changes topic in batches, one Kafka message per partition.

Records are grouped by the partition their `entity:key` hashes to (Kafka's
own murmur2 partitioner, so single-record messages keyed `entity:key` land
in the same partition) and sent as JSON arrays: Faust's per-message cost,
not Kafka, is what limits a one-record-per-message pipeline. A batch whose
JSON is over the message limit (orderwatch/sizes.py) is split into several
messages to the same partition, in order; a record over it on its own is
dead-lettered with its key, source and size instead of being retried for ever.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer

from orderwatch.record import ChangeRecord, DeadLetter, encode_batch, encode_record
from orderwatch.sizes import (
    MAX_MESSAGE_BYTES,
    PRODUCER_LIMITS,
    fit_dead_letter,
    json_array,
    pack,
    too_large_reason,
)
from orderwatch.topics import partition_for

MAX_BATCH = 500


class Publisher:
    def __init__(self, bootstrap: str, changes_topic: str, deadletter_topic: str) -> None:
        self.bootstrap = bootstrap
        self.changes_topic = changes_topic
        self.deadletter_topic = deadletter_topic
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks=1,
            linger_ms=2,
            **PRODUCER_LIMITS,
        )
        self.partitions = 0
        self.published = 0
        self.messages = 0
        self.dead_lettered = 0

    async def start(self) -> None:
        await self.producer.start()
        self.partitions = len(await self.producer.partitions_for(self.changes_topic))

    async def stop(self) -> None:
        await self.producer.stop()

    async def publish(self, records: Iterable[ChangeRecord]) -> int:
        """Send records (order per key preserved) and wait until the broker has them."""
        count, _ = await self.publish_with_offsets(records)
        return count

    async def publish_with_offsets(
        self, records: Iterable[ChangeRecord]
    ) -> tuple[int, dict[int, int]]:
        """Like `publish`; also returns, per partition written, the offset after the last message.

        Records too large for a message on their own are dead-lettered, not counted."""
        groups: dict[int, list[ChangeRecord]] = {}
        for record in records:
            groups.setdefault(partition_for(record.entity_key, self.partitions), []).append(record)
        futures = []
        count = 0
        unsendable: list[DeadLetter] = []
        for partition, group in groups.items():
            for i in range(0, len(group), MAX_BATCH):
                for chunk, value in self._messages(group[i : i + MAX_BATCH], partition, unsendable):
                    key = chunk[0].entity_key.encode() if len(chunk) == 1 else None
                    if key is not None and len(key) + len(value) > MAX_MESSAGE_BYTES:
                        key = None
                    futures.append(
                        await self.producer.send(
                            self.changes_topic, value, key=key, partition=partition
                        )
                    )
                    count += len(chunk)
        offsets: dict[int, int] = {}
        for fut in futures:
            meta = await fut
            offsets[meta.partition] = max(offsets.get(meta.partition, 0), meta.offset + 1)
        if unsendable:
            await self.dead_letter(unsendable)
        self.published += count
        self.messages += len(futures)
        return count, offsets

    async def publish_raw(self, payloads: Iterable[tuple[bytes, dict[str, Any]]], source: str) -> int:
        """Send payloads as they are, for the engine to validate (and dead-letter with the reason).

        `payloads` are (bytes, where it came from); one too large for a message is
        dead-lettered here with its size and head. Returns how many were sent."""
        futures = []
        unsendable: list[DeadLetter] = []
        for value, where in payloads:
            if len(value) > MAX_MESSAGE_BYTES:
                head = value[:2048].decode("utf-8", "replace")
                unsendable.append(DeadLetter(too_large_reason(len(value), "payload"), None,
                                             {"bytes": len(value), "head": head}, source, where=where))
            else:
                futures.append(await self.producer.send(self.changes_topic, value, partition=0))
        for fut in futures:
            await fut
        if unsendable:
            await self.dead_letter(unsendable)
        self.messages += len(futures)
        return len(futures)

    def _messages(
        self, chunk: list[ChangeRecord], partition: int, unsendable: list[DeadLetter]
    ) -> list[tuple[list[ChangeRecord], bytes]]:
        """The messages that carry `chunk` in order, each within the message limit."""
        try:
            value = encode_batch(chunk)
        except (ValueError, TypeError, RecursionError):
            value = b""  # one of them cannot be encoded: find which, below
        if value and len(value) <= MAX_MESSAGE_BYTES:
            return [(chunk, value)]  # the usual case: no second encoding
        parts: list[bytes] = []
        kept: list[ChangeRecord] = []
        for record in chunk:
            encoded = encode_record(record)
            if encoded is None:
                unsendable.append(self._letter(record, partition, "record cannot be encoded as JSON "
                                               "(values nested too deeply)", None))
            else:
                parts.append(encoded)
                kept.append(record)
        messages, oversized = pack(parts)
        for i in oversized:
            unsendable.append(self._letter(kept[i], partition, too_large_reason(len(parts[i])), len(parts[i])))
        return [([kept[i] for i in m], json_array([parts[i] for i in m])) for m in messages]

    def _letter(self, record: ChangeRecord, partition: int, reason: str, size: int | None) -> DeadLetter:
        named: dict[str, object] = {"source": record.source, "entity": record.entity,
                                    "key": record.key[:200], "seq": str(record.seq)[:200]}
        if size is not None:
            named["bytes"] = size
        return DeadLetter(reason, None, named, record.source,
                          where={"topic": self.changes_topic, "partition": partition})

    async def dead_letter(self, letters: Iterable[DeadLetter]) -> int:
        futures = [
            await self.producer.send(self.deadletter_topic, fit_dead_letter(d.to_dict(), _encode_letter))
            for d in letters
        ]
        for fut in futures:
            await fut
        self.dead_lettered += len(futures)
        return len(futures)


def _encode_letter(doc: object) -> bytes:
    return json.dumps(doc, ensure_ascii=False, default=str).encode()
