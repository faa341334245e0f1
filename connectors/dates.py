"""Dates and times as real sheets and databases hold them.

Accepted: `2025-03-05`, `2025/3/5`, `2025.3.5`, `2025年3月5日`, `20250305`, any
of those followed by a time (`2025/3/5 14:30`), ISO 8601 datetimes with or
without offset, Excel serial numbers (1900 date system, as numbers or numeric
text) and `date`/`datetime` objects. Full-width digits are accepted too.

Dates that put day and month before the year (`3/5/2025`, `05.03.25 14:30`)
read only with a `DateStyle`: `monthfirst` or `dayfirst` says which order the
column holds, and `formats` (strptime patterns such as `%m/%d/%Y`) say it
exactly. Without one such a cell is an error, never a guess: `readings` tells
which orders a text allows, so that `connectors check` can say what a column
holds.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
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
# Day and month before the year (3/5/2025, 05.03.25 14:30, 3-5-2025 2:05 PM): the order is
# the column's, said by a DateStyle.
_DMY_RE = re.compile(
    r"(?P<a>\d{1,2})(?P<sep>[-/.])(?P<b>\d{1,2})(?P=sep)(?P<y>\d{4}|\d{2})"
    r"(?:(?:\s+|T)(?P<H>\d{1,2}):(?P<M>\d{2})(?::(?P<S>\d{2}))?(?:\s*(?P<ampm>[AaPp][Mm]))?)?"
)
ORDERS = ("monthfirst", "dayfirst")


@dataclass(frozen=True, slots=True)
class DateStyle:
    """How one column writes its dates, beyond the shapes read without help.

    `formats`: strptime patterns tried in order on text cells; `order`: "monthfirst" or
    "dayfirst" for texts like 3/5/2025. Year-first texts, Excel serials and the database's
    own dates read as always."""

    formats: tuple[str, ...] = ()
    order: str | None = None

    def describe(self) -> str:
        """The style as a person wrote it in the connectors file."""
        parts = [f"format {', '.join(self.formats)}"] if self.formats else []
        if self.order:
            parts.append(f"{self.order}: true")
        return "; ".join(parts) or "no format or order"


def parse_date(value: object, default_tz: tzinfo = UTC, style: DateStyle | None = None) -> date | datetime:
    """Parse a date (→ `date`) or a date with time (→ aware `datetime`).

    Naive datetimes get `default_tz`; `style` reads the column's own formats and day/month
    order. Raises ValueError on anything else.
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
    if style is not None and style.formats:
        parsed_by_format = _by_format(text, style.formats, default_tz)
        if parsed_by_format is not None:
            return parsed_by_format
    dmy = _DMY_RE.fullmatch(text)
    if dmy:
        return _from_dmy(dmy, value, style, default_tz)
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


def parse_datetime(value: object, default_tz: tzinfo = UTC, style: DateStyle | None = None) -> datetime:
    """Like parse_date, but a plain date becomes midnight in `default_tz`."""
    parsed = parse_date(value, default_tz, style)
    if isinstance(parsed, datetime):
        return parsed
    return datetime.combine(parsed, time(), tzinfo=default_tz)


def readings(value: object) -> tuple[bool, bool] | None:
    """For a text with day and month before the year: (reads month-first, reads day-first);
    None for any other value (those read one way or not at all)."""
    if not isinstance(value, str):
        return None
    match = _DMY_RE.fullmatch(unicodedata.normalize("NFKC", value).strip())
    return _readings(match) if match else None


def _readings(m: re.Match[str]) -> tuple[bool, bool]:
    year, a, b = _year(m["y"]), int(m["a"]), int(m["b"])
    return _valid(year, a, b), _valid(year, b, a)


def _valid(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _year(text: str) -> int:
    # strptime's %y rule (POSIX): 69-99 are 19xx, 00-68 are 20xx.
    if len(text) == 4:
        return int(text)
    short = int(text)
    return short + (1900 if short >= 69 else 2000)


def _from_dmy(m: re.Match[str], original: str, style: DateStyle | None, default_tz: tzinfo) -> date | datetime:
    """A day-and-month-first text read in the style's order; without one, an error that says
    how the text reads (one cell never decides a column's order)."""
    order = style.order if style is not None else None
    month_first, day_first = _readings(m)
    if order is None:
        if style is not None and style.formats:
            raise ValueError(f"not a date: {original!r} does not match {', '.join(style.formats)}")
        hint = ("either way" if month_first and day_first
                else f"only {'month-first' if month_first else 'day-first'} here" if month_first or day_first
                else "neither way")
        raise ValueError(f"not a date: {original!r} puts day and month before the year ({hint}); "
                         "say which with monthfirst: true or dayfirst: true (or format:)")
    first, second = int(m["a"]), int(m["b"])
    month, day = (first, second) if order == "monthfirst" else (second, first)
    if not (month_first if order == "monthfirst" else day_first):
        other = "day-first" if order == "monthfirst" else "month-first"
        reads_other = day_first if order == "monthfirst" else month_first
        also = f"; it reads {other}: is the column {other}?" if reads_other else ""
        raise ValueError(f"not a date: {original!r} is no date read {order.replace('first', '-first')}"
                         f" (month {month}, day {day}){also}")
    parsed = date(_year(m["y"]), month, day)
    if m["H"] is None:
        return parsed
    hour = int(m["H"])
    if m["ampm"]:
        if not 1 <= hour <= 12:
            raise ValueError(f"not a date: {original!r} has hour {hour} with {m['ampm']}")
        hour = hour % 12 + (12 if m["ampm"].lower() == "pm" else 0)
    try:
        clock = time(hour, int(m["M"]), int(m["S"] or 0))
    except ValueError as exc:
        raise ValueError(f"not a date: {original!r} ({exc})") from None
    return datetime.combine(parsed, clock, tzinfo=default_tz)


def _by_format(text: str, formats: tuple[str, ...], default_tz: tzinfo) -> date | datetime | None:
    """The text read by the first format it matches, or None."""
    for fmt in formats:
        try:
            parsed = datetime.strptime(text, fmt)  # naive: default_tz, below
        except ValueError:
            continue
        if not _has_time(fmt):
            return parsed.date()
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=default_tz)
    return None


def _has_time(fmt: str) -> bool:
    return any(d in fmt for d in ("%H", "%I", "%M", "%S", "%f", "%p", "%z", "%X", "%c", "%T", "%R"))


def check_format(fmt: str) -> str | None:
    """Why a strptime pattern cannot read dates, or None."""
    if "%" not in fmt:
        return f"format {fmt!r} has no % directive (e.g. %m/%d/%Y)"
    if not any(d in fmt for d in ("%d", "%j", "%x", "%c")):
        return f"format {fmt!r} has no day (%d)"
    try:
        datetime.strptime(datetime(2001, 2, 3, 4, 5, 6).strftime(fmt), fmt)
    except ValueError as exc:
        return f"format {fmt!r} does not read what it writes: {exc}"
    return None


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
