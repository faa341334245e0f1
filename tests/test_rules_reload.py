"""Hot reload: a changed rule file gives a new Evaluator; a bad edit is rejected and the old
rules keep running; alerts carried over stay valid across the swap."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from engine.evaluator import Evaluator
from engine.reload import RuleReloader
from engine.rules import load_rules
from engine.state import apply_record
from tests.test_rules import record, ts

LATE = """\
- id: late
  entity: purchase_order
  when: {status: open, expected_date: {before: now - 1d}}
  owner: buyer
  summary: "{key} is late"
"""
BIG = """\
- id: big
  entity: purchase_order
  when: {amount: {gt: 1000}}
  summary: "{key} is big: {amount}"
"""


def bump(path: Path) -> None:
    """Make sure the modification time moves even on coarse file systems."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_poll_reloads_on_change_only(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(LATE)
    reloader = RuleReloader([str(tmp_path)], Evaluator(load_rules([tmp_path]), name="r0"), name="rt")
    assert reloader.poll() is None
    bump(tmp_path / "a.yaml")
    assert reloader.poll() is None  # touched, same content
    (tmp_path / "b.yaml").write_text(BIG)  # a new file in a watched folder
    result = reloader.poll()
    assert result is not None and result.ok and result.rules == 2
    assert reloader.current is result.evaluator
    assert reloader.poll() is None


def test_a_bad_edit_is_rejected_with_its_position_and_the_old_rules_keep_running(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(LATE)
    first = Evaluator(load_rules([path]), name="r1")
    reloader = RuleReloader([str(path)], first, name="rt")
    path.write_text(LATE.replace("expected_date", "expected_dat"))
    bump(path)
    result = reloader.poll()
    assert result is not None and not result.ok and result.evaluator is None
    assert result.problems[0].startswith(f"{path}:3:24: 'expected_dat' is not a field of purchase_order")
    assert reloader.current is first
    # SIGHUP: an explicit reload re-reads even without a change; fixed, it swaps.
    path.write_text(LATE)
    result = reloader.reload()
    assert result.ok and reloader.current is result.evaluator is not first


def test_firing_alerts_carry_over_and_removed_rules_resolve_with_their_own_texts(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(LATE + BIG)
    reloader = RuleReloader([str(path)], Evaluator(load_rules([path]), name="r2"), name="rt")
    state = apply_record(None, record("PO-1", 1, status="open", expected_date="2025-03-01", amount=5000,
                                      buyer="li.wei"), 0)
    now = ts("2025-03-10T00:00:00")
    assert sorted(e.rule for e in reloader.current.evaluate([state], now)) == ["big", "late"]
    path.write_text(LATE.replace("is late", "is late!"))  # 'big' removed, 'late' reworded
    bump(path)
    result = reloader.poll()
    assert result is not None and result.ok
    events = result.evaluator.evaluate([state], now + 60)
    assert [(e.rule, e.state, e.summary) for e in events] == [("big", "resolved", "PO-1 is big: 5000")]
    assert list(state["firing"]) == ["late"]  # still firing, not announced again
    result.evaluator.close()


def test_a_ruleset_durable_rules_rejects_by_chance_is_created_again_or_in_halves(monkeypatch: Any) -> None:
    # durable_rules 2.0.28 sometimes rejects a valid ruleset (error 102) depending on memory
    # layout; that cannot be provoked on purpose, so here it rejects every multi-rule text.
    import durable_rules_engine as dre

    from engine.matcher import Matcher

    real = dre.create_ruleset
    calls: list[int] = []

    def flaky(name: str, text: str) -> int:
        calls.append(len(json.loads(text)))
        if len(json.loads(text)) > 1:
            raise dre.error("Could not create ruleset, error code: 102")
        return real(name, text)

    monkeypatch.setattr(dre, "create_ruleset", flaky)
    matcher = Matcher("flaky", ({
        "a": {"all": [{"m": {"$gt": {"qty": 1}}}]},
        "b": {"all": [{"m": {"$gt": {"qty": 5}}}]},
        "c": {"all": [{"m": {"$lt": {"qty": 3}}}]},
    },))
    assert calls[:3] == [3, 3, 3] and calls.count(1) == 3  # three tries, then halves down to single rules
    assert matcher.match([{"qty": 2}, {"qty": 9}]) == [{"a", "c"}, {"a", "b"}]
    matcher.close()
