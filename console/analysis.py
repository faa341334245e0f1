"""The analysis page's figures (the guide's 归档与分析), as plain data: computed from the engine's
order states and the alert store, over the orders and alerts the viewer may see.

Two steps, because each worker holds only its partitions' orders: `holdings` judges the orders
one worker holds (its share, JSON-able), `analysis_page` adds the shares up with the alerts.

Rates judge purchase orders (by supplier, owner `buyer`) and sales orders (by customer, owner
`sales_rep`) with the definitions the business gauges use (alerts/business.py KINDS: the due
field, the completion fields, the final statuses). Dates are days in UTC; a value with a time
counts as its day. Cancelled and deleted orders count nowhere.

Each order has a *period date*, which places it in the last 30 or 90 days (today included):
its completion date when it is finished and dated; the day of its last change when it is
finished without a completion date; its due date when it is open and past due; otherwise
(open, not yet due) the day of its last change. `all` takes every order, whatever its dates.

    on time    judged: finished with a completion date and a due date (on time when completed
               on or before the due date), and open orders past their due date (late).
               Finished orders without either date and open orders not yet due are not judged.
               Over `all`, the counts are the gauges' own: judged = orderwatch_orders_completed
               + orderwatch_orders_overdue, on time = orderwatch_orders_completed_on_time.
    complete   judged: finished orders whose ordered and delivered quantities are known (per
               line when the order has lines, else the header: `qty` against `received_qty` for
               a PO, `shipped_qty` or `delivered_qty` for an SO). Complete when every line got
               at least what was ordered; incomplete as soon as one line got less. A line
               without both quantities leaves an otherwise complete order unjudged.
    accurate   judged: every order in the period. Accurate when no alert of any family (an
               exception, or an unapproved change) was ever recorded on that order.

Ageing: invoices not in a final status and past their due date (overdue from the day after),
receivable or payable (`direction`; none with a customer: receivable, as engine/accounts.py),
by days overdue: 0–30, 31–60, 61–90, 90+; amounts are what is still owed (amount − paid_amount),
per currency, never added across currencies. Their count equals
orderwatch_orders_overdue{entity="invoice"}.

Weekly: alerts by the ISO week (Monday first, UTC) they started firing in, by family, over the
last 13 weeks. Acknowledgement: per person who acknowledged, the median of (acknowledged at −
started firing at) over the alerts they acknowledged.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from alerts.business import KINDS
from alerts.config import AlertsConfig
from alerts.store import StoredAlert
from console.pages import Viewer, visible
from console.team import owner_id, people_of

PERIODS: tuple[str, ...] = ("30", "90", "all")
DIMENSIONS = ("supplier", "customer", "owner")
PARTY = {"purchase_order": ("supplier", "buyer"), "sales_order": ("customer", "sales_rep")}
DELIVERED = {"purchase_order": ("received_qty",), "sales_order": ("shipped_qty", "delivered_qty")}
INVOICE_FINAL = KINDS["invoice"].final
BUCKETS = ("0-30", "31-60", "61-90", "90+")
WEEKS = 13


def day_of(value: Any) -> date | None:
    """A date field's day (UTC), from a date, a datetime or an ISO text; None if it is none of these."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return day_of(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@dataclass(frozen=True)
class Order:
    """One order as the analysis judges it (None in a verdict: not judged)."""

    entity: str
    key: str
    party: str  # supplier or customer
    owner: str
    period: date | None
    finished: bool
    on_time: bool | None
    complete: bool | None


def _complete(entity: str, fields: Mapping[str, Any]) -> bool | None:
    lines = fields.get("lines")
    items = [ln for ln in lines if isinstance(ln, dict)] if isinstance(lines, list) and lines else [fields]
    unknown = False
    for item in items:
        ordered = _num(item.get("qty"))
        got = next((v for v in (_num(item.get(f)) for f in DELIVERED[entity]) if v is not None), None)
        if ordered is None or got is None:
            unknown = True
        elif got < ordered:
            return False  # one line short is enough, whatever the others
    return None if unknown else True


def order_of(state: Mapping[str, Any], today: date) -> Order | None:
    """The order a state holds, judged as of `today`; None for other entities, cancelled or deleted."""
    entity = state.get("entity", "")
    if entity not in PARTY or state.get("deleted"):
        return None
    kind, f = KINDS[entity], state.get("fields") or {}
    status = str(f.get("status") or "").lower()
    if status == "cancelled":
        return None
    due = day_of(f.get(kind.due))
    done = next((d for d in (day_of(f.get(name)) for name in kind.done) if d is not None), None)
    changed = day_of(state.get("ts"))
    finished = status in kind.final
    if finished:
        on_time = (done <= due) if done is not None and due is not None else None
        period = done or changed
    elif due is not None and due < today:
        on_time, period = False, due
    else:
        on_time, period = None, changed
    party_field, owner_field = PARTY[entity]
    return Order(entity, str(state.get("key", "")), str(f.get(party_field) or ""), str(f.get(owner_field) or ""),
                 period, finished, on_time, _complete(entity, f) if finished else None)


def in_period(day: date | None, period: str, today: date) -> bool:
    if period == "all":
        return True
    return day is not None and today - timedelta(days=int(period)) < day <= today


def _rate(good: int, judged: int) -> float | None:
    return round(good / judged, 4) if judged else None


def _tally(orders: list[Order], alerted: set[tuple[str, str]]) -> dict[str, Any]:
    judged_t = [o for o in orders if o.on_time is not None]
    judged_c = [o for o in orders if o.complete is not None]
    on_time = sum(1 for o in judged_t if o.on_time)
    complete = sum(1 for o in judged_c if o.complete)
    accurate = sum(1 for o in orders if (o.entity, o.key) not in alerted)
    return {"orders": len(orders),
            "on_time": {"judged": len(judged_t), "good": on_time, "rate": _rate(on_time, len(judged_t))},
            "complete": {"judged": len(judged_c), "good": complete, "rate": _rate(complete, len(judged_c))},
            "accurate": {"judged": len(orders), "good": accurate, "rate": _rate(accurate, len(orders))}}


def rates(orders: list[Order], alerted: set[tuple[str, str]], today: date,
          names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """{period: {"total": tally, "supplier"|"customer"|"owner": [{"group", "name", …tally}]}}."""
    out: dict[str, Any] = {}
    for period in PERIODS:
        chosen = [o for o in orders if in_period(o.period, period, today)]
        doc: dict[str, Any] = {"total": _tally(chosen, alerted)}
        for dim in DIMENSIONS:
            groups: dict[str, list[Order]] = {}
            for o in chosen:
                if dim == "owner":
                    groups.setdefault(o.owner, []).append(o)
                elif (dim == "supplier") == (o.entity == "purchase_order"):
                    groups.setdefault(o.party, []).append(o)
            doc[dim] = [{"group": g, "name": (names or {}).get(g, g) if dim == "owner" else g,
                         **_tally(os, alerted)} for g, os in sorted(groups.items())]
        out[period] = doc
    return out


def gauge_counts(orders: list[Order]) -> dict[str, dict[str, int]]:
    """Per entity, the counts the business gauges give for the same orders (see the module text)."""
    out = {entity: {"completed": 0, "completed_on_time": 0, "overdue": 0} for entity in PARTY}
    for o in orders:
        if o.on_time is None:
            continue
        counts = out[o.entity]
        if o.finished:
            counts["completed"] += 1
            counts["completed_on_time"] += int(o.on_time)
        else:
            counts["overdue"] += 1
    return out


def bucket_of(days: int) -> str:
    return BUCKETS[0] if days <= 30 else BUCKETS[1] if days <= 60 else BUCKETS[2] if days <= 90 else BUCKETS[3]


def ageing(states: Iterable[Mapping[str, Any]], today: date) -> list[dict[str, Any]]:
    """Overdue invoices: one row per direction and currency with count and amount per bucket."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for state in states:
        f = state.get("fields") or {}
        if state.get("entity") != "invoice" or state.get("deleted"):
            continue
        if str(f.get("status") or "").lower() in INVOICE_FINAL:
            continue
        due = day_of(f.get("due_date"))
        if due is None or due >= today:
            continue
        direction = str(f.get("direction") or ("receivable" if f.get("customer") else "payable")).lower()
        currency = str(f.get("currency") or "")
        row = rows.setdefault((direction, currency), {
            "direction": direction, "currency": currency, "count": 0, "amount": 0.0,
            "buckets": {b: {"count": 0, "amount": 0.0} for b in BUCKETS}})
        owed = (_num(f.get("amount")) or 0.0) - (_num(f.get("paid_amount")) or 0.0)
        cell = row["buckets"][bucket_of((today - due).days)]
        for target in (row, cell):
            target["count"] += 1
            target["amount"] = round(target["amount"] + owed, 2)
    return [rows[k] for k in sorted(rows)]


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def weekly(alerts: Iterable[StoredAlert], today: date, weeks: int = WEEKS) -> dict[str, Any]:
    """Alerts by the week they started firing in (the last `weeks` weeks) and by family."""
    first = monday(today) - timedelta(weeks=weeks - 1)
    starts = [first + timedelta(weeks=i) for i in range(weeks)]
    counts: dict[str, list[int]] = {}
    for a in alerts:
        day = day_of(a.starts_at)
        if day is None or day < first or day > today:
            continue
        family = a.labels.get("family") or "-"
        counts.setdefault(family, [0] * weeks)[(monday(day) - first).days // 7] += 1
    return {"weeks": [f"{s.isocalendar().year}-W{s.isocalendar().week:02d}" for s in starts],
            "starts": [s.isoformat() for s in starts],
            "families": {f: counts[f] for f in sorted(counts)}}


def ack_times(alerts: Iterable[StoredAlert], names: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Per person who acknowledged: how many, and the median seconds from firing to acknowledgement."""
    seconds: dict[str, list[float]] = {}
    for a in alerts:
        if a.acked_by and a.acked_at is not None:
            seconds.setdefault(a.acked_by, []).append(max(0.0, (a.acked_at - a.starts_at).total_seconds()))
    return [{"person": p, "name": (names or {}).get(p, p), "acknowledged": len(s),
             "median_seconds": round(statistics.median(s))} for p, s in sorted(seconds.items())]


INVOICE_FIELDS = ("status", "direction", "customer", "currency", "amount", "paid_amount", "due_date", "clerk")


def holdings(states: Iterable[Mapping[str, Any]], config: AlertsConfig, viewer: Viewer,
             now: datetime) -> dict[str, Any]:
    """What the analysis needs of the order states one worker holds, for `viewer` (JSON-able):
    the orders their team owns, judged (console/team.py; a machine: all), and the open invoices
    with a due date their team's clerks hold. Every worker gives its share; the page adds them up."""
    d = config.directory
    today = now.astimezone(UTC).date()
    team = people_of(d, viewer)

    def covered(raw: Any) -> bool:
        return team is None or owner_id(d, raw) in team

    orders, invoices = [], []
    for state in states:
        f = state.get("fields") or {}
        if state.get("entity") == "invoice":
            if not state.get("deleted") and f.get("due_date") and covered(f.get("clerk")) \
                    and str(f.get("status") or "").lower() not in INVOICE_FINAL:
                invoices.append({"entity": "invoice", "key": state.get("key"), "deleted": False,
                                 "fields": {k: f.get(k) for k in INVOICE_FIELDS}})
            continue
        found = order_of(state, today)
        if found is not None and covered(found.owner):
            orders.append({**asdict(found), "owner": owner_id(d, found.owner),
                           "period": found.period.isoformat() if found.period else None})
    return {"orders": orders, "invoices": invoices}


def analysis_page(shares: list[dict[str, Any]], alerts: list[StoredAlert], config: AlertsConfig,
                  viewer: Viewer, now: datetime) -> dict[str, Any]:
    """Every figure of the analysis page for `viewer`, from the workers' `holdings` (an order held
    twice while the group rebalances counts once) and the alerts they see (a manager: the team's)."""
    today = now.astimezone(UTC).date()
    orders = {(o["entity"], o["key"]): Order(**{**o, "period": date.fromisoformat(o["period"]) if o["period"]
                                                 else None}) for share in shares for o in share["orders"]}
    invoices = {i["key"]: i for share in shares for i in share["invoices"]}
    judged = list(orders.values())
    alerted = {(a.entity, a.key) for a in alerts}
    seen = visible(config, viewer, alerts)
    names = {p.id: p.name for p in config.directory.people.values()}
    return {"viewer": viewer.to_dict(), "today": today.isoformat(), "periods": list(PERIODS),
            "rates": rates(judged, alerted, today, names),
            "gauges": gauge_counts(judged),
            "ageing": {"buckets": list(BUCKETS), "rows": ageing(invoices.values(), today)},
            "weekly": weekly(seen, today),
            "acknowledgement": ack_times(seen, names)}
