"""Change predicates over an entity's history: which field changed, after an approval,
by whom, how recently; and the texts they give an alert."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from engine.evaluator import Evaluator
from engine.rules import load_rules
from engine.state import EntityState, apply_record
from tests.test_rules import record, ts, write_rules

APPROVED = {"status": "open", "approval_status": "approved", "approved_at": "2025-03-03T08:00:00+00:00",
            "qty": 100, "unit_price": 10.0, "buyer": "li.wei", "note": ""}


def history(*steps: tuple[str, str | None, dict[str, Any]], changed: dict[str, Any] | None = None) -> EntityState:
    """A purchase order built from (time, actor, field updates) steps, each a full new snapshot."""
    state: EntityState | None = None
    fields = dict(APPROVED)
    for seq, (at, actor, update) in enumerate(steps, 1):
        fields.update(update)
        rec = record("PO-1", seq, at=at, actor=actor, **fields)
        if changed is not None and seq == len(steps):
            rec = type(rec).from_dict({**rec.to_dict(), "changed": changed})
        state = apply_record(state, rec, 0)
    assert state is not None
    return state


def fires(tmp_path: Path, changed: Any, state: EntityState, now: str = "2025-03-05T00:00:00+00:00",
          extra: dict[str, Any] | None = None) -> bool:
    when: dict[str, Any] = {"changed": changed, **(extra or {})}
    ev = Evaluator(load_rules([write_rules(tmp_path, [{"id": "chg", "entity": "purchase_order", "when": when}])]),
                   name="chg")
    return bool(ev.evaluate([state], ts(now)))


T0, T1, T2 = "2025-03-03T09:00:00+00:00", "2025-03-04T09:00:00+00:00", "2025-03-04T10:00:00+00:00"


@pytest.mark.parametrize("changed, steps, expected", [
    # a field changed; the first sighting of an entity is not a change
    (["qty"], [(T0, "li.wei", {})], False),
    (["qty"], [(T0, "li.wei", {}), (T1, "li.wei", {"qty": 120})], True),
    ("qty", [(T0, "li.wei", {}), (T1, "li.wei", {"qty": 120})], True),
    (["qty", "unit_price"], [(T0, "li.wei", {}), (T1, "li.wei", {"note": "call"})], False),
    # any field, except bookkeeping columns such as updated_at
    ("any", [(T0, None, {}), (T1, None, {"note": "call"})], True),
    ({"fields": "any"}, [(T0, None, {}), (T1, None, {"updated_at": "2025-03-04T09:00:00Z"})], False),
    # after an approval: only changes later than the approved_at value
    ({"fields": ["qty"], "after": "approved_at"}, [(T0, None, {}), (T1, None, {"qty": 120})], True),
    ({"fields": ["qty"], "after": "approved_at"},
     [("2025-03-03T07:00:00+00:00", None, {}), ("2025-03-03T07:30:00+00:00", None, {"qty": 120})], False),
    # re-approval moves approved_at past the change
    ({"fields": ["qty"], "after": "approved_at"},
     [(T0, None, {}), (T1, None, {"qty": 120}), (T2, None, {"approved_at": T2})], False),
    ({"fields": ["qty"], "after": "approved_at"},
     [(T0, None, {"approved_at": None}), (T1, None, {"qty": 120})], False),
    # by someone in / not in a list; changes whose author is unknown are not judged
    ({"fields": ["qty"], "by": {"not_in": ["li.wei"]}}, [(T0, "li.wei", {}), (T1, "zhou.kai", {"qty": 1})], True),
    ({"fields": ["qty"], "by": {"not_in": ["li.wei"]}}, [(T0, "li.wei", {}), (T1, "li.wei", {"qty": 1})], False),
    ({"fields": ["qty"], "by": {"not_in": ["li.wei"]}}, [(T0, "li.wei", {}), (T1, None, {"qty": 1})], False),
    ({"fields": ["qty"], "by": {"in": ["zhou.kai"]}}, [(T0, "li.wei", {}), (T1, "zhou.kai", {"qty": 1})], True),
    ({"fields": ["qty"], "by": ["zhou.kai"]}, [(T0, "li.wei", {}), (T1, "li.wei", {"qty": 1})], False),
    # the latest *matching* change counts, even when an allowed change came after it
    ({"fields": ["qty"], "by": {"not_in": ["li.wei"]}},
     [(T0, "li.wei", {}), (T1, "zhou.kai", {"qty": 1}), (T2, "li.wei", {"qty": 2})], True),
    # within: only recent changes (now is 2025-03-05 00:00)
    ({"fields": ["qty"], "within": "1d"}, [(T0, None, {}), (T1, None, {"qty": 2})], True),
    ({"fields": ["qty"], "within": "12h"}, [(T0, None, {}), (T1, None, {"qty": 2})], False),
])
def test_change_predicates(tmp_path: Path, changed: Any, steps: list[Any], expected: bool) -> None:
    assert fires(tmp_path, changed, history(*steps)) is expected


def test_not_changed_holds_without_a_change(tmp_path: Path) -> None:
    state = history((T0, None, {}))
    ev = Evaluator(load_rules([write_rules(tmp_path, [
        {"id": "untouched", "entity": "purchase_order", "when": {"not": {"changed": ["qty"]}}}])]), name="neg")
    assert ev.evaluate([state], ts(T1))
    state = apply_record(state, record("PO-1", 9, at=T2, **{**APPROVED, "qty": 1}), 0)
    assert state is not None
    assert [e.state for e in ev.evaluate([state], ts(T2))] == ["resolved"]


def test_the_source_saying_what_changed_is_believed(tmp_path: Path) -> None:
    # A CDC source reports the diff itself: it is used instead of comparing snapshots.
    state = history((T0, None, {}), (T1, None, {}), changed={"unit_price": [9.0, 10.0]})
    assert fires(tmp_path, ["unit_price"], copy.deepcopy(state))
    assert not fires(tmp_path, ["qty"], state)


def test_a_change_ages_out_at_its_own_deadline(tmp_path: Path) -> None:
    ev = Evaluator(load_rules([write_rules(tmp_path, [{"id": "recent", "entity": "purchase_order",
                                                       "when": {"changed": {"fields": ["qty"], "within": "1d"}}}])]),
                   name="within")
    state = history((T0, None, {}), (T1, None, {"qty": 5}))
    (fired,) = ev.evaluate([state], ts(T1))
    assert state["due"] == ts(T1) + 86400  # when the change leaves the window
    (resolved,) = ev.evaluate([state], state["due"])
    assert (fired.state, resolved.state) == ("firing", "resolved")


def test_history_is_bounded_and_old_changes_are_forgotten(tmp_path: Path) -> None:
    steps = [(T0, None, {})] + [(f"2025-03-04T{h:02d}:00:00+00:00", "zhou.kai" if h == 0 else "li.wei",
                                 {"qty": 100 + h}) for h in range(21)]
    state = history(*steps)
    assert len(state["history"]) == 20
    assert not fires(tmp_path, {"fields": ["qty"], "by": {"not_in": ["li.wei"]}}, state)


def test_alert_texts_say_what_changed_who_and_when(tmp_path: Path) -> None:
    path = write_rules(tmp_path, [{
        "id": "after-approval", "entity": "purchase_order", "owner": "buyer",
        "when": {"changed": {"fields": ["qty", "unit_price"], "after": "approved_at"}},
        "summary": "{key}: {changed_fields} by {changed_by} at {changed_at}",
    }])
    ev = Evaluator(load_rules([path]), name="texts")
    state = history((T0, "li.wei", {}), (T1, "zhou.kai", {"qty": 120, "unit_price": 9.5, "note": "x"}))
    (event,) = ev.evaluate([state], ts(T2))
    assert event.summary == f"PO-1: qty 100 → 120, unit_price 10 → 9.5 by zhou.kai at {T1}"
    assert event.owner == "li.wei"
