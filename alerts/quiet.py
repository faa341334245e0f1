"""Quiet hours: when a person does not want non-critical notifications, in their own time zone.

Written as `22:00-08:00` (a range past midnight belongs to the day it starts
on) with optional days in front: `sat,sun 00:00-24:00`, `mon-fri 12:00-13:00`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_RANGE = re.compile(r"^\s*(?:(?P<days>[a-z,\-]+)\s+)?(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$")


@dataclass(frozen=True)
class QuietRange:
    days: frozenset[int]  # weekday numbers (Monday = 0) the range starts on
    start: int  # minutes after midnight
    end: int  # minutes after midnight; <= start means it ends the next day

    def covers(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        today, yesterday = local.weekday(), (local.weekday() - 1) % 7
        if self.start < self.end:
            return today in self.days and self.start <= minute < self.end
        # Past midnight: the evening part today, or the morning part of yesterday's range.
        return (today in self.days and minute >= self.start) or (yesterday in self.days and minute < self.end)


def _minutes(text: str) -> int:
    hours, minutes = (int(p) for p in text.split(":"))
    if not (0 <= hours <= 24 and 0 <= minutes < 60) or (hours == 24 and minutes):
        raise ValueError(f"{text} is not a time of day (00:00 to 24:00)")
    return hours * 60 + minutes


def _days(text: str) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            first, last = part.split("-", 1)
            if first not in _DAYS or last not in _DAYS:
                raise ValueError(f"unknown day in {part!r}; days are {', '.join(_DAYS)}")
            i, j = _DAYS.index(first), _DAYS.index(last)
            out.update(range(i, j + 1) if i <= j else [*range(i, 7), *range(j + 1)])
        elif part in _DAYS:
            out.add(_DAYS.index(part))
        else:
            raise ValueError(f"unknown day {part!r}; days are {', '.join(_DAYS)}")
    return frozenset(out)


def parse_range(text: str) -> QuietRange:
    """Parse `[days ]HH:MM-HH:MM`; ValueError says what is wrong."""
    m = _RANGE.match(text.lower()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"quiet hours look like 22:00-08:00 or sat,sun 00:00-24:00, not {text!r}")
    days = _days(m["days"]) if m["days"] else frozenset(range(7))
    start, end = _minutes(m["start"]), _minutes(m["end"])
    if start == end:
        raise ValueError(f"{text!r} is an empty range")
    return QuietRange(days, start, end)


@dataclass(frozen=True)
class QuietHours:
    ranges: tuple[QuietRange, ...]
    zone: ZoneInfo

    def active(self, now: datetime) -> bool:
        local = now.astimezone(self.zone)
        return any(r.covers(local) for r in self.ranges)

    def ends(self, now: datetime) -> datetime:
        """When the quiet time around `now` is over (now itself if it is not quiet)."""
        t = now
        # Minute steps are plenty: quiet hours are written in minutes; a week bounds the search.
        for _ in range(7 * 1440):
            if not self.active(t):
                return t
            t = (t + timedelta(minutes=1)).replace(second=0, microsecond=0)
        return t
