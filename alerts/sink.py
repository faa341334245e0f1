"""The alerts topic's consumer: store each transition, then deliver the ones that changed something."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import faust

from alerts.console import print_events
from alerts.store import AlertStore
from orderwatch import metrics
from orderwatch.alert import AlertEvent
from orderwatch.config import Settings


@dataclass
class SinkStats:
    received: int = 0
    stored: int = 0


class AlertSink:
    def __init__(self, app: faust.App, settings: Settings, store: AlertStore) -> None:
        self.settings = settings
        self.store = store
        self.stats = SinkStats()
        self.topic = app.topic(settings.alerts_topic, value_serializer="raw", key_serializer="raw",
                               partitions=settings.partitions)
        app.agent(self.topic, name="alerts.sink")(self._consume)

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
