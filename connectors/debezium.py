"""Consume Debezium change events from a Kafka topic and map them like sql rows.

The bookmark holds, per partition, the offset of the next message to read;
the consumer uses no consumer group (it assigns every partition itself), so
restarts resume exactly at the bookmark. seq = the message's offset: Debezium
keys messages by primary key, so all events of a row share a partition and
their offsets grow with every change of it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from connectors.base import Connector, Deliver, PollResult
from connectors.dbz_event import Event, EventError, guess_time, parse_event
from connectors.mapping import FieldMapping, MappingError, make_key
from orderwatch.record import ChangeRecord, DeadLetter


@dataclass(frozen=True, slots=True)
class DebeziumConfig:
    """One `type: debezium` entry of the connectors file."""

    id: str
    entity: str
    topic: str
    key: tuple[str, ...]
    mapping: FieldMapping
    actor: str | None = None
    timezone: tzinfo = field(default=UTC)
    bootstrap: str | None = None  # default: the orderwatch broker
    start: str = "earliest"  # where a partition without a bookmark starts
    batch_size: int = 1000
    op: str = "upsert"  # a flattened row without __op/__deleted: upsert, or reject (a dead letter)


class DebeziumConnector(Connector):
    """Bookmark: {"offsets": {partition: next offset}}."""

    def __init__(
        self, config: DebeziumConfig, bookmark: dict[str, Any] | None = None, bootstrap: str | None = None
    ) -> None:
        super().__init__(config.id, bookmark)
        self.config = config
        self.bootstrap = config.bootstrap or bootstrap
        self._consumer: AIOKafkaConsumer | None = None
        self._assigned: list[TopicPartition] = []

    async def start(self, deliver: Deliver) -> None:
        if self.bootstrap is None:
            raise ValueError(f"debezium connector {self.id}: no 'bootstrap' and no orderwatch broker")
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset=self.config.start,
        )
        await self._consumer.start()

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def _assign(self, consumer: AIOKafkaConsumer, offsets: dict[str, int]) -> bool:
        """Assign every partition of the topic (again when partitions were added)."""
        parts = consumer.partitions_for_topic(self.config.topic)
        if not parts:
            await consumer._client.force_metadata_update()  # the topic may just have been created
            parts = consumer.partitions_for_topic(self.config.topic)
        if not parts:
            raise LookupError(f"topic {self.config.topic!r} does not exist (yet) on {self.bootstrap}")
        wanted = [TopicPartition(self.config.topic, p) for p in sorted(parts)]
        if wanted == self._assigned:
            return False
        consumer.assign(wanted)
        for tp in wanted:
            if str(tp.partition) in offsets:
                consumer.seek(tp, offsets[str(tp.partition)])
            elif self.config.start == "earliest":
                await consumer.seek_to_beginning(tp)
            else:
                await consumer.seek_to_end(tp)
        self._assigned = wanted
        return True

    async def poll_async(self) -> PollResult:
        if self._consumer is None:
            raise RuntimeError("debezium connector polled before start()")
        offsets = dict(self.bookmark.get("offsets") or {})
        pinned = False
        if await self._assign(self._consumer, offsets):
            # Where `start` put a partition is bookmarked at once: a restart before its first
            # event must not start at the (later) end again and skip what came meanwhile.
            for tp in self._assigned:
                if str(tp.partition) not in offsets:
                    offsets[str(tp.partition)] = await self._consumer.position(tp)
                    pinned = True
        batches = await self._consumer.getmany(timeout_ms=200, max_records=self.config.batch_size)
        result = self.convert(batches, offsets)
        if pinned and result.bookmark is None:
            result.bookmark = {"offsets": offsets}
        result.more = result.rows_read >= self.config.batch_size
        return result

    def convert(
        self, batches: dict[TopicPartition, list[ConsumerRecord[Any, Any]]], offsets: dict[str, int]
    ) -> PollResult:
        """Messages → records, dead letters and the advanced offsets."""
        result = PollResult()
        for tp, messages in sorted(batches.items(), key=lambda item: item[0].partition):
            for message in messages:
                result.rows_read += 1
                offsets[str(tp.partition)] = message.offset + 1
                self._one(message, result)
        if result.rows_read:
            result.bookmark = {"offsets": offsets}
        return result

    def _one(self, message: ConsumerRecord[Any, Any], result: PollResult) -> None:
        where = {"topic": message.topic, "partition": message.partition, "offset": message.offset}
        try:
            event = parse_event(message.value, "u" if self.config.op == "upsert" else None)
            if event is None or event.op == "m":
                return  # a tombstone or a logical message: no row changed
            if event.op == "t":
                raise EventError("the table was truncated: every row is gone, but which keys "
                                 "cannot be told from the event; re-snapshot the connector")
            record = self._record(event, message)
        except (EventError, MappingError) as exc:
            text = (message.value or b"").decode("utf-8", "replace")
            if isinstance(exc, MappingError):
                where = {**where, "column": exc.column, "text": exc.text}
            field_name = exc.field if isinstance(exc, MappingError) else None
            result.dead.append(DeadLetter(str(exc), field_name, text[:4096], self.id, where=where))
            return
        result.records.append(record)

    def _record(self, event: Event, message: ConsumerRecord[Any, Any]) -> ChangeRecord:
        cfg = self.config
        delete = event.op == "d"
        row = event.before if delete else event.after
        if row is None:
            which = "before" if delete else "after"
            hint = " (PostgreSQL: ALTER TABLE … REPLICA IDENTITY FULL)" if delete else ""
            raise EventError(f"op {event.op!r} without '{which}' row{hint}")
        row = self._prepare(row, event)
        key = make_key(row, cfg.key)
        fields: dict[str, Any] = {}
        changed = None
        if delete:
            try:
                fields = cfg.mapping.apply(row)
            except MappingError:
                fields = {}  # a delete's `before` may hold the key alone
        else:
            fields = cfg.mapping.apply(row)
            if event.before is not None:
                try:
                    old = cfg.mapping.apply(self._prepare(event.before, event))
                except MappingError:
                    old = None
                if old is not None:
                    changed = {f: (old.get(f), fields.get(f)) for f in fields if old.get(f) != fields.get(f)}
        actor = row.get(cfg.actor) if cfg.actor else None
        return ChangeRecord(
            source=cfg.id,
            entity=cfg.entity,
            key=key,
            op="delete" if delete else "upsert",
            ts=event.ts or datetime.fromtimestamp(message.timestamp / 1000, UTC),
            seq=message.offset,
            fields=fields,
            changed=changed,
            actor=str(actor) if actor not in (None, "") else None,
        )

    def _prepare(self, row: dict[str, Any], event: Event) -> dict[str, Any]:
        """Without a schema, integers in date/datetime fields are Debezium's epoch encodings."""
        if event.has_schema:
            return row
        out = dict(row)
        for spec in self.config.mapping.specs:
            if spec.column in out:
                try:
                    out[spec.column] = guess_time(out[spec.column], spec.type)
                except (ValueError, OverflowError):
                    raise MappingError(spec.name, spec.column, str(out[spec.column]),
                                       f"not a {spec.type}: {out[spec.column]} is out of range "
                                       "for days, seconds, ms, µs or ns since 1970") from None
        return out

    async def sample_async(self, rows: int) -> PollResult:
        if self.bootstrap is None:
            raise ValueError("no 'bootstrap' given and no orderwatch broker to default to")
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            self._assigned = []
            await self._assign(consumer, {})
            for tp in self._assigned:
                await consumer.seek_to_beginning(tp)
            result = PollResult()
            deadline = asyncio.get_running_loop().time() + 5
            while result.rows_read < rows and asyncio.get_running_loop().time() < deadline:
                batches = await consumer.getmany(timeout_ms=500, max_records=rows - result.rows_read)
                part = self.convert(batches, {})
                result.records += part.records
                result.dead += part.dead
                result.rows_read += part.rows_read
            return result
        finally:
            self._assigned = []
            await consumer.stop()

