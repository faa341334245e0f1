"""Values as their reader writes them, through Babel (CLDR data): dates and times in the reader's
time zone and locale, relative times, amounts with their currency, counts of days.

    zh: 2026年11月24日 · 2026年11月29日 14:27 中国标准时间 · 3天前 · ¥86,000.00 · 12 天
    en: 24 Nov 2026   · 29 Nov 2026 14:27 China Standard Time · 3 days ago · €5,700.00 · 12 days

A value is recognised by its shape (an ISO date, an ISO timestamp, a number) and, for amounts,
by its field name (`amount`, `*_amount`, `unit_price`) with the record's `currency`.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time, format_timedelta
from babel.numbers import UnknownCurrencyError, format_currency, format_decimal
from babel.units import format_unit

from engine.templates import is_money

#: The CLDR locale of each message language (en: day-month-year dates, `24 Nov 2026`).
LOCALES = {"zh": "zh_CN", "en": "en_GB"}

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def locale_of(language: str) -> str:
    return LOCALES.get(language, LOCALES["en"])


def as_time(value: Any) -> date | datetime | None:
    """A date or an aware timestamp (naive ones are UTC) from an ISO text; None for anything else."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        return None
    try:
        if _DATE.match(value):
            return date.fromisoformat(value)
        if _DATETIME.match(value):
            parsed = datetime.fromisoformat(value)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError:
        return None
    return None


def date_text(day: date, language: str) -> str:
    """`2026年11月24日` / `24 Nov 2026`."""
    return format_date(day, "medium", locale=locale_of(language))


def datetime_text(moment: datetime, language: str, zone: str) -> str:
    """The date and time in the reader's time zone, with the zone's name."""
    local = moment.astimezone(ZoneInfo(zone))
    loc = locale_of(language)
    return f"{format_date(local, 'medium', locale=loc)} {format_time(local, 'HH:mm zzzz', locale=loc)}"


_JUST_NOW = {"zh": "刚刚", "en": "just now"}


def relative(moment: datetime, now: datetime, language: str) -> str:
    """`3天前` / `3 days ago` (or `in 2 days`); under a minute, `刚刚` / `just now`."""
    delta = moment - now
    if abs(delta.total_seconds()) < 60:
        return _JUST_NOW.get(language, _JUST_NOW["en"])
    return format_timedelta(delta, add_direction=True, locale=locale_of(language))


def money(amount: float, currency: str | None, language: str) -> str:
    """`¥86,000.00` / `€5,700.00`; without a (known) currency, the number with its grouping."""
    loc = locale_of(language)
    if currency:
        try:
            return format_currency(amount, currency.upper(), locale=loc)
        except (UnknownCurrencyError, ValueError):
            return f"{format_decimal(amount, locale=loc)} {currency}"
    return format_decimal(amount, locale=loc)


def number(value: float, language: str) -> str:
    """`62,000` / `1,234.5`: grouped as the reader groups digits, at most two decimals."""
    return format_decimal(round(value, 2), locale=locale_of(language))


def days(count: int, language: str) -> str:
    """`12 天` / `12 days` (`1 day`)."""
    if language == "zh":
        return f"{count} 天"
    return format_unit(count, "duration-day", length="long", locale=locale_of(language))


def value_text(name: str, value: Any, values: dict[str, Any], language: str, zone: str,
               currency: bool = True) -> str:
    """One value of an alert's facts as its reader writes it (`currency`: amounts with the record's
    currency; off where the text names `{currency}` itself)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        if is_money(name) and currency:
            unit = values.get("currency")
            return money(value, str(unit) if unit else None, language)
        return number(value, language)
    moment = as_time(value)
    if isinstance(moment, datetime):
        return datetime_text(moment, language, zone)
    if isinstance(moment, date):
        return date_text(moment, language)
    return str(value)
