"""Canonical field names per entity: what connectors map to and rules may name.

Typos in rule files are caught against these lists. Sites with fields of their
own declare them in configuration (engine/fields.py); `declare` makes them
known next to the canonical ones, never by accident. The README's field
lists are `fields_markdown()` (`python -m engine.schema` prints it).

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


# Declared in configuration (engine/fields.py), per entity: set as a whole by `declare`.
_CUSTOM: dict[str, frozenset[str]] = {}
_CUSTOM_LINES: dict[str, frozenset[str]] = {}
DERIVED = ("stock", "customer_account")
# Said after a list of known fields: how a field the list lacks becomes known.
DECLARE_HINT = "(a field of your own is declared under fields: in the connectors or fields file; README: Custom fields)"


def canonical_fields(entity: str) -> set[str]:
    """The canonical fields of an entity, without declared ones; empty for an unknown entity."""
    return set(_FIELDS.get(entity, set()))


def canonical_line_fields(entity: str) -> set[str]:
    """The canonical fields of one line of an entity, without declared ones."""
    return set(_LINE_FIELDS.get(entity, set()))


def known_fields(entity: str) -> set[str]:
    """The canonical and declared fields of an entity; empty for an unknown entity."""
    if entity not in _FIELDS:
        return set()
    return _FIELDS[entity] | _CUSTOM.get(entity, frozenset())


def line_fields(entity: str) -> set[str]:
    """The fields of one line of an entity; empty when the entity has no lines."""
    if entity not in _LINE_FIELDS:
        return set()
    return _LINE_FIELDS[entity] | _CUSTOM_LINES.get(entity, frozenset())


def entities() -> list[str]:
    return sorted(_FIELDS)


def declare(fields: dict[str, set[str]], lines: dict[str, set[str]] | None = None) -> None:
    """Make these declared fields (per entity, and per entity's line) the known custom ones,
    replacing any declared before: each load of a configuration says the whole set."""
    _CUSTOM.clear()
    _CUSTOM.update({entity: frozenset(names) for entity, names in fields.items()})
    _CUSTOM_LINES.clear()
    _CUSTOM_LINES.update({entity: frozenset(names) for entity, names in (lines or {}).items()})


def fields_markdown() -> str:
    """The README's table of canonical fields per entity (kept equal by a test)."""
    rows = ["| entity | fields | fields of a line (`lines`) |", "|---|---|---|"]
    for entity in entities():
        names = ", ".join(f"`{n}`" for n in sorted(_FIELDS[entity]))
        line = ", ".join(f"`{n}`" for n in sorted(_LINE_FIELDS.get(entity, set()))) or "—"
        shown = f"`{entity}` (derived)" if entity in DERIVED else f"`{entity}`"
        rows.append(f"| {shown} | {names} | {line} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(fields_markdown(), end="")
