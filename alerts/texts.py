"""An alert's texts in one reader's language, rendered from its stored facts when a message is sent.

The rule's title and summary in the reader's language (else the other one: a
missing translation never leaves a text empty), values written the reader's way
(alerts/locale.py), `{overdue_days}` counted at the time of sending (for a
resolved alert: when it resolved), and the words people read for entities,
states and what happened to an order (`已到货,逾期 10 天` / `received, 10 days late`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alerts import locale
from alerts.message import AlertItem
from orderwatch.alert import text_template, values_at

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^\W\d]\w*)\}")
_CJK = re.compile(r"[\u3400-\u9fff]")

# zh, en: the product's own words (Babel has none for purchase orders).
ENTITIES = {
    "purchase_order": ("采购订单", "purchase order"), "sales_order": ("销售订单", "sales order"),
    "inventory": ("库存", "inventory"), "stock": ("库存", "stock"), "invoice": ("发票", "invoice"),
    "payment": ("付款", "payment"), "approval": ("审批", "approval"),
    "customer_account": ("客户账户", "customer account"),
}
STATUSES = {
    "received": ("已到货", "received"), "partially_received": ("部分到货", "partially received"),
    "closed": ("已关闭", "closed"), "cancelled": ("已取消", "cancelled"), "shipped": ("已发货", "shipped"),
    "delivered": ("已送达", "delivered"), "invoiced": ("已开票", "invoiced"), "paid": ("已付清", "paid"),
    "partially_paid": ("部分付款", "partially paid"), "approved": ("已审批", "approved"),
    "rejected": ("已驳回", "rejected"), "accepted": ("已验收", "accepted"), "confirmed": ("已确认", "confirmed"),
    "open": ("未结", "open"), "draft": ("草稿", "draft"), "sent": ("已发出", "sent"), "pending": ("待审批", "pending"),
}
FIELDS = {
    "amount": ("金额", "amount"), "qty": ("数量", "quantity"), "unit_price": ("单价", "unit price"),
    "expected_date": ("预计到货日", "expected date"), "promised_date": ("承诺交期", "promised date"),
    "due_date": ("到期日", "due date"), "supplier": ("供应商", "supplier"), "customer": ("客户", "customer"),
    "sku": ("物料", "SKU"), "warehouse": ("仓库", "warehouse"), "lines": ("明细行", "lines"),
    "status": ("状态", "status"), "currency": ("币种", "currency"), "buyer": ("采购员", "buyer"),
    "sales_rep": ("销售员", "sales rep"), "received_qty": ("已收数量", "received quantity"),
    "shipped_qty": ("已发数量", "shipped quantity"), "approval_status": ("审批状态", "approval status"),
    "approved_by": ("审批人", "approver"), "note": ("备注", "note"), "department": ("部门", "department"),
}
# Values that are words of the product (an invoice's direction), in the reader's language.
VALUE_WORDS = {"direction": {"receivable": ("应收", "receivable"), "payable": ("应付", "payable")}}
_NOT_AN_OUTCOME = {"open", "draft", "pending", "sent"}
_WORDS = {
    "unknown": ("未知", "unknown"),
    "resolved": ("已恢复", "resolved"),
    "late": ("逾期 {days}", "{days} late"),
    "sep": (",", ", "),
    "changes": ("、", ", "),
}


def word(table: dict[str, tuple[str, str]], name: str, language: str) -> str:
    """A name in the reader's language; a name the table does not know stays as it is."""
    pair = table.get(name)
    if pair is None:
        return name
    return pair[0] if language == "zh" else pair[1]


def entity_name(entity: str, language: str) -> str:
    return word(ENTITIES, entity, language)


def localize(text: str, language: str) -> str:
    """Pick the `zh` or `en` half of a text written `采购到货逾期 / PO delivery overdue`
    (rules written as one text, and alerts stored before texts were kept by language)."""
    parts = [p.strip() for p in text.split(" / ")]
    if len(parts) != 2 or bool(_CJK.search(parts[0])) == bool(_CJK.search(parts[1])):
        return text
    zh, en = (parts[0], parts[1]) if _CJK.search(parts[0]) else (parts[1], parts[0])
    return zh if language == "zh" else en


@dataclass(frozen=True)
class AlertTexts:
    title: str
    summary: str
    outcome: str  # what happened, for a resolved alert ("" while it fires)


def fill(template: str, values: dict[str, Any], language: str, zone: str) -> str:
    """Substitute `{name}` with each value written the reader's way; a missing value is empty.
    Amounts carry the record's currency (`¥86,000.00`) unless the text names `{currency}` itself."""
    with_currency = "{currency}" not in template

    def sub(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        value = values.get(name)
        if name in VALUE_WORDS and str(value) in VALUE_WORDS[name]:
            return word(VALUE_WORDS[name], str(value), language)
        return locale.value_text(name, value, values, language, zone, with_currency)

    return _PLACEHOLDER.sub(sub, template)


def _changes(facts: dict[str, Any], values: dict[str, Any], language: str, zone: str) -> str:
    parts = []
    for name, old, new in facts.get("changed") or ():
        label = word(FIELDS, name, language)
        if name == "lines":
            parts.append(label)
            continue
        before = locale.value_text(name, old, values, language, zone)
        after = locale.value_text(name, new, values, language, zone)
        parts.append(f"{label} {before} → {after}")
    return word(_WORDS, "changes", language).join(parts)


def _epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


def alert_texts(a: AlertItem, language: str, zone: str, now: float) -> AlertTexts:
    """Title, summary and outcome of an alert for one reader, at `now` (epoch seconds)."""
    facts = a.facts or {}
    if not facts.get("texts"):  # stored before alerts kept their facts
        return AlertTexts(localize(a.title or a.rule, language), localize(a.summary, language), "")
    ended = _epoch(a.ends_at) if a.status == "resolved" else None
    at = ended if ended is not None else now
    values = values_at(facts, at)
    if facts.get("changed"):
        values["changed_fields"] = _changes(facts, values, language, zone)
    if "changed_by" in values and not values["changed_by"]:
        values["changed_by"] = word(_WORDS, "unknown", language)

    def text(kind: str, fallback: str) -> str:
        template = text_template(facts, kind, language)
        if template is None:
            return fallback
        by_lang = (facts.get("texts") or {}).get(kind) or {}
        rendered = fill(template, values, language, zone).strip()
        if "" in by_lang and language not in by_lang:
            rendered = localize(rendered, language)  # one text, maybe written "中文 / English"
        return rendered or fallback

    title = text("title", localize(a.title or a.rule, language)) or a.rule
    summary = text("summary", "")
    if a.status == "resolved" and summary and not _complete(facts, "summary", language, values):
        summary = ""  # the values it spoke of are gone (the order was deleted): the outcome says it
    outcome = _outcome(facts, values, language, ended) if a.status == "resolved" else ""
    return AlertTexts(title, summary, outcome)


def _complete(facts: dict[str, Any], kind: str, language: str, values: dict[str, Any]) -> bool:
    template = text_template(facts, kind, language) or ""
    return all(values.get(m.group(1)) is not None for m in _PLACEHOLDER.finditer(template) if m.group(1))


def _outcome(facts: dict[str, Any], values: dict[str, Any], language: str, ended: float | None) -> str:
    """What happened: the order's new status if it changed, and how late it was by then."""
    status = values.get("status")
    fired = facts.get("fired_status")
    parts = []
    if status and status != fired and status in STATUSES and status not in _NOT_AN_OUTCOME:
        parts.append(word(STATUSES, str(status), language))
    else:
        parts.append(word(_WORDS, "resolved", language))
    deadline = facts.get("deadline")
    told_late = any("{overdue_days}" in t for t in ((facts.get("texts") or {}).get("summary") or {}).values())
    if told_late and isinstance(deadline, (int, float)) and ended is not None and ended - deadline >= 86400:
        late = math.floor((ended - deadline) / 86400)
        parts.append(word(_WORDS, "late", language).format(days=locale.days(late, language)))
    return word(_WORDS, "sep", language).join(parts)
