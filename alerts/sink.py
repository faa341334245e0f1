"""The alert layer inside a worker: store the alerts topic's transitions, then dispatch and deliver.

    alerts topic ──► agent: take batches → store.apply (one SELECT per batch) → console
    timer (leader) ──► dispatcher pass (route, group, dedup → outbox) → outbox sweep (send, retry)

Dispatch and delivery run on one worker of the group (Faust's leader), on
the store's state, so a crash anywhere loses nothing: replayed transitions
change nothing and the notification log says who was already told.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import faust

from alerts.clock import Clock, from_env
from alerts.config import AlertsConfig, load_alerts_config
from alerts.console import print_events
from alerts.deliver import Deliverer
from alerts.dispatch import Dispatcher, PassResult
from alerts.store import AlertStore
from orderwatch import metrics
from orderwatch.alert import AlertEvent
from orderwatch.config import Settings

log = logging.getLogger(__name__)


@dataclass
class SinkStats:
    received: int = 0
    stored: int = 0
    passes: int = 0
    queued: int = 0
    sent: int = 0
    failed: int = 0


class AlertSink:
    def __init__(self, app: faust.App, settings: Settings, store: AlertStore, clock: Clock | None = None,
                 config: AlertsConfig | None = None) -> None:
        self.app = app
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
        async for values in stream.take(500, within=0.02):
            events = [AlertEvent.from_dict(d) for v in values for d in json.loads(v)]
            # SQLAlchemy is blocking: keep the event loop (and Kafka heartbeats) free.
            changed = await asyncio.to_thread(self.store.apply, events)
            self.stats.received += len(events)
            self.stats.stored += len(changed)
            for ev in changed:
                metrics.ALERTS_STORED.labels(ev.state).inc()
            if self.settings.console and changed:
                print_events(changed)

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
