"""Dates in the shapes real sheets and databases hold them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from connectors.dates import parse_date, parse_datetime, to_iso

CST = timezone(timedelta(hours=8))


@pytest.mark.parametrize(
    "text",
    [
        "2025-03-05",
        "2025/3/5",
        "2025/03/05",
        "2025.3.5",
        "2025年3月5日",
        "2025年03月05日",
        "2025 年 3 月 5 日",
        " 2025-03-05 ",
        "20250305",
        "２０２５／３／５",
        "45721",
        45721,
        45721.0,
        Decimal(45721),
        date(2025, 3, 5),
    ],
)
def test_dates_in_every_shape_give_the_same_day(text: object) -> None:
    assert parse_date(text) == date(2025, 3, 5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-05T10:00:00+08:00", datetime(2025, 3, 5, 10, tzinfo=CST)),
        ("2025-03-05T02:00:00Z", datetime(2025, 3, 5, 2, tzinfo=UTC)),
        ("2025-03-05 10:00", datetime(2025, 3, 5, 10, tzinfo=UTC)),
        ("2025/3/5 9:30:15", datetime(2025, 3, 5, 9, 30, 15, tzinfo=UTC)),
        ("2025年3月5日 14:30", datetime(2025, 3, 5, 14, 30, tzinfo=UTC)),
        ("2025-03-05T10:00:00.123456789+0800", datetime(2025, 3, 5, 10, 0, 0, 123456, CST)),
        ("45721.5", datetime(2025, 3, 5, 12, tzinfo=UTC)),
        (45721.604166666664, datetime(2025, 3, 5, 14, 30, tzinfo=UTC)),
        (datetime(2025, 3, 5, 10), datetime(2025, 3, 5, 10, tzinfo=UTC)),
    ],
)
def test_datetimes_keep_their_offset_and_naive_ones_get_utc(
    text: object, expected: datetime
) -> None:
    parsed = parse_date(text)
    assert isinstance(parsed, datetime)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


def test_naive_datetimes_take_the_configured_zone() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    parsed = parse_date("2025-03-05 10:00", default_tz=shanghai)
    assert parsed == datetime(2025, 3, 5, 2, tzinfo=UTC)
    assert parse_datetime("2025-03-05", shanghai) == datetime(2025, 3, 4, 16, tzinfo=UTC)


def test_excel_serials_follow_the_1900_system_and_its_phantom_leap_day() -> None:
    assert parse_date(1) == date(1900, 1, 1)
    assert parse_date(59) == date(1900, 2, 28)
    assert parse_date(61) == date(1900, 3, 1)
    assert parse_date("44927") == date(2023, 1, 1)
    with pytest.raises(ValueError, match="1900-02-29"):
        parse_date(60)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2025-02-30", "day is out of range"),
        ("2025-13-01", "month must be in 1..12"),
        ("2025-3/5", "expected e.g. 2025-03-05"),
        ("next tuesday", "'next tuesday'"),
        ("", "blank"),
        (0, "outside the Excel serial range"),
        (-3, "outside the Excel serial range"),
        (True, "not a date"),
        ("2025-03-05 24:00", "hour must be in 0..23"),
        ("2025-03-05+08:00", "offset but no time"),
        (["2025-03-05"], "list"),
    ],
)
def test_anything_else_is_a_clear_value_error(value: object, fragment: str) -> None:
    with pytest.raises(ValueError, match="not a date") as info:
        parse_date(value)
    assert fragment in str(info.value)


def test_to_iso() -> None:
    assert to_iso(date(2025, 3, 5)) == "2025-03-05"
    assert to_iso(datetime(2025, 3, 5, 10, tzinfo=CST)) == "2025-03-05T10:00:00+08:00"
    assert to_iso(datetime(2025, 3, 5, 10)) == "2025-03-05T10:00:00+00:00"
    assert to_iso(parse_date("2025年3月5日")) == "2025-03-05"
