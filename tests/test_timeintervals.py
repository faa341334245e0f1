"""Route time intervals: Alertmanager's own cases (tests/am_timeinterval_cases.py) through the alerts file,
and the muting a team sees: held until the interval ends, critical let through by a route of its own.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerts import timeinterval
from alerts.config import AlertsConfig
from orderwatch.yamlsrc import SourceError
from tests import am_timeinterval_cases as am
from tests.alerts_helpers import HOUR, Clock, config, event
from tests.test_routing import sent, setup, who


def at(text: str) -> datetime:
    """Go's RFC822Z ("02 Jan 06 15:04 +0000") as a datetime."""
    return datetime.strptime(text, "%d %b %y %H:%M %z")


def load(intervals: str, route_extra: str = "") -> AlertsConfig:
    return config(f"""
receivers: [{{name: log, type: jsonl, path: /dev/null}}]
route:
  receiver: log
  routes:
    - {{receiver: log{route_extra}}}
time_intervals:
  - name: t
    time_intervals: {intervals}
""")


def problems_of(text: str) -> list[str]:
    with pytest.raises(SourceError) as info:
        config(text)
    return [msg for _pos, msg in info.value.problems]


@pytest.mark.parametrize(("case", "interval", "inside", "outside"), am.CONTAINS_TIME, ids=[c[0] for c in am.CONTAINS_TIME])
def test_timeinterval_TestContainsTime(case: str, interval: str, inside: list[str], outside: list[str]) -> None:
    intervals = load(f"[{interval}]").time_intervals["t"]
    assert [t for t in inside if not timeinterval.contains(intervals, at(t))] == []
    assert [t for t in outside if timeinterval.contains(intervals, at(t))] == []


def test_timeinterval_TestContainsTime_clamping() -> None:
    _case, fields, inside, outside = am.CLAMPED
    interval = timeinterval.TimeInterval(**fields)  # type: ignore[arg-type]
    assert [t for t in inside if not interval.contains(at(t))] == []
    assert [t for t in outside if interval.contains(at(t))] == []
    with pytest.raises(SourceError, match="end day must be negative if start day is negative"):
        load("[{months: ['6'], days_of_month: ['-31:31']}]")


@pytest.mark.parametrize(("text", "want"), am.TIME_STRINGS, ids=[c[0] for c in am.TIME_STRINGS])
def test_timeinterval_TestParseTimeString(text: str, want: tuple[int, int] | None) -> None:
    if want is None:
        with pytest.raises(SourceError):
            load(f"[{{times: [{text}]}}]")
    else:
        assert load(f"[{{times: [{text}]}}]").time_intervals["t"][0].times == (want,)


@pytest.mark.parametrize(("case", "intervals", "inside", "outside", "error"), am.YAML_UNMARSHAL,
                         ids=[c[0] for c in am.YAML_UNMARSHAL])
def test_timeinterval_TestYamlUnmarshal(case: str, intervals: str, inside: list[str], outside: list[str],
                                        error: str | None) -> None:
    if error is not None:
        with pytest.raises(SourceError) as info:
            load(intervals)
        assert [msg for _pos, msg in info.value.problems] == [error]
        return
    parsed = load(intervals).time_intervals["t"]
    assert [t for t in inside if not timeinterval.contains(parsed, at(t))] == []
    assert [t for t in outside if timeinterval.contains(parsed, at(t))] == []


@pytest.mark.parametrize(("case", "interval", "inside", "outside"), am.COMPLETE, ids=[c[0] for c in am.COMPLETE])
def test_timeinterval_TestTimeIntervalComplete(case: str, interval: str, inside: list[str], outside: list[str]) -> None:
    parsed = load(f"[{interval}]").time_intervals["t"]
    assert [t for t in inside if not timeinterval.contains(parsed, at(t))] == []
    assert [t for t in outside if timeinterval.contains(parsed, at(t))] == []


@pytest.mark.parametrize(("case", "instant", "zone", "muted_by"), am.INTERVENER, ids=[c[0] for c in am.INTERVENER])
def test_timeinterval_TestIntervener_Mutes(tmp_path: Path, case: str, instant: str, zone: str,
                                           muted_by: list[str]) -> None:
    from alerts.dispatch import Dispatcher
    from alerts.store import AlertStore

    cfg = config(f"""
receivers: [{{name: log, type: jsonl, path: /dev/null}}]
route:
  receiver: log
  routes: [{{receiver: log, mute_time_intervals: [evenings, weekends]}}]
time_intervals: {textwrap.indent(am.INTERVENER_INTERVALS, '  ')}
""")
    dispatcher = Dispatcher(cfg, AlertStore(f"sqlite:///{tmp_path / 'a.sqlite'}"))
    now = datetime.fromisoformat(instant).replace(tzinfo=ZoneInfo(zone))
    assert cfg.route is not None
    assert dispatcher.muted(cfg.route.routes[0], now) == muted_by


# --- the config loader's checks (alertmanager config/config.go, Config.UnmarshalYAML) -------------


def test_the_loader_refuses_what_alertmanager_refuses() -> None:
    base = "receivers: [{name: log, type: jsonl, path: /dev/null}]\n"
    assert problems_of(base + "route: {receiver: log, mute_time_intervals: [x]}\n"
                       "time_intervals: [{name: x, time_intervals: []}]") == [
        "the root route must not have any mute time intervals"]
    assert problems_of(base + "route: {receiver: log, active_time_intervals: [x]}\n"
                       "time_intervals: [{name: x, time_intervals: []}]") == [
        "the root route must not have any active time intervals"]
    assert problems_of(base + "route: {receiver: log, routes: [{receiver: log, mute_time_intervals: [nope]}]}") == [
        "undefined time interval 'nope' used in route; known: (none: define them under time_intervals)"]
    assert problems_of(base + "route: {receiver: log}\ntime_intervals: [{name: x}, {name: x}]") == [
        "time interval 'x' is not unique"]
    assert problems_of(base + "route: {receiver: log}\ntime_intervals: [{time_intervals: []}]") == [
        "missing name in time interval"]
    # The older spelling is read too, and shares the names.
    assert problems_of(base + "route: {receiver: log}\nmute_time_intervals: [{name: x}]\n"
                       "time_intervals: [{name: x}]") == ["time interval 'x' is not unique"]


def test_a_mistake_is_reported_with_its_line() -> None:
    with pytest.raises(SourceError) as info:
        config("""
receivers: [{name: log, type: jsonl, path: /dev/null}]
route: {receiver: log}
time_intervals:
  - name: office
    time_intervals:
      - weekdays: ['monday:friday']
        months: ['march:junius']
""")
    (pos, msg), = info.value.problems
    assert (pos.line, msg) == (8, "junius is not a valid month")
    assert "alerts.yaml:8:" in str(info.value)


# --- what a team sees -----------------------------------------------------------------------------

OFFICE = """
time_intervals:
  - name: china-working-hours
    time_intervals:
      - times: [{start_time: '09:00', end_time: '18:00'}]
        working_days: cn
"""

# Critical alerts have a route of their own; everything else is held outside working hours.
ROUTE = """
  receivers: [log]
  to: [owner]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1d
  routes:
    - matchers: [severity="critical"]
    - matchers: [severity!="critical"]
      active_time_intervals: [china-working-hours]
"""


def shanghai(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def test_outside_working_hours_a_warning_waits_for_the_next_working_morning_and_a_critical_goes_out(
        tmp_path: Path) -> None:
    # Friday 2026-02-13, 20:00 in Shanghai: the eve of the Spring Festival holidays (15–23 February);
    # Saturday the 14th is a swapped working day (调休).
    clock = Clock(shanghai("2026-02-13T20:00"))
    p = setup(tmp_path, ROUTE, OFFICE, clock=clock)
    p.store.apply([event("PO-1", at=clock.now), event("PO-9", at=clock.now, severity="critical", rule="stock-out")])
    p.step(31)
    assert who(tmp_path) == [("li.wei", [("PO-9", "firing")])]
    p.step(12 * HOUR)  # Saturday 08:00: a working day, but not yet working hours
    assert len(sent(tmp_path)) == 1
    p.step(1 * HOUR)  # Saturday 09:00 (调休): the held warning goes out, not dropped
    assert who(tmp_path)[-1] == ("li.wei", [("PO-1", "firing")])


def test_a_resolution_during_the_muted_time_is_held_too(tmp_path: Path) -> None:
    clock = Clock(shanghai("2026-02-14T17:00"))  # the swapped Saturday, working hours
    p = setup(tmp_path, ROUTE, OFFICE, clock=clock)
    p.store.apply([event("PO-1", at=clock.now)])
    p.step(31)
    assert who(tmp_path) == [("li.wei", [("PO-1", "firing")])]
    clock.advance(2 * HOUR)  # 19:00: after hours, then nine days of holiday
    p.store.apply([event("PO-1", "resolved", at=clock.now)])
    p.step(0)
    p.step(5 * 24 * HOUR)  # the middle of the holidays
    assert len(sent(tmp_path)) == 1
    clock.now = shanghai("2026-02-24T08:59")
    p.step(0)
    assert len(sent(tmp_path)) == 1
    p.step(60)  # Tuesday 24 February 09:00, the first working morning
    assert who(tmp_path)[-1] == ("li.wei", [("PO-1", "resolved")])


def test_mute_time_intervals_mute_only_the_route_that_names_them(tmp_path: Path) -> None:
    extra = """
time_intervals:
  - name: weekends
    time_intervals: [{weekdays: ['saturday', 'sunday'], location: Asia/Shanghai}]
"""
    route = """
  receivers: [log]
  to: [owner]
  group_wait: 0s
  routes:
    - matchers: [family="delay"]
      mute_time_intervals: [weekends]
      routes:
        - matchers: [supplier="Acme Bearings"]
"""
    clock = Clock(datetime(2025, 3, 8, 2, 0, tzinfo=UTC).timestamp())  # Saturday 10:00 in Shanghai
    p = setup(tmp_path, route, extra, clock=clock)
    p.store.apply([event("PO-1", at=clock.now), event("PO-2", at=clock.now, labels={"family": "stock"}),
                   event("PO-3", at=clock.now, labels={"supplier": "Other"})])
    p.step(1)
    # PO-1 goes down to the child route, which does not inherit the parent's mute (as in Alertmanager);
    # PO-3 stays on the muted route until Monday.
    assert sorted(k for _w, alerts in who(tmp_path) for k, _s in alerts) == ["PO-1", "PO-2"]
    p.step(20 * HOUR)  # Sunday 06:00 in Shanghai
    assert "PO-3" not in [k for _w, alerts in who(tmp_path) for k, _s in alerts]
    p.step(20 * HOUR)  # Monday 02:00 in Shanghai
    assert ("li.wei", [("PO-3", "firing")]) in who(tmp_path)


def test_routes_test_says_which_route_is_muted_now(tmp_path: Path) -> None:
    import subprocess

    from tests.alerts_helpers import alerts_cli

    path = tmp_path / "alerts.yaml"
    path.write_text("""
receivers: [{name: log, type: jsonl, path: /dev/null}, {name: pager, type: jsonl, path: /dev/null}]
route:
  receiver: log
  routes:
    - {matchers: [severity="critical"], receiver: pager}
    - {receiver: log, mute_time_intervals: [always], active_time_intervals: [never]}
time_intervals:
  - {name: always, time_intervals: [{years: ['2000:2999']}]}
  - {name: never, time_intervals: [{years: ['1990']}]}
""")
    res = subprocess.run([*alerts_cli(), "alerts", "routes", "test", "--alerts", str(path), "severity=warning"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert "route root.1: receivers log" in res.stdout
    assert "muted now by always, (outside never)" in res.stdout
    res = subprocess.run([*alerts_cli(), "alerts", "routes", "test", "--alerts", str(path), "severity=critical"],
                         capture_output=True, text=True, timeout=60, check=False)
    assert "route root.0: receivers pager" in res.stdout and "muted" not in res.stdout


def test_a_companys_own_calendar_in_the_alerts_file_or_a_rule_file(tmp_path: Path) -> None:
    rules = tmp_path / "calendars.yaml"
    rules.write_text("calendars:\n  acme: {base: cn, holidays: [2026-03-02], workdays: [2026-03-01]}\nrules: []\n")
    base = """
receivers: [{name: log, type: jsonl, path: /dev/null}]
route: {receiver: log}
time_intervals:
  - name: office
    time_intervals: [{working_days: acme, times: [{start_time: '09:00', end_time: '18:00'}]}]
"""
    sunday, monday = shanghai("2026-03-01T10:00"), shanghai("2026-03-02T10:00")
    for calendars in ("calendars: {acme: {base: cn, holidays: [2026-03-02], workdays: [2026-03-01]}}",
                      f"calendars: {rules}"):
        office = config(base + calendars).time_intervals["office"]
        assert timeinterval.contains(office, datetime.fromtimestamp(sunday, UTC))  # a Sunday worked
        assert not timeinterval.contains(office, datetime.fromtimestamp(monday, UTC))  # the company's holiday
    assert problems_of(base.replace("acme", "mars")) == [
        "working_days: unknown calendar 'mars'; known: cn, plain"]
