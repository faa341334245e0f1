"""How the worker uses Python's garbage collector.

The state table is a large, long-lived heap of small acyclic dicts. Left alone,
the collector runs every few hundred allocations in the middle of a batch, and
each time the heap has grown by a quarter it walks all of it (about a second at
a few hundred thousand orders: a second of latency for every alert). Instead:

- during a batch the collector is off; the young generations are collected
  between batches;
- after a batch, at most once per FREEZE_SECONDS, what is alive is frozen
  (moved out of the collector's sight; acyclic garbage among it is still freed
  by reference counting, which is what state updates produce);
- every FULL_SECONDS the frozen heap is thawed and collected once, so cyclic
  garbage cannot pile up.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager

import faust

FREEZE_SECONDS = 1.0
FULL_SECONDS = 900.0

_last_freeze = 0.0


@contextmanager
def batch() -> Iterator[None]:
    """Hold the collector off for one batch; freeze the survivors now and then."""
    global _last_freeze
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        now = time.monotonic()
        if now - _last_freeze >= FREEZE_SECONDS:
            gc.freeze()
            _last_freeze = now
        if was_enabled:
            gc.enable()


def install(app: faust.App) -> None:
    """Thaw and collect the frozen heap every FULL_SECONDS."""

    @app.timer(FULL_SECONDS, name="orderwatch.gc")
    async def full_collection() -> None:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
