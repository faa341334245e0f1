"""Helpers for the connector tests that run against the real embedded broker (no tests here)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from orderwatch.config import Settings
from orderwatch.topics import ensure_topics


def new_settings(broker_url: str, partitions: int = 4) -> Settings:
    prefix = f"owc-{uuid.uuid4().hex[:8]}"
    return Settings(broker=broker_url, app_id=prefix, topic_prefix=prefix, partitions=partitions)


async def make_topics(bootstrap: str, settings: Settings) -> None:
    await ensure_topics(bootstrap, settings)


async def read_topic(bootstrap: str, topic: str, settle: float = 0.5) -> list[Any]:
    """Every message value of `topic` (JSON-decoded), read from the start until quiet."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not parts:
            return []
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out: list[tuple[int, int, Any]] = []
        quiet_since = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - quiet_since < settle:
            batches = await consumer.getmany(timeout_ms=100)
            for tp, messages in batches.items():
                for m in messages:
                    out.append((tp.partition, m.offset, json.loads(m.value)))
                    quiet_since = asyncio.get_running_loop().time()
        return [value for _, _, value in sorted(out, key=lambda x: (x[0], x[1]))]
    finally:
        await consumer.stop()


def flatten(values: list[Any]) -> list[dict[str, Any]]:
    """Messages of the changes topic (objects or arrays of them) → the records."""
    out: list[dict[str, Any]] = []
    for value in values:
        out.extend(value if isinstance(value, list) else [value])
    return out


def read_records(bootstrap: str, topic: str, settle: float = 0.5) -> list[dict[str, Any]]:
    return flatten(asyncio.run(read_topic(bootstrap, topic, settle)))
