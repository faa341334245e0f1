"""Time: durations, business days, deadlines that fire with no new record, the simulated clock."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.clock import (
    SimulatedClock,
    business_seconds,
    from_business_seconds,
    parse_duration,
    parse_offset,
)
from engine.evaluator import Evaluator
from engine.rules import load_rules
from engine.simulate import Simulation, sort_records
from engine.state import apply_record
from orderwatch.record import ChangeRecord
from tests.test_rules import record, write_rules

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("text, seconds, business", [
    ("90s", 90, False), ("15m", 900, False), ("2h", 7200, False), ("1d", 86400, False),
    ("1w", 604800, False), ("1d12h", 129600, False), ("1.5h", 5400, False), ("2bd", 172800, True),
])
def test_durations(text: str, seconds: float, business: bool) -> None:
    assert parse_offset(text) == (parse_offset(text).__class__(seconds, business))


@pytest.mark.parametrize("text", ["1y", "", "d", "2bd3h", True, None, "3 days"])
def test_bad_durations_say_what_to_write(text: object) -> None:
    with pytest.raises(ValueError) as err:
        parse_offset(text)
    assert "use e.g." in str(err.value) or "business days" in str(err.value)


def test_business_days_only_where_time_is_compared() -> None:
    with pytest.raises(ValueError, match="only allowed in before/after"):
        parse_duration("2bd")


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_business_time_stands_still_over_the_weekend() -> None:
    friday_noon, saturday, sunday_noon, monday = (utc("2025-03-07T12:00:00"), utc("2025-03-08T00:00:00"),
                                                   utc("2025-03-09T12:00:00"), utc("2025-03-10T00:00:00"))
    assert business_seconds(saturday) - business_seconds(friday_noon) == 12 * 3600
    assert business_seconds(sunday_noon) == business_seconds(saturday) == business_seconds(monday)
    assert business_seconds(utc("2025-03-10T09:00:00")) - business_seconds(utc("2025-03-06T09:00:00")) == 2 * 86400
    # The inverse gives the earliest instant: the end of Friday, not Monday morning.
    assert from_business_seconds(business_seconds(monday)) == saturday
    for t in (utc("2025-03-04T10:30:00"), utc("2025-03-07T23:59:59"), utc("1969-12-31T12:00:00")):
        assert from_business_seconds(business_seconds(t)) == pytest.approx(t)


def test_the_simulated_clock_moves_only_when_told() -> None:
    clock = SimulatedClock(100.0)
    assert clock() == 100.0
    clock.advance(5)
    clock.set(200)
    assert clock() == 200.0


def test_the_next_deadline_is_the_earliest_flip_of_any_time_condition(tmp_path: Path) -> None:
    path = write_rules(tmp_path, [
        {"id": "late", "entity": "purchase_order", "when": {"expected_date": {"before": "now - 1d"}}},
        {"id": "soon", "entity": "purchase_order", "when": {"expected_date": {"after": "now + 2d"}}},
        {"id": "line", "entity": "purchase_order", "when": {"any_line": {"expected_date": {"before": "now"}}}},
        {"id": "bd", "entity": "purchase_order", "when": {"sent_date": {"before": "now - 2bd"}}},
    ])
    ev = Evaluator(load_rules([path]), name="due")
    state = apply_record(None, record("PO-1", 1, expected_date="2025-03-20", sent_date="2025-03-06T09:00:00Z",
                                      lines=[{"expected_date": "2025-03-12"}, {"expected_date": "2025-03-11"}]), 0)
    now = utc("2025-03-06T10:00:00")
    events = ev.evaluate([state], now)
    assert [e.rule for e in events] == ["soon"]
    assert state["due"] == utc("2025-03-10T09:00:00")  # Thursday 09:00 + 2 business days
    ev.evaluate([state], state["due"])
    assert state["due"] == utc("2025-03-11T00:00:00")  # the first line's date
    ev.evaluate([state], state["due"])
    assert state["due"] == utc("2025-03-12T00:00:00")  # the next line (already firing: no more change there)
    ev.evaluate([state], state["due"])
    assert state["due"] == utc("2025-03-18T00:00:00")  # expected_date - 2d: 'soon' stops holding
    ev.evaluate([state], state["due"])
    assert state["due"] == utc("2025-03-21T00:00:00")  # expected_date + 1d: 'late'
    events = ev.evaluate([state], state["due"])
    assert [e.rule for e in events] == ["late"] and state["due"] is None


def test_deadlines_fire_on_simulated_time_with_no_new_record() -> None:
    sim = Simulation(Evaluator(load_rules([REPO / "rules" / "delays.yaml"]), name="sim"))
    sim.feed([record("PO-1", 1, at="2025-03-01T08:00:00+00:00", status="open", expected_date="2025-03-05",
                     supplier="Acme", buyer="li.wei")])
    sim.advance(utc("2025-03-05T23:59:59"))
    assert sim.take_events() == []
    sim.advance(utc("2025-03-20T00:00:00"))
    (event,) = sim.take_events()
    assert event.at == datetime(2025, 3, 6, tzinfo=UTC)  # the exact instant it fell due
    assert [a.key for a in sim.firing()] == ["PO-1"]


def _random_history(seed: int, n: int) -> list[ChangeRecord]:
    """Purchase orders changing at random instants over three weeks (seq grows with time)."""
    rnd = random.Random(seed)
    start = datetime(2025, 3, 3, tzinfo=UTC)
    instants = sorted(start + timedelta(minutes=rnd.randrange(0, 60 * 24 * 20)) for _ in range(n))
    out = []
    for seq, at in enumerate(instants):
        out.append(ChangeRecord.from_dict({
            "source": "erp", "entity": "purchase_order", "key": f"PO-{rnd.randrange(40)}", "ts": at.isoformat(),
            "seq": seq, "actor": rnd.choice(["li.wei", "zhou.kai"]),
            "fields": {"status": rnd.choice(["open", "open", "confirmed", "received", "partially_received"]),
                       "buyer": "li.wei", "supplier": "Acme", "qty": rnd.choice([10, 20]),
                       "received_qty": rnd.choice([0, 5, 10]), "approval_status": "approved",
                       "approved_at": "2025-03-05T00:00:00+00:00", "sku": "S-1", "warehouse": "WH1",
                       "expected_date": (start + timedelta(days=rnd.randrange(0, 15))).date().isoformat()},
        }))
    return out


def test_batched_replay_gives_the_same_transitions_as_one_record_at_a_time() -> None:
    records = sort_records(_random_history(7, 400))
    results = []
    for batch_size in (1, 7, 512):
        sim = Simulation(Evaluator(load_rules([REPO / "rules"]), name=f"b{batch_size}"), batch_size=batch_size)
        sim.feed(records)
        sim.advance(utc("2025-04-01T00:00:00"))
        results.append([(e.at, e.rule, e.key, e.state) for e in sorted(sim.take_events(), key=lambda e: (e.at, e.rule, e.key, e.state))])
    assert results[0] == results[1] == results[2]
    assert len(results[0]) > 20


def test_replays_are_ignored_and_input_order_does_not_matter() -> None:
    from engine import backtest

    records = _random_history(3, 200)
    ev = Evaluator(load_rules([REPO / "rules"]), name="replay")
    once = backtest.run(ev, records)
    shuffled = records + records[:50]  # a replay of the first 50
    random.Random(1).shuffle(shuffled)
    again = backtest.run(ev, shuffled)
    assert again.duplicates == 50
    key = [(e.at, e.rule, e.key, e.state) for e in once.events]
    assert sorted(key) == sorted((e.at, e.rule, e.key, e.state) for e in again.events) and key
