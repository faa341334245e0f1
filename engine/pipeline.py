"""The engine's Faust wiring: change records in, state kept, rules evaluated, alert transitions out.

    changes topic ──► agent: decode → merge into state table → evaluate → alerts topic
                       │ bad payloads ──► dead-letter topic (with the reason)
                       └ contributions ──► derived topic (keyed by derived entity, e.g. stock:SKU@WH)
    derived topic ──► agent: fold into derived table → evaluate → alerts topic
    timer (tick) ────► entities whose deadline passed → evaluate → alerts topic
                       rule files changed (or SIGHUP) → swap the rules, re-evaluate owned states

Order of writes per input message: alerts first, then contributions to derived
entities, then the state changelog, then the input messages are acknowledged
(orderwatch/consume.py; only then can Faust commit their offsets). A crash in
between replays the message; replayed records are dropped by seq,
replayed contributions by their version (engine/aggregate.py), and replayed
alert transitions are idempotent in the store, so nothing is lost and nothing
is notified twice. The derived topic has the changes topic's partition count,
so Faust assigns partition p of both to the same worker.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import faust

from engine import aggregate
from engine.aggregate import Contribution
from engine.changelog import MARKER_KEY, Output
from engine.evaluator import Evaluator
from engine.reload import RuleReloader
from engine.schedule import Schedule
from engine.state import EntityState, apply_record, fork
from orderwatch import gcpolicy, metrics
from orderwatch.alert import AlertEvent
from orderwatch.config import Settings
from orderwatch.consume import consume, fail
from orderwatch.record import (
    MAX_RECORD_BYTES,
    ChangeRecord,
    DeadLetter,
    Unreadable,
    decode_message,
    message_text,
    read_json,
    record_problem,
)
from orderwatch.topics import partition_for

Clock = Callable[[], float]
log = logging.getLogger(__name__)


@dataclass
class Stats:
    """Counters the demo uses to know when it has caught up."""

    messages: int = 0
    records: int = 0
    dead: int = 0
    alert_events: int = 0
    ticks: int = 0
    reloads: int = 0


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
        # Stock per SKU@warehouse and customer accounts: folded from other entities' contributions.
        self.derived_entities = frozenset(v.entity for v in aggregate.views())
        self.source_entities = aggregate.source_entities()
        self.derived = app.topic(settings.derived_topic, value_serializer="raw", key_serializer="raw",
                                 partitions=settings.partitions)
        self.derived_table = app.Table("derived_state", default=None, partitions=settings.partitions)
        self.reloader = RuleReloader(settings.rules, evaluator, name=settings.app_id)
        self._reload_requested = False
        # One batch, tick or reload at a time: their alert transitions go out in evaluation order.
        self._lock = asyncio.Lock()
        app.agent(self.changes, name="engine.process")(self._process)
        app.agent(self.derived, name="engine.fold")(self._fold)
        app.timer(settings.tick_seconds, name="engine.tick")(self._tick)
        app.task(self._listen_for_sighup)

    # --- state access -------------------------------------------------------

    def _table_of(self, entity_key: str) -> Any:
        entity = entity_key.split(":", 1)[0]
        return self.derived_table if entity in self.derived_entities else self.table

    def get(self, entity_key: str) -> EntityState | None:
        """The current state of an entity or a derived entity (`stock:SKU@WH`) held here."""
        value = self._table_of(entity_key).data.get(entity_key)
        return cast(EntityState, value) if isinstance(value, dict) else None

    def count(self) -> int:
        """Entities held (the table minus its changelog marker), without walking them."""
        return _held(self.table)

    def count_derived(self) -> int:
        """Derived entities held, likewise."""
        return _held(self.derived_table)

    def states(self) -> list[EntityState]:
        return [cast(EntityState, v) for k, v in self.table.data.items() if k != MARKER_KEY and isinstance(v, dict)]

    # --- the change path ----------------------------------------------------

    async def _process(self, stream: Any) -> None:
        # A batch of messages shares one changelog batch and one alerts message per
        # partition; its events are acknowledged only after those writes (orderwatch/consume.py).
        await self._consume(stream, self.handle, "engine")

    async def _consume(self, stream: Any, handler: Callable[[list[tuple[bytes, int, int]]], Any],
                       component: str) -> None:
        async def run(events: list[Any]) -> None:
            with gcpolicy.batch():
                async with self._lock:
                    await handler([(e.message.value, e.message.partition, e.message.offset) for e in events])

        await consume(stream, self.settings.batch_max, self.settings.batch_wait, run, component,
                      stopping=lambda: bool(self.app.should_stop))

    async def handle(self, messages: list[tuple[bytes, int, int]]) -> None:
        """Merge and evaluate (value, partition, offset) messages in order; emit per partition.

        Rules are evaluated once per input message, on the records it carried: the
        alerts depend on how the source grouped its changes, never on how many
        messages the consumer happened to fetch at once (a worker taking over a
        partition reads a backlog in one go and must decide as the old owner would).

        Never raises for what a message holds: decoding is total, and a record that
        breaks a later stage (merging, contributions, rule evaluation) is dead-lettered
        with the reason and leaves no trace, because records merge into a copy of the
        state (`fork`) that replaces the held one only once its message went through.
        """
        started = time.perf_counter()
        now = self.clock()
        touched_by_p: dict[int, dict[str, EntityState]] = {}
        events_by_p: dict[int, list[AlertEvent]] = {}
        dead_letters: list[tuple[DeadLetter, int, int]] = []
        shares: dict[int, list[dict[str, Any]]] = {}  # derived partition → contributions
        sources, partitions = self.source_entities, self.settings.partitions
        table = _readable(self.table.data)
        history_limit = self.settings.history_limit
        topic = self.settings.changes_topic
        counts: dict[str, int] = {}  # records in, per entity: one metric update per batch
        evaluated = 0
        for value, partition, offset in messages:
            records, dead = decode_message(value, source=topic)
            self.stats.messages += 1
            self.stats.records += len(records)
            dead_letters.extend((letter, partition, offset) for letter in dead)
            touched = touched_by_p.setdefault(partition, {})
            fresh: dict[str, EntityState] = {}
            before: dict[str, tuple[bool, EntityState | None]] = {}  # as this message found it
            merged: dict[str, list[ChangeRecord]] = {}
            staged: list[tuple[str, int, dict[str, Any]]] = []  # (entity key, derived partition, share)
            for record in records:
                ek = record.entity_key
                held = touched.get(ek) or table.get(ek)
                try:
                    state = apply_record(fork(held), record, partition, history_limit)
                    if state is None:
                        metrics.RECORDS_DUPLICATE.labels(record.entity).inc()
                        continue
                    # Right after this record: its diff says what the state contributed before.
                    mine = [(partition_for(c.entity_key, partitions), c.to_dict())
                            for c in aggregate.contributions(state)] if record.entity in sources else []
                except Exception as exc:  # noqa: BLE001 - one record, not the batch
                    dead_letters.append((_broken(record, "could not be merged into its state", exc, topic),
                                         partition, offset))
                    continue
                before.setdefault(ek, (ek in touched, touched.get(ek)))
                touched[ek] = fresh[ek] = state
                merged.setdefault(ek, []).append(record)
                if mine:
                    staged.extend((ek, p, doc) for p, doc in mine)
            if not fresh:
                continue
            events, failed = self._evaluate(fresh, now)
            events_by_p.setdefault(partition, []).extend(events)
            evaluated += len(fresh) - len(failed)
            for ek, error in failed.items():
                _put_back(touched, ek, before[ek])
                dead_letters.extend((_broken(record, "rules could not be evaluated on its state", error, topic),
                                     partition, offset) for record in merged[ek])
            for ek, p, doc in staged:
                if ek not in failed:
                    shares.setdefault(p, []).append(doc)
            for ek, done in merged.items():
                if ek not in failed:
                    counts[done[0].entity] = counts.get(done[0].entity, 0) + len(done)
        for entity, n in counts.items():
            metrics.RECORDS_IN.labels(entity).inc(n)
        metrics.RULE_EVALUATIONS.labels("change").inc(evaluated)
        if dead_letters:
            await self._dead_letter(dead_letters)
        await asyncio.gather(*(self._send_alerts(p, events) for p, events in events_by_p.items()))
        if shares:
            await asyncio.gather(*(self.output.send_json(self.settings.derived_topic, docs, partition=p)
                                   for p, docs in shares.items()))
        await asyncio.gather(*(
            self._write(partition, touched, self.table) for partition, touched in touched_by_p.items() if touched
        ))
        metrics.PROCESSING_SECONDS.observe(time.perf_counter() - started)

    def _evaluate(self, states: dict[str, EntityState], now: float) -> tuple[list[AlertEvent], dict[str, Exception]]:
        """Evaluate states together; if that fails, one by one, so that one state the rules
        cannot be evaluated on (returned with its error, as it was) spares the others' alerts."""
        marks = {ek: (s["firing"].copy(), s["pending"].copy() if "pending" in s else None, s["due"],
                      s["keeping"].copy() if "keeping" in s else None)
                 for ek, s in states.items()}
        try:
            return self.evaluator.evaluate(states.values(), now), {}
        except Exception as exc:  # noqa: BLE001 - find the culprit below
            log.warning("evaluating %d states failed (%s); evaluating them one by one", len(states), exc)
        events: list[AlertEvent] = []
        failed: dict[str, Exception] = {}
        for ek, state in states.items():
            _restore(state, marks[ek])
            try:
                events.extend(self.evaluator.evaluate([state], now))
            except Exception as exc:  # noqa: BLE001 - this state's records are dead-lettered
                _restore(state, marks[ek])
                failed[ek] = exc
        return events, failed

    # --- the derived path ---------------------------------------------------

    async def _fold(self, stream: Any) -> None:
        await self._consume(stream, self.handle_derived, "engine (derived entities)")

    async def handle_derived(self, messages: list[tuple[bytes, int, int]]) -> None:
        """Fold (value, partition, offset) messages of contributions into derived states; evaluate.

        Total like `handle`: a message that is not a list of contributions, or one contribution
        that breaks folding or evaluation, is dead-lettered with the reason; the rest goes on."""
        now = self.clock()
        touched_by_p: dict[int, dict[str, EntityState]] = {}
        events_by_p: dict[int, list[AlertEvent]] = {}
        dead_letters: list[tuple[DeadLetter, int, int]] = []
        table = _readable(self.derived_table.data)
        topic = self.settings.derived_topic
        for value, partition, offset in messages:
            try:
                docs, _ = read_json(value)
                if not isinstance(docs, list):
                    raise Unreadable(f"expected a JSON array of contributions, got {type(docs).__name__}")
            except Unreadable as exc:
                letter = DeadLetter(f"not a contribution batch: {exc}", None, message_text(value), topic)
                dead_letters.append((letter, partition, offset))
                continue
            touched = touched_by_p.setdefault(partition, {})
            fresh: dict[str, EntityState] = {}
            before: dict[str, tuple[bool, EntityState | None]] = {}
            folded_from: dict[str, list[tuple[int, Any]]] = {}
            for index, doc in enumerate(docs):
                try:
                    problem = record_problem(doc, True, len(value) <= MAX_RECORD_BYTES)
                    if problem is not None:
                        raise problem
                    c = Contribution.from_dict(doc)
                    ek = c.entity_key
                    held = touched.get(ek) or table.get(ek)
                    folded = aggregate.fold(fork(held), c, partition, self.settings.history_limit)
                except Exception as exc:  # noqa: BLE001 - one contribution, not the batch
                    reason = f"not a contribution: {type(exc).__name__}: {exc}"
                    dead_letters.append((DeadLetter(reason, None, doc, topic, where={"index": index}),
                                         partition, offset))
                    continue
                if folded is not None:
                    before.setdefault(ek, (ek in touched, touched.get(ek)))
                    touched[ek] = fresh[ek] = folded
                    folded_from.setdefault(ek, []).append((index, doc))
            if not fresh:
                continue
            events, failed = self._evaluate(fresh, now)
            events_by_p.setdefault(partition, []).extend(events)
            metrics.RULE_EVALUATIONS.labels("change").inc(len(fresh) - len(failed))
            for ek, error in failed.items():
                _put_back(touched, ek, before[ek])
                reason = f"rules could not be evaluated on its derived state: {type(error).__name__}: {error}"
                dead_letters.extend((DeadLetter(reason, None, doc, topic, where={"index": index}), partition, offset)
                                    for index, doc in folded_from[ek])
        if dead_letters:
            await self._dead_letter(dead_letters, topic)
        await asyncio.gather(*(self._send_alerts(p, events) for p, events in events_by_p.items()))
        await asyncio.gather(*(
            self._write(p, touched, self.derived_table) for p, touched in touched_by_p.items() if touched
        ))

    async def _dead_letter(self, dead: list[tuple[DeadLetter, int, int]], topic: str | None = None) -> None:
        # to_dict is safe for any payload (orderwatch.record.safe_payload): nothing here can fail to encode.
        docs = []
        for letter, partition, offset in dead:
            doc = letter.to_dict()
            doc["where"].update(topic=topic or self.settings.changes_topic, partition=partition, offset=offset)
            docs.append(doc)
            log.warning("dead letter from %s partition %s offset %s: %s", doc["where"]["topic"], partition, offset,
                        doc["reason"])
        await asyncio.gather(*(self.output.send_json(self.settings.deadletter_topic, doc) for doc in docs))
        metrics.RECORDS_DEAD_LETTERED.labels("engine").inc(len(dead))
        self.stats.dead += len(dead)

    async def _send_alerts(self, partition: int, events: list[AlertEvent]) -> None:
        if not events:
            return
        await self.output.send_json(self.settings.alerts_topic, [e.to_dict() for e in events], partition=partition)
        self.stats.alert_events += len(events)
        for e in events:
            if e.state == "firing":
                metrics.ALERTS_FIRED.labels(e.rule, e.severity).inc()
            else:
                metrics.ALERTS_RESOLVED.labels(e.rule).inc()

    async def _write(self, partition: int, states: dict[str, EntityState], table: Any) -> None:
        """Write states to a table's changelog (one batch), then to the table; schedule deadlines."""
        # A deleted entity whose alerts have resolved leaves the table (a tombstone).
        writes: dict[str, Any] = {
            ek: (None if s["deleted"] and not s["firing"] else s) for ek, s in states.items()
        }
        await self.output.write_states(table.changelog_topic.get_topic_name(), partition, writes)
        held = _readable(table.data)  # the memory store's dict: what its own setitem writes to
        key_partition = getattr(table.data, "_key_partition", None)
        push = self.schedule.push
        tracked: dict[str, int] = {}  # entity → entities added less removed (one metric update each)
        for ek, value in writes.items():
            existed = isinstance(held.get(ek), dict)
            if value is None:
                held.pop(ek, None)
                if existed:
                    entity = ek.split(":", 1)[0]
                    tracked[entity] = tracked.get(entity, 0) - 1
                continue
            held[ek] = value
            if key_partition is not None:
                # Lets Faust's memory store drop this key when the partition moves away.
                key_partition[ek] = partition
            if not existed:
                tracked[value["entity"]] = tracked.get(value["entity"], 0) + 1
            push(partition, value["due"], ek)
        for entity, n in tracked.items():
            if n:
                metrics.ENTITIES_TRACKED.labels(entity).inc(n)
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
        for ek, state in self._owned(active):
            counts[state["entity"]] = counts.get(state["entity"], 0) + 1
            self.schedule.push(state["p"], state.get("due"), ek)
        for entity in self.evaluator.programs.keys() | counts.keys():
            metrics.ENTITIES_TRACKED.labels(entity).set(counts.get(entity, 0))
        metrics.DEADLINES_PENDING.set(self.schedule.pending())

    def _owned(self, active: frozenset[int]) -> list[tuple[str, EntityState]]:
        """Every state (entities and derived entities) of the partitions this worker owns."""
        return [
            (ek, cast(EntityState, state))
            for table in (self.table, self.derived_table)
            for ek, state in list(table.data.items())
            if ek != MARKER_KEY and isinstance(state, dict) and state.get("p") in active
        ]

    async def _tick(self) -> None:
        try:
            if self._reload_requested or self.reloader.changed():
                await self.reload_rules()
            await self.tick()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - alerts evaluated but not sent: stop, recover from the changelog
            if self.app.should_stop:
                return  # the producer closed under a stopping worker: the next start ticks again
            fail("engine tick", exc)
            await asyncio.Event().wait()

    async def tick(self) -> int:
        """Re-evaluate every owned entity whose deadline has passed; return how many."""
        async with self._lock:
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
                    at = state.get("due") if state is not None else None
                    if state is not None and at is not None and at <= now:
                        due[ek] = state
                if not due:
                    continue
                await self._evaluate_and_write(partition, due, now, "tick")
                total += len(due)
            self.stats.ticks += 1
            metrics.TICK_SECONDS.observe(time.perf_counter() - started)
            return total

    async def _evaluate_and_write(self, partition: int, states: dict[str, EntityState], now: float,
                                  trigger: str) -> None:
        events, failed = self._evaluate(states, now)
        metrics.RULE_EVALUATIONS.labels(trigger).inc(len(states))
        for ek, exc in failed.items():
            # Left as it was and not rescheduled: its next change evaluates it again.
            metrics.EVALUATION_FAILURES.labels(trigger).inc()
            print(f"orderwatch: rules could not be evaluated on {ek} ({trigger}): {type(exc).__name__}: "
                  f"{str(exc)[:300]}; its next change evaluates it again", flush=True)
            del states[ek]
        await self._send_alerts(partition, events)
        by_table: dict[int, tuple[Any, dict[str, EntityState]]] = {}
        for ek, state in states.items():
            table = self._table_of(ek)
            by_table.setdefault(id(table), (table, {}))[1][ek] = state
        for table, part in by_table.values():
            await self._write(partition, part, table)

    # --- rebuilding after a broker restart (orderwatch/rebuild.py) ----------

    async def not_firing(self, alerts: list[tuple[str, str, str]]) -> list[int] | None:
        """Of (rule, entity, key) alerts, the indexes of those this worker decides are over: their
        entity (a line's: its order) is held on a partition it owns and the rule neither fires nor
        waits (`for:`) on it. None while rebalancing. An entity not held (not resent yet) is not decided."""
        async with self._lock:  # no evaluation half-written: the tables say what was last decided
            active = self._active_partitions()
            if active is None:
                return None
            over = []
            for i, (rule, entity, key) in enumerate(alerts):
                held = next(((state, name) for state_key, name in self.evaluator.held_as(rule, key)
                             if (state := self.get(f"{entity}:{state_key}")) is not None), None)
                if held is None or held[0]["p"] not in active:
                    continue
                state, name = held
                if name not in state["firing"] and name not in state.get("pending", {}):
                    over.append(i)
            return over

    # --- hot reload ---------------------------------------------------------

    async def _listen_for_sighup(self) -> None:
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._request_reload)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (tests run the engine in-process)

    def _request_reload(self) -> None:
        self._reload_requested = True

    async def reload_rules(self) -> bool:
        """Re-read the rule files; on success swap the rules in and re-evaluate every owned state.
        A bad edit is reported (file:line:col) and the running rules stay. Returns whether it swapped."""
        self._reload_requested = False
        # Read and compiled off the event loop, within a time bound; any failure is a problem of the result.
        result = await self.reloader.reload_async()
        if not result.ok or result.evaluator is None:
            metrics.RULE_RELOADS.labels("rejected").inc()
            for problem in result.problems:
                print(f"orderwatch: rules not reloaded, the running rules stay: {problem}", flush=True)
            return False
        async with self._lock:
            old, self.evaluator = self.evaluator, result.evaluator
            old.close()
            self.stats.reloads += 1
            metrics.RULE_RELOADS.labels("ok").inc()
            print(f"orderwatch: rules reloaded ({result.rules} rules)", flush=True)
            active = self._active_partitions() or frozenset()
            now = self.clock()
            by_p: dict[int, dict[str, EntityState]] = {}
            for ek, state in self._owned(active):
                by_p.setdefault(state["p"], {})[ek] = state
            for partition, states in sorted(by_p.items()):
                await self._evaluate_and_write(partition, states, now, "reload")
        return True


def _broken(record: ChangeRecord, stage: str, exc: Exception, topic: str) -> DeadLetter:
    """The dead letter of a valid record that broke a stage after decoding."""
    return DeadLetter(f"{stage}: {type(exc).__name__}: {exc}", None, record.to_dict(), topic,
                      where={"entity_key": record.entity_key})


_Mark = tuple[dict[str, float], dict[str, float] | None, float | None, dict[str, float] | None]


def _restore(state: EntityState, mark: _Mark) -> None:
    """Put back what an evaluation changes in a state (see Engine._evaluate)."""
    firing, pending, due, keeping = mark
    state["firing"] = firing.copy()
    state["due"] = due
    for key, value in (("pending", pending), ("keeping", keeping)):
        if value is None:
            state.pop(key, None)  # type: ignore[misc]
        else:
            state[key] = value.copy()  # type: ignore[literal-required]


def _readable(store: Any) -> Any:
    """What to look states up in: the memory store's own dict where it has one (Faust's store
    answers `get` through Mapping's, which raises and catches KeyError for every new key)."""
    data = getattr(store, "data", None)
    return data if type(data) is dict else store


def _held(table: Any) -> int:
    """A table's entries minus its changelog marker, without walking them."""
    return len(table.data) - (MARKER_KEY in table.data)


def _put_back(touched: dict[str, EntityState], ek: str, before: tuple[bool, EntityState | None]) -> None:
    """Undo a batch's change to one state the rules failed on: the state it had before the
    message, or none (the table's stays as it is)."""
    was_touched, prior = before
    if was_touched and prior is not None:
        touched[ek] = prior
    else:
        touched.pop(ek, None)
