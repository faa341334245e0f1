"""When each owned entity must next be re-evaluated: per-partition deadline heaps.

The engine pushes an entity's `due` (the next instant a rule's truth can change)
after every evaluation and pops what is due on each tick, so a tick's work is
proportional to the entities due, not to all entities tracked. Entries are not
removed when an entity is re-evaluated earlier: a popped entry whose state has
another `due` by then is skipped by the caller.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field


@dataclass
class Schedule:
    """Per-partition min-heaps of (due, key); stale entries are skipped on pop."""

    partitions: frozenset[int] = frozenset()
    heaps: dict[int, list[tuple[float, str]]] = field(default_factory=dict)

    def push(self, partition: int, due: float | None, key: str) -> None:
        if due is not None and partition in self.partitions:
            heapq.heappush(self.heaps.setdefault(partition, []), (due, key))

    def pop_due(self, partition: int, now: float) -> list[str]:
        heap = self.heaps.get(partition, [])
        keys: list[str] = []
        while heap and heap[0][0] <= now:
            keys.append(heapq.heappop(heap)[1])
        return keys

    def pending(self) -> int:
        return sum(len(h) for h in self.heaps.values())
