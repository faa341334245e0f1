"""Writes the order-state table's changelog in batches, plus the topics' other output.

Faust sends one changelog message per table write through its own producer
machinery; measured here that caps a worker near 4,500 writes/s. The engine
instead writes all states touched by one input message as one Kafka record
batch to the table's changelog partition (Faust's own recovery reads them
back as usual), followed by a one-record marker batch: the embedded broker
(Tansu) answers ListOffsets with the *last batch's* base offset + 1, so a
one-record last batch keeps table recovery from stopping early.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

MARKER_KEY = "__orderwatch_marker__"


def _json(value: Any) -> bytes:
    # orjson: the changelog is written once per touched state, on the hot path.
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        # Values computed from valid records can still be what orjson does not write (a sum of
        # 64-bit integers beyond 64 bits): write them as JSON has them rather than fail the batch.
        return orjson.dumps(_plain(value, 0), default=str, option=orjson.OPT_NON_STR_KEYS)


def _plain(value: Any, depth: int) -> Any:
    """`value` with what orjson refuses made writable: integers beyond 64 bits as floats (null
    beyond the float range, as orjson writes infinities), text with unpaired surrogates escaped."""
    kind = type(value)
    if kind is int:
        if -(2**63) <= value < 2**64:
            return value
        try:
            return float(value)
        except OverflowError:
            return None
    if kind is str:
        try:
            value.encode()
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode()
    if depth > 250:  # orjson writes 254 levels; the engine's limits keep states far below
        return "…"
    if isinstance(value, Mapping):
        return {_plain(k, depth) if isinstance(k, str) else k: _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    return value


class Output:
    """One aiokafka producer for changelog batches, alert batches and dead letters."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            async with self._lock:
                if self._producer is None:
                    producer = AIOKafkaProducer(
                        bootstrap_servers=self._bootstrap, acks=1, linger_ms=0,
                        max_batch_size=4 * 1024 * 1024, max_request_size=8 * 1024 * 1024,
                    )
                    await producer.start()
                    self._producer = producer
        return self._producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def write_states(self, topic: str, partition: int, states: dict[str, Any]) -> None:
        """Changelog records for each key (None = tombstone), then the marker batch."""
        if not states:
            return
        producer = await self.producer()
        futures = []
        batch = producer.create_batch()
        for key, value in states.items():
            kb, vb = _json(key), None if value is None else _json(value)
            if batch.append(key=kb, value=vb, timestamp=None) is None:
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(key=kb, value=vb, timestamp=None)
        futures.append(await producer.send_batch(batch, topic, partition=partition))
        marker = producer.create_batch()
        marker.append(key=_json(MARKER_KEY), value=_json(0), timestamp=None)
        futures.append(await producer.send_batch(marker, topic, partition=partition))
        await asyncio.gather(*futures)

    async def send_json(self, topic: str, value: Any, partition: int | None = None, key: str | None = None) -> None:
        producer = await self.producer()
        await producer.send_and_wait(
            topic, _json(value), key=None if key is None else key.encode(), partition=partition
        )
