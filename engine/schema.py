"""Canonical field names per entity: what connectors map to and rules may name.

Typos in rule files are caught against these lists. Sites with fields of their
own add them with `register_fields` (from configuration), never by accident.

`stock` and `customer_account` are derived entities: the engine folds them
from other entities' states (engine/stock.py, engine/accounts.py); their
fields are computed, not mapped.
"""

from __future__ import annotations

_COMMON = {"key", "status", "amount", "currency", "created_at", "updated_at", "department", "note", "lines"}
_ORDER = {
    "order_date", "qty", "unit_price", "sku", "warehouse", "approved_by", "approved_at",
    "approval_status", "approval_requested_at", "invoiced_amount", "invoiced_date",
}

_FIELDS: dict[str, set[str]] = {
    "purchase_order": _COMMON
    | _ORDER
    | {
        "supplier", "buyer", "sent_date", "expected_date", "confirmed_date", "received_date",
        "received_qty",
    },
    "sales_order": _COMMON
    | _ORDER
    | {
        "customer", "sales_rep", "promised_date", "shipped_date", "delivered_date", "accepted_date",
        "shipped_qty",
    },
    "inventory": {"key", "sku", "warehouse", "on_hand", "reserved", "safety_stock", "owner", "updated_at"},
    "invoice": _COMMON
    | {
        "direction", "counterparty", "customer", "supplier", "order_key", "issue_date", "due_date",
        "paid_amount", "paid_date", "clerk",
    },
    "payment": {"key", "invoice_key", "amount", "currency", "paid_date", "method", "clerk", "updated_at"},
    "approval": {"key", "order_key", "approver", "decision", "decided_at", "level", "updated_at"},
    # Derived, keyed `sku@warehouse` (engine/stock.py).
    "stock": {
        "key", "sku", "warehouse", "owner", "on_hand", "reserved", "available", "safety_stock",
        "inbound_qty", "demand_qty", "projected_min", "projected_end", "shortfall_date",
        "shortfall_qty", "shortfall_ref", "stockout_date", "stockout_qty", "stockout_ref",
        "next_inbound_date", "next_inbound_ref",
    },
    # Derived, keyed by customer (engine/accounts.py); overdue_* are computed at evaluation time.
    "customer_account": {
        "key", "customer", "clerk", "currency", "open_amount", "open_count", "overdue_amount",
        "overdue_count", "oldest_due_date",
    },
}

# Fields of one order line (`fields.lines` is a list of these).
_LINE_FIELDS: dict[str, set[str]] = {
    "purchase_order": {
        "line_no", "sku", "warehouse", "description", "qty", "received_qty", "invoiced_qty", "unit_price",
        "amount", "expected_date", "received_date", "status",
    },
    "sales_order": {
        "line_no", "sku", "warehouse", "description", "qty", "shipped_qty", "invoiced_qty", "unit_price",
        "amount", "promised_date", "shipped_date", "status",
    },
}


def known_fields(entity: str) -> set[str]:
    """The canonical fields of an entity; empty for an unknown entity."""
    return _FIELDS.get(entity, set())


def line_fields(entity: str) -> set[str]:
    """The fields of one line of an entity; empty when the entity has no lines."""
    return _LINE_FIELDS.get(entity, set())


def entities() -> list[str]:
    return sorted(_FIELDS)


def register_fields(entity: str, names: set[str]) -> None:
    """Add site-specific fields (and entities) declared in configuration."""
    _FIELDS.setdefault(entity, {"key"}).update(names)
