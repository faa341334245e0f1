"""Derived entities: contributions of orders, stock and invoices; the fold; the stock projection
and the customer account (the pure functions the Faust repartition runs, tested here directly)."""

from __future__ import annotations

import json
from typing import Any

from engine import aggregate
from engine.aggregate import Contribution, contributions, fold
from engine.state import EntityState, apply_record
from tests.test_rules import record, ts


def state(entity: str, key: str, seq: int = 1, prev: EntityState | None = None, **fields: Any) -> EntityState:
    s = apply_record(prev, record(key, seq, entity=entity, at=f"2025-03-03T0{seq % 10}:00:00+00:00", **fields), 0)
    assert s is not None
    return s


def fold_all(derived: dict[str, EntityState], cs: list[Contribution]) -> list[str]:
    changed = []
    for c in cs:
        out = fold(derived.get(c.entity_key), c, 3)
        if out is not None:
            derived[c.entity_key] = out
            changed.append(c.entity_key)
    return changed


def test_orders_and_inventory_contribute_to_stock_per_sku_and_warehouse() -> None:
    inv = state("inventory", "S-1@WH1", sku="S-1", warehouse="WH1", on_hand=10, safety_stock=4, owner="wang.fang")
    po = state("purchase_order", "PO-1", status="open", buyer="li.wei", warehouse="WH1", expected_date="2025-03-10",
               lines=[{"line_no": 1, "sku": "S-1", "qty": 30, "received_qty": 10},
                      {"line_no": 2, "sku": "S-2", "qty": 5, "warehouse": "WH2", "expected_date": "2025-03-12"},
                      {"line_no": 3, "sku": "S-3", "qty": 5, "received_qty": 5}])
    so = state("sales_order", "SO-1", status="open", sku="S-1", warehouse="WH1", qty=25, shipped_qty=5,
               promised_date="2025-03-08T10:00:00+08:00")
    assert [c.to_dict() for c in contributions(inv)] == [{
        "entity": "stock", "key": "S-1@WH1", "source": "inventory:S-1@WH1", "version": {"erp": 1}, "ts": inv["ts"],
        "values": {"on_hand": 10, "safety_stock": 4, "owner": "wang.fang"}}]
    assert {c.key: c.values for c in contributions(po)} == {
        "S-1@WH1": {"in": [["2025-03-10", 20, "PO-1/1"]], "buyer": "li.wei"},
        "S-2@WH2": {"in": [["2025-03-12", 5, "PO-1/2"]], "buyer": "li.wei"},  # line 3 is fully received
    }
    assert {c.key: c.values for c in contributions(so)} == {"S-1@WH1": {"out": [["2025-03-08", 20, "SO-1"]]}}
    # Orders not open any more contribute nothing, and retract what they gave (the record's
    # diff says what that was); the state itself is not changed by this.
    closed = state("purchase_order", "PO-1", 2, po, status="closed", warehouse="WH1")
    assert [(c.key, c.values, c.version) for c in contributions(closed)] == [
        ("S-1@WH1", None, {"erp": 2}), ("S-2@WH2", None, {"erp": 2})]
    assert set(closed) == {"entity", "key", "p", "fields", "seqs", "history", "firing", "due", "ts", "deleted"}


def test_the_fold_is_idempotent_and_a_retraction_is_not_undone_by_a_replay() -> None:
    derived: dict[str, EntityState] = {}
    po = state("purchase_order", "PO-1", status="open", sku="S-1", warehouse="WH1", qty=5, expected_date="2025-03-10")
    first = contributions(po)
    assert fold_all(derived, first) == ["stock:S-1@WH1"]
    stock = derived["stock:S-1@WH1"]
    assert (stock["entity"], stock["key"], stock["p"], stock["deleted"]) == ("stock", "S-1@WH1", 3, False)
    assert fold_all(derived, first) == []  # a replay
    moved = state("purchase_order", "PO-1", 2, po, status="open", sku="S-1", warehouse="WH9", qty=5,
                  expected_date="2025-03-10")
    assert fold_all(derived, contributions(moved)) == ["stock:S-1@WH1", "stock:S-1@WH9"]
    assert derived["stock:S-1@WH1"]["deleted"] is True  # nothing contributes any more
    assert fold_all(derived, first) == []  # the old share, replayed, stays retracted
    assert fold_all(derived, contributions(moved)) == []  # same rev again
    same = state("purchase_order", "PO-1", 3, moved, status="open", sku="S-1", warehouse="WH9", qty=5,
                 expected_date="2025-03-10", note="no stock change")
    assert fold_all(derived, contributions(same)) == []  # newer, but the share is the same


def test_tombstones_are_capped() -> None:
    stock = None
    for i in range(aggregate.MAX_TOMBSTONES + 10):
        src = f"purchase_order:PO-{i}"
        stock = fold(stock, Contribution("stock", "S@W", src, {"erp": 1}, "2025-03-03T00:00:00+00:00", {"in": []}), 0) or stock
        stock = fold(stock, Contribution("stock", "S@W", src, {"erp": 2}, "2025-03-03T00:00:00+00:00", None), 0) or stock
    assert stock is not None and stock["parts"] == {} and len(stock["gone"]) == aggregate.MAX_TOMBSTONES
    assert next(iter(stock["gone"])) == "purchase_order:PO-10"  # the oldest went first


def test_versions_order_the_states_of_one_source() -> None:
    assert aggregate.newer({"erp": 2}, {"erp": 1})
    assert not aggregate.newer({"erp": 1}, {"erp": 1})  # a replay
    assert not aggregate.newer({"erp": 1}, {"erp": 2})  # older
    assert aggregate.newer({"erp": 2, "sheet": "2025-03-02"}, {"erp": 2})  # a second source joined
    assert not aggregate.newer({"sheet": "2025-03-02"}, {"erp": 2})


def test_contributions_travel_as_json() -> None:
    c = Contribution("stock", "S-1@WH1", "sales_order:SO-1", {"erp": 7, "sheet": "2025-03-03"},
                     "2025-03-03T00:00:00+00:00", {"out": [["2025-03-08", 2, "SO-1"]]})
    assert Contribution.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert c.entity_key == "stock:S-1@WH1"


def project(*parts: dict[str, Any]) -> dict[str, Any]:
    view = aggregate.view_of("stock")
    assert view is not None
    return view.derive("S-1@WH1", list(parts))


def test_the_projection_finds_the_first_shortfall_and_stockout_before_they_happen() -> None:
    fields = project(
        {"on_hand": 100, "reserved": 30, "safety_stock": 40, "owner": "wang.fang"},
        {"out": [["2025-03-10", 50, "SO-1"], ["2025-03-12", 75, "SO-2"], ["2025-03-20", 200, "SO-3"]]},
        {"in": [["2025-03-11", 60, "PO-1"], ["2025-04-01", 500, "PO-2"]], "buyer": "li.wei"},
        {"in": [["2025-03-12", 10, "PO-3"]]},  # same day as SO-2: demand counts first
    )
    assert fields == {
        "key": "S-1@WH1", "sku": "S-1", "warehouse": "WH1", "owner": "wang.fang",
        "on_hand": 100, "reserved": 30, "available": 70, "safety_stock": 40,
        "inbound_qty": 570, "demand_qty": 325,
        "next_inbound_date": "2025-03-11", "next_inbound_ref": "PO-1",
        # 100 − 50 + 60 − 75 = 35 < 40 on 2025-03-12 (PO-3's 10 that day would have covered it)
        "shortfall_date": "2025-03-12", "shortfall_qty": 5, "shortfall_ref": "SO-2",
        "stockout_date": "2025-03-20", "stockout_qty": 155, "stockout_ref": "SO-3",
        "projected_min": -155, "projected_end": 345,
    }


def test_without_inventory_the_projection_starts_at_zero_and_the_owner_is_the_buyer() -> None:
    fields = project({"in": [["2025-03-11", 5, "PO-1"]], "buyer": "li.wei"}, {"out": [["2025-03-12", 3, "SO-1"]]})
    assert "on_hand" not in fields and "safety_stock" not in fields
    assert (fields["owner"], fields["projected_end"], "shortfall_date" in fields) == ("li.wei", 2, False)


def test_receivables_add_up_per_customer_and_become_overdue_as_time_passes() -> None:
    derived: dict[str, EntityState] = {}
    a = state("invoice", "AR-1", direction="receivable", customer="Big", amount=1000, paid_amount=200,
              due_date="2025-03-05", currency="CNY", clerk="fin.wu")
    b = state("invoice", "AR-2", customer="Big", amount=500, due_date="2025-03-10", currency="CNY")
    ap = state("invoice", "AP-1", direction="payable", supplier="Acme", counterparty="Acme", amount=9, due_date="2025-03-01")
    paid = state("invoice", "AR-3", direction="receivable", customer="Big", amount=7, status="paid", due_date="2025-03-01")
    for s in (a, b, ap, paid):
        fold_all(derived, contributions(s))
    assert list(derived) == ["customer_account:Big"]
    account = derived["customer_account:Big"]
    assert account["fields"] == {"key": "Big", "customer": "Big", "open_amount": 1300, "open_count": 2,
                                 "currency": "CNY", "clerk": "fin.wu"}
    assert aggregate.at_now(account, ts("2025-03-05T23:00:00")) == {"overdue_amount": 0, "overdue_count": 0}
    assert aggregate.next_change(account, ts("2025-03-05T23:00:00")) == ts("2025-03-06T00:00:00")
    assert aggregate.at_now(account, ts("2025-03-11T00:00:00")) == {
        "overdue_amount": 1300, "overdue_count": 2, "oldest_due_date": "2025-03-05"}
    assert aggregate.next_change(account, ts("2025-03-11T00:00:00")) is None
