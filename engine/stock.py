"""Stock per SKU and warehouse, projected forward: the `stock` entity (key `sku@warehouse`).

Contract for the pipeline (pure functions, JSON in and out; see engine/aggregate.py):

1. Each time `apply_record` returns a `purchase_order`, `sales_order` or
   `inventory` state, call `engine.aggregate.contributions(state)` before the
   next record of that entity is applied (it reads the diff of the record just
   applied, to retract what the state contributed before). It does not change
   the state. Send each `c.to_dict()` to a topic keyed by `c.entity_key`
   (`stock:SKU-1@WH1`), even when the source's own rules produced nothing.
2. An agent on that topic folds each message: `fold(table.get(ek),
   Contribution.from_dict(doc), partition)`; None means nothing changed (a
   replay or an identical share), otherwise store the state, evaluate it with
   the same `Evaluator.evaluate([state], now)` and schedule `state["due"]` like
   any entity. A derived state with no live parts is `deleted` (dropped once
   its alerts resolve).

What each source contributes (values under `sku@warehouse`):

- inventory: `on_hand`, `reserved`, `safety_stock`, `owner`.
- an open purchase order (status not received/closed/cancelled/rejected): per
  line, or the header when it has no lines, the quantity still to come
  (`qty − received_qty`) on its `expected_date` → `in: [[date, qty, ref]]`.
- an open sales order (not shipped/delivered/closed/cancelled/invoiced/rejected):
  the quantity still to ship (`qty − shipped_qty`) on its `promised_date` →
  `out: [[date, qty, ref]]`.

When an order has no `status`, its dates say whether it is open: a purchase
order with a `received_date`, a sales order with a `shipped_date` or
`delivered_date` contributes nothing; a line with its own `received_date` /
`shipped_date` is done too. A status, when given, decides alone. Quantities
always count: a line whose `received_qty`/`shipped_qty` reaches its `qty`
contributes nothing.

Missing values: a line without a SKU, a warehouse, a date or a `qty` is not
projected; a missing `received_qty`/`shipped_qty` is 0. A SKU with no
inventory record has no `on_hand` field (the rules that read it do not fire),
but its projection starts from 0 on hand; missing `reserved` and
`safety_stock` count as 0.

Derived fields (time-independent: the projection walks dated events in order,
demand before supply on the same day):

    on_hand, reserved, available (= on_hand − reserved), safety_stock, owner
    inbound_qty, demand_qty               open quantities in and out
    projected_min, projected_end          lowest / final projected balance
    shortfall_date, shortfall_qty, shortfall_ref
                                          first need date where the balance falls
                                          below safety stock, by how much, which order
    stockout_date, stockout_qty, stockout_ref
                                          first need date where it falls below zero
    next_inbound_date, next_inbound_ref   the next open receipt
"""

from __future__ import annotations

from typing import Any

from engine.aggregate import live_parts, register
from engine.state import EntityState

CLOSED_PO = frozenset({"received", "closed", "cancelled", "rejected"})
CLOSED_SO = frozenset({"shipped", "delivered", "closed", "cancelled", "invoiced", "rejected"})


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _clean(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 4)


def stock_key(sku: Any, warehouse: Any) -> str | None:
    if not sku or not warehouse:
        return None
    return f"{sku}@{warehouse}"


def _flows(state: EntityState, done_qty: str, date_field: str,
           done_dates: tuple[str, ...] = ()) -> dict[str, list[list[Any]]]:
    """Open quantity per stock key: [[date, qty, ref], …] from the lines, or the header. A line
    with one of `done_dates` set is done (given only for orders without a status)."""
    fields = state["fields"]
    lines = fields.get("lines")
    has_lines = isinstance(lines, list) and bool(lines)
    if not has_lines and not fields.get("sku"):
        return {}  # most orders in most ERPs: a header without a SKU projects nothing
    items = [line for line in lines if isinstance(line, dict)] if has_lines and lines else [fields]
    out: dict[str, list[list[Any]]] = {}
    for i, item in enumerate(items):
        key = stock_key(item.get("sku") or fields.get("sku"), item.get("warehouse") or fields.get("warehouse"))
        qty, done = _num(item.get("qty")), _num(item.get(done_qty)) or 0.0
        date = item.get(date_field) or fields.get(date_field)
        if key is None or qty is None or qty - done <= 0 or not isinstance(date, str):
            continue
        if item is not fields and any(item.get(d) for d in done_dates):
            continue
        ref = state["key"] if item is fields else f"{state['key']}/{item.get('line_no', i + 1)}"
        out.setdefault(key, []).append([date[:10], _clean(qty - done), ref])
    return out


class StockView:
    entity = "stock"
    sources = frozenset({"inventory", "purchase_order", "sales_order"})
    depends_on_now = False

    def contribute(self, state: EntityState) -> dict[str, dict[str, Any]]:
        fields, entity = state["fields"], state["entity"]
        if entity != "inventory" and not fields.get("sku") and not fields.get("lines"):
            return {}  # most orders in most ERPs: a header without a SKU projects nothing (as _flows says)
        status = str(fields.get("status") or "").lower()
        if entity == "inventory":
            key = stock_key(fields.get("sku"), fields.get("warehouse"))
            if key is None:
                return {}
            values = {k: fields[k] for k in ("on_hand", "reserved", "safety_stock", "owner") if fields.get(k) is not None}
            return {key: values}
        if entity == "purchase_order":
            done = () if status else ("received_date",)
            if status in CLOSED_PO or any(fields.get(d) for d in done):
                return {}
            buyer = fields.get("buyer")
            flows = _flows(state, "received_qty", "expected_date", done)
            return {k: {"in": v, **({"buyer": buyer} if buyer else {})} for k, v in flows.items()}
        so_done: tuple[str, ...] = () if status else ("shipped_date", "delivered_date")
        if status in CLOSED_SO or any(fields.get(d) for d in so_done):
            return {}
        return {k: {"out": v} for k, v in _flows(state, "shipped_qty", "promised_date", so_done[:1]).items()}

    def apply(self, state: EntityState, old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
        # A SKU has few open orders at a time: recomputing the projection is simpler than patching it.
        return self.derive(state["key"], live_parts(state))

    def derive(self, key: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
        sku, _, warehouse = key.rpartition("@")
        fields: dict[str, Any] = {"key": key, "sku": sku, "warehouse": warehouse}
        stocks = [p for p in parts if "on_hand" in p or "safety_stock" in p]
        on_hand = sum(_num(p.get("on_hand")) or 0.0 for p in stocks)
        reserved = sum(_num(p.get("reserved")) or 0.0 for p in stocks)
        safety = max((_num(p.get("safety_stock")) or 0.0 for p in stocks), default=0.0)
        if stocks:
            fields.update(on_hand=_clean(on_hand), reserved=_clean(reserved),
                          available=_clean(on_hand - reserved), safety_stock=_clean(safety))
        owner = next((p["owner"] for p in stocks if p.get("owner")), None)
        owner = owner or next((p["buyer"] for p in parts if p.get("buyer")), None)
        if owner:
            fields["owner"] = owner
        # (date, demand first, signed qty, ref)
        events = sorted(
            [(d, 1, float(q), r) for p in parts for d, q, r in p.get("in", [])]
            + [(d, 0, -float(q), r) for p in parts for d, q, r in p.get("out", [])]
        )
        fields["inbound_qty"] = _clean(sum(q for _, kind, q, _ in events if kind == 1))
        fields["demand_qty"] = _clean(-sum(q for _, kind, q, _ in events if kind == 0))
        balance = lowest = on_hand
        for date, kind, qty, ref in events:
            balance += qty
            if kind == 1:
                if "next_inbound_date" not in fields:
                    fields.update(next_inbound_date=date, next_inbound_ref=ref)
                continue
            lowest = min(lowest, balance)
            if "shortfall_date" not in fields and balance < safety:
                fields.update(shortfall_date=date, shortfall_qty=_clean(safety - balance), shortfall_ref=ref)
            if "stockout_date" not in fields and balance < 0:
                fields.update(stockout_date=date, stockout_qty=_clean(-balance), stockout_ref=ref)
        fields["projected_min"] = _clean(lowest)
        fields["projected_end"] = _clean(balance)
        return fields

    def at_now(self, state: EntityState, now: float) -> dict[str, Any]:
        return {}

    def next_change(self, state: EntityState, now: float) -> float | None:
        return None


STOCK = register(StockView())
