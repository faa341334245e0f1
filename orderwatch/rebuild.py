"""A worker's side of a broker that restarted empty (see orderwatch/epoch.py).

At start the worker compares the broker's epoch with the one in its datadir.
While running it looks again every ORDERWATCH_BROKER_CHECK_SECONDS; on a new
epoch it starts itself afresh (the same process id and arguments), because
Faust's tables, offsets and group membership all belong to the lost broker.

After a reset the connectors resend their sources' current state and the
engine rebuilds every entity from it. An alert still open in the store from
before the reset is then decided per entity, on this worker's partitions:
fired again by the rebuilt engine → the same episode goes on (the store keeps
its start and acknowledgement); the entity was resent and the rule does not
fire (nor wait on `for:`) → resolved. A line's alert (ORDER#LINE) is decided on its
order's state. An entity never resent (deleted from the source while the broker
was down) keeps its alert open until someone resolves it.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from alerts.states import OPEN_STATES
from alerts.store import StoredAlert
from orderwatch import liveness
from orderwatch.alert import AlertEvent
from orderwatch.epoch import BROKER_RESETS, BrokerWatch, EpochFile

if TYPE_CHECKING:
    from orderwatch.app import Worker

# Resets counted by this process before it started itself afresh (see restart()).
_INHERITED = "ORDERWATCH_BROKER_RESETS_INHERITED"


class WorkerRebuild:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.watch = BrokerWatch(worker.settings, EpochFile(Path(worker.settings.datadir) / "broker-epoch.json"),
                                 "worker")
        inherited = int(os.environ.pop(_INHERITED, "0") or 0)
        self.resets = inherited
        if inherited:
            BROKER_RESETS.labels("worker").inc(inherited)
        app = worker.app
        app.timer(self.watch.interval, name="orderwatch.broker_watch")(self._watch)
        app.timer(worker.settings.tick_seconds, name="orderwatch.rebuild")(self.reconcile)

    async def at_start(self) -> None:
        """Before Faust starts: note a broker that restarted empty since this datadir last ran."""
        self.resets += await self.watch.reset()

    async def _watch(self) -> None:
        if await self.watch.poll():
            self.restart(self.resets + 1)

    def restart(self, resets: int) -> None:
        os.environ[_INHERITED] = str(resets)
        liveness.restart(self.worker, "the worker starts afresh to rebuild its state from what the connectors resend")

    async def reconcile(self) -> int:
        """Resolve the alerts open since before the reset whose condition the rebuilt engine no
        longer finds; returns how many. Ends the rebuild once no such alert is open."""
        reset_at = self.watch.reset_at()
        if reset_at is None:
            return 0
        since = datetime.fromtimestamp(reset_at, UTC)
        store, engine = self.worker.store, self.worker.engine
        stale = [a for a in await asyncio.to_thread(store.list, list(OPEN_STATES)) if a.last_change < since]
        if not stale:
            self.watch.rebuilt()
            return 0
        now = datetime.fromtimestamp(engine.clock(), UTC)  # before deciding: a later firing wins
        gone = await engine.not_firing([(a.rule, a.entity, a.key) for a in stale])
        resolved = [_resolved(stale[i], now) for i in gone or ()]
        if resolved:
            await asyncio.to_thread(store.apply, resolved)
        return len(resolved)


def _resolved(alert: StoredAlert, at: datetime) -> AlertEvent:
    return AlertEvent(rule=alert.rule, entity=alert.entity, key=alert.key, state="resolved", at=at,
                      since=alert.starts_at, severity=alert.severity, title=alert.title, summary=alert.summary,
                      owner=alert.owner, labels=alert.labels, escalate=alert.escalate,
                      facts=alert.facts)
