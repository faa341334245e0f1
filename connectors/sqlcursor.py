"""Cursor values of the sql connector: bookmark encoding, ordering, lookback, seq.

A cursor is whatever the source's growing column holds: a datetime, a date,
an integer id, or text (SQLite hands timestamps back as text). The bookmark
keeps it as JSON that decodes back to the same database value.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa

from connectors.dates import parse_date

Lookback = timedelta | int


class LookbackError(ValueError):
    """The lookback does not fit the cursor's kind (a duration for an id…)."""


def encode(value: Any) -> Any:
    """A cursor/key value as JSON that `decode` turns back into the same DB value."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    raise TypeError(f"cannot bookmark a {type(value).__name__} cursor/key value: {value!r}")


def decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if "datetime" in value:
        return datetime.fromisoformat(value["datetime"])
    if "date" in value:
        return date.fromisoformat(value["date"])
    return Decimal(value["decimal"])


def after(cols: Sequence[sa.ColumnElement[Any]], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    """(c0, c1, …) > (v0, v1, …) spelled out: row-value comparison is not indexed everywhere."""
    first, value = cols[0], values[0]
    if len(cols) == 1:
        return first > value
    return sa.or_(first > value, sa.and_(first == value, after(cols[1:], values[1:])))


def is_integral(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, Decimal):
        return value == value.to_integral_value()
    return isinstance(value, str) and value.isdigit()


def shift_back(value: Any, lookback: Lookback, column: str) -> Any:
    """The cursor value `lookback` before `value`, of the same kind (for the lookback scan)."""
    if isinstance(lookback, timedelta):
        if isinstance(value, datetime):
            return value - lookback
        if isinstance(value, date):
            return value - timedelta(days=max(1, lookback.days))
        if isinstance(value, str) and not value.isdigit():
            return _shift_text(value, lookback, column)
        raise LookbackError(
            f"lookback is a duration but cursor {column!r} holds {value!r}; "
            "give a number of ids (e.g. lookback: 1000)"
        )
    if is_integral(value):
        low = int(value) - lookback
        return str(low) if isinstance(value, str) else type(value)(low)
    raise LookbackError(
        f"lookback is a count but cursor {column!r} holds {value!r}; "
        "give a duration (e.g. lookback: 10m)"
    )


_TEXT_TS = re.compile(r"(\d{4}-\d{2}-\d{2})([ T])(\d{2}:\d{2}:\d{2})(\.\d+)?(.*)")


def _shift_text(value: str, lookback: timedelta, column: str) -> str:
    # Timestamps kept as text compare as text: keep the source's own layout.
    match = _TEXT_TS.fullmatch(value)
    if match is None:
        try:
            return (date.fromisoformat(value) - timedelta(days=max(1, lookback.days))).isoformat()
        except ValueError:
            raise LookbackError(
                f"cursor {column!r} holds text that is not a timestamp ({value!r}); "
                "a lookback needs a time or an id"
            ) from None
    day, sep, clock, fraction, rest = match.groups()
    moved = datetime.fromisoformat(f"{day}T{clock}{fraction or ''}") - lookback
    text = moved.isoformat(sep=sep, timespec="microseconds" if fraction else "seconds")
    return text + rest


def ts_and_seq(cursor: Any, now: datetime, tz: tzinfo) -> tuple[datetime, int | str]:
    """ts = the cursor when it is a time (naive = `tz`), else now; seq = the cursor."""
    if isinstance(cursor, datetime):
        when = cursor if cursor.tzinfo is not None else cursor.replace(tzinfo=tz)
        return when, utc_text(when)
    if is_integral(cursor):
        return now, int(cursor)  # an id, even as text: never an Excel serial date
    parsed: date | datetime | None = None
    if isinstance(cursor, (date, str)):
        try:  # SQLite hands timestamps back as text
            parsed = parse_date(cursor, tz)
        except ValueError:
            parsed = None
    if parsed is None:
        return now, str(cursor)
    if not isinstance(parsed, datetime):
        parsed = datetime.combine(parsed, time(), tzinfo=tz)
    return parsed, utc_text(parsed)


def utc_text(when: datetime) -> str:
    """`when` (aware) in UTC as fixed-width ISO text, so that seq strings sort as the times do:
    what isoformat(timespec="microseconds") writes."""
    when = when.astimezone(UTC)
    # orjson writes the same text as CPython's isoformat (for UTC) in a fifth of the time,
    # which was a tenth of the sql connector's time per row; it leaves out a zero fraction.
    text = orjson.dumps(when).decode()[1:-1]
    return text if when.microsecond else f"{text[:19]}.000000{text[19:]}"


def delete_seq(hwm: Any, now: datetime, tz: tzinfo) -> int | str:
    """The seq of a delete found by reconciliation: after every seq read so far."""
    if is_integral(hwm):
        return int(hwm) + 1
    stamp = utc_text(now)
    if hwm is None:
        return stamp
    # A naive hwm is in `tz`, as the rows' seqs were: read as UTC it could lie hours ahead,
    # and a key re-created meanwhile would have an older seq than its delete.
    _, last = ts_and_seq(hwm, now, tz)
    return max(stamp, str(last))
