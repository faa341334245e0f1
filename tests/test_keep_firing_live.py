"""keep_firing_for end to end: a real broker and an `orderwatch worker` process, its state in the
Faust table and its deadline on the engine's timer (wall time, a few seconds)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from alerts.store import AlertStore
from orderwatch.alert import fingerprint
from orderwatch.record import ChangeRecord
from tests.conftest import WorkerProc, wait_for
from tests.test_alerts_e2e import publish

pytestmark = pytest.mark.integration

RULES = """
- id: low-amount
  entity: purchase_order
  when: {amount: {lt: 100}}
  keep_firing_for: 8s
  summary: "{key} low"
"""


def po(seq: int, amount: int) -> ChangeRecord:
    return ChangeRecord.from_dict({"source": "erp", "entity": "purchase_order", "key": "PO-K", "op": "upsert",
                                   "ts": datetime.now(UTC).isoformat(), "seq": seq, "fields": {"amount": amount}})


def test_a_flap_shorter_than_keep_firing_for_is_one_episode_in_the_live_worker(
        broker: Any, app_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    monkeypatch.delenv("ORDERWATCH_ALERTS", raising=False)
    store_url = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    worker = WorkerProc(broker.url, app_id, tmp_path, store_url, tick=1.0, extra=["--rules", str(rules)])
    fp = fingerprint("low-amount", "purchase_order", "PO-K")
    try:
        worker.wait_ready()
        store = AlertStore(store_url)

        def states() -> list[str]:
            return [e.state for e in store.events(fp) if e.state in ("firing", "resolved")]

        publish(broker.bootstrap, app_id, [po(1, 50)])
        wait_for(lambda: states() == ["firing"], 60, f"the alert firing; worker log:\n{worker.log()}")
        publish(broker.bootstrap, app_id, [po(2, 150)])  # stops holding…
        time.sleep(3)
        publish(broker.bootstrap, app_id, [po(3, 60)])  # …holds again within keep_firing_for
        time.sleep(10)  # past the 8 s a resolution would have come after
        assert states() == ["firing"], worker.log()
        publish(broker.bootstrap, app_id, [po(4, 150)])  # stops for good
        wait_for(lambda: states() == ["firing", "resolved"], 60, f"the resolution; worker log:\n{worker.log()}")
        firing, resolved = [e for e in store.events(fp) if e.state in ("firing", "resolved")]
        assert (resolved.at - firing.at).total_seconds() >= 8 + 3
    finally:
        worker.stop()
