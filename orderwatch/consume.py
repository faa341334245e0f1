"""Consuming a topic in batches without ever acknowledging input that was not fully handled.

Faust's `take`/`take_events` acknowledge the buffered events in a `finally`:
when the body raises or is cancelled (a crash, a rebalance, a shutdown), the
batch counts as done and its offsets are committed at the next commit, though
its alerts and state were never written. Here a batch is taken with
`noack_take` and each event is acknowledged only after the handler returned,
so the committed offset never passes a message whose effects are not on the
broker.

A handler handles per-record problems itself (dead letters). Anything that
escapes it is a failure of the worker: it is reported loudly, the agent stops
taking input (so nothing after the failed batch is acknowledged either), and
the worker is asked to stop with a non-zero exit code. After a restart the
failed batch is read again; replays are idempotent (seq, versions, the store).

Faust can also skip input by itself. While a rebalance suspends the flow, its
fetch loop drops the messages it holds but still moves its read offset past
them; when the partition's new fetch (from the committed offset) arrives, the
messages below that read offset are dropped as already read. Seen in fault
trials: a hole of 22 messages in the middle of a partition, never handled,
their alerts never fired (the commit then stays behind the hole, so only a
restart would read them). A seek back does not help: the same fetch loop
drops the re-read messages again. So each consumer checks the continuity of
what it is given (`Continuity`): per partition, the first event after an
assignment must be at the group's committed offset and each next one right
after the last; where messages were skipped, it reads them from the broker
itself and handles them first, in order, and acknowledges them through the
consumer like the rest. Events of a partition no longer assigned here are
not acknowledged (their new owner reads them again), so they cannot move a
later commit.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.types import Message

from orderwatch import metrics
from orderwatch.topics import app_bootstrap

log = logging.getLogger(__name__)

_failure: tuple[str, BaseException] | None = None
_on_failure: Callable[[], None] | None = None


def on_failure(callback: Callable[[], None] | None) -> None:
    """What to do once the first failure is recorded (the worker asks itself to stop)."""
    global _on_failure
    _on_failure = callback


def failure() -> tuple[str, BaseException] | None:
    """The first unrecoverable failure of this process: (component, exception), or None."""
    return _failure


def fail(component: str, exc: BaseException) -> None:
    """Record a failure that must stop the worker: say so, count it, ask the worker to stop."""
    global _failure
    metrics.WORKER_FAILURES.labels(component).inc()
    first = _failure is None
    if first:
        _failure = (component, exc)
    print(f"orderwatch: {component} failed, the worker stops without acknowledging the input it was "
          f"handling (a restart reads it again): {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    log.error("%s failed", component, exc_info=exc)
    if first and _on_failure is not None:
        _on_failure()


def reset() -> None:
    """Forget a recorded failure (a new worker in the same process)."""
    global _failure
    _failure = None


async def consume(stream: Any, max_: int, within: float, handle: Callable[[list[Any]], Awaitable[None]],
                  component: str, stopping: Callable[[], bool] = lambda: False) -> None:
    """Run `handle` on batches of events from a Faust stream; acknowledge each batch only after it.

    A cancelled batch (shutdown, rebalance) stays unacknowledged: it is read again by whoever
    owns the partition next; so does one that fails because the worker is stopping (`stopping()`:
    its producer closes before its agents stop). A failed batch stops this agent for good and
    the worker with it."""
    continuity = Continuity.of(stream.app, component)
    async for taken in stream.noack_take(max_, within=within):
        try:
            events = await continuity.admit(taken)
            await handle(events)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every escape is a worker failure, reported in fail()
            if stopping():
                log.info("%s: a batch interrupted by the stop stays unacknowledged (%r)", component, exc)
                return
            fail(component, exc)
            # Take nothing more: a later batch acknowledged would let the commit pass this one.
            await asyncio.Event().wait()
        assigned = continuity.assigned()
        for event in events:
            if event.message.tp not in assigned:
                continue
            if isinstance(event, Refetched):
                stream.app.consumer.ack(event.message)
            else:
                await stream.ack(event)


@dataclass
class Refetched:
    """A message the consumer skipped, read from the broker directly (it has no Faust event)."""

    message: Message


class Continuity:
    """Per topic-partition, the offset the next event handled must have (see the module's doc)."""

    def __init__(self, app: Any, component: str) -> None:
        self.app, self.component = app, component
        self._next: dict[Any, int] = {}  # TP → offset
        app.on_partitions_revoked.connect(self._forget)
        app.on_partitions_assigned.connect(self._forget)

    @classmethod
    def of(cls, app: Any, component: str) -> Continuity:
        """One per app and component (agents of one app share its consumer and its rebalances)."""
        registry: dict[str, Continuity] = app.__dict__.setdefault("_orderwatch_continuity", {})
        if component not in registry:
            registry[component] = cls(app, component)
        return registry[component]

    async def _forget(self, _app: Any, tps: Any = None, **_: Any) -> None:
        # After a rebalance Faust reads each partition again from the committed offset.
        for tp in tps or ():
            self._next.pop(tp, None)

    def assigned(self) -> Any:
        """The partitions assigned to this worker now."""
        return self.app.consumer.assignment()

    async def admit(self, events: list[Any]) -> list[Any]:
        """The events to handle, in order, with the messages the consumer skipped before any of
        them read from the broker and put in their place. Offsets the broker does not have
        (transaction markers, compacted or expired records) are not there to be read: a gap."""
        unknown = {e.message.tp for e in events} - self._next.keys()
        if unknown:
            self._next.update(await self._resume_points(unknown))
        admitted: list[Any] = []
        for event in events:
            tp, offset = event.message.tp, event.message.offset
            want = self._next.get(tp)
            if want is not None and offset > want:
                skipped = await self._read(tp, want, offset)
                metrics.INPUT_REFETCHED.labels(self.component).inc(len(skipped))
                log.warning("%s: the consumer skipped offsets %d-%d of %s/%d; read %d of them from the broker",
                            self.component, want, offset - 1, tp.topic, tp.partition, len(skipped))
                admitted.extend(skipped)
            admitted.append(event)
            self._next[tp] = offset + 1
        return admitted

    async def _read(self, tp: Any, start: int, end: int) -> list[Refetched]:
        """The messages of a partition from `start` up to (not including) `end`, as the broker has them."""
        reader = AIOKafkaConsumer(bootstrap_servers=app_bootstrap(self.app), group_id=None, enable_auto_commit=False,
                                  auto_offset_reset="earliest")
        part = TopicPartition(tp.topic, tp.partition)
        out: list[Refetched] = []
        await reader.start()
        try:
            reader.assign([part])
            reader.seek(part, start)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and await reader.position(part) < end:
                for record in (await reader.getmany(part, timeout_ms=500)).get(part, []):
                    if start <= record.offset < end:
                        out.append(Refetched(Message(
                            record.topic, record.partition, record.offset, record.timestamp / 1000,
                            record.timestamp_type, record.headers, record.key, record.value, None, tp=tp)))
            if await reader.position(part) < end:
                raise RuntimeError(f"could not read offsets {start}-{end - 1} of {tp.topic}/{tp.partition} again in 30 s")
        finally:
            await reader.stop()
        return out

    async def _resume_points(self, tps: set[Any]) -> dict[Any, int]:
        """Where the group resumes these partitions: the committed offset, else the log's start.
        Partitions the broker cannot say this for are left out (and checked from their next event)."""
        conf = self.app.conf
        admin = AIOKafkaAdminClient(bootstrap_servers=app_bootstrap(self.app))
        try:
            await admin.start()
            committed = await admin.list_consumer_group_offsets(
                conf.id, partitions=[TopicPartition(tp.topic, tp.partition) for tp in tps])
            points = {tp: int(committed[TopicPartition(tp.topic, tp.partition)].offset) for tp in tps
                      if TopicPartition(tp.topic, tp.partition) in committed}
            points = {tp: offset for tp, offset in points.items() if offset >= 0}
            rest = [tp for tp in tps if tp not in points]
            if rest:
                points.update((tp, int(offset)) for tp, offset in (await self.app.consumer.earliest_offsets(*rest)).items()
                              if tp in tps)
            return points
        except Exception as exc:  # noqa: BLE001 - a check that cannot run must not stop the input
            log.info("%s: committed offsets could not be read (%r); not checked until they can", self.component, exc)
            return {}
        finally:
            await admin.close()
