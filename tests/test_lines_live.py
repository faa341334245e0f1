"""Per-line rules on a running worker: a real broker, an `orderwatch worker` process reading the
example rules folder, one alert per short line of a purchase order, and each line's alert
resolving on its own when that line is received in full."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.store import AlertStore
from orderwatch.record import ChangeRecord
from tests.conftest import WorkerProc, wait_for
from tests.test_pipeline import publish

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "rules"
RULE = "po-line-short-received"
EXPECTED = (date.today() - timedelta(days=9)).isoformat()


def order(seq: int, nut_received: int) -> ChangeRecord:
    """PO-2025-0042 from Acme Bearings, bought by li.wei: the bolts arrived in full, the nuts
    (`nut_received` of 200) and the washers (10 of 40) in part, nine days after the expected date."""
    return ChangeRecord.from_dict({
        "source": "erp", "entity": "purchase_order", "key": "PO-2025-0042", "op": "upsert",
        "ts": datetime.now(UTC).isoformat(), "seq": seq,
        "fields": {"status": "open", "supplier": "Acme Bearings", "buyer": "li.wei", "expected_date": EXPECTED,
                   "lines": [{"line_no": 10, "sku": "BOLT", "qty": 100, "received_qty": 100},
                             {"line_no": 20, "sku": "NUT", "qty": 200, "received_qty": nut_received},
                             {"line_no": 30, "sku": "WASHER", "qty": 40, "received_qty": 10}]},
    })


def alerts(store_url: str) -> dict[str, Any]:
    store = AlertStore(store_url)
    try:
        return {a.key: a for a in store.list()}
    finally:
        store.close()


def test_each_short_line_alerts_on_its_own_and_resolves_when_received(broker, app_id, tmp_path) -> None:
    store_url = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    worker = WorkerProc(broker.url, app_id, tmp_path, store_url, tick=1.0, extra=["--rules", str(EXAMPLES)])
    try:
        worker.wait_ready()
        publish(broker.bootstrap, app_id, [order(1, nut_received=50)])
        before = wait_for(lambda: len(a := alerts(store_url)) >= 2 and a, 60,
                          f"two line alerts; worker log:\n{worker.log()}")
        # One alert per short line, keyed ORDER#LINE; the complete line (10) has none, nor the order.
        assert sorted(before) == ["PO-2025-0042#20", "PO-2025-0042#30"]
        nuts = before["PO-2025-0042#20"]
        assert (nuts.rule, nuts.entity, nuts.state, nuts.owner) == (RULE, "purchase_order", "firing", "li.wei")
        assert nuts.labels == {"family": "delay", "supplier": "Acme Bearings", "sku": "NUT"}
        assert nuts.summary == (  # the line's fields and the order's, stored in both languages
            f"采购单 PO-2025-0042 第 20 行(NUT,Acme Bearings)只到货 50/200,预计 {EXPECTED} / "
            f"PO PO-2025-0042 line 20 (NUT, Acme Bearings): 50 of 200 received, expected {EXPECTED}")
        assert "(WASHER, Acme Bearings): 10 of 40 received" in before["PO-2025-0042#30"].summary

        # The rest of the nuts arrive: that line's alert resolves, the washers' goes on.
        publish(broker.bootstrap, app_id, [order(2, nut_received=200)])
        wait_for(lambda: alerts(store_url)["PO-2025-0042#20"].state == "resolved", 60,
                 f"the nuts' alert to resolve; worker log:\n{worker.log()}")
        after = alerts(store_url)
        assert sorted(after) == ["PO-2025-0042#20", "PO-2025-0042#30"]
        washers = after["PO-2025-0042#30"]
        assert washers.state == "firing"
        assert (washers.fingerprint, washers.starts_at) == (before["PO-2025-0042#30"].fingerprint,
                                                            before["PO-2025-0042#30"].starts_at)
    finally:
        worker.stop()
