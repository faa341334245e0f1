"""Business gauges for the operations manager: open and overdue orders and amounts, on-time rates.

Computed when Prometheus scrapes, from the order states a worker holds (its
partitions), so summing over workers gives the whole picture:

    orderwatch_orders_open{entity}                       not in a final status
    orderwatch_orders_open_amount{entity, currency}      their `amount`
    orderwatch_orders_overdue{entity}                    open and past their due date
    orderwatch_orders_overdue_amount{entity, currency}
    orderwatch_orders_completed{entity}                  finished with a completion date
    orderwatch_orders_completed_on_time{entity}          …on or before the due date
    (on-time rate = sum(…_on_time) / sum(…_completed))

Per entity: the due date, the completion date and the final statuses below.
Entities not listed (inventory, payment, approval) are not orders.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


@dataclass(frozen=True)
class OrderKind:
    due: str  # the field holding the promised date
    done: tuple[str, ...]  # fields that say when it was completed (first present wins)
    final: frozenset[str]  # statuses after which it is no longer open


KINDS = {
    "purchase_order": OrderKind("expected_date", ("received_date",), frozenset({"received", "closed", "cancelled"})),
    "sales_order": OrderKind("promised_date", ("shipped_date", "delivered_date"),
                             frozenset({"shipped", "delivered", "accepted", "closed", "cancelled"})),
    "invoice": OrderKind("due_date", ("paid_date",), frozenset({"paid", "closed", "cancelled", "void"})),
}
NAMES = {
    "orderwatch_orders_open": "Orders not in a final status, by entity",
    "orderwatch_orders_open_amount": "Sum of `amount` of the open orders, by entity and currency",
    "orderwatch_orders_overdue": "Open orders past their due date (expected, promised or due date)",
    "orderwatch_orders_overdue_amount": "Sum of `amount` of the overdue orders, by entity and currency",
    "orderwatch_orders_completed": "Orders held that were completed (received, shipped, paid) with a date",
    "orderwatch_orders_completed_on_time": "Completed orders whose completion date was on or before the due date",
}


def _instant(value: Any) -> float | None:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value:
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _end_of_day(value: Any) -> float | None:
    """A date without a time means "by the end of that day" (UTC); a time is taken as it is."""
    at = _instant(value)
    if at is not None and (isinstance(value, str) and len(value) == 10 or type(value) is date):
        at += 86400
    return at


def _amount(value: Any) -> float:
    try:
        return float(value) if value is not None and not isinstance(value, bool) else 0.0
    except (TypeError, ValueError):
        return 0.0


Values = dict[str, dict[tuple[str, ...], float]]


def tally(states: Iterable[Mapping[str, Any]], now: float, out: Values | None = None) -> Values:
    """The gauges' values from order states, added to `out` if given (pure: tests call it directly)."""
    if out is None:
        out = {name: {} for name in NAMES}

    def add(name: str, labels: tuple[str, ...], value: float = 1.0) -> None:
        out[name][labels] = out[name].get(labels, 0.0) + value

    for state in states:
        kind = KINDS.get(state.get("entity", ""))
        if kind is None or state.get("deleted"):
            continue
        entity, f = state["entity"], state.get("fields") or {}
        status = str(f.get("status") or "").lower()
        due = _end_of_day(f.get(kind.due))
        currency = str(f.get("currency") or "")
        if status not in kind.final:
            add("orderwatch_orders_open", (entity,))
            add("orderwatch_orders_open_amount", (entity, currency), _amount(f.get("amount")))
            if due is not None and due < now:
                add("orderwatch_orders_overdue", (entity,))
                add("orderwatch_orders_overdue_amount", (entity, currency), _amount(f.get("amount")))
            continue
        # Both at the end of their day when they are dates: shipped the day after the promised
        # date is late, not "on or before the end of the promised day".
        done = next((t for t in (_end_of_day(f.get(name)) for name in kind.done) if t is not None), None)
        if done is not None and due is not None and status != "cancelled":
            add("orderwatch_orders_completed", (entity,))
            if done <= due:
                add("orderwatch_orders_completed_on_time", (entity,))
    return out


class OrderMetrics(Collector):
    """A Prometheus collector over a worker's order states (register it once per process).

    Walking every state takes long at a million orders, and a scrape runs on the
    worker's event loop: the worker refreshes a snapshot in the background, in
    small chunks with a real pause between them (`refresh`; a bare `sleep(0)`
    lets the change path advance one step per chunk, which delayed alerts by
    hundreds of milliseconds at 100k orders), and a scrape serves it; only a
    snapshot older than `max_age` while no refresher runs (tests, tools) is
    computed on the spot. A refresh that took long is not repeated before
    REST_FACTOR times its duration has passed, so the walk stays a small share
    of the worker's time however many orders it holds.
    """

    CHUNK = 500
    PAUSE = 0.002  # seconds between chunks: the change path runs in between
    REST_FACTOR = 20.0

    def __init__(self, states: Callable[[], Iterable[Mapping[str, Any]]], clock: Callable[[], float] = time.time,
                 max_age: float = 30.0) -> None:
        self.states = states
        self.clock = clock
        self.max_age = max_age
        self._values: Values | None = None
        self._at = 0.0
        self._next = 0.0  # monotonic time before which a refresh is skipped
        self._refreshed = False  # a refresher runs: a scrape never walks the states itself

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Names only: registering must not walk the states.
        for name, text in NAMES.items():
            yield GaugeMetricFamily(name, text, labels=_labels(name))

    async def refresh(self) -> None:
        """Recompute the snapshot, pausing between chunks (skipped while resting)."""
        started = time.monotonic()
        if started < self._next:
            return
        states = list(self.states())
        now, out, busy = self.clock(), None, 0.0
        for i in range(0, len(states), self.CHUNK):
            t0 = time.monotonic()
            out = tally(states[i:i + self.CHUNK], now, out)
            busy += time.monotonic() - t0
            await asyncio.sleep(self.PAUSE)
        self._values, self._at = out if out is not None else tally((), now), time.monotonic()
        self._next = self._at + self.REST_FACTOR * busy
        self._refreshed = True

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if self._values is None or (not self._refreshed and time.monotonic() - self._at > self.max_age):
            self._values, self._at = tally(self.states(), self.clock()), time.monotonic()
        values = self._values
        for name, text in NAMES.items():
            family = GaugeMetricFamily(name, text, labels=_labels(name))
            for labels, value in sorted(values[name].items()):
                family.add_metric(list(labels), value)
            yield family


def _labels(name: str) -> list[str]:
    return ["entity", "currency"] if name.endswith("_amount") else ["entity"]


_registered: OrderMetrics | None = None


def register(states: Callable[[], Iterable[Mapping[str, Any]]], clock: Callable[[], float] = time.time) -> OrderMetrics:
    """Serve the gauges on /metrics (the default registry); a second worker built in the same
    process (tests, the demo) replaces the first one's collector instead of clashing with it."""
    from prometheus_client import REGISTRY

    global _registered
    if _registered is not None:
        REGISTRY.unregister(_registered)
    _registered = OrderMetrics(states, clock)
    REGISTRY.register(_registered)
    return _registered
