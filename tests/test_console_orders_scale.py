"""The order page with two real workers on a real broker: each holds half of the orders' state,
and either one serves any order's page (the one that does not hold it asks the one that does)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from orderwatch.topics import partition_for
from tests.conftest import WorkerProc, get_json, wait_for
from tests.test_pipeline import po, publish

pytestmark = pytest.mark.integration

KEYS = [f"PO-{i:03d}" for i in range(24)]


def test_any_worker_serves_any_orders_page(broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app_id = f"ow-{uuid.uuid4().hex[:8]}"
    store = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    a, b = (WorkerProc(broker.url, app_id, tmp_path, store) for _ in range(2))
    try:
        a.wait_ready()
        b.wait_ready()
        wait_for(lambda: len((a.status() or {}).get("partitions") or []) < 4
                 and len((b.status() or {}).get("partitions") or []) < 4, 60, "the group to split the partitions")
        publish(broker.bootstrap, app_id, [po(key, overdue=True, buyer="li.wei") for key in KEYS])
        wait_for(lambda: (a.status() or {}).get("entities", 0) + (b.status() or {}).get("entities", 0) == len(KEYS),
                 60, "both workers to hold their orders")
        held_by_a = set((a.status() or {}).get("partitions") or [])
        assert held_by_a and set((b.status() or {}).get("partitions") or []) == {0, 1, 2, 3} - held_by_a
        here = [k for k in KEYS if partition_for(f"purchase_order:{k}", 4) in held_by_a]
        there = [k for k in KEYS if k not in here]
        assert here and there, "the orders are spread over both workers"

        def page(worker: WorkerProc, key: str) -> dict:
            return get_json(f"{worker.url}/console/orders/purchase_order/{key}?format=json", timeout=10)

        deadline = time.monotonic() + 30
        while True:  # the assignment each worker knows settles shortly after the rebalance
            try:
                pages = {(w.port, k): page(w, k) for w in (a, b) for k in (here[0], there[0])}
                if all(p["held"] for p in pages.values()):
                    break
            except urllib.error.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{a.log()}\n{b.log()}"
            time.sleep(0.5)
        for key in here[:3] + there[:3]:
            for worker in (a, b):
                doc = page(worker, key)
                assert doc["held"] and doc["key"] == key, (worker.port, key, doc)
                assert {f["name"]: f["raw"] for f in doc["fields"]}["supplier"] == "Acme Bearings"
        # b does not hold `here[0]`: it asked a, and says so.
        request = urllib.request.Request(f"{b.url}/console/orders/purchase_order/{here[0]}?format=json",
                                         headers={"Authorization": f"Bearer {b.token}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.headers["X-Orderwatch-Served-By"] == a.url
        own = urllib.request.Request(f"{a.url}/console/orders/purchase_order/{here[1]}?format=json",
                                     headers={"Authorization": f"Bearer {a.token}"})
        with urllib.request.urlopen(own, timeout=10) as resp:
            assert resp.headers.get("X-Orderwatch-Served-By") is None  # a holds it: no hop
    finally:
        a.stop()
        b.stop()
