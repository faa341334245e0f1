"""The engine's Faust wiring: change records in, state kept, rules evaluated, alert transitions out.

    changes topic ──► agent: decode → merge into state table → evaluate → alerts topic
                       │ bad payloads ──► dead-letter topic (with the reason)
    timer (tick) ────► entities whose deadline passed → evaluate → alerts topic

Order of writes per input message: alerts first, then the state changelog,
then Faust commits the input offset. A crash in between replays the message;
replayed records are dropped by seq and replayed alert transitions are
idempotent in the store, so nothing is lost and nothing is notified twice.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faust

from engine.changelog import MARKER_KEY, Output
from engine.evaluator import Evaluator
from engine.state import EntityState, apply_record
from orderwatch import gcpolicy, metrics
from orderwatch.alert import AlertEvent
from orderwatch.config import Settings
from orderwatch.record import DeadLetter, decode_message

Clock = Callable[[], float]


@dataclass
class Stats:
    """Counters the demo uses to know when it has caught up."""

    messages: int = 0
    records: int = 0
    dead: int = 0
    alert_events: int = 0
    ticks: int = 0


@dataclass
class Schedule:
    """Per-partition min-heaps of (due, key); stale entries are skipped on pop."""

    partitions: frozenset[int] = frozenset()
    heaps: dict[int, list[tuple[float, str]]] = field(default_factory=dict)

    def push(self, partition: int, due: float | None, key: str) -> None:
        if due is not None and partition in self.partitions:
            heapq.heappush(self.heaps.setdefault(partition, []), (due, key))

    def pop_due(self, partition: int, now: float) -> list[str]:
        heap = self.heaps.get(partition, [])
        keys: list[str] = []
        while heap and heap[0][0] <= now:
            keys.append(heapq.heappop(heap)[1])
        return keys

    def pending(self) -> int:
        return sum(len(h) for h in self.heaps.values())


class Engine:
    def __init__(self, app: faust.App, settings: Settings, evaluator: Evaluator, output: Output,
                 clock: Clock = time.time) -> None:
        self.app = app
        self.settings = settings
        self.evaluator = evaluator
        self.output = output
        self.clock = clock
        self.stats = Stats()
        self.schedule = Schedule()
        self.changes = app.topic(settings.changes_topic, value_serializer="raw", key_serializer="raw",
                                 partitions=settings.partitions)
        # Keys and values go through the changelog as JSON (Faust's default for untyped tables).
        self.table = app.Table("order_state", default=None, partitions=settings.partitions)
        app.agent(self.changes, name="engine.process")(self._process)
        app.timer(settings.tick_seconds, name="engine.tick")(self._tick)

    # --- state access -------------------------------------------------------

    def get(self, entity_key: str) -> EntityState | None:
        value = self.table.data.get(entity_key)
        return value if isinstance(value, dict) else None

    def count(self) -> int:
        """Entities held (the table minus its changelog marker), without walking them."""
        return len(self.table.data) - (MARKER_KEY in self.table.data)

    def states(self) -> list[EntityState]:
        return [v for k, v in self.table.data.items() if k != MARKER_KEY and isinstance(v, dict)]

    # --- the change path ----------------------------------------------------

    async def _process(self, stream: Any) -> None:
        # A batch of messages shares one changelog batch and one alerts message per
        # partition; Faust acks the events after the body has run (after those writes).
        async for events in stream.take_events(self.settings.batch_max, within=self.settings.batch_wait):
            with gcpolicy.batch():
                await self.handle([(e.message.value, e.message.partition, e.message.offset) for e in events])

    async def handle(self, messages: list[tuple[bytes, int, int]]) -> None:
        """Merge and evaluate (value, partition, offset) messages in order; emit per partition.

        Rules are evaluated once per input message, on the records it carried: the
        alerts depend on how the source grouped its changes, never on how many
        messages the consumer happened to fetch at once (a worker taking over a
        partition reads a backlog in one go and must decide as the old owner would).
        """
        started = time.perf_counter()
        now = self.clock()
        touched_by_p: dict[int, dict[str, EntityState]] = {}
        events_by_p: dict[int, list[AlertEvent]] = {}
        dead_letters: list[tuple[DeadLetter, int, int]] = []
        history_limit = self.settings.history_limit
        counts: dict[str, int] = {}  # records in, per entity: one metric update per batch
        evaluated = 0
        for value, partition, offset in messages:
            records, dead = decode_message(value, source=self.settings.changes_topic)
            self.stats.messages += 1
            self.stats.records += len(records)
            dead_letters.extend((letter, partition, offset) for letter in dead)
            touched = touched_by_p.setdefault(partition, {})
            fresh: dict[str, EntityState] = {}
            for record in records:
                ek = record.entity_key
                merged = apply_record(touched.get(ek) or self.get(ek), record, partition, history_limit)
                if merged is None:
                    metrics.RECORDS_DUPLICATE.labels(record.entity).inc()
                    continue
                counts[record.entity] = counts.get(record.entity, 0) + 1
                touched[ek] = fresh[ek] = merged
            if fresh:
                events_by_p.setdefault(partition, []).extend(self.evaluator.evaluate(fresh.values(), now))
                evaluated += len(fresh)
        for entity, n in counts.items():
            metrics.RECORDS_IN.labels(entity).inc(n)
        metrics.RULE_EVALUATIONS.labels("change").inc(evaluated)
        if dead_letters:
            await self._dead_letter(dead_letters)
        await asyncio.gather(*(
            self._emit(partition, touched, events_by_p.get(partition, []))
            for partition, touched in touched_by_p.items() if touched
        ))
        metrics.PROCESSING_SECONDS.observe(time.perf_counter() - started)

    async def _dead_letter(self, dead: list[tuple[DeadLetter, int, int]]) -> None:
        for letter, partition, offset in dead:
            doc = letter.to_dict()
            doc["where"].update(topic=self.settings.changes_topic, partition=partition, offset=offset)
            await self.output.send_json(self.settings.deadletter_topic, doc)
        metrics.RECORDS_DEAD_LETTERED.labels("engine").inc(len(dead))
        self.stats.dead += len(dead)

    async def _emit(self, partition: int, states: dict[str, EntityState], events: list[AlertEvent]) -> None:
        if events:
            await self.output.send_json(self.settings.alerts_topic, [e.to_dict() for e in events], partition=partition)
            self.stats.alert_events += len(events)
            for e in events:
                if e.state == "firing":
                    metrics.ALERTS_FIRED.labels(e.rule, e.severity).inc()
                else:
                    metrics.ALERTS_RESOLVED.labels(e.rule).inc()
        # A deleted entity whose alerts have resolved leaves the table (a tombstone).
        writes: dict[str, Any] = {
            ek: (None if s["deleted"] and not s["firing"] else s) for ek, s in states.items()
        }
        await self.output.write_states(self.table.changelog_topic.get_topic_name(), partition, writes)
        data = self.table.data
        key_partition = getattr(data, "_key_partition", None)
        for ek, value in writes.items():
            existed = isinstance(data.get(ek), dict)
            if value is None:
                data.pop(ek, None)
                if existed:
                    metrics.ENTITIES_TRACKED.labels(ek.split(":", 1)[0]).dec()
                continue
            data[ek] = value
            if key_partition is not None:
                # Lets Faust's memory store drop this key when the partition moves away.
                key_partition[ek] = partition
            if not existed:
                metrics.ENTITIES_TRACKED.labels(value["entity"]).inc()
            self.schedule.push(partition, value["due"], ek)
        metrics.DEADLINES_PENDING.set(self.schedule.pending())

    # --- the time path ------------------------------------------------------

    def _active_partitions(self) -> frozenset[int] | None:
        """Partitions of the changes topic this worker owns, or None while rebalancing."""
        if getattr(self.app, "rebalancing", False) or getattr(self.app, "in_recovery", False):
            return None
        assignment = self.app.assignor.assigned_actives()
        return frozenset(tp.partition for tp in assignment if tp.topic == self.settings.changes_topic)

    def _rebuild(self, active: frozenset[int]) -> None:
        """After a rebalance, rebuild the deadline schedule from the recovered table."""
        self.schedule = Schedule(partitions=active)
        counts: dict[str, int] = {}
        for ek, state in list(self.table.data.items()):
            if ek == MARKER_KEY or not isinstance(state, dict) or state.get("p") not in active:
                continue
            counts[state["entity"]] = counts.get(state["entity"], 0) + 1
            self.schedule.push(state["p"], state.get("due"), ek)
        for entity in self.evaluator.programs.keys() | counts.keys():
            metrics.ENTITIES_TRACKED.labels(entity).set(counts.get(entity, 0))
        metrics.DEADLINES_PENDING.set(self.schedule.pending())

    async def _tick(self) -> None:
        await self.tick()

    async def tick(self) -> int:
        """Re-evaluate every owned entity whose deadline has passed; return how many."""
        active = self._active_partitions()
        if active is None:
            return 0
        if active != self.schedule.partitions:
            self._rebuild(active)
        started = time.perf_counter()
        now = self.clock()
        total = 0
        for partition in sorted(active):
            due: dict[str, EntityState] = {}
            for ek in self.schedule.pop_due(partition, now):
                state = self.get(ek)
                if state is not None and state.get("due") is not None and state["due"] <= now:
                    due[ek] = state
            if not due:
                continue
            events = self.evaluator.evaluate(due.values(), now)
            metrics.RULE_EVALUATIONS.labels("tick").inc(len(due))
            await self._emit(partition, due, events)
            total += len(due)
        self.stats.ticks += 1
        metrics.TICK_SECONDS.observe(time.perf_counter() - started)
        return total
