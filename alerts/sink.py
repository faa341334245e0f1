"""The alert layer inside a worker: store the alerts topic's transitions, then dispatch and deliver.

    alerts topic ──► agent: take batches → store.apply (one SELECT per batch) → console
                     (acknowledged once stored; a store that cannot be written is retried)
    timer (leader) ──► dispatcher pass (route, group, dedup → outbox) → outbox sweep (send, retry)

Dispatch and delivery run on one worker of the group (Faust's leader), on
the store's state, so a crash anywhere loses nothing: replayed transitions
change nothing and the notification log says who was already told.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import faust
from sqlalchemy.exc import InterfaceError, OperationalError

from alerts.clock import Clock, from_env, now_of
from alerts.config import AlertsConfig, load_alerts_config
from alerts.console import print_events
from alerts.deliver import Deliverer
from alerts.dispatch import Dispatcher, PassResult
from alerts.store import AlertStore
from orderwatch import metrics
from orderwatch.alert import AlertEvent
from orderwatch.config import Settings
from orderwatch.consume import consume
from orderwatch.record import DeadLetter, message_text, read_json

if TYPE_CHECKING:
    from engine.changelog import Output

log = logging.getLogger(__name__)


@dataclass
class SinkStats:
    received: int = 0
    stored: int = 0
    passes: int = 0
    queued: int = 0
    sent: int = 0
    failed: int = 0


def canonical_owners(config: AlertsConfig, events: list[AlertEvent]) -> list[AlertEvent]:
    """Name each owner by their id in the owners directory (an alias, a login or an email of the ERP
    becomes the person's id) before anything is stored: grouping, dedup, the console, the API and
    the metrics then all see one person. The value the ERP gave is kept in the facts."""
    out = []
    for ev in events:
        owner = config.directory.canonical(ev.owner)
        if owner != ev.owner:
            ev = replace(ev, owner=owner, facts={**ev.facts, "owner_given": ev.owner})
        out.append(ev)
    return out


class AlertSink:
    def __init__(self, app: faust.App, settings: Settings, store: AlertStore, clock: Clock | None = None,
                 config: AlertsConfig | None = None, output: Output | None = None) -> None:
        self.app = app
        self.output = output  # for dead letters
        self.settings = settings
        self.store = store
        self.stats = SinkStats()
        # A broken alerts file stops the worker at start with file:line errors, not at the first alert.
        self.config = config if config is not None else load_alerts_config(settings.alerts)
        self.clock = clock or from_env()
        self.topic = app.topic(settings.alerts_topic, value_serializer="raw", key_serializer="raw",
                               partitions=settings.partitions)
        app.agent(self.topic, name="alerts.sink")(self._consume)
        self.dispatcher = Dispatcher(self.config, store, self.clock) if self.config.route else None
        self.deliverer = Deliverer(self.config, store, self.clock)
        self._lock = asyncio.Lock()
        if self.dispatcher is not None:
            app.timer(self.config.delivery.interval, on_leader=True, name="alerts.dispatch")(self._tick)

            @app.on_before_shutdown.connect  # type: ignore[misc,arg-type]
            async def _close(app: faust.App, **_: Any) -> None:
                await self.deliverer.close()

    async def _consume(self, stream: Any) -> None:
        await consume(stream, 500, self.settings.batch_wait, self._store_batch, "alert sink",
                      stopping=lambda: bool(self.app.should_stop))

    async def _store_batch(self, batch: list[Any]) -> None:
        events: list[AlertEvent] = []
        for event in batch:
            try:
                events.extend(AlertEvent.from_dict(d) for d in read_json(event.message.value)[0])
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                await self._dead_letter(event.message, exc)
        changed = await self._apply(canonical_owners(self.config, events))
        self.stats.received += len(events)
        self.stats.stored += len(changed)
        for ev in changed:
            metrics.ALERTS_STORED.labels(ev.state).inc()
        if self.settings.console and changed:
            print_events(changed, directory=self.config.directory, now=now_of(self.clock).timestamp(),
                         zone=self.config.timezone)

    async def _apply(self, events: list[AlertEvent]) -> list[AlertEvent]:
        """Store the transitions; while the store cannot be written, wait and try again.

        The batch stays unacknowledged meanwhile: consumption of alerts pauses rather than
        skipping past transitions that were never stored."""
        delay = 0.5
        while True:
            try:
                # SQLAlchemy is blocking: keep the event loop (and Kafka heartbeats) free.
                return await asyncio.to_thread(self.store.apply, events)
            except (OperationalError, InterfaceError) as exc:
                metrics.STORE_RETRIES.inc()
                print(f"orderwatch: the alert store cannot be written ({type(exc).__name__}: "
                      f"{str(exc).splitlines()[0]}); {len(events)} alert transitions wait, retrying in "
                      f"{delay:g} s", flush=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _dead_letter(self, message: Any, exc: Exception) -> None:
        letter = DeadLetter(f"not an alert transition batch: {type(exc).__name__}: {exc}", None,
                            message_text(message.value or b""),
                            self.settings.alerts_topic,
                            where={"topic": self.settings.alerts_topic, "partition": message.partition,
                                   "offset": message.offset})
        if self.output is not None:
            await self.output.send_json(self.settings.deadletter_topic, letter.to_dict())
        metrics.RECORDS_DEAD_LETTERED.labels("alerts").inc()

    async def _tick(self) -> None:
        try:
            await self.run_once()
        except Exception:  # keep the timer alive: the next pass retries from the store
            log.exception("alert dispatch pass failed")

    async def run_once(self) -> PassResult:
        """One dispatcher pass, then one outbox sweep (also callable from tests)."""
        async with self._lock:
            result = PassResult()
            if self.dispatcher is not None:
                result = await asyncio.to_thread(self.dispatcher.run_once)
            sent, failed = await self.deliverer.run_once()
            self.stats.passes += 1
            self.stats.queued += result.queued
            self.stats.sent += sent
            self.stats.failed += failed
            return result
