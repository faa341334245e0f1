"""The analysis page as an XLSX workbook: the same figures as its JSON, one sheet per table.

    Rates            period, dimension (total/supplier/customer/owner), group, then for each rate
                     judged, good and rate (a fraction, shown as a percentage; empty when none judged)
    Ageing           direction, currency, count and amount in total and per bucket
    Weekly           ISO week, its Monday, one column per family
    Acknowledgement  person, name, alerts acknowledged, median seconds (and hours)

Headers are in the viewer's language; numbers are numbers (not texts), so the sheet sums them.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

RATES = ("on_time", "complete", "accurate")
PERCENT = "0.0%"


def _sheet(book: Workbook, title: str, header: list[str], rows: list[list[Any]],
           percent: frozenset[int] = frozenset()) -> None:
    sheet = book.create_sheet(title)
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(row)
        for i in percent:
            sheet.cell(sheet.max_row, i + 1).number_format = PERCENT
    for i, text in enumerate(header):
        sheet.column_dimensions[sheet.cell(1, i + 1).column_letter].width = max(10, len(str(text)) + 4)
    sheet.freeze_panes = "A2"


def workbook(doc: dict[str, Any], t: Callable[[str], str]) -> bytes:
    """The analysis document (console/analysis.py analysis_page) as XLSX bytes."""
    book = Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    header = [t("period"), t("dimension"), t("group"), t("name"), t("orders")]
    for rate in RATES:
        header += [f"{t(rate)} {t('judged')}", f"{t(rate)} {t('good')}", f"{t(rate)} {t('rate')}"]
    rows: list[list[Any]] = []
    for period in doc["periods"]:
        by = doc["rates"][period]
        for dim, groups in (("total", [{"group": "", "name": "", **by["total"]}]), *(
                (d, by[d]) for d in ("supplier", "customer", "owner"))):
            for g in groups:
                row = [t(f"period_{period}"), t(dim), g["group"], g["name"], g["orders"]]
                for rate in RATES:
                    row += [g[rate]["judged"], g[rate]["good"], g[rate]["rate"]]
                rows.append(row)
    _sheet(book, t("sheet_rates"), header, rows, percent=frozenset({7, 10, 13}))

    buckets = doc["ageing"]["buckets"]
    header = [t("direction"), t("currency"), t("count"), t("amount")]
    for b in buckets:
        header += [f"{b} {t('count')}", f"{b} {t('amount')}"]
    rows = []
    for r in doc["ageing"]["rows"]:
        row = [t(r["direction"]), r["currency"], r["count"], r["amount"]]
        for b in buckets:
            row += [r["buckets"][b]["count"], r["buckets"][b]["amount"]]
        rows.append(row)
    _sheet(book, t("sheet_ageing"), header, rows)

    weekly = doc["weekly"]
    families = list(weekly["families"])
    _sheet(book, t("sheet_weekly"), [t("week"), t("week_start"), *[t(f) for f in families]],
           [[w, s, *[weekly["families"][f][i] for f in families]]
            for i, (w, s) in enumerate(zip(weekly["weeks"], weekly["starts"], strict=True))])

    _sheet(book, t("sheet_ack"), [t("person"), t("name"), t("acknowledged_n"), t("median_seconds"),
                                  t("median_hours")],
           [[a["person"], a["name"], a["acknowledged"], a["median_seconds"], round(a["median_seconds"] / 3600, 2)]
            for a in doc["acknowledgement"]])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
