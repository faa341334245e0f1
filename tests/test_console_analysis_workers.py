"""Two workers share the partitions, so each holds some of the orders: either one's analysis page
counts them all (it asks the other for its share, for the person or token that asked)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from console import links
from orderwatch.record import ChangeRecord
from tests.conftest import API_TOKEN, WorkerProc, get_json, wait_for
from tests.test_alerts_e2e import publish
from tests.test_console import Browser

pytestmark = pytest.mark.integration

ORDERS = 40


def order(i: int) -> ChangeRecord:
    """Every fourth received on its due date; every fourth (offset one) open and 9 days late;
    the rest open and due in a month."""
    today = date.today()
    fields: dict[str, Any] = {"supplier": f"Supplier {i % 2}", "buyer": "li.wei", "qty": 10}
    if i % 4 == 0:
        due = today - timedelta(days=5)
        fields.update(status="received", expected_date=due.isoformat(), received_date=due.isoformat(),
                      received_qty=10)
    elif i % 4 == 1:
        fields.update(status="open", expected_date=(today - timedelta(days=9)).isoformat())
    else:
        fields.update(status="open", expected_date=(today + timedelta(days=30)).isoformat())
    return ChangeRecord.from_dict({"source": "erp", "entity": "purchase_order", "key": f"PO-{i:03d}",
                                   "op": "upsert", "ts": datetime.now(UTC).isoformat(), "seq": 1, "fields": fields})


SECRET = "two-workers-console-secret-0123456789abcdef"
ALERTS = f"""
console: {{secret: {SECRET}}}
api:
  tokens: [{{name: tests, token: {API_TOKEN}, scopes: [read]}}]
owners:
  people:
    li.wei: {{name: 李伟, language: zh}}
    chen.jie: {{name: Chen Jie}}
"""


def signed_in(worker: WorkerProc, person: str) -> Browser:
    browser = Browser(worker.url)
    link = links.signed_url(worker.url, person, "/console/", time.time() + 600, secret=SECRET)
    assert browser.get(link).status == 302
    return browser


def test_each_worker_counts_the_orders_both_hold(broker: Any, app_id: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    alerts = tmp_path / "alerts.yaml"
    alerts.write_text(ALERTS, encoding="utf-8")
    monkeypatch.setenv("ORDERWATCH_ALERTS", str(alerts))
    store = f"sqlite:///{tmp_path / 'alerts.sqlite'}"
    workers = [WorkerProc(broker.url, app_id, tmp_path / "w", store) for _ in range(2)]
    try:
        for w in workers:
            w.wait_ready()
        wait_for(lambda: all(len((w.status() or {}).get("partitions") or []) < 4 for w in workers), 60,
                 "the group to split the partitions")
        publish(broker.bootstrap, app_id, [order(i) for i in range(ORDERS)])
        wait_for(lambda: sum((w.status() or {}).get("entities", 0) for w in workers) == ORDERS, 60,
                 "both workers to hold the orders")
        held = [(w.status() or {})["entities"] for w in workers]
        assert all(0 < n < ORDERS for n in held), held  # each holds a share, neither all

        for w in workers:
            share = get_json(f"{w.url}/console/analysis/held", timeout=10, token=w.token)
            assert len(share["orders"]) == (w.status() or {})["entities"]
            doc = get_json(f"{w.url}/console/analysis?format=json", timeout=20, token=w.token)
            assert doc["workers"] == {"answered": 2, "missing": []}, doc["workers"]
            total = doc["rates"]["all"]["total"]
            # 10 received on their due date (on time, complete), 10 open and late; 20 not due yet.
            assert total["orders"] == ORDERS
            assert (total["on_time"]["good"], total["on_time"]["judged"]) == (10, 20)
            assert (total["complete"]["good"], total["complete"]["judged"]) == (10, 10)
            assert sorted(g["group"] for g in doc["rates"]["all"]["supplier"]) == ["Supplier 0", "Supplier 1"]
            # A person's session: the other worker is asked for li.wei's share (a ticket, not her cookie).
            mine = signed_in(w, "li.wei").get("/console/analysis?format=json", html=False).json()
            assert mine["workers"]["answered"] == 2 and mine["rates"]["all"]["total"]["orders"] == ORDERS
            theirs = signed_in(w, "chen.jie").get("/console/analysis?format=json", html=False).json()
            assert theirs["workers"]["answered"] == 2 and theirs["rates"]["all"]["total"]["orders"] == 0
    finally:
        for w in workers:
            w.stop()
