"""How the worker uses Python's garbage collector.

The state table is a large, long-lived heap of small acyclic dicts. Left alone,
the collector runs every few hundred allocations in the middle of a batch and
now and then walks the whole heap (hundreds of ms at 1M orders). Instead:

- during a batch the collector is off; it runs (young generations) between batches;
- every GC_FREEZE_SECONDS what is alive is frozen (moved out of the collector's
  sight: acyclic garbage among it is still freed by reference counting);
- every GC_FULL_SECONDS the frozen heap is thawed and collected once, so cyclic
  garbage cannot pile up.
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from typing import Iterator

import faust

GC_FREEZE_SECONDS = 30.0
GC_FULL_SECONDS = 900.0


@contextmanager
def no_collection() -> Iterator[None]:
    """Hold the collector off for one batch (it runs at the next allocation after)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def install(app: faust.App) -> None:
    """Freeze the long-lived heap periodically; thaw and collect it rarely."""
    last_full = time.monotonic()

    @app.timer(GC_FREEZE_SECONDS, name="orderwatch.gc")
    async def freeze() -> None:
        nonlocal last_full
        if time.monotonic() - last_full >= GC_FULL_SECONDS:
            gc.unfreeze()
            gc.collect()
            last_full = time.monotonic()
        gc.freeze()
