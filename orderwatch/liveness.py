"""A worker that Faust left holding partitions without reading them starts itself afresh.

After a rebalance Faust suspends the flow of input, recovers its tables, seeks
each partition to its committed offset and only then resumes the flow. Seen in
fault trials: that seek never returned (`Recovery: Seek stream partitions to
committed offsets.` was the worker's last line for minutes), so the worker kept
its partitions, answered its API and sent its notifications, yet read nothing:
every message after the committed offset of those partitions waited, their
alerts never fired, and nothing said so. The broker sees a live member, so no
other worker takes the partitions over.

So a worker checks, every few seconds, whether it holds partitions while the
rebalance has not ended outside table recovery for longer than the
`resume_deadline` setting (120 s: twice Faust's rebalance timeout). Then it
says so and starts itself afresh (exec): the new process joins the group and
reads from the committed offsets, which never pass unhandled input
(orderwatch/consume.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from orderwatch import metrics

if TYPE_CHECKING:
    from orderwatch.app import Worker

log = logging.getLogger(__name__)

CHECK_SECONDS = 5.0
# Makes the first resume after a rebalance hang, as Faust's did in fault trials (tests only).
STALL_ENV = "ORDERWATCH_TEST_STALL_RESUME"


def restart(worker: Worker, why: str) -> None:
    """Start this worker process afresh with the same command line (exec: the same pid)."""
    print(f"orderwatch: {why}", flush=True)
    worker.store.close()
    os.execv(sys.executable, sys.orig_argv)


class Liveness:
    """Watches one worker's Faust app; calls `stuck` once a rebalance stayed unfinished too long."""

    def __init__(self, app: Any, stuck: Callable[[float], None], limit: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app, self.stuck, self.limit, self.clock = app, stuck, limit, clock
        self._since: float | None = None

    def suspended(self) -> bool:
        """Holding partitions, in a rebalance Faust has not ended, not recovering tables. (Faust's
        flow flags do not tell: recovery resumes them to read changelogs before the last seek.)"""
        app = self.app
        if not getattr(app, "rebalancing", False) or getattr(app, "in_recovery", False):
            return False
        return bool(app.consumer.assignment())  # the consumer exists once a rebalance started

    async def run(self) -> None:
        """Check every CHECK_SECONDS until cancelled. A task of its own on the worker's loop: Faust
        starts its timers (and web server) only once the first table recovery completed."""
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            await self.check()

    async def check(self) -> None:
        now = self.clock()
        if not self.suspended():
            self._since = None
            return
        if self._since is None:
            self._since = now
        elif now - self._since > self.limit:
            metrics.WORKER_RESTARTS.labels("input suspended").inc()
            log.error("the input has stayed suspended for %.0f s after a rebalance", now - self._since)
            self.stuck(now - self._since)


def watch(worker: Worker) -> Liveness:
    """The check for a worker's app; run_worker runs it (`Liveness.run`) beside Faust."""
    app = worker.app
    liveness = Liveness(app, lambda waited: restart(
        worker, f"the worker holds partitions but Faust has not resumed reading them for {waited:.0f} s after "
                f"a rebalance; it starts afresh (nothing is lost: reading resumes at the committed offsets)"),
        worker.settings.resume_deadline)
    if os.environ.pop(STALL_ENV, None):  # popped: the process that starts afresh runs normally

        @app.on_partitions_assigned.connect  # type: ignore[misc, arg-type]
        async def _stall(app: Any, *_: Any, **__: Any) -> None:
            async def hang() -> None:
                print(f"{STALL_ENV}: the resume after this rebalance hangs on purpose", file=sys.stderr, flush=True)
                await asyncio.Event().wait()

            app.consumer.perform_seek = hang

    return liveness
