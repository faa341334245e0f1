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
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from orderwatch import metrics

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
    async for events in stream.noack_take(max_, within=within):
        try:
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
        for event in events:
            await stream.ack(event)
