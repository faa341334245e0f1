"""What each customer owes: the `customer_account` entity (keyed by customer).

Same contract as engine/stock.py (see engine/aggregate.py). An open
receivable invoice (direction `receivable`, or no direction and a customer;
status not paid/cancelled/void; amount − paid_amount > 0; no `paid_date`
without a `paid_amount`, which means paid) contributes
`{open, due, currency, clerk, ref}` under its customer.

Derived fields: `customer`, `clerk` (of its open invoices, alphabetically
first), `currency` (or `mixed`), `open_amount`, `open_count`; and, computed at
each evaluation because they depend on the instant, `overdue_amount`,
`overdue_count`, `oldest_due_date` (an invoice is overdue from the day after
its due date). The engine re-evaluates the account when the next open invoice
falls due. A large customer has thousands of open invoices, so the fold is
incremental: `state["index"]` keeps the invoices by due instant and the counts
behind `currency` and `clerk`.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from engine.aggregate import register
from engine.clock import DAY, to_epoch
from engine.state import EntityState

CLOSED = frozenset({"paid", "cancelled", "void"})


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _clean(value: float) -> float | int:
    value = round(value, 2)
    return int(value) if value.is_integer() else value


def _due_entry(values: dict[str, Any]) -> list[Any] | None:
    """[overdue from (epoch), open amount, due date, ref], or None without a due date."""
    due = to_epoch(values.get("due"))
    if due is None:
        return None
    return [due + DAY, _num(values.get("open")), str(values.get("due")), str(values.get("ref", ""))]


def _count(counts: dict[str, int], key: Any, delta: int) -> None:
    if not key:
        return
    counts[key] = counts.get(key, 0) + delta
    if counts[key] <= 0:
        del counts[key]


class AccountView:
    entity = "customer_account"
    sources = frozenset({"invoice"})
    depends_on_now = True

    def contribute(self, state: EntityState) -> dict[str, dict[str, Any]]:
        f = state["fields"]
        direction = str(f.get("direction") or ("receivable" if f.get("customer") else "")).lower()
        customer = f.get("customer") or f.get("counterparty")
        if direction != "receivable" or not customer or str(f.get("status") or "").lower() in CLOSED:
            return {}
        if f.get("paid_date") and f.get("paid_amount") is None:
            return {}  # a source that says "paid on …" and not how much
        open_amount = _num(f.get("amount")) - _num(f.get("paid_amount"))
        if open_amount <= 0:
            return {}
        values = {"open": _clean(open_amount), "due": f.get("due_date"), "ref": state["key"]}
        values.update({k: f[k] for k in ("currency", "clerk") if f.get(k)})
        return {str(customer): values}

    def apply(self, state: EntityState, old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any]:
        index = state.setdefault("index", {"dues": [], "total": 0.0, "count": 0, "currencies": {}, "clerks": {}})
        dues: list[list[Any]] = index["dues"]
        for values, sign in ((old, -1), (new, 1)):
            if values is None:
                continue
            index["total"] += sign * _num(values.get("open"))
            index["count"] += sign
            _count(index["currencies"], values.get("currency"), sign)
            _count(index["clerks"], values.get("clerk"), sign)
            entry = _due_entry(values)
            if entry is None:
                continue
            if sign > 0:
                bisect.insort(dues, entry)
            else:
                at = bisect.bisect_left(dues, entry)
                if at < len(dues) and dues[at] == entry:
                    del dues[at]
        fields: dict[str, Any] = {"key": state["key"], "customer": state["key"],
                                  "open_amount": _clean(index["total"]), "open_count": index["count"]}
        currencies = index["currencies"]
        if currencies:
            fields["currency"] = next(iter(currencies)) if len(currencies) == 1 else "mixed"
        if index["clerks"]:
            fields["clerk"] = min(index["clerks"])
        return fields

    def at_now(self, state: EntityState, now: float) -> dict[str, Any]:
        dues = state.get("index", {}).get("dues", [])
        # Entries sort by their overdue instant: the overdue ones are a prefix.
        upto = bisect.bisect_right(dues, [now, math.inf])
        out: dict[str, Any] = {"overdue_amount": _clean(math.fsum(d[1] for d in dues[:upto])), "overdue_count": upto}
        if upto:
            out["oldest_due_date"] = dues[0][2]
        return out

    def next_change(self, state: EntityState, now: float) -> float | None:
        dues = state.get("index", {}).get("dues", [])
        upto = bisect.bisect_right(dues, [now, math.inf])
        return dues[upto][0] if upto < len(dues) else None


ACCOUNTS = register(AccountView())
