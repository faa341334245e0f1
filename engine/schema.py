"""Canonical field names per entity: what connectors map to and rules may name.

Typos in rule files are caught against these lists. Sites with fields of their
own add them with `register_fields` (from configuration), never by accident.
"""

from __future__ import annotations

_COMMON = {"key", "status", "amount", "currency", "created_at", "updated_at", "department", "note", "lines"}

_FIELDS: dict[str, set[str]] = {
    "purchase_order": _COMMON
    | {
        "supplier", "buyer", "order_date", "expected_date", "confirmed_date", "received_date",
        "qty", "received_qty", "unit_price", "sku", "warehouse", "approved_by", "approved_at",
        "approval_status", "invoiced_amount",
    },
    "sales_order": _COMMON
    | {
        "customer", "sales_rep", "order_date", "promised_date", "shipped_date", "delivered_date",
        "accepted_date", "qty", "shipped_qty", "unit_price", "sku", "warehouse", "approved_by",
        "approved_at", "approval_status", "invoiced_amount",
    },
    "inventory": {"key", "sku", "warehouse", "on_hand", "reserved", "safety_stock", "owner", "updated_at"},
    "invoice": _COMMON
    | {
        "direction", "counterparty", "customer", "supplier", "order_key", "issue_date", "due_date",
        "paid_amount", "paid_date", "clerk",
    },
    "payment": {"key", "invoice_key", "amount", "currency", "paid_date", "method", "clerk", "updated_at"},
    "approval": {"key", "order_key", "approver", "decision", "decided_at", "level", "updated_at"},
}


def known_fields(entity: str) -> set[str]:
    """The canonical fields of an entity; empty for an unknown entity."""
    return _FIELDS.get(entity, set())


def entities() -> list[str]:
    return sorted(_FIELDS)


def register_fields(entity: str, names: set[str]) -> None:
    """Add site-specific fields (and entities) declared in configuration."""
    _FIELDS.setdefault(entity, {"key"}).update(names)
