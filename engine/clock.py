"""Time for the engine: an injectable clock, epoch conversion, durations and business days.

The engine never reads the wall clock itself: the live pipeline passes
`time.time`, tests and backtests pass a `SimulatedClock`. All instants are
epoch seconds (float, UTC).

Business time counts only Monday–Friday (UTC): `business_seconds(t)` is the
number of weekday seconds since a reference Monday, flat over weekends, so
"2 business days" is a plain difference of 2 × 86,400 on that axis.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

Clock = Callable[[], float]

DAY = 86400.0
_WEEK = 7 * DAY
_BUSINESS_WEEK = 5 * DAY
_MONDAY = 4 * DAY  # 1970-01-05 00:00 UTC was a Monday

_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY, "w": _WEEK, "bd": DAY}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(bd|[smhdw])")
_HINT = "use e.g. 30m, 2h, 1d, 1w, 1d12h, or 2bd for business days"


class SimulatedClock:
    """A clock that only moves when told to (tests, backtests)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def set(self, instant: float) -> None:
        self.now = float(instant)

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@dataclass(frozen=True, slots=True)
class Offset:
    """A signed duration; `business` means it is measured in business time."""

    seconds: float
    business: bool = False


def parse_offset(text: Any, allow_business: bool = True) -> Offset:
    """`90s`, `15m`, `2h`, `1d12h`, `1w`, `2bd` → Offset; raises ValueError with the reason."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        # A YAML value of the wrong kind is a mistake in a rule file, reported like any other.
        raise ValueError(f"not a duration: {text!r} ({_HINT})")  # noqa: TRY004
    raw = str(text).strip()
    parts = list(_PART.finditer(raw))
    if not raw or not parts or "".join(p.group(0) for p in parts).replace(" ", "") != raw.replace(" ", ""):
        raise ValueError(f"not a duration: {text!r} ({_HINT})")
    units = {p.group(2) for p in parts}
    if "bd" in units and len(parts) > 1:
        raise ValueError(f"business days do not mix with other units: {text!r}")
    if "bd" in units and not allow_business:
        raise ValueError(f"business days (bd) are only allowed in before/after: {text!r}")
    seconds = sum(float(p.group(1)) * _UNIT[p.group(2)] for p in parts)
    return Offset(seconds, "bd" in units)


def parse_duration(text: Any) -> float:
    """A calendar duration in seconds (no business days)."""
    return parse_offset(text, allow_business=False).seconds


_PARSED: dict[str, float | None] = {}  # the same date strings come back again and again


def to_epoch(value: Any) -> float | None:
    """Epoch seconds of a date or timestamp value; dates count from midnight UTC; None if not a time."""
    if isinstance(value, str):
        try:
            return _PARSED[value]
        except KeyError:
            pass
        if len(_PARSED) > 100_000:
            _PARSED.clear()
        try:
            parsed = datetime.fromisoformat(value)  # 3.11 reads a trailing Z itself
        except ValueError:
            _PARSED[value] = None
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        _PARSED[value] = epoch = parsed.timestamp()
        return epoch
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def to_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def iso(epoch: float) -> str:
    return to_datetime(epoch).isoformat()


def business_seconds(epoch: float) -> float:
    """Weekday seconds elapsed since the reference Monday (weekends do not count)."""
    since = epoch - _MONDAY
    weeks = math.floor(since / _WEEK)
    rest = since - weeks * _WEEK
    return weeks * _BUSINESS_WEEK + min(rest, _BUSINESS_WEEK)


def from_business_seconds(value: float) -> float:
    """The earliest instant whose business_seconds() reaches `value`."""
    weeks = math.floor(value / _BUSINESS_WEEK)
    rest = value - weeks * _BUSINESS_WEEK
    if rest == 0:
        # The end of last week's Friday, which is Saturday 00:00, not Monday 00:00.
        return _MONDAY + (weeks - 1) * _WEEK + _BUSINESS_WEEK
    return _MONDAY + weeks * _WEEK + rest
