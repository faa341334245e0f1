"""End to end on the real embedded broker: change records in, alerts stored, bad input dead-lettered.

Workers run as real `orderwatch worker` processes; records go through the
connectors' Publisher, as a connector would send them.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from alerts.store import AlertStore
from connectors.publisher import Publisher
from orderwatch.config import Settings
from orderwatch.record import ChangeRecord
from orderwatch.topics import ensure_topics
from tests.conftest import get_json, wait_for

pytestmark = pytest.mark.integration

TODAY = date.today()


def po(key: str, *, overdue: bool, seq: int = 1, status: str = "open", buyer: str = "li.wei") -> ChangeRecord:
    expected = TODAY - timedelta(days=9) if overdue else TODAY + timedelta(days=30)
    return ChangeRecord.from_dict({
        "source": "erp", "entity": "purchase_order", "key": key, "op": "upsert",
        "ts": datetime.now(UTC).isoformat(), "seq": seq,
        "fields": {"status": status, "expected_date": expected.isoformat(), "supplier": "Acme Bearings",
                   "buyer": buyer},
    })


def publish(bootstrap: str, app_id: str, records: list[ChangeRecord], raw: list[bytes] = ()) -> None:
    async def go() -> None:
        settings = Settings(app_id=app_id, topic_prefix=app_id)
        await ensure_topics(bootstrap, settings)
        pub = Publisher(bootstrap, settings.changes_topic, settings.deadletter_topic)
        await pub.start()
        try:
            await pub.publish(records)
        finally:
            await pub.stop()
        if raw:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
            await producer.start()
            try:
                for value in raw:
                    await producer.send_and_wait(settings.changes_topic, value, partition=0)
            finally:
                await producer.stop()

    asyncio.run(go())


def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 30) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                    enable_auto_commit=False)
        await consumer.start()
        out: list[dict[str, Any]] = []
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while len(out) < expect and loop.time() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                out.extend(json.loads(m.value) for msgs in batches.values() for m in msgs)
        finally:
            await consumer.stop()
        return out

    return asyncio.run(go())


def firing(store_url: str) -> dict[str, Any]:
    return {a.key: a for a in AlertStore(store_url).list(state="firing")}


def test_records_become_stored_alerts_and_bad_input_is_dead_lettered(broker, workers, app_id) -> None:
    (worker,) = workers(1)
    worker.wait_ready()
    publish(broker.bootstrap, app_id, [po("PO-A", overdue=True), po("PO-B", overdue=False)],
            raw=[b"this is not json", json.dumps({"source": "erp", "entity": "purchase_order", "key": "PO-X",
                                                   "seq": 1}).encode()])
    # The pipeline goes on after bad input: a record sent afterwards still alerts.
    publish(broker.bootstrap, app_id, [po("PO-C", overdue=True)])

    alerts = wait_for(lambda: (f := firing(workers.store)) and len(f) >= 2 and f, 60, "two firing alerts")
    assert sorted(alerts) == ["PO-A", "PO-C"]
    assert alerts["PO-A"].rule == "po-delivery-overdue"
    assert alerts["PO-A"].owner == "li.wei"
    expected = (TODAY - timedelta(days=9)).isoformat()
    assert alerts["PO-A"].summary == (  # stored with both languages (messages are in the reader's)
        f"采购单 PO-A(Acme Bearings)已逾期 9 天,预计到货 {expected} / "
        f"PO PO-A from Acme Bearings is 9 days late (expected {expected})"
    )

    letters = read_topic(broker.bootstrap, f"{app_id}-deadletter", expect=2)
    reasons = sorted(d["reason"] for d in letters)
    assert len(letters) == 2
    assert reasons[0].startswith("not JSON")
    assert reasons[1] == "ts: required, an ISO 8601 timestamp with offset"
    assert {d["where"]["topic"] for d in letters} == {f"{app_id}-changes"}

    # The goods arrive: the alert resolves by itself.
    publish(broker.bootstrap, app_id, [po("PO-A", overdue=True, seq=2, status="received")])
    wait_for(lambda: "PO-A" not in firing(workers.store), 30, "PO-A to resolve")
    resolved = {a.key for a in AlertStore(workers.store).list(state="resolved")}
    assert resolved == {"PO-A"}

    state = get_json(f"{worker.url}/api/orders/purchase_order/PO-A")
    assert state["fields"]["status"] == "received"
    # The first sighting is the state itself; the history holds the changes after it.
    assert [h["changed"].get("status") for h in state["history"]] == [["open", "received"]]


def test_replayed_records_do_not_change_state_or_alerts(broker, workers, app_id) -> None:
    (worker,) = workers(1)
    worker.wait_ready()
    record = po("PO-R", overdue=True, seq=5)
    publish(broker.bootstrap, app_id, [record])
    wait_for(lambda: "PO-R" in firing(workers.store), 60, "PO-R to fire")
    # An older change arriving late (seq 4) and a replay of seq 5 are both ignored.
    publish(broker.bootstrap, app_id, [po("PO-R", overdue=True, seq=4, status="received"), record])
    wait_for(lambda: (worker.status() or {}).get("records", 0) >= 3, 30, "the replays to be processed")
    state = get_json(f"{worker.url}/api/orders/purchase_order/PO-R")
    assert state["fields"]["status"] == "open"
    assert state["history"] == []  # neither the late change nor the replay was applied
    assert list(firing(workers.store)) == ["PO-R"]
