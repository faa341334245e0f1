"""Business calendars: which days are working days, in which time zone, for `bd` and time intervals.

Shipped: `plain` (Monday–Friday, UTC, no holidays: the default, and what `bd`
counted before calendars existed) and `cn` (mainland China, Asia/Shanghai:
statutory holidays and the swapped working days, 调休, from the
`chinesecalendar` package). A company adds its own in YAML (`calendars:` in a
rule file or in the alerts file), starting from a shipped one:

    calendars:
      acme:
        base: cn
        holidays: [2026-12-24, 2026-12-31]
        workdays: [2026-12-27]

Business time on a calendar is the number of working-day seconds since a
reference day, flat over days off, so "2 business days" stays a plain
difference of 2 × 86,400 on that axis. Each calendar computes its working-day
table once (a cumulative count per day): a lookup is an index, never a
holiday search.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.clock import DAY, business_seconds, from_business_seconds

DEFAULT = "plain"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SHORT = {name[:3]: i for i, name in enumerate(WEEKDAYS)}
_FIRST = date(1900, 1, 1)
_LAST = date(2300, 1, 1)
_EPOCH_DAY = (date(1970, 1, 1) - _FIRST).days
_CACHE_MAX = 100_000


@dataclass
class BusinessCalendar:
    """Working days (weekdays, less holidays, plus extra working days) in one time zone."""

    name: str
    weekdays: frozenset[int] = frozenset(range(5))  # Monday = 0
    timezone: str = "UTC"
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()  # working days that fall on a weekday off (调休)
    source: str = ""  # where the holidays come from
    covers: tuple[int, int] | None = None  # the years the holiday data covers
    _cum: list[int] = field(default_factory=list, repr=False, compare=False)
    _fixed: float | None = field(default=None, repr=False, compare=False)
    _seen: dict[float, float] = field(default_factory=dict, repr=False, compare=False)

    def is_working(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() in self.weekdays and day not in self.holidays

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def _table(self) -> list[int]:
        """cum[i]: working days before day i (counted from _FIRST); built once."""
        if not self._cum:
            cum, n, day = [0], 0, _FIRST
            one = timedelta(days=1)
            while day < _LAST:
                n += self.is_working(day)
                cum.append(n)
                day += one
            self._cum = cum
            self._fixed = _fixed_offset(self.zone)
        return self._cum

    def _offset(self, epoch: float) -> float:
        if self._fixed is not None and epoch >= _FIXED_FROM:
            return self._fixed
        offset = datetime.fromtimestamp(epoch, self.zone).utcoffset()
        return offset.total_seconds() if offset else 0.0

    def seconds(self, epoch: float) -> float:
        """Working-day seconds elapsed since the reference day (days off do not count)."""
        try:
            return self._seen[epoch]
        except KeyError:
            pass
        cum = self._table()
        local = epoch + self._offset(epoch)
        day = math.floor(local / DAY)
        index = min(max(day + _EPOCH_DAY, 0), len(cum) - 2)
        rest = local - day * DAY
        value = cum[index] * DAY + (rest if cum[index + 1] > cum[index] else 0.0)
        if len(self._seen) > _CACHE_MAX:
            self._seen.clear()
        self._seen[epoch] = value
        return value

    def from_seconds(self, value: float) -> float:
        """The earliest instant whose seconds() reaches `value`."""
        cum = self._table()
        n = math.floor(value / DAY)
        rest = value - n * DAY
        if rest == 0:
            # The end of the n-th working day: the midnight after it, not the next working morning.
            index = bisect.bisect_left(cum, n)
        else:
            index = bisect.bisect_left(cum, n + 1) - 1
        index = min(max(index, 0), len(cum) - 1)
        midnight = (index - _EPOCH_DAY) * DAY  # local midnight, as if the zone were UTC
        if self._fixed is not None and midnight >= _FIXED_FROM + DAY:
            instant = midnight - self._fixed + rest
        else:
            local = datetime(1970, 1, 1) + timedelta(days=index - _EPOCH_DAY)
            instant = local.replace(tzinfo=self.zone).timestamp() + rest
        # Rounding must not put a deadline a hair before the instant its comparison flips.
        for _ in range(64):
            if self.seconds(instant) >= value:
                break
            instant = math.nextafter(instant, math.inf)
        return instant

    def next_working_day(self, day: date) -> date:
        """`day` itself if it is a working day, else the next one."""
        for _ in range(366):
            if self.is_working(day):
                return day
            day += timedelta(days=1)
        return day


@dataclass
class _Plain(BusinessCalendar):
    """Monday–Friday in UTC: the same arithmetic as before calendars existed (no table)."""

    def __post_init__(self) -> None:
        # The plain functions themselves, not methods around them: the cost per fact stays as it was.
        self.__dict__["seconds"] = business_seconds
        self.__dict__["from_seconds"] = from_business_seconds

    def seconds(self, epoch: float) -> float:
        return business_seconds(epoch)

    def from_seconds(self, value: float) -> float:
        return from_business_seconds(value)


_FIXED_FROM = datetime(2000, 1, 1, tzinfo=UTC).timestamp()


def _fixed_offset(zone: ZoneInfo) -> float | None:
    """The zone's UTC offset if it has not changed since 2000 (a sample per month), else None."""
    offsets = set()
    for year in range(2000, 2101):
        for month in range(1, 13):
            offset = datetime(year, month, 15, 12, tzinfo=zone).utcoffset()
            offsets.add(offset.total_seconds() if offset else 0.0)
            if len(offsets) > 1:
                return None
    return offsets.pop()


def _china() -> BusinessCalendar:
    import chinese_calendar  # the statutory holidays and 调休 days, as published by the State Council
    from chinese_calendar import constants

    holidays = frozenset(constants.holidays)
    workdays = frozenset(constants.workdays)
    years = sorted({d.year for d in holidays})
    return BusinessCalendar(
        "cn", frozenset(range(5)), "Asia/Shanghai", holidays, workdays,
        f"chinesecalendar {getattr(chinese_calendar, '__version__', '')}".strip(),
        (years[0], years[-1]) if years else None)


_SHIPPED = {"plain": lambda: _Plain("plain", source="Monday–Friday, no holidays"), "cn": _china}
SHIPPED = tuple(sorted(_SHIPPED))
_LOADED: dict[str, BusinessCalendar] = {}


def shipped(name: str) -> BusinessCalendar | None:
    """A shipped calendar by name (built once, on first use)."""
    if name not in _LOADED and name in _SHIPPED:
        _LOADED[name] = _SHIPPED[name]()
    return _LOADED.get(name)


def default() -> BusinessCalendar:
    """Monday–Friday in UTC: what `bd` counts on when a rule names no calendar."""
    found = shipped(DEFAULT)
    assert found is not None
    return found


def weekday_set(items: Iterable[Any]) -> frozenset[int]:
    """`['monday:friday', 'sat']` (Alertmanager's spelling, or three letters) → weekday numbers; ValueError."""
    out: set[int] = set()
    for item in items:
        text = str(item).strip().lower()
        first, _, last = text.partition(":")
        begin, end = _day(first), _day(last or first)
        if begin > end:
            raise ValueError(f"{text}: start day cannot be after end day")
        out.update(range(begin, end + 1))
    return frozenset(out)


def _day(text: str) -> int:
    if text in WEEKDAYS:
        return WEEKDAYS.index(text)
    if text in _SHORT:
        return _SHORT[text]
    raise ValueError(f"{text} is not a valid weekday ({', '.join(WEEKDAYS)})")


def _dates(value: Any, key: str) -> frozenset[date]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise ValueError(f"{key} is a list of dates (2026-10-01) or ranges ('2026-10-01:2026-10-07')")  # noqa: TRY004 - a mistake in a YAML file
    out: set[date] = set()
    for item in value:
        if isinstance(item, datetime):
            out.add(item.date())
            continue
        if isinstance(item, date):
            out.add(item)
            continue
        first, _, last = str(item).partition(":")
        try:
            begin, end = date.fromisoformat(first.strip()), date.fromisoformat((last or first).strip())
        except ValueError:
            raise ValueError(f"{key}: {item!r} is not a date (2026-10-01) or a range ('2026-10-01:2026-10-07')") from None
        if end < begin:
            raise ValueError(f"{key}: {item!r} ends before it starts")
        while begin <= end:
            out.add(begin)
            begin += timedelta(days=1)
    return frozenset(out)


CALENDAR_KEYS = ("base", "timezone", "weekdays", "holidays", "workdays")


def parse_calendar(name: str, node: Mapping[str, Any], known: Mapping[str, BusinessCalendar]) -> BusinessCalendar:
    """One calendar from YAML (`known`: calendars defined before it, for `base`); ValueError says what is wrong."""
    unknown = [k for k in node if k not in CALENDAR_KEYS]
    if unknown:
        raise ValueError(f"calendar {name}: unknown key {unknown[0]!r}; known: {', '.join(CALENDAR_KEYS)}")
    base_name = node.get("base")
    base: BusinessCalendar | None = None
    if base_name is not None:
        base = known.get(str(base_name)) or shipped(str(base_name))
        if base is None:
            raise ValueError(f"calendar {name}: base {base_name!r} is not a calendar; known: "
                             f"{', '.join(sorted(set(known) | set(_SHIPPED)))}")
    timezone = str(node.get("timezone", base.timezone if base else "UTC"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"calendar {name}: unknown time zone {timezone!r} (use an IANA name like Asia/Shanghai)") from None
    weekdays = base.weekdays if base else frozenset(range(5))
    if "weekdays" in node:
        if not isinstance(node["weekdays"], list):
            raise ValueError(f"calendar {name}: weekdays is a list like ['monday:friday']")
        weekdays = weekday_set(node["weekdays"])
    holidays = _dates(node.get("holidays"), "holidays")
    workdays = _dates(node.get("workdays"), "workdays")
    both = sorted(holidays & workdays)
    if both:
        raise ValueError(f"calendar {name}: {both[0]} is both a holiday and a working day")
    if base is not None:
        # The company's own days win over the base calendar's.
        holidays, workdays = (base.holidays - workdays) | holidays, (base.workdays - holidays) | workdays
    source = f"{base.source} + own days" if base and base.source else "own days"
    return BusinessCalendar(name, weekdays, timezone, holidays, workdays, source, base.covers if base else None)
