"""Publishes change records to the changes topic in batches, one Kafka message per partition.

Records are grouped by the partition their `entity:key` hashes to (Kafka's
own murmur2 partitioner, so single-record messages keyed `entity:key` land
in the same partition) and sent as JSON arrays: Faust's per-message cost,
not Kafka, is what limits a one-record-per-message pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer

from orderwatch.record import ChangeRecord, DeadLetter, encode_batch
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
            max_request_size=8 * 1024 * 1024,
            max_batch_size=1024 * 1024,
        )
        self.partitions = 0
        self.published = 0
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
        """Like `publish`; also returns, per partition written, the offset after the last message."""
        groups: dict[int, list[ChangeRecord]] = {}
        for record in records:
            groups.setdefault(partition_for(record.entity_key, self.partitions), []).append(record)
        futures = []
        count = 0
        for partition, group in groups.items():
            for i in range(0, len(group), MAX_BATCH):
                chunk = group[i : i + MAX_BATCH]
                value = encode_batch(chunk)
                key = chunk[0].entity_key.encode() if len(chunk) == 1 else None
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
        self.published += count
        return count, offsets

    async def dead_letter(self, letters: Iterable[DeadLetter]) -> int:
        futures = [
            await self.producer.send(
                self.deadletter_topic,
                json.dumps(d.to_dict(), ensure_ascii=False, default=str).encode(),
            )
            for d in letters
        ]
        for fut in futures:
            await fut
        self.dead_lettered += len(futures)
        return len(futures)
