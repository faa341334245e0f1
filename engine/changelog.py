"""Writes the order-state table's changelog in batches, plus the topics' other output.

Faust sends one changelog message per table write through its own producer
machinery; measured here that caps a worker near 4,500 writes/s. The engine
instead writes all states touched by one input message as one Kafka record
batch to the table's changelog partition (Faust's own recovery reads them
back as usual), followed by a one-record marker batch: the embedded broker
(Tansu) answers ListOffsets with the *last batch's* base offset + 1, so a
one-record last batch keeps table recovery from stopping early.

Every message keeps to the one size limit (orderwatch/sizes.py): changelog
batches, alert and contribution arrays are split by bytes; a single state,
alert or contribution too large on its own goes to the dead-letter topic with
its name and size instead (a state so dropped is kept in memory only).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from orderwatch import metrics
from orderwatch.record import DeadLetter
from orderwatch.sizes import (
    MAX_MESSAGE_BYTES,
    PRODUCER_LIMITS,
    fit_dead_letter,
    json_array,
    pack,
    summary,
    too_large_reason,
)

log = logging.getLogger(__name__)

MARKER_KEY = "__orderwatch_marker__"


def _json(value: Any) -> bytes:
    # orjson: the changelog is written once per touched state, on the hot path. Keys are strings
    # but for rare derived values; orjson's option for other keys doubles its time, so it is
    # used only when the plain call refuses a key.
    try:
        return orjson.dumps(value, default=str)
    except orjson.JSONEncodeError:
        pass
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

    def __init__(self, bootstrap: str, deadletter_topic: str | None = None) -> None:
        self._bootstrap = bootstrap
        self._deadletter_topic = deadletter_topic
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            async with self._lock:
                if self._producer is None:
                    producer = AIOKafkaProducer(
                        bootstrap_servers=self._bootstrap, acks=1, linger_ms=0, **PRODUCER_LIMITS,
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
        too_large: list[tuple[Any, int]] = []
        batch = producer.create_batch()
        for key, value in states.items():
            kb, vb = _json(key), None if value is None else _json(value)
            if vb is not None and len(kb) + len(vb) > MAX_MESSAGE_BYTES:
                size = len(kb) + len(vb)
                too_large.append((summary(value, size) | {"entity_key": str(key)[:200]}, size))
                continue
            if batch.append(key=kb, value=vb, timestamp=None) is None:
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(key=kb, value=vb, timestamp=None)
        if batch.record_count():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        marker = producer.create_batch()
        marker.append(key=_json(MARKER_KEY), value=_json(0), timestamp=None)
        futures.append(await producer.send_batch(marker, topic, partition=partition))
        await asyncio.gather(*futures)
        if too_large:
            await self._too_large(topic, partition, too_large, "state (kept in memory only, not in the changelog)")

    async def send_json(self, topic: str, value: Any, partition: int | None = None, key: str | None = None) -> None:
        """Send `value` as one message; a list too large for one goes out as several, in order."""
        producer = await self.producer()
        encoded = _encode(value)
        kb = None if key is None else key.encode()
        if encoded is not None and len(encoded) + len(kb or b"") <= MAX_MESSAGE_BYTES:
            await producer.send_and_wait(topic, encoded, key=kb, partition=partition)
            return
        if topic == self._deadletter_topic and isinstance(value, dict):
            await producer.send_and_wait(topic, fit_dead_letter(value, _json), key=kb, partition=partition)
            return
        items = value if isinstance(value, list) else [value]
        parts = [_encode(item) for item in items]
        ok = [i for i, p in enumerate(parts) if p is not None]
        messages, oversized = pack([parts[i] or b"" for i in ok])
        futures = [await producer.send(topic, json_array([parts[ok[j]] or b"" for j in m]), partition=partition)
                   for m in messages]
        await asyncio.gather(*futures)
        unsendable = [(summary(items[ok[j]], len(parts[ok[j]] or b"")), len(parts[ok[j]] or b"")) for j in oversized]
        unsendable += [(summary(items[i], 0), 0) for i, p in enumerate(parts) if p is None]
        if unsendable:
            await self._too_large(topic, partition, unsendable, "item")

    async def _too_large(self, topic: str, partition: int | None, items: list[tuple[Any, int]], what: str) -> None:
        """Dead-letter what could not be sent: its name and size, not its content."""
        metrics.RECORDS_DEAD_LETTERED.labels("engine").inc(len(items))
        if self._deadletter_topic is None:
            for named, size in items:
                log.error("%s on %s not sent: %s", what, topic, too_large_reason(size, what) if size else named)
            return
        producer = await self.producer()
        futures = []
        for named, size in items:
            reason = too_large_reason(size, what) if size else f"{what} cannot be encoded as JSON"
            doc = DeadLetter(reason, None, named, topic, where={"topic": topic, "partition": partition}).to_dict()
            futures.append(await producer.send(self._deadletter_topic, fit_dead_letter(doc, _json)))
        await asyncio.gather(*futures)


def _encode(value: Any) -> bytes | None:
    try:
        return _json(value)
    except (TypeError, ValueError, RecursionError):  # orjson: nested past its depth limit
        return None
