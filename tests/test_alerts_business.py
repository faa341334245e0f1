"""Business gauges from order states: open/overdue counts and amounts, on-time completions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from alerts.business import OrderMetrics, tally

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC).timestamp()


def state(entity: str, key: str, **fields: Any) -> dict[str, Any]:
    return {"entity": entity, "key": key, "fields": fields, "deleted": False}


STATES = [
    state("purchase_order", "PO-1", status="open", expected_date="2025-03-01", amount=6250, currency="CNY"),
    state("purchase_order", "PO-2", status="confirmed", expected_date="2025-03-10", amount=100, currency="CNY"),
    state("purchase_order", "PO-3", status="open", expected_date="2025-04-01", amount=36400, currency="EUR"),
    state("purchase_order", "PO-4", status="received", expected_date="2025-03-05", received_date="2025-03-05"),
    state("purchase_order", "PO-5", status="received", expected_date="2025-03-05",
          received_date="2025-03-07T09:00:00+08:00"),
    state("purchase_order", "PO-6", status="cancelled", expected_date="2025-03-05", amount=999),
    state("sales_order", "SO-1", status="open", promised_date="2025-03-08", amount="1200.5", currency="EUR"),
    state("sales_order", "SO-2", status="shipped", promised_date="2025-03-08", shipped_date="2025-03-08"),
    # Shipped the day after the promised date: late (both are whole days).
    state("sales_order", "SO-3", status="shipped", promised_date="2025-03-08", shipped_date="2025-03-09"),
    state("invoice", "INV-1", status="open", due_date="2025-03-09", amount=500, currency="CNY"),
    state("inventory", "SKU-1@WH1", on_hand=5),
    {**state("purchase_order", "PO-9", status="open", expected_date="2025-01-01"), "deleted": True},
]


def test_open_overdue_and_on_time() -> None:
    t = tally(STATES, NOW)
    assert t["orderwatch_orders_open"] == {("purchase_order",): 3, ("sales_order",): 1, ("invoice",): 1}
    # PO-2 is due today: not overdue before the day is over.
    assert t["orderwatch_orders_overdue"] == {("purchase_order",): 1, ("sales_order",): 1, ("invoice",): 1}
    assert t["orderwatch_orders_open_amount"] == {("purchase_order", "CNY"): 6350, ("purchase_order", "EUR"): 36400,
                                                  ("sales_order", "EUR"): 1200.5, ("invoice", "CNY"): 500}
    assert t["orderwatch_orders_overdue_amount"][("purchase_order", "CNY")] == 6250
    assert t["orderwatch_orders_completed"] == {("purchase_order",): 2, ("sales_order",): 2}
    assert t["orderwatch_orders_completed_on_time"] == {("purchase_order",): 1, ("sales_order",): 1}


def test_the_collector_serves_them() -> None:
    registry = CollectorRegistry()
    registry.register(OrderMetrics(lambda: STATES, lambda: NOW))
    text = generate_latest(registry).decode()
    assert 'orderwatch_orders_open{entity="purchase_order"} 3.0' in text
    assert 'orderwatch_orders_overdue_amount{currency="CNY",entity="purchase_order"} 6250.0' in text
    assert "# TYPE orderwatch_orders_completed_on_time gauge" in text


def test_registering_twice_replaces_the_collector() -> None:
    from prometheus_client import REGISTRY

    from alerts.business import register

    register(lambda: STATES[:1], lambda: NOW)
    register(lambda: STATES, lambda: NOW)
    assert REGISTRY.get_sample_value("orderwatch_orders_open", {"entity": "purchase_order"}) == 3
