"""The debezium connector reading Debezium-format change events from the real embedded broker."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from connectors.base import PollResult
from connectors.dbz_event import parse_event
from connectors.debezium import DebeziumConfig, DebeziumConnector
from connectors.mapping import FieldMapping, FieldSpec
from orderwatch.broker import EmbeddedBroker

pytestmark = pytest.mark.integration

MAPPING = FieldMapping((
    FieldSpec("supplier", "supplier_name"),
    FieldSpec("status", "status"),
    FieldSpec("expected_date", "expected_date", "date"),
    FieldSpec("approved_at", "approved_at", "datetime"),
    FieldSpec("amount", "amount", "number"),
))
TS_MS = 1_741_168_800_000  # 2025-03-05T10:00:00Z


def decimal_b64(value: str, scale: int) -> str:
    unscaled = int(Decimal(value).scaleb(scale))
    return base64.b64encode(unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)).decode()


ROW_SCHEMA = {
    "type": "struct", "optional": True, "name": "erp.public.purchase_orders.Value",
    "fields": [
        {"type": "string", "optional": False, "field": "po_number"},
        {"type": "string", "optional": True, "field": "supplier_name"},
        {"type": "string", "optional": True, "field": "status"},
        {"type": "int32", "optional": True, "name": "io.debezium.time.Date", "field": "expected_date"},
        {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp", "field": "approved_at"},
        {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal",
         "parameters": {"scale": "2", "connect.decimal.precision": "12"}, "field": "amount"},
        {"type": "string", "optional": True, "field": "updated_by"},
    ],
}
ENVELOPE_SCHEMA = {
    "type": "struct", "name": "erp.public.purchase_orders.Envelope",
    "fields": [{**ROW_SCHEMA, "field": "before"}, {**ROW_SCHEMA, "field": "after"},
               {"type": "struct", "field": "source", "fields": []},
               {"type": "string", "field": "op"}, {"type": "int64", "field": "ts_ms"}],
}


def schema_row(po: str, status: str, amount: str = "1234.50") -> dict[str, Any]:
    # 2025-04-01 is day 20179; 2025-03-05T10:00:00 is that many microseconds.
    return {"po_number": po, "supplier_name": "华东五金", "status": status, "expected_date": 20179,
            "approved_at": TS_MS * 1000, "amount": decimal_b64(amount, 2), "updated_by": "alice"}


def plain_row(po: str, status: str) -> dict[str, Any]:
    # decimal.handling.mode=string, no schema: times as epoch integers.
    return {"po_number": po, "supplier_name": "Acme", "status": status, "expected_date": 20179,
            "approved_at": TS_MS, "amount": "99.90", "updated_by": "bob"}


def event(op: str, before: Any, after: Any, ts_ms: int = TS_MS, schema: bool = True) -> bytes:
    payload = {"before": before, "after": after, "op": op, "ts_ms": ts_ms + 5,
               "source": {"connector": "postgresql", "db": "erp", "table": "purchase_orders", "ts_ms": ts_ms,
                          "lsn": 123456}}
    doc = {"schema": ENVELOPE_SCHEMA, "payload": payload} if schema else payload
    return json.dumps(doc).encode()


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes | None]],
                  partitions: int = 2) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def connector(broker: EmbeddedBroker, topic: str, bookmark: dict[str, Any] | None = None,
              **options: Any) -> DebeziumConnector:
    cfg = DebeziumConfig(id="erp-cdc", entity="purchase_order", topic=topic, key=("po_number",),
                         mapping=MAPPING, actor="updated_by", **options)
    return DebeziumConnector(cfg, bookmark, broker.bootstrap)


async def drain(conn: DebeziumConnector, quiet: int = 3) -> PollResult:
    """Poll until `quiet` polls in a row read nothing; commit as the runner would."""
    out, idle = PollResult(), 0
    while idle < quiet:
        result = await conn.poll_async()
        conn.commit(result)
        out.records += result.records
        out.dead += result.dead
        out.rows_read += result.rows_read
        idle = 0 if result.rows_read else idle + 1
    return out


async def read_topic(broker: EmbeddedBroker, topic: str, messages: list[tuple[bytes | None, bytes | None]],
                     partitions: int = 2) -> tuple[DebeziumConnector, PollResult]:
    """Produce the messages, then read them all with a fresh connector, as `connectors run` would."""
    await produce(broker.bootstrap, topic, messages, partitions=partitions)
    conn = connector(broker, topic)
    await conn.start(lambda result: asyncio.sleep(0))
    result = await drain(conn)
    await conn.stop()
    return conn, result


def key(po: str) -> bytes:
    return json.dumps({"po_number": po}).encode()


def test_envelope_events_map_with_their_logical_types(broker: EmbeddedBroker) -> None:
    topic = f"erp.public.purchase_orders.{uuid.uuid4().hex[:6]}"
    messages = [
        (key("PO-1"), event("r", None, schema_row("PO-1", "open"))),  # the initial snapshot
        (key("PO-1"), event("u", schema_row("PO-1", "open"), schema_row("PO-1", "approved", "1300.00"),
                            TS_MS + 60_000)),
        (key("PO-2"), event("c", None, schema_row("PO-2", "open"))),
        (key("PO-2"), event("d", schema_row("PO-2", "open"), None, TS_MS + 120_000)),
        (key("PO-2"), None),  # the tombstone that follows a delete
    ]

    async def go() -> None:
        _, result = await read_topic(broker, topic, messages)
        assert result.dead == [] and result.rows_read == 5
        by = {(r.key, r.op, r.fields.get("status")): r for r in result.records}
        assert sorted(by) == [("PO-1", "upsert", "approved"), ("PO-1", "upsert", "open"),
                              ("PO-2", "delete", "open"), ("PO-2", "upsert", "open")]
        snap = by["PO-1", "upsert", "open"]
        assert snap.fields == {"supplier": "华东五金", "status": "open", "expected_date": "2025-04-01",
                               "approved_at": "2025-03-05T10:00:00+00:00", "amount": 1234.5}
        assert (snap.ts, snap.actor, snap.source) == (datetime.fromtimestamp(TS_MS / 1000, UTC), "alice", "erp-cdc")
        edit = by["PO-1", "upsert", "approved"]
        assert edit.changed == {"status": ("open", "approved"), "amount": (1234.5, 1300)}
        assert isinstance(edit.seq, int) and edit.seq > snap.seq  # offsets: per-key order
        gone = by["PO-2", "delete", "open"]
        assert gone.fields["supplier"] == "华东五金"  # the last values travel with the delete
        assert gone.ts.isoformat() == "2025-03-05T10:02:00+00:00"

    asyncio.run(go())


def test_events_without_schema_and_the_bad_ones(broker: EmbeddedBroker) -> None:
    topic = f"erp-plain-{uuid.uuid4().hex[:6]}"
    messages = [
        (key("PO-7"), event("c", None, plain_row("PO-7", "open"), schema=False)),
        (key("PO-8"), b"this is not json"),
        (key("PO-9"), json.dumps({"payload": {"after": {}}}).encode()),
        (None, event("t", None, None, schema=False)),
        (key("PO-10"), event("c", None, {**plain_row("PO-10", "open"), "expected_date": "soon"}, schema=False)),
        (key("PO-11"), event("d", None, None, schema=False)),
    ]

    async def go() -> None:
        _, result = await read_topic(broker, topic, messages, partitions=1)
        [record] = result.records
        assert record.fields == {"supplier": "Acme", "status": "open", "expected_date": "2025-04-01",
                                 "approved_at": "2025-03-05T10:00:00+00:00", "amount": 99.9}
        reasons = [(d.where["offset"], d.reason.split(":")[0]) for d in result.dead]
        assert reasons == [(1, "not JSON"), (2, "not a Debezium change event"),
                           (3, "the table was truncated"), (4, "field 'expected_date' (column 'expected_date')"),
                           (5, "op 'd' without 'before' row (PostgreSQL")]
        assert result.dead[3].where["text"] == "soon" and result.dead[3].where["partition"] == 0

    asyncio.run(go())


def test_resume_from_the_bookmark_reads_only_what_is_new(broker: EmbeddedBroker) -> None:
    topic = f"erp-resume-{uuid.uuid4().hex[:6]}"

    async def go() -> None:
        await produce(broker.bootstrap, topic, [(key(f"PO-{n}"), event("c", None, schema_row(f"PO-{n}", "open")))
                                                for n in range(6)])
        first = connector(broker, topic, batch_size=4)
        await first.start(lambda result: asyncio.sleep(0))
        one = PollResult()
        while one.rows_read == 0:  # stop after the first poll that read something
            one = await first.poll_async()
        assert 0 < one.rows_read <= 4
        first.commit(one)
        await first.stop()
        saved = json.loads(json.dumps(first.bookmark))
        await produce(broker.bootstrap, topic, [(key("PO-9"), event("c", None, schema_row("PO-9", "open")))])
        second = connector(broker, topic, saved)
        await second.start(lambda result: asyncio.sleep(0))
        rest = await drain(second)
        await second.stop()
        both = [r.key for r in one.records + rest.records]
        assert sorted(both) == sorted(f"PO-{n}" for n in (0, 1, 2, 3, 4, 5, 9))  # each once
        assert rest.rows_read == 7 - one.rows_read

        late = connector(broker, topic, start="latest")  # no bookmark, start at the end
        await late.start(lambda result: asyncio.sleep(0))
        assert (await drain(late)).rows_read == 0
        await late.stop()

    asyncio.run(go())


def test_a_topic_that_does_not_exist_yet_is_an_error_to_retry(broker: EmbeddedBroker) -> None:
    async def go() -> None:
        conn = connector(broker, f"nope-{uuid.uuid4().hex[:6]}")
        await conn.start(lambda result: asyncio.sleep(0))
        with pytest.raises(LookupError, match="does not exist"):
            await conn.poll_async()
        await conn.stop()

    asyncio.run(go())


def test_variable_scale_decimals_and_zoned_timestamps_decode() -> None:
    schema = {"fields": [{"field": "after", "fields": [
        {"field": "n", "name": "io.debezium.data.VariableScaleDecimal"},
        {"field": "z", "name": "io.debezium.time.ZonedTimestamp"},
        {"field": "d", "name": "org.apache.kafka.connect.data.Date"},
        {"field": "t", "name": "io.debezium.time.MicroTime"}]}]}
    after = {"n": {"scale": 3, "value": decimal_b64("-12.345", 3)}, "z": "2025-03-05T02:00:00Z", "d": 0,
             "t": 3_600_000_000}
    parsed = parse_event(json.dumps({"schema": schema, "payload": {"op": "c", "after": after}}).encode())
    assert parsed is not None and parsed.after == {
        "n": Decimal("-12.345"), "z": datetime(2025, 3, 5, 2, tzinfo=UTC), "d": date(1970, 1, 1), "t": "01:00:00"}
    assert parse_event(None) is None and parse_event(b"null") is None


def test_an_undecodable_value_is_a_dead_letter_not_a_stuck_connector(broker: EmbeddedBroker) -> None:
    """A value that cannot be decoded must not fail every poll on the same offset for ever."""
    topic = f"erp-poison-{uuid.uuid4().hex[:6]}"
    bad_decimal = {**schema_row("PO-1", "open"), "amount": "not base64!"}
    far_future = {**plain_row("PO-2", "open"), "approved_at": 10**25}
    # Without a schema a timestamp column mapped as a date (Odoo's date_order) arrives in µs.
    stamped = {**plain_row("PO-3", "open"), "expected_date": TS_MS * 1000}
    messages = [
        (key("PO-1"), event("c", None, bad_decimal)),
        (key("PO-2"), event("c", None, far_future, schema=False)),
        (key("PO-3"), event("c", None, stamped, schema=False)),
        (key("PO-4"), event("c", None, schema_row("PO-4", "open"))),
    ]

    async def go() -> None:
        conn, result = await read_topic(broker, topic, messages, partitions=1)
        assert [(r.key, r.fields["expected_date"]) for r in result.records] == [
            ("PO-3", "2025-03-05"), ("PO-4", "2025-04-01")]
        assert [(d.where["offset"], d.reason.split(":")[0]) for d in result.dead] == [
            (0, "column 'amount'"), (1, "field 'approved_at' (column 'approved_at')")]
        assert conn.bookmark == {"offsets": {"0": 4}}

    asyncio.run(go())


def test_start_latest_is_where_the_connector_first_started_not_where_it_restarts(broker: EmbeddedBroker) -> None:
    topic = f"erp-latest-{uuid.uuid4().hex[:6]}"

    async def go() -> None:
        await produce(broker.bootstrap, topic, [(key("PO-1"), event("c", None, schema_row("PO-1", "open")))])
        first = connector(broker, topic, start="latest")
        await first.start(lambda result: asyncio.sleep(0))
        assert (await drain(first)).rows_read == 0  # PO-1 came before: not read
        await first.stop()
        saved = json.loads(json.dumps(first.bookmark))
        # While the connector is down the ERP goes on.
        await produce(broker.bootstrap, topic, [(key("PO-2"), event("c", None, schema_row("PO-2", "open")))])
        second = connector(broker, topic, saved, start="latest")
        await second.start(lambda result: asyncio.sleep(0))
        rest = await drain(second)
        await second.stop()
        assert [r.key for r in rest.records] == ["PO-2"]

    asyncio.run(go())


def flat(row: dict[str, Any], schema: bool = True, **meta: Any) -> bytes:
    """A row as Debezium's ExtractNewRecordState transform writes it (add.fields=op,source.ts_ms and
    delete.handling.mode=rewrite give `__op`, `__source_ts_ms` and `__deleted`)."""
    payload = {**row, **meta}
    if not schema:
        return json.dumps(payload).encode()
    extra = [{"type": "int64" if k.endswith("ts_ms") else "string", "optional": True, "field": k} for k in meta]
    doc = {"schema": {**ROW_SCHEMA, "fields": ROW_SCHEMA["fields"] + extra}, "payload": payload}
    return json.dumps(doc).encode()


def test_a_flattened_stream_maps_like_an_enveloped_one(broker: EmbeddedBroker) -> None:
    enveloped = [
        (key("PO-1"), event("c", None, schema_row("PO-1", "open"))),
        (key("PO-1"), event("u", schema_row("PO-1", "open"), schema_row("PO-1", "approved", "1300.00"),
                            ts_ms=TS_MS + 60_000)),
        (key("PO-2"), event("c", None, schema_row("PO-2", "open"))),
        (key("PO-2"), event("d", schema_row("PO-2", "open"), None, ts_ms=TS_MS + 120_000)),
        (key("PO-2"), None),  # the tombstone after a delete
    ]
    flattened = [
        (key("PO-1"), flat(schema_row("PO-1", "open"), __op="c", __source_ts_ms=TS_MS, __deleted="false")),
        (key("PO-1"), flat(schema_row("PO-1", "approved", "1300.00"), __op="u", __source_ts_ms=TS_MS + 60_000,
                           __deleted="false")),
        (key("PO-2"), flat(schema_row("PO-2", "open"), __op="c", __source_ts_ms=TS_MS, __deleted="false")),
        (key("PO-2"), flat(schema_row("PO-2", "open"), __op="d", __source_ts_ms=TS_MS + 120_000, __deleted="true")),
        (key("PO-2"), None),
    ]

    def seen(result: PollResult) -> list[tuple[Any, ...]]:
        return [(r.key, r.op, r.fields, r.ts, r.actor) for r in result.records]

    async def go() -> None:
        _, full = await read_topic(broker, f"erp-env-{uuid.uuid4().hex[:6]}", enveloped, partitions=1)
        _, unwrapped = await read_topic(broker, f"erp-flat-{uuid.uuid4().hex[:6]}", flattened, partitions=1)
        assert full.dead == [] and unwrapped.dead == []
        assert seen(unwrapped) == seen(full) and len(full.records) == 4
        assert [r.op for r in unwrapped.records] == ["upsert", "upsert", "upsert", "delete"]

        # Without __op (the transform's defaults): the configured op, upsert; a __deleted row is a delete.
        bare = [(key("PO-3"), flat(plain_row("PO-3", "open"), schema=False)),
                (key("PO-3"), flat(plain_row("PO-3", "open"), schema=False, __deleted="true"))]
        topic = f"erp-bare-{uuid.uuid4().hex[:6]}"
        _, result = await read_topic(broker, topic, bare, partitions=1)
        assert [(r.key, r.op, r.fields.get("amount")) for r in result.records] == [
            ("PO-3", "upsert", 99.9), ("PO-3", "delete", 99.9)]
        strict = connector(broker, topic, op="reject")
        await strict.start(lambda result: asyncio.sleep(0))
        result = await drain(strict)
        await strict.stop()
        assert [d.reason for d in result.dead][:1] == [
            ("a flattened row (ExtractNewRecordState) without __op or __deleted: add 'add.fields=op' to "
             "the transform, or set the connector's op")]

    asyncio.run(go())
