"""Poison input against a running worker on the real broker: each kind alone, inside a message
with valid records, and between valid messages of the same batch. The valid records are
processed, the poison is dead-lettered with its reason, and the worker goes on."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from orderwatch.config import Settings
from orderwatch.record import ChangeRecord
from orderwatch.topics import ensure_topics, partition_for
from tests.conftest import get_json, wait_for
from tests.test_pipeline import firing, po, read_topic

pytestmark = pytest.mark.integration

DEEP = "nested more than 32 levels deep (objects and arrays, the record being the first): over the limit"


def _json(record: ChangeRecord) -> str:
    return json.dumps(record.to_dict())


def _with_fields(record: ChangeRecord, extra: str, seq: str | None = None) -> str:
    """A record's JSON with raw JSON text added to its fields (and its seq replaced)."""
    text = _json(record)
    if seq is not None:
        text = text.replace(f'"seq": {record.seq}', f'"seq": {seq}')
    return text.replace('"fields": {', '"fields": {' + extra + ", ", 1)


def _nested(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


# Poison that spoils its whole message: (message, reason).
WHOLE = {
    "nested-1000": ("[" * 1000 + "]" * 1000, "record: expected a JSON object, got list"),
    "nested-1100": ("[" * 1100 + "]" * 1100, "nested more than 1024 levels deep, over the limit (32 for a record)"),
    "10001-records": ("[" + ", ".join(["{}"] * 10_001) + "]",
                      "message holds 10001 records, over the limit of 10000 per message"),
}


def _record_poison(key: str) -> dict[str, tuple[str, str]]:
    """Poison records, one per kind, for keys derived from `key`: (record JSON, reason)."""
    return {
        "field-nested-300": (_with_fields(po(f"{key}-deep", overdue=True), f'"x": {_nested(300)}'),
                             f"fields: {DEEP}"),
        "seq-2**100": (_with_fields(po(f"{key}-seq", overdue=True), '"n": 1', seq=str(2**100)),
                       ("seq: an integer cursor must fit in 64 bits (at most 18446744073709551615); "
                       "send a larger one as a string")),
        "invalid-nested-300": (f'{{"key": "{key}-invalid", "payload": {_nested(300)}}}', f"payload: {DEEP}"),
        "surrogate": (_json(po(f"{key}-surrogate", overdue=True)).replace("Acme", "\\ud800"),
                      "fields: holds text that is not valid Unicode (an unpaired UTF-16 surrogate such as \\ud800)"),
        "record-over-1MiB": (_with_fields(po(f"{key}-big", overdue=True), '"note": "' + "x" * 1_100_000 + '"'),
                             "record: N bytes as JSON, over the limit of 1048576 bytes for one record"),
    }


def _send(bootstrap: str, app_id: str, messages: list[tuple[str | bytes, str]]) -> None:
    """Send (value, key for the partition) messages back to back: they arrive in one batch."""
    async def go() -> None:
        settings = Settings(app_id=app_id, topic_prefix=app_id)
        await ensure_topics(bootstrap, settings)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=8 * 1024 * 1024, linger_ms=50)
        await producer.start()
        try:
            futures = [await producer.send(settings.changes_topic, v if isinstance(v, bytes) else v.encode(),
                                           partition=partition_for(k, settings.partitions)) for v, k in messages]
            for future in futures:
                await future
        finally:
            await producer.stop()

    asyncio.run(go())


def test_poison_is_dead_lettered_with_its_reason_and_the_valid_records_around_it_are_processed(
        broker: Any, workers: Any, app_id: str) -> None:
    (worker,) = workers(1)
    worker.wait_ready()
    messages: list[tuple[str | bytes, str]] = []
    reasons: list[str] = []
    expected: set[str] = set()

    def valid(key: str) -> str:
        expected.add(key)
        return _json(po(key, overdue=True))

    for kind, (poison, reason) in WHOLE.items():
        messages.append((poison, kind))  # alone
        messages += [(f"[{valid(f'{kind}-before')}]", f"purchase_order:{kind}-before"), (poison, kind),
                     (f"[{valid(f'{kind}-after')}]", f"purchase_order:{kind}-after")]  # between valid messages
        reasons += [reason, reason]
    for kind, (poison, reason) in _record_poison("alone").items():
        messages.append((poison, kind))
        reasons.append(reason)
    for kind, (poison, reason) in _record_poison("same").items():
        # One message holds valid records around the poison (the keys hash elsewhere: the engine
        # keeps each state under the partition its record came in on, which is all it needs here).
        messages.append((f"[{valid(f'{kind}-same-1')}, {poison}, {valid(f'{kind}-same-2')}]", kind))
        reasons.append(reason)
    for kind, (poison, reason) in _record_poison("apart").items():
        messages += [(f"[{valid(f'{kind}-apart-1')}]", kind), (f"[{poison}]", kind),
                     (f"[{valid(f'{kind}-apart-2')}]", kind)]
        reasons.append(reason)
    # Valid, though unusual: NaN and an integer beyond 64 bits in fields (read as null and a float);
    # a float that durable_rules once crashed on (1e+16, written without a decimal point).
    nan_big = _with_fields(po("nan-big", overdue=True), f'"qty": NaN, "n": {2**100}')
    expected.add("nan-big")
    messages.append((f"[{valid('nan-big-neighbour')}, {nan_big}]", "nan-big"))
    far = _json(po("far-future", overdue=False)).replace('"expected_date": "', '"expected_date": 1e16, "was": "')
    messages.append((f"[{valid('far-future-neighbour')}, {far}]", "far-future"))
    _send(broker.bootstrap, app_id, messages)

    # The worker goes on: a record sent afterwards is processed too.
    _send(broker.bootstrap, app_id, [(f"[{valid('afterwards')}]", "purchase_order:afterwards")])
    alerts = wait_for(lambda: (f := firing(workers.store)) and expected <= set(f) and f, 120,
                      "every valid record's alert")
    assert set(alerts) == expected
    assert worker.proc.poll() is None

    letters = read_topic(broker.bootstrap, f"{app_id}-deadletter", expect=len(reasons))
    assert len(letters) == len(reasons)
    assert sorted(re.sub(r"^record: \d+ bytes", "record: N bytes", d["reason"]) for d in letters) == sorted(reasons)
    assert {d["where"]["topic"] for d in letters} == {f"{app_id}-changes"}
    deep = next(d for d in letters if d["reason"] == f"payload: {DEEP}")
    assert deep["payload"]["key"].endswith("-invalid")  # the payload kept, cut at depth
    state = get_json(f"{worker.url}/api/orders/purchase_order/nan-big")
    assert state["fields"]["qty"] is None and state["fields"]["n"] == float(2**100)
    assert get_json(f"{worker.url}/api/orders/purchase_order/far-future")["fields"]["expected_date"] == 1e16
    status = worker.status()
    assert status is not None and status["dead_lettered"] == len(reasons)
