"""The engine on simulated time, in one process: change records in, alert transitions out.

Used by `backtest` and `rules test`. It runs the live pipeline's own engine
code — `apply_record`, `engine.aggregate.contributions`/`fold`, and
`Evaluator.evaluate_at` — and replaces only Kafka and the wall clock: time is
each record's `ts`, and deadlines (`state["due"]`) are kept in a heap and
evaluated at the exact instant they fall due.

Records are evaluated in batches (one durable_rules call per entity per batch)
for speed, and still exactly: each state's fact is built when its record is
applied (Evaluator.prepare, a snapshot), and the transitions are applied in
order after matching (Evaluator.complete), so an entity changed twice in a
batch goes through both instants. A batch is flushed before an entity in it
reaches a deadline, whose instant depends on that evaluation.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from engine import aggregate
from engine.evaluator import Evaluator, Prepared
from engine.state import HISTORY_LIMIT, EntityState, apply_record
from orderwatch.alert import AlertEvent
from orderwatch.record import ChangeRecord


class Simulation:
    """Entity states, a deadline heap and the open alerts, advanced by records and by time."""

    def __init__(self, evaluator: Evaluator, history_limit: int = HISTORY_LIMIT, batch_size: int = 512) -> None:
        self.evaluator = evaluator
        self.history_limit = history_limit
        self.batch_size = batch_size
        self.states: dict[str, EntityState] = {}
        self.open: dict[str, AlertEvent] = {}  # fingerprint → the firing event
        self.now = float("-inf")
        self.records = 0
        self.duplicates = 0
        self.skipped = 0  # changes no rule reads: not evaluated
        self._heap: list[tuple[float, str]] = []
        self._batch: list[Prepared] = []
        self._touched: dict[str, Prepared] = {}  # entity key → its latest prepared fact in the batch
        self._events: list[AlertEvent] = []

    # --- input ------------------------------------------------------------------

    def feed(self, records: Iterable[ChangeRecord]) -> None:
        """Apply records in the order given (sort them by ts first); time moves to each record's ts."""
        for record in records:
            at = record.ts.timestamp()
            self._run_deadlines(at)
            self.now = max(self.now, at)
            ek = record.entity_key
            self._flush_if_due(ek, at)
            previous = self.states.get(ek)
            last = previous["history"][-1] if previous is not None and previous["history"] else None
            state = apply_record(previous, record, 0, self.history_limit)
            self.records += 1
            if state is None:
                self.duplicates += 1
                continue
            self.states[ek] = state
            self._add_if_it_matters(state, at, previous is None, last)
            for contribution in aggregate.contributions(state):
                dek = contribution.entity_key
                self._flush_if_due(dek, at)
                held = self.states.get(dek)
                last = held["history"][-1] if held is not None and held["history"] else None
                derived = aggregate.fold(held, contribution, 0, self.history_limit)
                if derived is not None:
                    self.states[dek] = derived
                    self._add_if_it_matters(derived, at, held is None, last)

    def advance(self, until: float) -> None:
        """Move time to `until`, evaluating every deadline on the way."""
        self._flush()
        self._run_deadlines(until)
        self.now = max(self.now, until)

    def take_events(self) -> list[AlertEvent]:
        """Transitions since the last call, in time order."""
        self._flush()
        events = sorted(self._events, key=lambda e: e.at)
        self._events = []
        return events

    def firing(self) -> list[AlertEvent]:
        """The alerts firing now (their firing transitions)."""
        self._flush()
        return sorted(self.open.values(), key=lambda e: (e.rule, e.entity, e.key))

    # --- internals ----------------------------------------------------------------

    def _flush_if_due(self, ek: str, at: float) -> None:
        """An entity waiting in the batch may have a deadline before `at`: evaluate the batch first."""
        waiting = self._touched.get(ek)
        if waiting is not None and waiting.hint is not None and waiting.hint <= at:
            self._flush()
            self._run_deadlines(at)

    def _add_if_it_matters(self, state: EntityState, at: float, created: bool, last: object) -> None:
        """Evaluate a changed state, unless nothing any rule reads changed (its deadline stands)."""
        entry = state["history"][-1] if state["history"] else None
        changed = None if created or entry is None or entry is last else entry["changed"]
        if self.evaluator.matters(state, changed):
            self._add(state, at)
        else:
            self.skipped += 1

    def _add(self, state: EntityState, at: float) -> None:
        prepared = self.evaluator.prepare(state, at)
        self._batch.append(prepared)
        self._touched[f"{state['entity']}:{state['key']}"] = prepared
        if len(self._batch) >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        self._touched = {}
        self._record(self.evaluator.complete(batch))
        self._settle({id(p.state): p.state for p in batch}.values())

    def _run_deadlines(self, until: float) -> None:
        """Queue the evaluation of every deadline up to `until`, each at its own instant."""
        heap = self._heap
        while heap and heap[0][0] <= until:
            due, ek = heapq.heappop(heap)
            waiting = self._touched.get(ek)
            if waiting is not None:
                if waiting.hint is not None and waiting.hint <= until:
                    # Its next deadline depends on an evaluation still in the batch: do that first.
                    heapq.heappush(heap, (due, ek))
                    self._flush()
                # Otherwise this entry is stale: the waiting evaluation schedules the next deadline.
                continue
            state = self.states.get(ek)
            if state is not None and state["due"] == due:  # else stale (re-evaluated since)
                self._add(state, due)

    def _record(self, events: list[AlertEvent]) -> None:
        for event in events:
            if event.state == "firing":
                self.open[event.fingerprint] = event
            else:
                self.open.pop(event.fingerprint, None)
        self._events.extend(events)

    def _settle(self, states: Iterable[EntityState]) -> None:
        """Schedule the next deadlines; a deleted entity with no firing alert leaves, as in the live table."""
        for state in states:
            ek = f"{state['entity']}:{state['key']}"
            if state["deleted"] and not state["firing"]:
                self.states.pop(ek, None)
            elif state["due"] is not None:
                heapq.heappush(self._heap, (state["due"], ek))


def sort_records(records: Iterable[ChangeRecord]) -> list[ChangeRecord]:
    """Records in time order (stable: equal times keep their file order)."""
    return sorted(records, key=lambda r: r.ts.timestamp())
