"""Named time intervals for routes (`mute_time_intervals`, `active_time_intervals`), as in Alertmanager.

The format is Alertmanager's (`time_intervals:` at the top of the alerts
file, each a name and a list of intervals with `times`, `weekdays`,
`days_of_month`, `months`, `years` and `location`), validated the way its
loader does, with the same messages. orderwatch adds `working_days: <calendar>`
and `non_working_days: <calendar>`: the day is (or is not) a working day of a
business calendar (engine/calendar.py), so that "outside working hours" can
follow public holidays and swapped working days.

An interval holds at an instant when every field it sets holds (a field not
set holds always); a named interval holds when one of its intervals does.
"""

from __future__ import annotations

import calendar as gregorian
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from alerts.yamlcheck import Problems, as_list, as_map, pos_at
from engine.calendar import BusinessCalendar
from orderwatch.yamlsrc import Map, Pos

# Alertmanager counts weekdays from Sunday = 0.
WEEKDAYS = {"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6}
MONTHS = {name.lower(): i for i, name in enumerate(gregorian.month_name) if name}
_MONTH_NAMES = {i: name for name, i in MONTHS.items()}
_TIME = re.compile(r"^((([01][0-9])|(2[0-3])):[0-5][0-9])$|(^24:00$)")
KEYS = ("times", "weekdays", "days_of_month", "months", "years", "location", "working_days", "non_working_days")

Range = tuple[int, int]


@dataclass(frozen=True)
class TimeInterval:
    times: tuple[Range, ...] | None = None  # minutes of the day, [start, end)
    weekdays: tuple[Range, ...] | None = None  # Sunday = 0
    days_of_month: tuple[Range, ...] | None = None  # negative: from the end of the month
    months: tuple[Range, ...] | None = None
    years: tuple[Range, ...] | None = None
    location: str | None = None  # IANA zone; None: UTC
    working_days: BusinessCalendar | None = None
    non_working_days: BusinessCalendar | None = None

    def contains(self, when: datetime) -> bool:
        """Whether the instant `when` (timezone-aware) falls in this interval."""
        zone = self.location or _calendar_zone(self)
        t = when.astimezone(ZoneInfo(zone)) if zone else when.astimezone(ZoneInfo("UTC"))
        if self.times is not None:
            minute = t.hour * 60 + t.minute
            if not any(start <= minute < end for start, end in self.times):
                return False
        if self.days_of_month is not None and not _day_of_month(self.days_of_month, t):
            return False
        if self.months is not None and not any(b <= t.month <= e for b, e in self.months):
            return False
        if self.weekdays is not None:
            weekday = (t.weekday() + 1) % 7
            if not any(b <= weekday <= e for b, e in self.weekdays):
                return False
        if self.years is not None and not any(b <= t.year <= e for b, e in self.years):
            return False
        if self.working_days is not None and not self.working_days.is_working(t.date()):
            return False
        return not (self.non_working_days is not None and self.non_working_days.is_working(t.date()))


def _calendar_zone(interval: TimeInterval) -> str | None:
    calendar = interval.working_days or interval.non_working_days
    return calendar.timezone if calendar else None


def _day_of_month(ranges: tuple[Range, ...], t: datetime) -> bool:
    days = gregorian.monthrange(t.year, t.month)[1]
    for begin, end in ranges:
        begin = days + begin + 1 if begin < 0 else begin
        end = days + end + 1 if end < 0 else end
        if begin > days:
            continue  # e.g. 30:31 in February: no day, rather than the last one
        begin, end = max(-days, min(begin, days)), max(-days, min(end, days))
        if begin <= t.day <= end:
            return True
    return False


def contains(intervals: Iterable[TimeInterval], when: datetime) -> bool:
    return any(i.contains(when) for i in intervals)


def muted_by(mute: Iterable[str], active: Iterable[str], intervals: Mapping[str, tuple[TimeInterval, ...]],
             when: datetime) -> list[str]:
    """What mutes a route at `when`: its mute intervals that hold, and "(outside …)" when it has active
    intervals and none holds (Alertmanager's mute-time and active-time stages); empty: not muted."""
    out = [name for name in mute if contains(intervals.get(name, ()), when)]
    active = list(active)
    if active and not any(contains(intervals.get(name, ()), when) for name in active):
        out.append("(outside " + ", ".join(active) + ")")
    return out


# --- parsing, with Alertmanager's messages -------------------------------------------


def _split(text: str) -> tuple[str, str]:
    text = text.lower()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 2:
            raise ValueError(f"couldn't parse range {text}, invalid format")
        return parts[0], parts[1]
    return text, text


def _int(text: str, what: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise ValueError(f"{text} is not a valid {what}") from None


def weekday_range(text: str) -> Range:
    first, last = _split(text)
    for part in (first, last):
        if part not in WEEKDAYS:
            raise ValueError(f"{part} is not a valid weekday")
    begin, end = WEEKDAYS[first], WEEKDAYS[last]
    if begin > end:
        raise ValueError("start day cannot be before end day")
    return begin, end


def day_of_month_range(text: str) -> Range:
    first, last = _split(text)
    begin, end = _int(first, "day of the month"), _int(last, "day of the month")
    for n in (begin, end):
        if n == 0 or n < -31 or n > 31:
            raise ValueError(f"{n} is not a valid day of the month: out of range")
    if begin < 0 < end:
        raise ValueError("end day must be negative if start day is negative")
    # Negative days are checked against the shortest month (28 days), as Alertmanager does.
    if (28 + begin if begin < 0 else begin) > (28 + end if end < 0 else end):
        raise ValueError(f"end day {end} is always before start day {begin}")
    return begin, end


def _month(text: str) -> int:
    if text in MONTHS:
        return MONTHS[text]
    try:
        n = int(text, 10)
    except ValueError:
        raise ValueError(f"{text} is not a valid month") from None
    if not 1 <= n <= 12:
        raise ValueError(f"{text} is not a valid month")
    return n


def month_range(text: str) -> Range:
    first, last = _split(text)
    begin, end = _month(first), _month(last)
    if begin > end:
        raise ValueError(f"end month {_MONTH_NAMES[end]} is before start month {_MONTH_NAMES[begin]}")
    return begin, end


def year_range(text: str) -> Range:
    first, last = _split(text)
    begin, end = _int(first, "year"), _int(last, "year")
    if begin > end:
        raise ValueError(f"end year {end} is before start year {begin}")
    return begin, end


def _minutes(text: str) -> int:
    if not _TIME.match(text):
        raise ValueError(f"couldn't parse timestamp {text}, invalid format")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def time_range(node: Any) -> Range:
    if not isinstance(node, Mapping):
        raise ValueError("a time range is a mapping of start_time and end_time ('09:00', '17:00')")  # noqa: TRY004
    unknown = [k for k in node if k not in ("start_time", "end_time")]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in a time range; known: start_time, end_time")
    start, end = node.get("start_time"), node.get("end_time")
    if not start or not end:
        raise ValueError("both start and end times must be provided")
    first, last = _minutes(str(start)), _minutes(str(end))
    if first >= last:
        raise ValueError("start time cannot be equal or greater than end time")
    return first, last


def parse_interval(node: Any, pos: Pos, problems: Problems,
                   calendars: Mapping[str, BusinessCalendar] | None = None) -> TimeInterval | None:
    """One interval (a mapping of Alertmanager's fields); problems are added with their position."""
    doc = as_map(node, pos, "a time interval", problems)
    if doc is None:
        return None
    before = len(problems.items)
    for key in doc:
        if key not in KEYS:
            problems.add(doc.at(key), f"unknown key {key!r} in a time interval; known: {', '.join(KEYS)}")
    fields: dict[str, Any] = {}
    parsers = {"weekdays": weekday_range, "days_of_month": day_of_month_range, "months": month_range,
               "years": year_range}
    for key, parse in (*parsers.items(), ("times", time_range)):
        if key not in doc:
            continue
        items = as_list(doc[key], doc.at(key), key, problems)
        out = []
        for i, item in enumerate(items or []):
            if key != "times" and (isinstance(item, bool) or not isinstance(item, (str, int))):
                problems.add(pos_at(items, i, doc.at(key)), f"{key}: {item!r} is not a value or a range")
                continue
            try:
                out.append(parse(item if key == "times" else str(item)))  # type: ignore[operator]
            except ValueError as exc:
                problems.add(pos_at(items, i, doc.at(key)), str(exc))
        fields[key] = tuple(out)
    if "location" in doc:
        zone = doc["location"]
        try:
            ZoneInfo(str(zone))
            fields["location"] = str(zone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.add(doc.at("location"), f"unknown time zone {zone!r} (use an IANA name like Asia/Shanghai)")
    for key in ("working_days", "non_working_days"):
        if key in doc:
            found = (calendars or {}).get(str(doc[key]))
            if found is None:
                problems.add(doc.at(key), f"{key}: unknown calendar {doc[key]!r}; known: "
                             f"{', '.join(sorted(calendars or {})) or '(none)'}")
            fields[key] = found
    if len(problems.items) > before:
        return None
    return TimeInterval(**fields)


def parse_time_intervals(doc: Map, problems: Problems,
                         calendars: Mapping[str, BusinessCalendar]) -> dict[str, tuple[TimeInterval, ...]]:
    """The alerts file's `time_intervals` (and Alertmanager's older `mute_time_intervals`), by name."""
    out: dict[str, tuple[TimeInterval, ...]] = {}
    for top in ("mute_time_intervals", "time_intervals"):
        if top not in doc:
            continue
        items = as_list(doc[top], doc.at(top), top, problems)
        for i, item in enumerate(items or []):
            entry = as_map(item, pos_at(items, i), "a named time interval", problems)
            if entry is None:
                continue
            for key in entry:
                if key not in ("name", "time_intervals"):
                    problems.add(entry.at(key), f"unknown key {key!r}; a named time interval has name and time_intervals")
            name = entry.get("name")
            if not name or not isinstance(name, str):
                problems.add(entry.pos, "missing name in time interval")
                continue
            if name in out:
                problems.add(entry.at("name"), f"time interval {name!r} is not unique")
                continue
            parts: list[Any] = (as_list(entry["time_intervals"], entry.at("time_intervals"), "time_intervals",
                                        problems) or []) if entry.get("time_intervals") is not None else []
            parsed = [parse_interval(p, pos_at(parts, j, entry.pos), problems, calendars) for j, p in enumerate(parts)]
            out[name] = tuple(p for p in parsed if p is not None)
    return out
