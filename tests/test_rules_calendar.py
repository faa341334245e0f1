"""keep_firing_for and business calendars on rules: Prometheus' cases, and the stories a buyer knows."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import calendar as calendars
from engine.evaluator import Evaluator
from engine.rules import load_rules
from engine.simulate import Simulation
from orderwatch.alert import AlertEvent
from orderwatch.yamlsrc import SourceError
from tests.test_rules import record

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "orderwatch"]


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def simulate(path: Path, records: list[tuple[str, dict[str, Any]]], until: str) -> list[AlertEvent]:
    sim = Simulation(Evaluator(load_rules([path]), name=f"cal{abs(hash(str(path)))}"))
    sim.feed([record("PO-1", i + 1, at=at, **fields) for i, (at, fields) in enumerate(records)])
    sim.advance(utc(until))
    return sim.take_events()


def test_prometheus_for_and_keep_firing_for_cases_pass_as_rules_tests() -> None:
    res = subprocess.run([*CLI, "rules", "test", "tests/prom_cases"], capture_output=True, text=True, cwd=REPO,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "TestKeepFiringFor" in res.stdout and "5 test(s), 0 failed" in res.stdout


# --- keep_firing_for ------------------------------------------------------------------------------

KEEP = {"id": "stock-low", "entity": "purchase_order", "when": {"amount": {"lt": 100}}, "keep_firing_for": "10m",
        "summary": "{key} low"}


def test_a_condition_that_stops_for_five_minutes_sends_no_resolved_and_no_new_firing(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump([KEEP]))
    events = simulate(path, [("2025-03-03T09:00:00+00:00", {"amount": 50}),
                             ("2025-03-03T09:10:00+00:00", {"amount": 150}),  # stops holding…
                             ("2025-03-03T09:15:00+00:00", {"amount": 60})],  # …and holds again 5 minutes later
                      until="2025-03-03T12:00:00")
    assert [(e.state, e.at.isoformat()) for e in events] == [("firing", "2025-03-03T09:00:00+00:00")]


def test_it_resolves_once_the_condition_has_not_held_for_keep_firing_for(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump([KEEP]))
    events = simulate(path, [("2025-03-03T09:00:00+00:00", {"amount": 50}),
                             ("2025-03-03T09:10:00+00:00", {"amount": 150})],
                      until="2025-03-03T12:00:00")
    assert [(e.state, e.at.isoformat()) for e in events] == [
        ("firing", "2025-03-03T09:00:00+00:00"), ("resolved", "2025-03-03T09:20:00+00:00")]


def test_keep_firing_for_is_checked_like_for(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump([{**KEEP, "keep_firing_for": "soon"}]))
    with pytest.raises(SourceError, match="not a duration"):
        load_rules([path])


# --- business calendars ---------------------------------------------------------------------------

# Friday 13 February 2026: the last working day before the Spring Festival holidays (15–23 February);
# Saturday the 14th is a swapped working day (调休).
LATE = {"id": "po-late", "entity": "purchase_order", "when": {"expected_date": {"before": "now - 2bd"}},
        "summary": "{key} is late"}


def fired_at(tmp_path: Path, rule: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**(extra or {}), "rules": [rule]}, allow_unicode=True))
    events = simulate(path, [("2026-02-12T09:00:00+08:00", {"expected_date": "2026-02-13"})], until="2026-03-31")
    firing = [e for e in events if e.state == "firing"]
    assert len(firing) == 1
    return firing[0].at.isoformat()


def test_with_the_china_calendar_two_business_days_after_the_friday_before_the_spring_festival(tmp_path: Path) -> None:
    # Saturday 14th (调休) is the first business day; the holidays do not count; Tuesday 24th the second.
    # The date counts from midnight UTC, 08:00 in Shanghai.
    assert fired_at(tmp_path, {**LATE, "calendar": "cn"}) == "2026-02-24T00:00:00+00:00"
    # Monday to Friday knows nothing of it: Tuesday 17th, in the middle of the holidays.
    assert fired_at(tmp_path, LATE) == "2026-02-17T00:00:00+00:00"


def test_a_companys_own_days_in_yaml_on_top_of_the_china_calendar(tmp_path: Path) -> None:
    own = {"calendars": {"acme": {"base": "cn", "holidays": [date(2026, 2, 24)], "workdays": ["2026-02-15"]}}}
    # Sunday 15th worked (1 after Saturday = 2): due on Sunday 15th, 08:00 in Shanghai.
    assert fired_at(tmp_path, {**LATE, "calendar": "acme"}, own) == "2026-02-15T00:00:00+00:00"
    own = {"calendars": {"acme": {"base": "cn", "holidays": ["2026-02-14:2026-02-24"]}}}
    assert fired_at(tmp_path, {**LATE, "calendar": "acme"}, own) == "2026-02-26T00:00:00+00:00"


def test_the_shipped_china_calendar_knows_holidays_and_swapped_working_days() -> None:
    cn = calendars.shipped("cn")
    assert cn is not None
    assert cn.covers is not None and cn.covers[1] >= 2026
    assert not cn.is_working(date(2025, 10, 1)) and cn.is_working(date(2025, 10, 11))  # Sat 11 Oct 2025: 调休
    assert not cn.is_working(date(2026, 2, 16)) and cn.is_working(date(2026, 2, 28))  # Sat 28 Feb 2026: 调休
    assert cn.is_working(date(2026, 3, 2)) and not cn.is_working(date(2026, 3, 7))
    assert cn.timezone == "Asia/Shanghai"


def test_calendar_mistakes_are_reported_at_their_line(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"rules": [{**LATE, "calendar": "mars"}]}))
    with pytest.raises(SourceError) as info:
        load_rules([path])
    assert "unknown calendar 'mars'; known: cn, plain" in str(info.value)
    path.write_text("calendars:\n  acme:\n    base: cn\n    holidays: [someday]\nrules: []\n")
    with pytest.raises(SourceError) as info:
        load_rules([path])
    assert f"{path}:2:" in str(info.value) and "'someday' is not a date" in str(info.value)


def test_one_entitys_business_day_rules_share_one_calendar(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump([{**LATE, "calendar": "cn"}, {**LATE, "id": "po-late-2"}]))
    with pytest.raises(SourceError, match="count business days .* on one calendar"):
        Evaluator(load_rules([path]), name="cal-mixed")
