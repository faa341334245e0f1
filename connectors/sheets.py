"""Read spreadsheet files into rows: CSV (any encoding people export) and XLSX.

A `Sheet` holds the header and the data rows numbered as a person sees them
(the header row is `header_row`, usually 1), plus what looks wrong without
losing data: blank rows between data rows, and cells that are the hidden
part of a merged range (their value sits in the range's first cell).
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from dataclasses import dataclass, field
from typing import Any

XLSX_SUFFIXES = (".xlsx", ".xlsm")
# What people call their Chinese CSVs is rarely the exact codec: a "GB2312" file often holds
# GBK's characters (喆, 堃) and a "GBK" one GB18030's. GB18030 decodes both to the same text.
_SUPERSET = {"gb2312": "gb18030", "gbk": "gb18030"}


class SheetError(ValueError):
    """The file as a whole cannot be read (encoding, CSV syntax, not a workbook, header)."""


@dataclass(slots=True)
class Sheet:
    """One table read from a file."""

    name: str | None
    header: list[str]
    rows: list[tuple[int, dict[str, Any]]]
    blank_rows: list[int] = field(default_factory=list)
    # row number → [(header of the column, merged range like "C4:C6")]
    merged: dict[int, list[tuple[str, str]]] = field(default_factory=dict)


def detect_encoding(data: bytes) -> str:
    """BOM first; then UTF-8 if the bytes are valid UTF-8; else GB18030 (a GBK superset)."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # Excel's "Unicode text" export
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        # GB18030 decodes almost any bytes, so a UTF-8 file with one stray byte (a Latin-1
        # "ü" pasted in) would become mojibake in every row. In GBK text about one character
        # in six happens to be valid UTF-8; far more valid than invalid is damaged UTF-8,
        # and the decoding error then reports the file instead.
        text = data.decode("utf-8", "replace")
        bad = text.count("\ufffd")
        if sum(1 for c in text if c > "\x7f") - bad > 4 * bad:
            return "utf-8"
        return "gb18030"
    return "utf-8"


def read_csv(data: bytes, encoding: str = "auto", delimiter: str = ",", header_row: int = 1) -> Sheet:
    """Decode and split a CSV file; cells stripped, short rows padded."""
    name = detect_encoding(data) if encoding == "auto" else encoding
    try:
        text = data.decode(_SUPERSET.get(codecs.lookup(name).name, name))
    except UnicodeDecodeError as exc:
        raise SheetError(
            f"cannot decode the file as {name}: {exc.reason} at byte {exc.start}"
        ) from None
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise SheetError(f"not a readable CSV file: {exc}") from None
    if len(records) < header_row:
        return Sheet(None, [], [])
    header = [cell.strip().lstrip("\ufeff").strip() for cell in records[header_row - 1]]
    rows = []
    for number, cells in enumerate(records[header_row:], start=header_row + 1):
        padded = cells + [""] * (len(header) - len(cells))
        rows.append((number, {h: padded[i].strip() for i, h in enumerate(header) if h}))
    return _with_blanks(Sheet(None, header, rows))


def read_xlsx(data: bytes, sheet: str | None = None, header_row: int = 1) -> Sheet:
    """Read one worksheet (`sheet`, default the first) with cached formula values."""
    import openpyxl  # imported here: CSV-only set-ups never pay for it

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise SheetError(f"not a readable XLSX workbook (half-written or damaged?): {exc}") from None
    try:
        if sheet is None:
            ws = book.worksheets[0]
        elif sheet in book.sheetnames:
            ws = book[sheet]
        else:
            raise SheetError(f"no sheet {sheet!r}; the workbook has: {', '.join(book.sheetnames)}")
        values = list(ws.iter_rows(min_row=header_row, values_only=True))
        ranges = [r for r in ws.merged_cells.ranges]
        title = ws.title
    finally:
        book.close()
    if not values:
        return Sheet(title, [], [])
    header = [_header_text(v) for v in values[0]]
    rows = []
    for number, cells in enumerate(values[1:], start=header_row + 1):
        padded = list(cells) + [None] * (len(header) - len(cells))
        rows.append((number, {h: _cell(padded[i]) for i, h in enumerate(header) if h}))
    result = _with_blanks(Sheet(title, header, rows))
    for rng in ranges:
        for row in range(max(rng.min_row, header_row + 1), rng.max_row + 1):
            for col in range(rng.min_col, rng.max_col + 1):
                if (row, col) == (rng.min_row, rng.min_col) or col > len(header):
                    continue
                if header[col - 1]:
                    result.merged.setdefault(row, []).append((header[col - 1], rng.coord))
    return result


def _header_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lstrip("\ufeff").strip()


def _cell(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _blank(cells: dict[str, Any]) -> bool:
    return all(v is None or (isinstance(v, str) and not v.strip()) for v in cells.values())


def _with_blanks(sheet: Sheet) -> Sheet:
    """Drop blank rows; remember those followed by data (trailing ones are just the end)."""
    last_data = max((n for n, cells in sheet.rows if not _blank(cells)), default=0)
    sheet.blank_rows = [n for n, cells in sheet.rows if _blank(cells) and n < last_data]
    sheet.rows = [(n, cells) for n, cells in sheet.rows if not _blank(cells)]
    return sheet
