"""Dates and times as real sheets and databases hold them.

Accepted: `2025-03-05`, `2025/3/5`, `2025.3.5`, `2025年3月5日`, `20250305`, any
of those followed by a time (`2025/3/5 14:30`), ISO 8601 datetimes with or
without offset, Excel serial numbers (1900 date system, as numbers or numeric
text) and `date`/`datetime` objects. Full-width digits are accepted too.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal

# Excel's 1900 system counts 1900-01-01 as 1 and keeps Lotus 1-2-3's phantom
# 1900-02-29 as 60, so from serial 61 on day 0 is effectively 1899-12-30.
_EXCEL_DAY0 = date(1899, 12, 30)
_EXCEL_PHANTOM_LEAP_DAY = 60
_EXCEL_MAX_SERIAL = 2958465  # 9999-12-31

_EXPECTED = (
    "expected e.g. 2025-03-05, 2025/3/5, 2025年3月5日, an ISO datetime or an Excel serial number"
)

_DATE_RE = re.compile(
    r"(?P<y>\d{4})"
    r"(?:(?P<sep>[-/.])(?P<m>\d{1,2})(?P=sep)(?P<d>\d{1,2})"
    r"|\s*年\s*(?P<cm>\d{1,2})\s*月\s*(?P<cd>\d{1,2})\s*日?)"
    r"(?:(?:\s+|T)(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?"
    r"\s*(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?"
)
_COMPACT_RE = re.compile(r"(?P<y>(?:19|20)\d{2})(?P<m>\d{2})(?P<d>\d{2})")
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")


def parse_date(value: object, default_tz: tzinfo = UTC) -> date | datetime:
    """Parse a date (→ `date`) or a date with time (→ aware `datetime`).

    Naive datetimes get `default_tz`. Raises ValueError on anything else.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=default_tz)
    if isinstance(value, date):
        return value
    # A wrong type is a ValueError too: callers turn it into a dead letter, not a crash.
    # (bool is an int subclass, and never a date.)
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        shown = f"{type(value).__name__} {value!r}"
        raise ValueError(f"not a date: {shown}; {_EXPECTED}")  # noqa: TRY004
    if isinstance(value, (int, float, Decimal)):
        return _from_number(value, repr(value), default_tz)
    # NFKC turns full-width digits and punctuation (２０２５／３／５) into ASCII.
    text = unicodedata.normalize("NFKC", value).strip()
    if not text:
        raise ValueError("not a date: blank")
    if _NUMBER_RE.fullmatch(text):
        number: int | Decimal = int(text) if text.isdigit() else Decimal(text)
        return _from_number(number, repr(value), default_tz)
    match = _DATE_RE.fullmatch(text)
    if match:
        return _from_match(match, value, default_tz)
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"not a date: {value!r}; {_EXPECTED}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=default_tz)


def parse_datetime(value: object, default_tz: tzinfo = UTC) -> datetime:
    """Like parse_date, but a plain date becomes midnight in `default_tz`."""
    parsed = parse_date(value, default_tz)
    if isinstance(parsed, datetime):
        return parsed
    return datetime.combine(parsed, time(), tzinfo=default_tz)


def to_iso(value: date | datetime) -> str:
    """`YYYY-MM-DD` for a date; ISO 8601 with offset for a datetime (naive = UTC)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()
    return value.isoformat()


def _from_number(number: float | Decimal, shown: str, default_tz: tzinfo) -> date | datetime:
    if isinstance(number, int) or (isinstance(number, Decimal) and number == number.to_integral()):
        compact = _COMPACT_RE.fullmatch(str(int(number)))
        if compact:  # 20250305: far beyond any Excel serial, so never ambiguous
            return _make_date(int(compact["y"]), int(compact["m"]), int(compact["d"]), shown)
    serial = float(number)
    if not math.isfinite(serial) or not 1 <= serial < _EXCEL_MAX_SERIAL + 1:
        raise ValueError(
            f"not a date: {shown} is outside the Excel serial range 1..{_EXCEL_MAX_SERIAL}"
        )
    days = int(serial)
    if days == _EXCEL_PHANTOM_LEAP_DAY:
        raise ValueError(f"not a date: {shown} is Excel's 1900-02-29, a day that does not exist")
    day = _EXCEL_DAY0 + timedelta(days=days if days > _EXCEL_PHANTOM_LEAP_DAY else days + 1)
    # Excel stores times as binary fractions of a day; round to the millisecond it can show.
    millis = round((serial - days) * 86_400_000)
    if millis == 0:
        return day
    return datetime.combine(day, time(), tzinfo=default_tz) + timedelta(milliseconds=millis)


def _make_date(year: int, month: int, day: int, shown: str) -> date:
    try:
        return date(year, month, day)
    except ValueError as exc:
        raise ValueError(f"not a date: {shown} ({exc})") from None


def _from_match(m: re.Match[str], original: str, default_tz: tzinfo) -> date | datetime:
    month, day = (m["m"], m["d"]) if m["m"] else (m["cm"], m["cd"])
    parsed = _make_date(int(m["y"]), int(month), int(day), repr(original))
    if m["H"] is None:
        if m["tz"]:
            raise ValueError(f"not a date: {original!r} has an offset but no time")
        return parsed
    micros = int((m["f"] or "0")[:6].ljust(6, "0"))
    try:
        clock = time(int(m["H"]), int(m["M"]), int(m["S"] or 0), micros)
    except ValueError as exc:
        raise ValueError(f"not a date: {original!r} ({exc})") from None
    return datetime.combine(parsed, clock, tzinfo=_offset(m["tz"], original) or default_tz)


def _offset(text: str | None, original: str) -> tzinfo | None:
    if not text:
        return None
    if text == "Z":
        return UTC
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"not a date: {original!r} has an invalid UTC offset {text}")
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))
