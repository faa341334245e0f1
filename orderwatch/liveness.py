"""A worker that holds partitions without reading them starts itself afresh.

Two ways were seen in fault trials, each leaving a worker that answered its
API and sent its notifications while the broker saw a live member, so no other
worker took its partitions over, and every message after the committed offset
of a partition waited for ever, its alerts never fired, nothing said so:

- after a rebalance, Faust's seek to the committed offsets never returned
  (`Recovery: Seek stream partitions to committed offsets.` was the worker's
  last line for minutes): the rebalance never ended;
- the rebalance ended (`Worker ready`), yet one partition was never fetched
  again: its committed offset stayed behind the end of the partition.

The second can mostly be repaired in place. Faust's fetch loop records a
message as read once its hand-over ended, also when a rebalance cut the
hand-over short, and a loop that resumes after the seek to the committed
offsets moves the read offset past them again: every message re-fetched below
it is dropped as already read. And after a SIGKILLed worker's partitions were
taken over, a partition was left out of Faust's set of partitions to fetch,
with no read offset at all. Where no later message arrives to show a hole
(orderwatch/consume.py repairs holes it is shown), the messages wait. So when
messages wait after a partition's committed offset, none of them is in hand
and the committed offset stands still for `reseek_after` seconds (15 s, or
half the deadline), the worker says so, puts the partition back in the set to
fetch and seeks it to its committed offset: the survivor's updates then arrive
in seconds, not after a fresh start.

So a worker checks, every few seconds, outside table recovery, whether a
rebalance has stayed unfinished, or the engine's input (the changes and derived
topics) has had messages waiting on a partition it holds without its committed
offset moving, for longer than the `stall_deadline` setting (120 s: twice
Faust's rebalance timeout; a worker that reads commits every second). Then it
says so and starts itself afresh (exec): the new process joins the group and
reads from the committed offsets, which never pass unhandled input
(orderwatch/consume.py). The alert sink's topic is left out: it waits on
purpose while the alert store is down.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.types import TP

from orderwatch import metrics
from orderwatch.topics import app_bootstrap

if TYPE_CHECKING:
    from orderwatch.app import Worker

log = logging.getLogger(__name__)

CHECK_SECONDS = 5.0
RESEEK_SECONDS = 15.0
CHECK_TIMEOUT = 30.0  # one check: asking the broker, and seeking
# Tests only, each as Faust did in fault trials and tests: make the first resume after a rebalance
# hang ("resume"); once the first rebalance ended, never fetch the engine's input again ("fetch"),
# leave it out of the set of partitions to fetch ("idle"), or count it as read up to far past its
# end ("drop").
STALL_ENV = "ORDERWATCH_TEST_STALL"


def restart(worker: Worker, why: str) -> None:
    """Start this worker process afresh with the same command line (exec: the same pid)."""
    print(f"orderwatch: {why}", flush=True)
    worker.store.close()
    os.execv(sys.executable, sys.orig_argv)


class Liveness:
    """Watches one worker's Faust app; calls `stuck(reason)` once its input stalled too long."""

    def __init__(self, app: Any, topics: set[str], stuck: Callable[[str], None], limit: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app, self.topics, self.stuck, self.limit, self.clock = app, topics, stuck, limit, clock
        self._rebalancing_since: float | None = None
        self._waiting: dict[TopicPartition, tuple[int, float]] = {}  # committed offset, since when
        self._probe: tuple[AIOKafkaAdminClient, AIOKafkaConsumer] | None = None
        self.reseek_after = min(RESEEK_SECONDS, limit / 2)
        self._dropped: dict[TopicPartition, tuple[int, float]] = {}  # committed offset, since when
        self.settled: Callable[[], None] | None = None  # called once, at the first check after a rebalance

    async def run(self) -> None:
        """Check every CHECK_SECONDS until cancelled. A task of its own on the worker's loop: Faust
        starts its timers (and web server) only once the first table recovery completed."""
        try:
            while True:
                await asyncio.sleep(CHECK_SECONDS)
                try:  # a check that fails or hangs concludes nothing; the next one runs as usual
                    await asyncio.wait_for(self.check(), CHECK_TIMEOUT)
                except Exception as exc:  # noqa: BLE001 - TimeoutError included
                    log.warning("liveness: a check did not complete (%r)", exc)
                    await self._close_probe()
        finally:
            await self._close_probe()

    async def check(self) -> None:
        app, now = self.app, self.clock()
        if getattr(app, "in_recovery", False):  # reading changelogs can take long: that is progress
            self._rebalancing_since, self._waiting = None, {}
            return
        if getattr(app, "rebalancing", False):
            self._waiting = {}
            if not app.consumer.assignment():  # the consumer exists once a rebalance started
                self._rebalancing_since = None
            elif self._rebalancing_since is None:
                self._rebalancing_since = now
            elif now - self._rebalancing_since > self.limit:
                self._stalled("rebalance unfinished", f"Faust has not resumed reading its partitions for "
                              f"{now - self._rebalancing_since:.0f} s after a rebalance")
            return
        self._rebalancing_since = None
        if self.settled is not None:
            settled, self.settled = self.settled, None
            settled()
        held = [TopicPartition(tp.topic, tp.partition) for tp in app.consumer.assignment() if tp.topic in self.topics]
        waiting = await self._unread(held)
        if waiting is None:
            return  # the broker cannot say now: nothing is concluded
        seen, self._waiting = self._waiting, {}
        for tp, offset in waiting.items():  # since when each partition's committed offset stands still
            before = seen.get(tp)
            self._waiting[tp] = before if before is not None and before[0] == offset else (offset, now)
        await self._reseek_dropped(waiting, now)
        stalled = sorted(f"{tp.topic}/{tp.partition}" for tp, (_, since) in self._waiting.items()
                         if now - since > self.limit)
        if stalled:
            self._stalled("input not read", f"messages have waited on {', '.join(stalled)} for over "
                          f"{self.limit:.0f} s without being read")

    async def _reseek_dropped(self, waiting: dict[TopicPartition, int], now: float) -> None:
        """Fetch again, from the committed offset, the partitions whose waiting messages Faust
        hands over to nobody: none of them is in hand and the committed offset stands still."""
        consumer = self.app.consumer
        in_hand = {(m.tp.topic, m.tp.partition) for m in list(getattr(consumer, "_unacked_messages", ()))}
        seen, self._dropped = self._dropped, {}
        for tp, committed in waiting.items():
            if (tp.topic, tp.partition) in in_hand:
                continue  # handed over: the agent is at work on it
            before = seen.get(tp)
            since = before[1] if before is not None and before[0] == committed else now
            if now - since < self.reseek_after:
                self._dropped[tp] = (committed, since)
                continue
            await self._fetch_again(consumer, tp, committed, now - since)

    async def _fetch_again(self, consumer: Any, tp: TopicPartition, committed: int, waited: float) -> None:
        """Make Faust fetch a partition again from its committed offset: back in its set of
        partitions to fetch, and its fetch and read offsets at the committed offset."""
        read = getattr(consumer, "_read_offset", {}).get(tp)
        active = getattr(consumer, "_active_partitions", None)
        fetching = active is None or tp in active
        log.warning("%s/%d: messages after the committed offset %d have waited %.0f s and Faust hands none over "
                    "(its read offset: %s; %s); fetching again from %d", tp.topic, tp.partition, committed, waited,
                    read, "fetching" if fetching else "not fetching", committed)
        metrics.INPUT_RESEEKS.inc()
        try:
            faust_tp = TP(tp.topic, tp.partition)  # Faust's own sets hold only its TP type
            getattr(consumer, "_buffered_partitions", set()).discard(faust_tp)
            consumer.resume_partitions({faust_tp})
            await consumer.seek(faust_tp, committed)
        except Exception as exc:  # noqa: BLE001 - revoked meanwhile: its new owner reads it
            log.info("%s/%d: not fetched again (%r)", tp.topic, tp.partition, exc)

    def _stalled(self, reason: str, what: str) -> None:
        metrics.WORKER_RESTARTS.labels(reason).inc()
        log.error("%s", what)
        self.stuck(f"{what}; the worker starts afresh (nothing is lost: reading resumes at the committed offsets)")

    async def _unread(self, tps: list[TopicPartition]) -> dict[TopicPartition, int] | None:
        """The committed offset of each of these partitions that has messages after it; None when
        the broker cannot be asked."""
        if not tps:
            return {}
        try:
            if self._probe is None:
                bootstrap = app_bootstrap(self.app)
                admin, ends = AIOKafkaAdminClient(bootstrap_servers=bootstrap), AIOKafkaConsumer(
                    bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
                self._probe = (admin, ends)  # closed by _close_probe if starting it fails or hangs
                await asyncio.wait_for(admin.start(), CHECK_SECONDS)
                await asyncio.wait_for(ends.start(), CHECK_SECONDS)
            admin, ends = self._probe
            committed = await asyncio.wait_for(admin.list_consumer_group_offsets(self.app.conf.id, partitions=tps),
                                               CHECK_SECONDS)
            end = await asyncio.wait_for(ends.end_offsets(tps), CHECK_SECONDS)
        except Exception as exc:  # noqa: BLE001 - a check that cannot run concludes nothing
            log.info("liveness: offsets not read (%r)", exc)
            await self._close_probe()
            return None
        out: dict[TopicPartition, int] = {}
        for tp in tps:
            meta = committed.get(tp)
            at = meta.offset if meta is not None and meta.offset >= 0 else 0
            if end.get(tp, 0) > at:
                out[tp] = at
        return out

    async def _close_probe(self) -> None:
        if self._probe is not None:
            admin, ends = self._probe
            self._probe = None
            for close in (admin.close, ends.stop):
                try:
                    await close()
                except Exception:  # noqa: BLE001, S110 - closing what may already be broken
                    pass


def watch(worker: Worker) -> Liveness:
    """The check for a worker's app; run_worker runs it (`Liveness.run`) beside Faust."""
    app, settings = worker.app, worker.settings
    liveness = Liveness(app, {settings.changes_topic, settings.derived_topic},
                        lambda why: restart(worker, why), settings.stall_deadline)
    stall = os.environ.pop(STALL_ENV, None)  # popped: the process that starts afresh runs normally
    if stall == "resume":

        @app.on_partitions_assigned.connect  # type: ignore[misc, arg-type]
        async def _hang_resume(app: Any, *_: Any, **__: Any) -> None:
            async def hang() -> None:
                print(f"{STALL_ENV}: the resume after this rebalance hangs on purpose", file=sys.stderr, flush=True)
                await asyncio.Event().wait()

            app.consumer.perform_seek = hang

    elif stall == "drop":

        def drop_reads() -> None:
            held = [tp for tp in app.consumer.assignment() if tp.topic == settings.changes_topic]
            for tp in held:
                app.consumer._read_offset[tp] = 10**12  # type: ignore[attr-defined]
            print(f"{STALL_ENV}: the read offsets of {len(held)} partition(s) of the changes topic are moved "
                  "past their end on purpose", file=sys.stderr, flush=True)

        liveness.settled = drop_reads

    elif stall == "idle":

        def leave_out() -> None:
            held = {tp for tp in app.consumer.assignment() if tp.topic == settings.changes_topic}
            app.consumer._get_active_partitions().difference_update(held)  # type: ignore[attr-defined]
            print(f"{STALL_ENV}: {len(held)} partition(s) of the changes topic are left out of the fetch on purpose",
                  file=sys.stderr, flush=True)

        liveness.settled = leave_out

    elif stall == "fetch":

        def stop_fetching() -> None:
            consumer: Any = app.consumer
            paused = {tp for tp in consumer.assignment() if tp.topic == settings.changes_topic}
            consumer.pause_partitions(paused)
            resume = consumer.resume_partitions
            consumer.resume_partitions = lambda tps: resume({tp for tp in tps if tp not in paused})
            print(f"{STALL_ENV}: the partitions of the changes topic are not fetched on purpose",
                  file=sys.stderr, flush=True)

        liveness.settled = stop_fetching

    return liveness
