"""Runs connectors: poll, publish, then persist the bookmark (with the topic offsets).

Pull connectors are polled every `interval` seconds (at once again while they
report more); push connectors hand their results to `deliver`. A source that
fails is retried with exponential backoff; the others go on. On start, what a
crashed run published but did not bookmark is read back from the changes
topic, so that its replay is dropped (see recovery.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from connectors import metrics
from connectors.base import BookmarkStore, Connector, PollResult
from connectors.publisher import Publisher
from connectors.recovery import Identity, end_offsets, identity, published_since
from orderwatch.epoch import BrokerWatch

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    connector: Connector
    published: dict[int, int] = field(default_factory=dict)
    replayed: set[Identity] = field(default_factory=set)  # published before a crash
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    failures: int = 0
    next_poll: float = 0.0
    last_error: str = ""


@dataclass
class ConnectorRunner:
    connectors: list[Connector]
    publisher: Publisher
    bookmarks: BookmarkStore
    interval: float = 5.0
    max_backoff: float = 300.0
    # Notices a broker that restarted empty (then every connector resyncs from its source's start).
    watch: BrokerWatch | None = None
    rounds: int = 0
    last_round_records: int = -1
    _slots: list[_Slot] = field(default_factory=list)
    _started: bool = False
    _more: bool = False  # a connector read a full batch: poll again without waiting

    def __post_init__(self) -> None:
        self._slots = [_Slot(c) for c in self.connectors]

    async def start(self) -> None:
        """Read back unbookmarked publications, then start every connector."""
        if self._started:
            return
        self._started = True
        topic, bootstrap = self.publisher.changes_topic, self.publisher.bootstrap
        if self.watch is not None and await self.watch.reset():
            for slot in self._slots:
                self._forget(slot)
        saved = {s.connector.id: self.bookmarks.load_published(s.connector.id) for s in self._slots}
        starts = {cid: offsets for cid, offsets in saved.items() if offsets}
        found = await published_since(bootstrap, topic, starts) if starts else {}
        ends: dict[int, int] | None = None
        for slot in self._slots:
            conn = slot.connector
            if saved[conn.id] is None:
                # Never published from here: mark where the topic ends now, before publishing.
                ends = ends if ends is not None else await end_offsets(bootstrap, topic)
                slot.published = dict(ends)
                self.bookmarks.save(conn.id, conn.bookmark or None, slot.published)
            else:
                slot.published = dict(saved[conn.id] or {})
            replay = found.get(conn.id, [])
            if replay:
                log.warning("connector %s: %d record(s) published before a crash were not "
                            "bookmarked; their replay is dropped", conn.id, len(replay))
                slot.replayed = {identity(r) for r in replay}
                conn.recover(replay)
        for slot in self._slots:
            await slot.connector.start(functools.partial(self.deliver, slot))

    def _forget(self, slot: _Slot) -> None:
        """Drop a connector's bookmark: its next poll reads the source from the start (a resync)."""
        conn = slot.connector
        conn.bookmark = {}
        slot.replayed = set()
        slot.failures, slot.next_poll = 0, 0.0
        self.bookmarks.save(conn.id, None, {})  # published offsets of the old broker mean nothing now
        log.warning("connector %s: bookmark discarded; resending the source's current state", conn.id)

    async def _resync(self) -> None:
        """The broker restarted empty under us: every connector starts over from its source's start."""
        ends = await end_offsets(self.publisher.bootstrap, self.publisher.changes_topic)
        for slot in self._slots:
            async with slot.lock:
                await slot.connector.stop()
                self._forget(slot)
                slot.published = dict(ends)
                self.bookmarks.save(slot.connector.id, None, slot.published)
                await slot.connector.start(functools.partial(self.deliver, slot))

    async def deliver(self, slot: _Slot, result: PollResult) -> None:
        """Publish a result's dead letters and records, then save the connector's bookmark."""
        conn = slot.connector
        async with slot.lock:
            started = time.perf_counter()
            records = result.records
            if slot.replayed:
                records = [r for r in records if identity(r) not in slot.replayed]
                metrics.DUPLICATES.labels(conn.id).inc(len(result.records) - len(records))
            for notice in result.notices:
                log.warning("connector %s: %s (%s)", conn.id, notice.reason, notice.where)
            metrics.NOTICES.labels(conn.id).inc(len(result.notices))
            if result.dead:
                await self.publisher.dead_letter(result.dead)
                metrics.RECORDS_DEAD_LETTERED.labels(f"connector:{conn.id}").inc(len(result.dead))
            if records:
                before = self.publisher.dead_lettered
                _, offsets = await self.publisher.publish_with_offsets(records)
                slot.published.update(offsets)
                too_large = self.publisher.dead_lettered - before
                if too_large:
                    log.warning("connector %s: %d record(s) too large for a message were dead-lettered",
                                conn.id, too_large)
                    metrics.RECORDS_DEAD_LETTERED.labels(f"connector:{conn.id}").inc(too_large)
            conn.commit(result)
            if result.bookmark is not None or records:
                self.bookmarks.save(conn.id, conn.bookmark, slot.published)
            metrics.CONNECTOR_ROWS.labels(conn.id).inc(result.rows_read)
            metrics.CONNECTOR_EMITTED.labels(conn.id).inc(len(records))
            metrics.CONNECTOR_LAST_SUCCESS.labels(conn.id).set(time.time())
            newest = max((r.ts for r in records), default=None)
            lag = (datetime.now(UTC) - newest).total_seconds() if result.more and newest else 0.0
            metrics.LAG.labels(conn.id).set(max(0.0, lag))
            metrics.POLL_SECONDS.labels(conn.id).observe(time.perf_counter() - started)

    async def poll_once(self) -> int:
        """One round over the connectors that are due; returns records and dead letters sent."""
        await self.start()
        if self.watch is not None and await self.watch.poll():
            await self._resync()
        total = 0
        self._more = False
        now = time.monotonic()
        for slot in self._slots:
            if slot.next_poll > now:
                continue
            conn = slot.connector
            try:
                result = await conn.poll_async()
                await self.deliver(slot, result)
            except Exception as exc:  # noqa: BLE001 - a source being down must not stop the others
                slot.failures += 1
                slot.last_error = f"{type(exc).__name__}: {exc}"
                delay = min(self.max_backoff, self.interval * 2 ** min(slot.failures, 10))
                slot.next_poll = time.monotonic() + delay
                metrics.ERRORS.labels(conn.id).inc()
                metrics.UP.labels(conn.id).set(0)
                metrics.BACKOFF.labels(conn.id).set(delay)
                log.warning("connector %s failed (%s); retrying in %.1fs", conn.id, exc, delay)
                total += 1  # a failing source is not an idle one
                if self.watch is not None:
                    self.watch.due_now()  # the broker may have restarted: look before publishing again
                continue
            slot.failures = 0
            slot.last_error = ""
            slot.next_poll = 0.0
            metrics.UP.labels(conn.id).set(1)
            metrics.BACKOFF.labels(conn.id).set(0)
            self._more = self._more or result.more
            total += len(result.records) + len(result.dead) + result.more + result.pending
        self.rounds += 1
        self.last_round_records = total
        return total

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self.poll_once()
                if self._more:
                    await asyncio.sleep(0)  # let HTTP handlers and the producer run
                    continue
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.interval)
                except TimeoutError:
                    pass
        finally:
            await self.stop()

    async def stop(self) -> None:
        for slot in self._slots:
            try:
                await slot.connector.stop()
            except Exception as exc:  # noqa: BLE001 - stopping one must not keep the others open
                log.warning("connector %s did not stop cleanly: %s", slot.connector.id, exc)

    def close(self) -> None:
        for conn in self.connectors:
            conn.close()
