"""Rules on a running worker: time passing fires an alert with no new record, a receipt
resolves it, and an edited rule file is swapped in (or rejected) without a restart."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.store import AlertStore
from orderwatch.record import ChangeRecord
from tests.conftest import WorkerProc, get_json, wait_for
from tests.test_pipeline import publish

pytestmark = pytest.mark.integration

LATE = """\
- id: po-late
  title: PO late
  entity: purchase_order
  when:
    all:
      - status: {not_in: [received, closed]}
      - expected_date: {before: now - 1d}
  owner: buyer
  summary: "PO {key} is late"
"""
BIG = """\
- id: po-big
  entity: purchase_order
  when: {amount: {gt: 10000}}
  owner: buyer
  summary: "PO {key} is big: {amount}"
"""


def order(key: str, seq: int, expected: datetime, status: str = "open", amount: float = 500) -> ChangeRecord:
    return ChangeRecord.from_dict({
        "source": "erp", "entity": "purchase_order", "key": key, "seq": seq,
        "ts": datetime.now(UTC).isoformat(),
        "fields": {"status": status, "expected_date": expected.isoformat(), "buyer": "li.wei", "amount": amount},
    })


def alerts(store: str, state: str | None = None) -> dict[str, object]:
    s = AlertStore(store)
    try:
        return {f"{a.rule} {a.key}": a for a in s.list(state=state)}
    finally:
        s.close()


def worker_on_own_rules(broker, app_id: str, tmp_path: Path) -> tuple[Path, str, WorkerProc]:
    """A worker reading the rule folder `tmp_path/rules` (holding LATE), ticking every second."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "late.yaml").write_text(LATE)
    store = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    return rules, store, WorkerProc(broker.url, app_id, tmp_path, store, tick=1.0, extra=["--rules", str(rules)])


def test_a_deadline_passing_fires_with_no_new_record_and_a_receipt_resolves_it(broker, app_id, tmp_path) -> None:
    _, store, worker = worker_on_own_rules(broker, app_id, tmp_path)
    try:
        worker.wait_ready()
        # Becomes overdue a few seconds from now: expected a day ago, plus a little.
        deadline = datetime.now(UTC) + timedelta(seconds=6)
        publish(broker.bootstrap, app_id, [order("PO-T", 1, deadline - timedelta(days=1))])
        wait_for(lambda: (worker.status() or {}).get("records") == 1, 30, "the record to be processed")
        state = get_json(f"{worker.url}/api/orders/purchase_order/PO-T")
        assert state["due"] == pytest.approx(deadline.timestamp(), abs=0.01)  # the engine knows when
        assert "po-late PO-T" not in alerts(store)

        fired = wait_for(lambda: alerts(store, "firing").get("po-late PO-T"), 40, "the deadline to fire the alert")
        assert (worker.status() or {})["records"] == 1, "fired by time alone, no new record"
        # Evaluated at a tick after the deadline, not before it.
        assert fired.starts_at >= deadline - timedelta(milliseconds=1)
        assert fired.owner == "li.wei" and fired.summary == "PO PO-T is late"

        publish(broker.bootstrap, app_id, [order("PO-T", 2, deadline - timedelta(days=1), status="received")])
        wait_for(lambda: "po-late PO-T" in alerts(store, "resolved"), 30, "the receipt to resolve the alert")
    finally:
        worker.stop()


def test_an_edited_rule_file_is_swapped_in_and_a_bad_edit_keeps_the_old_rules(broker, app_id, tmp_path) -> None:
    rules, store, worker = worker_on_own_rules(broker, app_id, tmp_path)
    far = datetime.now(UTC) + timedelta(days=30)
    try:
        worker.wait_ready()
        publish(broker.bootstrap, app_id, [order("PO-B1", 1, far, amount=25000)])
        wait_for(lambda: (worker.status() or {}).get("records") == 1, 30, "the record to be processed")
        assert alerts(store) == {}

        # A new rule file: the held order is re-evaluated under it, without a new record.
        (rules / "big.yaml").write_text(BIG)
        wait_for(lambda: "po-big PO-B1" in alerts(store, "firing"), 30, "the new rule to fire on the held order")
        assert (worker.status() or {})["rule_reloads"] == 1

        # A broken edit: reported with file and line; the running rules stay.
        (rules / "big.yaml").write_text(BIG.replace("gt: 10000", "greater: 10000"))
        wait_for(lambda: "rules not reloaded" in worker.log(), 30, "the bad edit to be reported")
        assert f"{rules / 'big.yaml'}:3:19: unknown operator 'greater'" in worker.log()
        publish(broker.bootstrap, app_id, [order("PO-B2", 1, far, amount=40000)])
        wait_for(lambda: "po-big PO-B2" in alerts(store, "firing"), 30, "the old rules to keep working")
        assert (worker.status() or {})["rule_reloads"] == 1

        # Fixed and removed rules resolve; SIGHUP reloads even when no file changed.
        (rules / "big.yaml").unlink()
        wait_for(lambda: {"po-big PO-B1", "po-big PO-B2"} <= alerts(store, "resolved").keys(), 30,
                 "the removed rule's alerts to resolve")
        reloads = (worker.status() or {})["rule_reloads"]
        os.kill(worker.proc.pid, signal.SIGHUP)
        wait_for(lambda: (worker.status() or {}).get("rule_reloads") == reloads + 1, 30, "SIGHUP to reload")
    finally:
        worker.stop()
